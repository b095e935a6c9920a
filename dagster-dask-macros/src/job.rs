//! `job!`: parse the job function, check its wiring, then generate builder calls.
//!
//! ```text
//! job! { fn hello_job() { let name = get_name(); hello(name); } }
//! ```
//!
//! expands to
//!
//! ```text
//! fn hello_job() -> ::dagster_dask::graph::Job {
//!     let mut __dd_job = ::dagster_dask::graph::JobBuilder::new("hello_job");
//!     let name = { let __dd_op = <get_name as OpDefinition>::definition(); __dd_job.add(&__dd_op, ()) };
//!     { let __dd_op = <hello as OpDefinition>::definition(); __dd_job.add(&__dd_op, (edge_at::<_, _, _, 0>(&__dd_op, name),)) };
//!     ::dagster_dask::__private::finish(__dd_job)
//! }
//! ```
//!
//! Each argument is wrapped in `edge_at::<.., K>(&op, arg)`, spanned at the argument, which
//! checks it against input `K` of the op: a type mismatch is reported at the argument. The
//! op path is spanned at the user's op name, so an unknown op is reported there. Handles are `let` bindings that must exist before
//! they are used, so a cycle cannot be written.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, LitStr, Token, Visibility};

use crate::util::{Errors, check_tag_value, doc_text, is_valid_name, list, parse_tag_key, unraw};

const JOB_OPTIONS: &[&str] = &["name", "description", "tags", "resources"];

/// Resource names the run config gives a meaning of its own.
const RESERVED_RESOURCES: &[&str] = &["io_manager", "s3", "gcs", "adls2"];

/// `[attrs] [vis] fn name() { body }`.
struct JobFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    ident: Ident,
    inputs: TokenStream,
    output: syn::ReturnType,
    body: syn::Block,
}

impl Parse for JobFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![fn]>()?;
        let ident: Ident = input.parse()?;
        let content;
        syn::parenthesized!(content in input);
        let inputs: TokenStream = content.parse()?;
        let output: syn::ReturnType = input.parse()?;
        let body: syn::Block = input.parse()?;
        Ok(Self {
            attrs,
            vis,
            ident,
            inputs,
            output,
            body,
        })
    }
}

/// What `#[job(...)]` and the doc comment say.
#[derive(Default)]
struct JobOptions {
    name: Option<LitStr>,
    description: Option<String>,
    tags: Vec<(String, LitStr)>,
    /// `resources(name = Type, ...)`: what the job provides its ops.
    resources: Vec<(Ident, syn::Type)>,
}

fn parse_job_attr(attr: &Attribute, options: &mut JobOptions, errors: &mut Errors) {
    let result = attr.parse_nested_meta(|meta| {
        let key = meta.path.get_ident().map(unraw).unwrap_or_default();
        match key.as_str() {
            "name" => {
                let name: LitStr = meta.value()?.parse()?;
                if !is_valid_name(&name.value()) {
                    errors.at(&name, "job names may use only letters, digits and `_`");
                }
                if options.name.replace(name).is_some() {
                    errors.at(&meta.path, "`name` is given twice");
                }
            }
            "description" => {
                let d: LitStr = meta.value()?.parse()?;
                options.description = Some(d.value());
            }
            "tags" => {
                // Keys are identifiers or strings (`"dagster/max_runtime" = "3600"`).
                let content;
                syn::parenthesized!(content in meta.input);
                while !content.is_empty() {
                    let (key, _) = parse_tag_key(&content)?;
                    content.parse::<Token![=]>()?;
                    let value: LitStr = content.parse()?;
                    check_tag_value(&key, &value, errors);
                    options.tags.push((key, value));
                    if content.is_empty() {
                        break;
                    }
                    content.parse::<Token![,]>()?;
                }
            }
            "resources" => {
                let content;
                syn::parenthesized!(content in meta.input);
                while !content.is_empty() {
                    let name: Ident = content.call(syn::ext::IdentExt::parse_any)?;
                    content.parse::<Token![=]>()?;
                    let ty: syn::Type = content.parse()?;
                    let text = unraw(&name);
                    if !is_valid_name(&text) {
                        errors.at(&name, "resource names may use only letters, digits and `_`");
                    } else if RESERVED_RESOURCES.contains(&text.as_str()) {
                        errors.at(
                            &name,
                            format!(
                                "`{text}` is taken: `resources.{text}` configures the storage; \
                                 name the resource otherwise"
                            ),
                        );
                    } else if options.resources.iter().any(|(n, _)| unraw(n) == text) {
                        errors.at(&name, format!("resource `{text}` is named twice"));
                    }
                    options.resources.push((name, ty));
                    if content.is_empty() {
                        break;
                    }
                    content.parse::<Token![,]>()?;
                }
            }
            _ => {
                errors.at(
                    &meta.path,
                    format!(
                        "unknown `#[job]` option; the options are {}",
                        list(JOB_OPTIONS)
                    ),
                );
                // Consume the value so the rest still parses.
                if meta.input.peek(Token![=]) {
                    let _: Expr = meta.value()?.parse()?;
                } else if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                    let _: proc_macro2::Group = meta.input.parse()?;
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        errors.push(e);
    }
}

/// Lowers the job body to builder calls, checking names as it goes.
struct Lowering {
    errors: Errors,
    /// `let` bindings seen so far: the handles in scope.
    handles: HashSet<String>,
    /// Step names given with `.alias("...")`, and step names the builder will pick.
    explicit: HashMap<String, Span>,
    auto: HashMap<String, usize>,
    auto_taken: HashSet<String>,
    temps: usize,
}

impl Lowering {
    fn temp(&mut self) -> Ident {
        self.temps += 1;
        format_ident!("__dd_step{}", self.temps)
    }

    fn statement(&mut self, stmt: &syn::Stmt, out: &mut Vec<TokenStream>) {
        match stmt {
            syn::Stmt::Local(local) => {
                let plain = |pat: &syn::Pat| match pat {
                    syn::Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                        Some(vec![p.ident.clone()])
                    }
                    syn::Pat::Type(t) => match &*t.pat {
                        syn::Pat::Ident(p) => Some(vec![p.ident.clone()]),
                        _ => None,
                    },
                    _ => None,
                };
                // `let (a, b) = op(...)`: one handle per output of an op with several (`_`
                // for one that is not used).
                let idents = plain(&local.pat).or_else(|| match &local.pat {
                    syn::Pat::Tuple(t) => t
                        .elems
                        .iter()
                        .map(|e| match e {
                            syn::Pat::Wild(_) => Some(Vec::new()),
                            e => plain(e),
                        })
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.into_iter().flatten().collect()),
                    _ => None,
                });
                let Some(idents) = idents else {
                    self.errors.at(
                        &local.pat,
                        "bind each handle to a name: `let name = op(...);`, or one name per \
                         output of an op with several: `let (a, b) = op(...);`",
                    );
                    return;
                };
                let Some(init) = &local.init else {
                    self.errors
                        .at(local, "a handle needs a value: `let name = op(...);`");
                    return;
                };
                if let Some((_, diverge)) = &init.diverge {
                    self.errors
                        .at(diverge, "`let ... else` has no place in a job");
                }
                let value = self.expr(&init.expr, out, true);
                let pat = &local.pat;
                out.push(quote!(let #pat = #value;));
                self.handles.extend(idents.iter().map(ToString::to_string));
            }
            syn::Stmt::Expr(expr, _) => {
                let value = self.expr(expr, out, true);
                out.push(quote!(#value;));
            }
            syn::Stmt::Item(item) => self.errors.at(
                item,
                "items cannot be declared inside `job!`; declare them outside the job",
            ),
            syn::Stmt::Macro(m) => self.errors.at(
                m,
                "job bodies hold `let` bindings and op calls; a macro statement is neither",
            ),
        }
    }

    /// Lowers a handle expression. Op calls nested inside arguments are hoisted into
    /// `let` temporaries (the builder is borrowed mutably by each call).
    fn expr(&mut self, expr: &Expr, out: &mut Vec<TokenStream>, top: bool) -> TokenStream {
        match expr {
            Expr::Paren(p) => self.expr(&p.expr, out, top),
            Expr::Call(call) => self.op_call(call, None, out, top),
            Expr::MethodCall(m) if m.method == "alias" => {
                let Expr::Call(call) = &*m.receiver else {
                    self.errors.at(
                        &m.receiver,
                        "`.alias(\"name\")` goes on an op call: `op(...).alias(\"name\")`",
                    );
                    return quote!(());
                };
                let alias = match m.args.first() {
                    Some(Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    })) if m.args.len() == 1 => s.clone(),
                    _ => {
                        self.errors.at(&m.args, "`.alias` takes the step's name as one string literal: `.alias(\"name\")`");
                        return self.op_call(call, None, out, top);
                    }
                };
                self.op_call(call, Some(alias), out, top)
            }
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                let ident = p.path.get_ident().expect("checked above");
                if !self.handles.contains(&ident.to_string()) {
                    self.errors.at(
                        ident,
                        format!(
                            "`{ident}` is not a handle defined above: bind it first with `let {ident} = op(...);` \
                             (a step can only use the outputs of steps before it, so jobs have no cycles)"
                        ),
                    );
                }
                quote!(#ident)
            }
            Expr::Array(array) => {
                let items: Vec<TokenStream> = array
                    .elems
                    .iter()
                    .map(|e| self.expr(e, out, false))
                    .collect();
                quote_spanned!(array.span()=> [#(#items),*])
            }
            // An input given in run config, `ops.<step>.inputs.<name>`: marked so, so that a
            // forgotten wire is still an error.
            Expr::Macro(m) if m.mac.path.is_ident("from_config") => {
                if !m.mac.tokens.is_empty() {
                    self.errors.at(
                        &m.mac.tokens,
                        "`from_config!()` takes nothing: the value is given in run config at \
                         `ops.<step>.inputs.<input>`",
                    );
                }
                quote_spanned!(m.span()=> ::dagster_dask::graph::config_input())
            }
            Expr::Macro(m) if m.mac.path.segments.last().is_some_and(|s| s.ident == "vec") => {
                match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(m.mac.tokens.clone()) {
                    Ok(elems) => {
                        let items: Vec<TokenStream> =
                            elems.iter().map(|e| self.expr(e, out, false)).collect();
                        quote_spanned!(m.span()=> ::std::vec![#(#items),*])
                    }
                    Err(e) => {
                        self.errors.push(e);
                        quote!(())
                    }
                }
            }
            other => {
                self.errors.at(
                    other,
                    "job bodies wire ops: use handles (`x`), op calls (`op(x)`, `op(x).alias(\"name\")`), \
                     lists of them (`[a, b]`, `vec![a, b]`) and `from_config!()` for an input given in \
                     run config",
                );
                quote!(())
            }
        }
    }

    fn op_call(
        &mut self,
        call: &syn::ExprCall,
        alias: Option<LitStr>,
        out: &mut Vec<TokenStream>,
        top: bool,
    ) -> TokenStream {
        let Expr::Path(path) = &*call.func else {
            self.errors.at(&call.func, "call ops by name: `op(...)`");
            return quote!(());
        };
        let path = &path.path;
        let def = format_ident!("__dd_op");
        let args: Vec<TokenStream> = call
            .args
            .iter()
            .enumerate()
            .map(|(k, arg)| {
                let value = self.expr(arg, out, false);
                quote_spanned!(arg.span()=> ::dagster_dask::__private::edge_at::<_, _, _, #k>(&#def, #value))
            })
            .collect();
        let inputs = quote_spanned!(call.span()=> (#(#args,)*));
        let name = path
            .segments
            .last()
            .map(|s| unraw(&s.ident))
            .unwrap_or_default();
        let add = match &alias {
            Some(alias) => {
                let value = alias.value();
                if !is_valid_name(&value) {
                    self.errors
                        .at(alias, "step names may use only letters, digits and `_`");
                } else if self.explicit.contains_key(&value) || self.auto_taken.contains(&value) {
                    self.errors.at(
                        alias,
                        format!("two steps are named `{value}`: give each step its own name"),
                    );
                }
                self.explicit.insert(value, alias.span());
                quote_spanned!(call.span()=> __dd_job.add_as(#alias, &#def, #inputs))
            }
            None => {
                // The builder names the n-th use of an op `<op>_<n>`: mirror it to catch
                // clashes with explicit names at compile time.
                let n = self.auto.entry(name.clone()).or_insert(0);
                *n += 1;
                let step = if *n == 1 {
                    name.clone()
                } else {
                    format!("{name}_{n}")
                };
                if let Some(span) = self.explicit.get(&step) {
                    self.errors.push(syn::Error::new(
                        *span,
                        format!("two steps are named `{step}`: this alias and a use of `{name}` that is named so"),
                    ));
                }
                self.auto_taken.insert(step);
                quote_spanned!(call.span()=> __dd_job.add(&#def, #inputs))
            }
        };
        // The op type is named once, at the user's op name: an unknown op is one error there,
        // and so is a resource the job does not provide.
        let definition =
            quote_spanned!(path.span()=> <#path as ::dagster_dask::op::OpDefinition>::definition());
        let provided = quote_spanned!(path.span()=>
            ::dagster_dask::__private::provided::<__DdResources, <#path as ::dagster_dask::op::OpDefinition>::Resources>();
        );
        let add = quote!({
            #provided
            let #def = #definition;
            #add
        });
        if top {
            add
        } else {
            let temp = self.temp();
            out.push(quote!(let #temp = #add;));
            quote!(#temp)
        }
    }
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let job: JobFn = match syn::parse2(input) {
        Ok(job) => job,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                format!(
                    "{e}; `job!` takes one function: `job! {{ fn my_job() {{ let x = op(); other(x); }} }}`"
                ),
            );
            return e.to_compile_error();
        }
    };
    let mut options = JobOptions::default();
    let mut errors = Errors::default();
    let mut passthrough = Vec::new();
    for attr in &job.attrs {
        if attr.path().is_ident("job") {
            parse_job_attr(attr, &mut options, &mut errors);
        } else {
            passthrough.push(attr);
        }
    }
    if !job.inputs.is_empty() {
        errors.at(
            &job.inputs,
            "job functions take no parameters: ops get their settings from run config",
        );
    }
    if let syn::ReturnType::Type(_, ty) = &job.output {
        errors.at(
            ty,
            "leave out the return type: `job!` defines `fn ...() -> Job`",
        );
    }
    let name = options
        .name
        .as_ref()
        .map_or_else(|| unraw(&job.ident), LitStr::value);
    let description = options.description.or_else(|| doc_text(&job.attrs));

    let mut lowering = Lowering {
        errors: Errors::default(),
        handles: HashSet::new(),
        explicit: HashMap::new(),
        auto: HashMap::new(),
        auto_taken: HashSet::new(),
        temps: 0,
    };
    let mut body = Vec::new();
    for stmt in &job.body.stmts {
        lowering.statement(stmt, &mut body);
    }
    errors.push_all(lowering.errors);

    let vis = &job.vis;
    let ident = &job.ident;
    let description = description.map(|d| quote!(__dd_job.description(#d);));
    let tags = options
        .tags
        .iter()
        .map(|(k, v)| quote!(__dd_job.tag(#k, #v);));
    let resource_names = options.resources.iter().map(|(n, _)| unraw(n));
    let resource_types: Vec<&syn::Type> = options.resources.iter().map(|(_, t)| t).collect();
    let provides = resource_types.iter().map(|ty| {
        quote_spanned!(ty.span()=> impl ::dagster_dask::resource::Provides<#ty> for __DdResources {})
    });
    // On errors the job still exists, with an empty graph, so the rest of the crate
    // type-checks and the IDE keeps working; the errors say what to fix.
    let body = errors.is_empty().then(|| quote!(#(#body)*));
    let errors = errors.into_tokens();
    quote! {
        #(#passthrough)*
        #[must_use]
        #vis fn #ident() -> ::dagster_dask::graph::Job {
            #[allow(unused_mut)]
            let mut __dd_job = ::dagster_dask::graph::JobBuilder::new(#name);
            /// The resources this job provides, as types: checked against each op's needs.
            #[allow(dead_code)]
            struct __DdResources;
            #(#provides)*
            #description
            #(#tags)*
            #(__dd_job.resource::<#resource_types>(#resource_names);)*
            #body
            ::dagster_dask::__private::finish(__dd_job)
        }
        #errors
    }
}
