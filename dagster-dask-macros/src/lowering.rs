//! Lowering a job's or a graph's body to builder calls, checking names as it goes.
//!
//! Each op or graph call becomes `add_node::<N, _>(__dd_job, alias, (edge_at::<N, _, K>(arg),
//! ...))` inside a block that names the node once, `type __DdNode = path;`, at the user's
//! name: an unknown op is one error there. Each argument is checked against input `K` of
//! the node at the argument; nested calls are hoisted into `let` temporaries. Handles are
//! `let` bindings that must exist before they are used, so a body cannot have a cycle.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Token};

use crate::util::{Errors, is_valid_name, unraw};

/// Lowers the job body to builder calls, checking names as it goes.
pub(crate) struct Lowering {
    pub(crate) errors: Errors,
    /// `let` bindings seen so far: the handles in scope.
    pub(crate) handles: HashSet<String>,
    /// Step names given with `.alias("...")`, and step names the builder will pick.
    explicit: HashMap<String, Span>,
    auto: HashMap<String, usize>,
    auto_taken: HashSet<String>,
    temps: usize,
    /// Whether each call checks that the job provides the node's resources (in a job; a
    /// graph's needs are checked where the graph is used).
    pub(crate) check_resources: bool,
    /// The ops and graphs called, in order.
    pub(crate) nodes: Vec<syn::Path>,
}

impl Lowering {
    /// A lowering of a body; `check_resources`: see the field.
    pub(crate) fn new(check_resources: bool) -> Self {
        Self {
            errors: Errors::default(),
            handles: HashSet::new(),
            explicit: HashMap::new(),
            auto: HashMap::new(),
            auto_taken: HashSet::new(),
            temps: 0,
            check_resources,
            nodes: Vec::new(),
        }
    }

    fn temp(&mut self) -> Ident {
        self.temps += 1;
        format_ident!("__dd_step{}", self.temps)
    }

    pub(crate) fn statement(&mut self, stmt: &syn::Stmt, out: &mut Vec<TokenStream>) {
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
    pub(crate) fn expr(
        &mut self,
        expr: &Expr,
        out: &mut Vec<TokenStream>,
        top: bool,
    ) -> TokenStream {
        match expr {
            Expr::Paren(p) => self.expr(&p.expr, out, top),
            Expr::Call(call) => self.op_call(call, None, out, top),
            Expr::MethodCall(m) if m.method == "map" => self.map_call(m, None, out, top),
            Expr::MethodCall(m) if m.method == "collect" => {
                if !m.args.is_empty() {
                    self.errors.at(
                        &m.args,
                        "`.collect()` takes nothing: it gathers every mapped value into a `Vec`",
                    );
                }
                let values = self.expr(&m.receiver, out, false);
                let values = quote_spanned!(m.receiver.span()=> #values);
                quote_spanned!(m.method.span()=> ::dagster_dask::graph::collect(#values))
            }
            Expr::MethodCall(m) if m.method == "alias" => {
                let call = match &*m.receiver {
                    Expr::Call(call) => call,
                    Expr::MethodCall(map) if map.method == "map" => {
                        return match self.alias_of(m) {
                            Some(alias) => self.map_call(map, Some(alias), out, top),
                            None => self.map_call(map, None, out, top),
                        };
                    }
                    _ => {
                        self.errors.at(
                            &m.receiver,
                            "`.alias(\"name\")` goes on an op call or a map: `op(...).alias(\"name\")`, \
                             `values.map(op).alias(\"name\")`",
                        );
                        return quote!(());
                    }
                };
                let alias = self.alias_of(m);
                self.op_call(call, alias, out, top)
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
                     lists of them (`[a, b]`, `vec![a, b]`), maps over a dynamic output \
                     (`x.map(op)`, `x.map(op).collect()`) and `from_config!()` for an input given \
                     in run config",
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
        let node = format_ident!("__DdNode");
        let args: Vec<TokenStream> = call
            .args
            .iter()
            .enumerate()
            .map(|(k, arg)| {
                let value = self.expr(arg, out, false);
                quote_spanned!(arg.span()=> ::dagster_dask::__private::edge_at::<#node, _, #k>(#value))
            })
            .collect();
        let inputs = quote_spanned!(call.span()=> (#(#args,)*));
        let named = self.step_name(path, alias.as_ref());
        let add = quote_spanned!(call.span()=> ::dagster_dask::graph::add_node::<#node, _>(__dd_job, #named, #inputs));
        self.node_block(path, add, out, top)
    }

    /// `.alias("name")`'s name; an error when it is not one string literal.
    fn alias_of(&mut self, m: &syn::ExprMethodCall) -> Option<LitStr> {
        match m.args.first() {
            Some(Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            })) if m.args.len() == 1 => Some(s.clone()),
            _ => {
                self.errors.at(
                    &m.args,
                    "`.alias` takes the step's name as one string literal: `.alias(\"name\")`",
                );
                None
            }
        }
    }

    /// `values.map(op)`: op `op` mapped over a dynamic output, one step per mapping key.
    fn map_call(
        &mut self,
        m: &syn::ExprMethodCall,
        alias: Option<LitStr>,
        out: &mut Vec<TokenStream>,
        top: bool,
    ) -> TokenStream {
        let path = match m.args.first() {
            Some(Expr::Path(p)) if m.args.len() == 1 && p.qself.is_none() => p.path.clone(),
            Some(Expr::Closure(body)) if m.args.len() == 1 => {
                if let Some(alias) = &alias {
                    self.errors.at(
                        alias,
                        "a map's body names its steps itself: alias the op calls inside it",
                    );
                }
                return self.map_body(m, body, out, top);
            }
            _ => {
                self.errors.at(
                    &m.args,
                    "`.map` takes one op by name, `values.map(op)` (the op takes one input, the \
                     value of each mapping key), or a body, `values.map(|x| op(x, other))`",
                );
                return quote!(());
            }
        };
        let values = self.expr(&m.receiver, out, false);
        let values = quote_spanned!(m.receiver.span()=> #values);
        let node = format_ident!("__DdNode");
        let named = self.step_name(&path, alias.as_ref());
        let add = quote_spanned!(m.method.span()=> ::dagster_dask::graph::map_node::<#node, _, _>(__dd_job, #named, #values));
        self.node_block(&path, add, out, top)
    }

    /// `values.map(|x| op(x, other))`: a body of op calls, with `x` the value of each
    /// mapping key; every step it adds runs once per key.
    fn map_body(
        &mut self,
        m: &syn::ExprMethodCall,
        body: &syn::ExprClosure,
        out: &mut Vec<TokenStream>,
        top: bool,
    ) -> TokenStream {
        let param = match body.inputs.iter().collect::<Vec<_>>().as_slice() {
            [syn::Pat::Ident(p)] if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            _ => {
                self.errors.at(
                    &body.inputs,
                    "a map's body takes one value, the value of each mapping key: `|x| op(x)`",
                );
                return quote!(());
            }
        };
        let values = self.expr(&m.receiver, out, false);
        let values = quote_spanned!(m.receiver.span()=> #values);
        // Handles bound inside the body are its own.
        let outer = self.handles.clone();
        self.handles.insert(param.to_string());
        let mut inner = Vec::new();
        let tail = match &*body.body {
            Expr::Block(block) => {
                let stmts = &block.block.stmts;
                match stmts.split_last() {
                    Some((syn::Stmt::Expr(tail, None), rest)) => {
                        for stmt in rest {
                            self.statement(stmt, &mut inner);
                        }
                        self.expr(tail, &mut inner, true)
                    }
                    _ => {
                        self.errors.at(
                            block,
                            "a map's body ends with the handle it gives back: `{ let y = a(x); b(y) }`",
                        );
                        quote!(())
                    }
                }
            }
            other => self.expr(other, &mut inner, true),
        };
        self.handles = outer;
        let map = quote_spanned!(m.method.span()=> ::dagster_dask::graph::map_with(
            __dd_job,
            #values,
            move |__dd_job: &mut ::dagster_dask::graph::JobBuilder, #param| { #(#inner)* #tail },
        ));
        if top {
            map
        } else {
            let temp = self.temp();
            out.push(quote!(let #temp = #map;));
            quote!(#temp)
        }
    }

    /// The step name argument of a call of op `path`: `Some(alias)`, or `None` for the
    /// builder's name, checked against the other names of the body.
    fn step_name(&mut self, path: &syn::Path, alias: Option<&LitStr>) -> TokenStream {
        let name = path
            .segments
            .last()
            .map(|s| unraw(&s.ident))
            .unwrap_or_default();
        match alias {
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
                quote!(::core::option::Option::Some(#alias))
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
                quote!(::core::option::Option::None)
            }
        }
    }

    /// `add` in a block that names the node `path` once, checking its resources; hoisted
    /// into a temporary unless it is a statement's value.
    fn node_block(
        &mut self,
        path: &syn::Path,
        add: TokenStream,
        out: &mut Vec<TokenStream>,
        top: bool,
    ) -> TokenStream {
        self.nodes.push(path.clone());
        let node = format_ident!("__DdNode");
        // The op (or graph) type is named once, at the user's name: an unknown op is one
        // error there, and so is a resource the job does not provide.
        let named = quote_spanned!(path.span()=> type #node = #path;);
        let provided = self.check_resources.then(|| {
            quote_spanned!(path.span()=>
                ::dagster_dask::__private::provided::<__DdResources, <#node as ::dagster_dask::graph::Node>::Resources>();
            )
        });
        let add = quote!({
            #named
            #provided
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
