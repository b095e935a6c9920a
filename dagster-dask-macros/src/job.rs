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
//!     let mut __dd_builder = ::dagster_dask::graph::JobBuilder::new("hello_job");
//!     let __dd_job = &mut __dd_builder;
//!     struct __DdResources;  // + `impl Provides<R>` for each resource of the job
//!     let name = { type __DdNode = get_name; provided::<..>(); add_node::<__DdNode, _>(__dd_job, None, ()) };
//!     { type __DdNode = hello; provided::<..>(); add_node::<__DdNode, _>(__dd_job, None, (edge_at::<__DdNode, _, 0>(name),)) };
//!     ::dagster_dask::__private::finish(__dd_builder)
//! }
//! ```
//!
//! The body is lowered by [`Lowering`](crate::lowering::Lowering); `tests/expand/*.expanded.rs`
//! hold the exact expansions.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, LitStr, Token, Visibility};

use crate::lowering::Lowering;
use crate::util::{Errors, check_tag_value, doc_text, is_valid_name, list, parse_tag_key, unraw};

const JOB_OPTIONS: &[&str] = &["name", "description", "tags", "resources"];

/// Resource names the run config gives a meaning of its own.
const RESERVED_RESOURCES: &[&str] = &["io_manager", "s3", "gcs", "adls2"];

/// `[attrs] [vis] fn name() { body }`.
pub(crate) struct JobFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) inputs: TokenStream,
    pub(crate) output: syn::ReturnType,
    pub(crate) body: syn::Block,
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

    let mut lowering = Lowering::new(true);
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
            let mut __dd_builder = ::dagster_dask::graph::JobBuilder::new(#name);
            let __dd_job = &mut __dd_builder;
            /// The resources this job provides, as types: checked against each op's needs.
            #[allow(dead_code)]
            struct __DdResources;
            #(#provides)*
            #description
            #(#tags)*
            #(__dd_job.resource::<#resource_types>(#resource_names);)*
            #body
            ::dagster_dask::__private::finish(__dd_builder)
        }
        #errors
    }
}
