//! `graph!`: a reusable piece of a job, used in `job!` (and in other graphs) like an op.
//!
//! ```text
//! graph! { fn clean(raw: Table) -> Table { let t = drop_nulls(raw); dedupe(t) } }
//! ```
//!
//! defines a type `clean` with `clean::definition() -> GraphDef<(Table,), Output<Table>>`
//! (whose body is the lowered body, fed by one `GraphInput` per parameter, returning the
//! tail expression's handles) and `impl Node for clean`, whose `Resources` is the tuple of
//! its nodes' resources, checked where the graph is used.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Type};

use crate::job::JobFn;
use crate::lowering::Lowering;
use crate::op::{parse_options, retry_tokens};
use crate::util::{Errors, doc_text, unraw};

/// The longest tuple a `Resources` list nests: longer lists are split into tuples of tuples.
const MAX_TUPLE: usize = 12;

/// Parameters `name: Type`, in order.
fn parameters(inputs: &TokenStream, errors: &mut Errors) -> Vec<(Ident, Type)> {
    let parser = syn::punctuated::Punctuated::<syn::PatType, syn::Token![,]>::parse_terminated;
    let params = match syn::parse::Parser::parse2(parser, inputs.clone()) {
        Ok(p) => p,
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                "graph parameters are its inputs, `name: Type`, as an op's",
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for p in params {
        match &*p.pat {
            syn::Pat::Ident(i) if i.by_ref.is_none() && i.subpat.is_none() => {
                out.push((i.ident.clone(), (*p.ty).clone()));
            }
            other => errors.at(other, "name each graph input: `name: Type`"),
        }
    }
    out
}

/// `Resources` as a tuple of at most [`MAX_TUPLE`] elements, nesting as needed.
fn resources_list(items: Vec<TokenStream>) -> TokenStream {
    if items.len() <= MAX_TUPLE {
        return quote!((#(#items,)*));
    }
    let chunks: Vec<TokenStream> = items
        .chunks(MAX_TUPLE)
        .map(|c| resources_list(c.to_vec()))
        .collect();
    resources_list(chunks)
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let graph: JobFn = match syn::parse2(input) {
        Ok(g) => g,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                format!(
                    "{e}; `graph!` takes one function: `graph! {{ fn clean(raw: Table) -> Table {{ let t = a(raw); b(t) }} }}`"
                ),
            );
            return e.to_compile_error();
        }
    };
    let mut errors = Errors::default();
    let mut passthrough = Vec::new();
    let mut options = None;
    for attr in &graph.attrs {
        if attr.path().is_ident("graph") {
            let args = match &attr.meta {
                syn::Meta::List(list) => list.tokens.clone(),
                _ => TokenStream::new(),
            };
            options = Some(parse_options(args, &mut errors));
        } else if !attr.path().is_ident("doc") {
            passthrough.push(attr);
        }
    }
    let options = options.unwrap_or_default();
    if let Some(config) = &options.config {
        errors.at(
            config,
            "graphs take no config: their ops do, at `ops.<graph>.ops.<op>.config`",
        );
    }
    if let Some((key, _)) = &options.outs {
        errors.at(
            key,
            "a graph's outputs are what its body returns: `-> (A, B)` and `(a, b)`",
        );
    }
    let params = parameters(&graph.inputs, &mut errors);
    let name = options
        .name
        .as_ref()
        .map_or_else(|| unraw(&graph.ident), syn::LitStr::value);

    let mut lowering = Lowering::new(false);
    for (p, _) in &params {
        lowering.handles.insert(p.to_string());
    }
    let mut body = Vec::new();
    let stmts = &graph.body.stmts;
    let (tail, rest) = match stmts.split_last() {
        Some((syn::Stmt::Expr(e, None), rest)) => (Some(e), rest),
        _ => (None, &stmts[..]),
    };
    for stmt in rest {
        lowering.statement(stmt, &mut body);
    }
    let returned = tail.map(|e| match e {
        Expr::Tuple(t) => {
            let items: Vec<TokenStream> = t
                .elems
                .iter()
                .map(|e| lowering.expr(e, &mut body, false))
                .collect();
            quote_spanned!(t.span()=> (#(#items,)*))
        }
        e => lowering.expr(e, &mut body, true),
    });
    let nodes = std::mem::take(&mut lowering.nodes);
    errors.push_all(std::mem::take(&mut lowering.errors));

    // What the graph gives back: a handle per returned type.
    let handles = match &graph.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(t) => {
                let items = t
                    .elems
                    .iter()
                    .map(|ty| quote_spanned!(ty.span()=> ::dagster_dask::graph::Output<#ty>));
                quote!((#(#items,)*))
            }
            ty => quote_spanned!(ty.span()=> ::dagster_dask::graph::Output<#ty>),
        },
    };
    if tail.is_none() && !matches!(graph.output, syn::ReturnType::Default) {
        errors.at(
            &graph.output,
            "the graph returns outputs: end its body with them, without `;` (e.g. `dedupe(t)`)",
        );
    }
    let returned = returned.unwrap_or_else(|| quote!(()));

    let ident = &graph.ident;
    let vis = &graph.vis;
    let names: Vec<String> = params.iter().map(|(p, _)| unraw(p)).collect();
    let idents: Vec<&Ident> = params.iter().map(|(p, _)| p).collect();
    let types: Vec<TokenStream> = params
        .iter()
        .map(
            |(_, ty)| quote_spanned!(ty.span()=> <#ty as ::dagster_dask::__private::IsValue>::Type),
        )
        .collect();
    let tags = options.tags.iter().map(|(k, v)| quote!(.tag(#k, #v)));
    let resources = options.resources.iter().map(|(k, amount, span)| {
        let lit = proc_macro2::Literal::f64_suffixed(*amount);
        quote_spanned!(*span=> .resource(#k, #lit))
    });
    let retry = retry_tokens(&options);
    let needs = resources_list(
        nodes
            .iter()
            .map(|p| quote_spanned!(p.span()=> <#p as ::dagster_dask::graph::Node>::Resources))
            .collect(),
    );
    let doc = doc_text(&graph.attrs).unwrap_or_default();
    let struct_doc = format!(
        " The graph `{name}`: use it in `job!` (or another graph) like an op, or add \
         `{ident}::definition()` with `JobBuilder::add_graph`. {doc}"
    );
    let body = errors.is_empty().then(|| quote!(#(#body)*));
    let returned = if errors.is_empty() {
        returned
    } else {
        quote!(::core::unreachable!())
    };
    let errors = errors.into_tokens();
    quote! {
        #[doc = #struct_doc]
        #[allow(non_camel_case_types, dead_code)]
        #(#passthrough)*
        #vis struct #ident {}

        impl #ident {
            /// The graph's definition.
            #[must_use]
            #vis fn definition() -> ::dagster_dask::graph::GraphDef<(#(#types,)*), #handles> {
                ::dagster_dask::graph::GraphDef::new(
                    #name,
                    [#(#names),*],
                    |__dd_job: &mut ::dagster_dask::graph::JobBuilder,
                     (#(#idents,)*): (#(::dagster_dask::graph::GraphInput<#types>,)*)|
                     -> #handles {
                        #body
                        #returned
                    },
                )
                #(#tags)*
                #(#resources)*
                #retry
            }
        }

        impl ::dagster_dask::graph::Node for #ident {
            type Inputs = (#(#types,)*);
            type Handles = #handles;
            type Resources = #needs;

            fn add_to(
                job: &mut ::dagster_dask::graph::JobBuilder,
                alias: ::core::option::Option<&str>,
                inputs: ::std::vec::Vec<::dagster_dask::graph::Wiring>,
            ) -> Self::Handles {
                Self::definition().add_to(job, alias, inputs)
            }
        }
        #errors
    }
}
