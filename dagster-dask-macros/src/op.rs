//! `#[op]`: parse the options and the function, validate, then generate the op type.
//!
//! For `#[op(tags(resource_requirements(GPU = 1)))] fn train(ctx: &OpContext, rows: Vec<f64>) -> f64`
//! it expands to the function unchanged, plus:
//!
//! ```text
//! #[allow(non_camel_case_types, dead_code)]
//! struct train {}
//! impl ::dagster_dask::op::OpDefinition for train {
//!     type Inputs = (<Vec<f64> as ::dagster_dask::__private::IsValue>::Type,);
//!     type Output = <f64 as ::dagster_dask::__private::IsValue>::Type;
//!     const NAME: &'static str = "train";
//!     fn definition() -> ::dagster_dask::op::OpDef<Self::Inputs, Self::Output> {
//!         ::dagster_dask::op::OpDef::new(Self::NAME, ["rows"], move |__dd_ctx, (__dd_in0,): Self::Inputs| {
//!             train(__dd_ctx, __dd_in0)
//!         })
//!         .resource("GPU", 1f64)
//!     }
//! }
//! ```
//!
//! Input and output types go through `IsValue` (which is the type itself for serde types),
//! spanned at the user's type, so that a type serde cannot store is reported where the
//! user wrote it, with a message about steps rather than about serde's traits.
//! `tests/expand/*.expanded.rs` hold the exact expansions.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Ident, LitInt, LitStr, Token, Type};

use crate::util::{
    Errors, MAX_RUNTIME_TAG, RESOURCES_TAG, check_tag_value, doc_text, is_positive_seconds,
    is_valid_name, list, parse_resources_json, parse_tag_key, unraw,
};

const OPTIONS: &[&str] = &[
    "name",
    "description",
    "tags",
    "retries",
    "retry_policy",
    "max_runtime",
    "config",
    "out",
    "code_version",
];

const RETRY_OPTIONS: &[&str] = &["max_retries", "delay_ms", "backoff", "jitter"];

/// Everything the attribute said, each value with the tokens it came from.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<LitStr>,
    description: Option<LitStr>,
    pub(crate) tags: Vec<(String, LitStr)>,
    tags_given: Option<Span>,
    pub(crate) resources: Vec<(String, f64, Span)>,
    retries: Option<LitInt>,
    retry_policy: Option<RetryPolicy>,
    max_runtime: Option<syn::Expr>,
    pub(crate) config: Option<Type>,
    /// `code_version = "2"`.
    code_version: Option<LitStr>,
    /// `out(a, b(optional), c(dynamic))`: the named outputs, each with its kind.
    pub(crate) outs: Option<(Ident, Vec<(Ident, OutKind)>)>,
}

/// What kind of output an `out(...)` entry declares.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutKind {
    /// Always produced: the op returns `T`.
    Required,
    /// `name(optional)`: the op returns `Option<T>`.
    Optional,
    /// `name(dynamic)`: the op returns `Dynamic<T>`, values under mapping keys.
    Dynamic,
}

#[derive(Default)]
struct RetryPolicy {
    max_retries: Option<LitInt>,
    delay_ms: Option<LitInt>,
    backoff: Option<Ident>,
    jitter: Option<Ident>,
}

/// Skips the rest of an option we could not use: `= value` or `(...)`, up to the next comma.
fn skip_option(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &Ident, errors: &mut Errors) {
    if slot.is_some() {
        errors.at(key, format!("`{key}` is given twice; give it once"));
    } else {
        *slot = Some(value);
    }
}

pub(crate) fn parse_options(args: TokenStream, errors: &mut Errors) -> Options {
    let mut options = Options::default();
    let parser = |input: ParseStream<'_>| -> syn::Result<()> {
        while !input.is_empty() {
            let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            match unraw(&key).as_str() {
                "name" => {
                    input.parse::<Token![=]>()?;
                    let name: LitStr = input.parse()?;
                    if !is_valid_name(&name.value()) {
                        errors.at(&name, "op names may use only letters, digits and `_`");
                    }
                    set_once(&mut options.name, name, &key, errors);
                }
                "description" => {
                    input.parse::<Token![=]>()?;
                    set_once(&mut options.description, input.parse()?, &key, errors);
                }
                "retries" => {
                    input.parse::<Token![=]>()?;
                    let n: LitInt = input.parse()?;
                    if n.base10_parse::<u32>().is_err() {
                        errors.at(
                            &n,
                            "`retries` is a whole number of retries, e.g. `retries = 2`",
                        );
                    }
                    set_once(&mut options.retries, n, &key, errors);
                }
                "config" => {
                    input.parse::<Token![=]>()?;
                    set_once(&mut options.config, input.parse()?, &key, errors);
                }
                "code_version" => {
                    input.parse::<Token![=]>()?;
                    let version: LitStr = input.parse()?;
                    if version.value().is_empty() {
                        errors.at(
                            &version,
                            "`code_version` names a version: `code_version = \"2\"`",
                        );
                    }
                    set_once(&mut options.code_version, version, &key, errors);
                }
                "max_runtime" => {
                    input.parse::<Token![=]>()?;
                    set_once(&mut options.max_runtime, input.parse()?, &key, errors);
                }
                "tags" => {
                    if options.tags_given.replace(key.span()).is_some() {
                        errors.at(
                            &key,
                            "`tags` is given twice; put every tag in one `tags(...)`",
                        );
                    }
                    let content;
                    syn::parenthesized!(content in input);
                    parse_tags(&content, &mut options, errors)?;
                }
                "retry_policy" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let policy = parse_retry_policy(&content, key.span(), errors)?;
                    set_once(&mut options.retry_policy, policy, &key, errors);
                }
                "out" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let outs = parse_outs(&content, &key, errors)?;
                    set_once(&mut options.outs, (key.clone(), outs), &key, errors);
                }
                other => {
                    errors.at(
                        &key,
                        format!(
                            "unknown `#[op]` option `{other}`; the options are {}",
                            list(OPTIONS)
                        ),
                    );
                    skip_option(input)?;
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(())
    };
    if let Err(e) = parser.parse2(args) {
        errors.push(e);
    }
    if let (Some(retries), Some(_)) = (&options.retries, &options.retry_policy) {
        errors.at(
            retries,
            "`retries` and `retry_policy` both set the retries: keep one",
        );
    }
    max_runtime_tag(&mut options, errors);
    options
}

/// `max_runtime = 30` becomes the `dagster/max_runtime` tag; a tag given as a string is
/// checked like it.
fn max_runtime_tag(options: &mut Options, errors: &mut Errors) {
    for (key, value) in &options.tags {
        check_tag_value(key, value, errors);
    }
    let Some(expr) = options.max_runtime.take() else {
        return;
    };
    let seconds = match &expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => Some(i.base10_digits().to_owned()),
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Float(f),
            ..
        }) => Some(f.base10_digits().to_owned()),
        _ => None,
    };
    match seconds {
        Some(s) if is_positive_seconds(&s) => {
            if options.tags.iter().any(|(k, _)| k == MAX_RUNTIME_TAG) {
                errors.at(
                    &expr,
                    format!("`max_runtime` and the tag `{MAX_RUNTIME_TAG}` both set it: keep one"),
                );
            } else {
                options
                    .tags
                    .push((MAX_RUNTIME_TAG.to_owned(), LitStr::new(&s, expr.span())));
            }
        }
        _ => errors.at(
            &expr,
            "`max_runtime` is a number of seconds above 0, e.g. `max_runtime = 300` or \
             `max_runtime = 0.5`",
        ),
    }
}

fn parse_tags(
    input: ParseStream<'_>,
    options: &mut Options,
    errors: &mut Errors,
) -> syn::Result<()> {
    while !input.is_empty() {
        let (key, span) = parse_tag_key(input)?;
        if key == "resource_requirements" && input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            parse_resources(&content, options, errors)?;
        } else {
            input.parse::<Token![=]>()?;
            if input.peek(LitStr) && key == RESOURCES_TAG {
                // Dagster's literal tag, as ported jobs write it: honoured, not kept as text.
                let value: LitStr = input.parse()?;
                match parse_resources_json(&value.value()) {
                    Ok(amounts) => {
                        for (name, amount) in amounts {
                            if options.resources.iter().any(|(k, _, _)| *k == name) {
                                errors.at(&value, format!("resource `{name}` is given twice"));
                            }
                            options.resources.push((name, amount, value.span()));
                        }
                    }
                    Err(e) => errors.at(
                        &value,
                        format!(
                            "`{RESOURCES_TAG}` holds Dask resources as JSON, e.g. \
                             r#\"{{\"GPU\": 1}}\"#; this one does not parse ({e}); or write \
                             `tags(resource_requirements(GPU = 1))`"
                        ),
                    ),
                }
            } else if input.peek(LitStr) {
                let value: LitStr = input.parse()?;
                if options.tags.iter().any(|(k, _)| *k == key) {
                    errors.push(syn::Error::new(span, format!("tag `{key}` is given twice")));
                }
                options.tags.push((key, value));
            } else {
                let value: syn::Expr = input.parse()?;
                errors.at(
                    &value,
                    format!("tag `{key}` needs a string value, e.g. `{key} = \"...\"`"),
                );
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

fn parse_resources(
    input: ParseStream<'_>,
    options: &mut Options,
    errors: &mut Errors,
) -> syn::Result<()> {
    if input.is_empty() {
        errors.push(input.error(
            "`resource_requirements` is empty: name each resource and its amount, e.g. `resource_requirements(GPU = 1)`",
        ));
    }
    while !input.is_empty() {
        let (key, span) = parse_tag_key(input)?;
        if !input.peek(Token![=]) {
            return Err(input.error(format!(
                "expected `= amount` after `{key}`, e.g. `{key} = 1`"
            )));
        }
        input.parse::<Token![=]>()?;
        let value: syn::Expr = input.parse()?;
        let amount = match &value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(i),
                ..
            }) => i.base10_parse::<f64>().ok(),
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Float(f),
                ..
            }) => f.base10_parse::<f64>().ok(),
            _ => None,
        };
        match amount {
            Some(a) if a.is_finite() && a >= 0.0 => {
                if options.resources.iter().any(|(k, _, _)| *k == key) {
                    errors.push(syn::Error::new(span, format!("resource `{key}` is given twice")));
                }
                options.resources.push((key, a, value.span()));
            }
            _ => errors.at(
                &value,
                format!("the amount of `{key}` must be a number literal of at least 0, e.g. `{key} = 1` or `{key} = 10e9`"),
            ),
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

/// `out(evens, odds(optional), files(dynamic))`: output names, each with a flag or none.
fn parse_outs(
    input: ParseStream<'_>,
    key: &Ident,
    errors: &mut Errors,
) -> syn::Result<Vec<(Ident, OutKind)>> {
    let mut outs: Vec<(Ident, OutKind)> = Vec::new();
    while !input.is_empty() {
        let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        let mut kind = OutKind::Required;
        if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            let flag: Ident = content.parse()?;
            if flag == "optional" && content.is_empty() {
                kind = OutKind::Optional;
            } else if flag == "dynamic" && content.is_empty() {
                kind = OutKind::Dynamic;
            } else {
                errors.at(
                    &flag,
                    format!(
                        "an output takes one flag, `optional` or `dynamic`: `{name}(optional)`, \
                         `{name}(dynamic)`"
                    ),
                );
            }
        }
        let text = unraw(&name);
        if !is_valid_name(&text) {
            errors.at(&name, "output names may use only letters, digits and `_`");
        } else if outs.iter().any(|(n, _)| unraw(n) == text) {
            errors.at(&name, format!("output `{text}` is named twice"));
        }
        outs.push((name, kind));
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    if outs.is_empty() {
        errors.at(
            key,
            "`out()` names no output: name each, e.g. `out(evens, odds(optional))`, or leave it \
             out for one output named `result`",
        );
    }
    Ok(outs)
}

fn parse_retry_policy(
    input: ParseStream<'_>,
    span: Span,
    errors: &mut Errors,
) -> syn::Result<RetryPolicy> {
    let mut policy = RetryPolicy::default();
    while !input.is_empty() {
        let key: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        match unraw(&key).as_str() {
            "max_retries" => {
                let n: LitInt = input.parse()?;
                if n.base10_parse::<u32>().is_err() {
                    errors.at(&n, "`max_retries` is a whole number");
                }
                set_once(&mut policy.max_retries, n, &key, errors);
            }
            "delay_ms" => {
                let n: LitInt = input.parse()?;
                if n.base10_parse::<u64>().is_err() {
                    errors.at(&n, "`delay_ms` is a whole number of milliseconds");
                }
                set_once(&mut policy.delay_ms, n, &key, errors);
            }
            "backoff" => {
                let v: Ident = input.parse()?;
                if !matches!(v.to_string().as_str(), "linear" | "exponential") {
                    errors.at(&v, "`backoff` is `linear` or `exponential`");
                }
                set_once(&mut policy.backoff, v, &key, errors);
            }
            "jitter" => {
                let v: Ident = input.parse()?;
                if !matches!(v.to_string().as_str(), "full" | "plus_minus") {
                    errors.at(&v, "`jitter` is `full` or `plus_minus`");
                }
                set_once(&mut policy.jitter, v, &key, errors);
            }
            other => {
                errors.at(
                    &key,
                    format!(
                        "unknown `retry_policy` option `{other}`; the options are {}",
                        list(RETRY_OPTIONS)
                    ),
                );
                skip_option(input)?;
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    if policy.max_retries.is_none() {
        errors.push(syn::Error::new(
            span,
            "`retry_policy` needs `max_retries = N`",
        ));
    }
    Ok(policy)
}

/// The function's shape, as the op sees it.
struct Signature {
    context: bool,
    inputs: Vec<(String, Type)>,
    /// The resources (`&T` parameters), by type.
    resources: Vec<Type>,
    /// The function's parameters after the context, in order: an input or a resource, by
    /// position in its list.
    params: Vec<Param>,
    /// The output type; for a `Result`, the whole `Result` type.
    output: Type,
    fallible: bool,
    is_async: bool,
}

/// One parameter of an op function, after the context.
#[derive(Clone, Copy)]
enum Param {
    Input(usize),
    Resource(usize),
}

/// Whether `ty` is `&OpContext` (by its last path segment, so any import path works).
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => matches!(&*r.elem, Type::Path(p)
            if p.path.segments.last().is_some_and(|s| s.ident == "OpContext")),
        _ => false,
    }
}

/// Inputs and outputs are stored between steps, so they cannot borrow.
fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    let borrowed = match ty {
        Type::Reference(_) => Some(ty),
        Type::Path(p) => p.path.segments.iter().find_map(|seg| match &seg.arguments {
            syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
                syn::GenericArgument::Type(t @ Type::Reference(_)) => Some(t),
                syn::GenericArgument::Lifetime(_) => Some(ty),
                _ => None,
            }),
            _ => None,
        }),
        Type::Tuple(t) => t.elems.iter().find(|e| matches!(e, Type::Reference(_))),
        Type::Slice(_) | Type::TraitObject(_) | Type::ImplTrait(_) => Some(ty),
        _ => None,
    };
    if let Some(b) = borrowed {
        errors.at(
            b,
            format!(
                "an op {what} is stored between steps, so it must be an owned serde type: \
                 use `String` for `&str`, `Vec<T>` for `&[T]`, an owned value for `&T`"
            ),
        );
    }
}

/// Reads the function's shape; every problem goes to `errors`. The shape is returned even
/// then, so that the op type still exists for the code that uses it.
fn analyze(func: &syn::ItemFn, errors: &mut Errors) -> Signature {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.at(
            &sig.generics,
            "ops cannot be generic: each op has fixed input and output types",
        );
    }
    if let Some(v) = &sig.variadic {
        errors.at(v, "ops cannot be variadic");
    }
    let mut context = false;
    let mut inputs = Vec::new();
    let mut resources = Vec::new();
    let mut params = Vec::new();
    for (i, arg) in sig.inputs.iter().enumerate() {
        match arg {
            syn::FnArg::Receiver(r) => errors.at(r, "ops are free functions: remove `self`"),
            syn::FnArg::Typed(pt) => {
                if is_context(&pt.ty) {
                    if i == 0 {
                        context = true;
                    } else {
                        errors.at(pt, "`&OpContext` must be the op's first parameter: move it before the inputs");
                    }
                    continue;
                }
                // A borrowed parameter is a resource: inputs are owned (stored between steps).
                if let Type::Reference(r) = &*pt.ty {
                    if r.mutability.is_some() {
                        errors.at(
                            &pt.ty,
                            "a resource is shared by the steps of a run: take it as `&T`, not \
                             `&mut T` (use a `Mutex` inside it for what must change)",
                        );
                    }
                    params.push(Param::Resource(resources.len()));
                    resources.push((*r.elem).clone());
                    continue;
                }
                let name = match &*pt.pat {
                    syn::Pat::Ident(p) => unraw(&p.ident),
                    _ => format!("input{}", inputs.len()),
                };
                check_owned(&pt.ty, "input", errors);
                params.push(Param::Input(inputs.len()));
                inputs.push((name, (*pt.ty).clone()));
            }
        }
    }
    if inputs.len() > 12 {
        errors.at(
            &sig.inputs,
            "ops take at most 12 inputs: group some into a struct",
        );
    }
    let (output, fallible) = match &sig.output {
        syn::ReturnType::Default => (syn::parse_quote!(()), false),
        syn::ReturnType::Type(_, ty) => {
            let fallible = matches!(&**ty, Type::Path(p) if p.qself.is_none()
                && p.path.segments.last().is_some_and(|s| s.ident == "Result"
                    && matches!(s.arguments, syn::PathArguments::AngleBracketed(_))));
            check_owned(ty, "output", errors);
            ((**ty).clone(), fallible)
        }
    };
    Signature {
        context,
        inputs,
        resources,
        params,
        output,
        fallible,
        is_async: sig.asyncness.is_some(),
    }
}

/// One output named in `out(...)`, with the type of the value it stores (an item's, for a
/// dynamic output).
struct NamedOutput {
    name: String,
    kind: OutKind,
    value: Type,
}

/// The first type argument of `Result<T, E>` (any path ending in `Result`).
fn ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let syn::PathArguments::AngleBracketed(args) = &p.path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// `T` of `Wrapper<T>` (`Option`, `Dynamic`), written so.
fn wrapped<'t>(ty: &'t Type, wrapper: &str) -> Option<&'t Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != wrapper {
        return None;
    }
    ok_type(ty)
}

/// The one output, `result`, of an op returning `Dynamic<T>` (no `out(...)` needed).
fn dynamic_result(sig: &Signature) -> Option<Vec<NamedOutput>> {
    let returned = if sig.fallible {
        ok_type(&sig.output)?
    } else {
        &sig.output
    };
    Some(vec![NamedOutput {
        name: "result".to_owned(),
        kind: OutKind::Dynamic,
        value: wrapped(returned, "Dynamic")?.clone(),
    }])
}

/// Matches `out(...)` against what the function returns: one value per output (a tuple for
/// several, in order), an optional one as `Option<T>`.
fn named_outputs(
    outs: &[(Ident, OutKind)],
    key: &Ident,
    sig: &Signature,
    errors: &mut Errors,
) -> Vec<NamedOutput> {
    let returned = if sig.fallible {
        match ok_type(&sig.output) {
            Some(t) => t,
            None => return Vec::new(),
        }
    } else {
        &sig.output
    };
    let mut returned = returned;
    while let Type::Paren(p) = returned {
        returned = &p.elem;
    }
    let values: Vec<&Type> = match (outs.len(), returned) {
        (1, ty) => vec![ty],
        (n, Type::Tuple(t)) if t.elems.len() == n => t.elems.iter().collect(),
        (n, Type::Tuple(t)) => {
            errors.at(
                t,
                format!(
                    "`{key}(...)` names {n} outputs, but the op returns {} values: return one \
                     value per output, in the order `{key}` names them",
                    t.elems.len()
                ),
            );
            return Vec::new();
        }
        (n, ty) => {
            errors.at(
                ty,
                format!(
                    "`{key}(...)` names {n} outputs, so the op returns a tuple of {n} values, \
                     one per output in the order `{key}` names them"
                ),
            );
            return Vec::new();
        }
    };
    let mut named = Vec::with_capacity(outs.len());
    for ((name, kind), ty) in outs.iter().zip(values) {
        let (wrapper, returned_as) = match kind {
            OutKind::Required => ("", ""),
            OutKind::Optional => (
                "Option",
                "optional, so the op returns it as an `Option<...>` (`None`: not produced)",
            ),
            OutKind::Dynamic => (
                "Dynamic",
                "dynamic, so the op returns it as a `Dynamic<...>` (values under mapping keys)",
            ),
        };
        let value = if wrapper.is_empty() {
            ty
        } else {
            match wrapped(ty, wrapper) {
                Some(inner) => inner,
                None => {
                    errors.at(ty, format!("output `{}` is {returned_as}", unraw(name)));
                    continue;
                }
            }
        };
        named.push(NamedOutput {
            name: unraw(name),
            kind: *kind,
            value: value.clone(),
        });
    }
    named
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            // Not a function: give back what we got, so the IDE still sees it.
            let e = syn::Error::new(
                e.span(),
                "`#[op]` goes on a function: `#[op] fn name(...) -> T { ... }`",
            );
            let err = e.to_compile_error();
            return quote!(#item #err);
        }
    };
    let mut errors = Errors::default();
    let options = parse_options(args, &mut errors);
    let mut sig_errors = Errors::default();
    let signature = analyze(&func, &mut sig_errors);
    // (an empty `out()` is reported where it is parsed; the op keeps its one `result`)
    let outputs = options
        .outs
        .as_ref()
        .filter(|(_, outs)| !outs.is_empty())
        .map(|(key, outs)| named_outputs(outs, key, &signature, &mut sig_errors))
        .or_else(|| {
            options
                .outs
                .is_none()
                .then(|| dynamic_result(&signature))
                .flatten()
        });
    // With a broken signature only the op type is generated, without its `OpDefinition`:
    // the signature errors are what the user needs to see.
    let generated = generate(
        &func,
        &options,
        &signature,
        outputs.as_deref(),
        !sig_errors.is_empty(),
    );
    let errors = errors.into_tokens();
    let sig_errors = sig_errors.into_tokens();
    quote! {
        #func
        #generated
        #errors
        #sig_errors
    }
}

fn generate(
    func: &syn::ItemFn,
    options: &Options,
    sig: &Signature,
    outputs: Option<&[NamedOutput]>,
    broken: bool,
) -> TokenStream {
    let fn_ident = &func.sig.ident;
    let vis = &func.vis;
    let op_name = options
        .name
        .as_ref()
        .map_or_else(|| unraw(fn_ident), LitStr::value);
    let names: Vec<&str> = sig.inputs.iter().map(|(n, _)| n.as_str()).collect();
    let types: Vec<&Type> = sig.inputs.iter().map(|(_, t)| t).collect();
    let args: Vec<Ident> = (0..sig.inputs.len())
        .map(|i| format_ident!("__dd_in{}", i))
        .collect();
    let output = &sig.output;
    let output_ty = if sig.fallible {
        quote_spanned!(output.span()=> <#output as ::dagster_dask::op::OpResult>::Output)
    } else {
        quote!(#output)
    };
    // `<T as IsValue>::Type` is `T` when `T` can flow between steps; otherwise the error
    // is reported at the user's type, with `IsValue`'s message.
    let input_values = types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as ::dagster_dask::__private::IsValue>::Type));
    let mut output_value =
        quote_spanned!(output.span()=> <#output_ty as ::dagster_dask::__private::IsValue>::Type);
    // Named outputs: `Named<(Out<A>, OptionalOut<B>)>`, and their declarations.
    let mut declared = None;
    if let Some(outputs) = outputs {
        let parts = outputs.iter().map(|o| {
            let ty = &o.value;
            let value =
                quote_spanned!(ty.span()=> <#ty as ::dagster_dask::__private::IsValue>::Type);
            match o.kind {
                OutKind::Required => quote!(::dagster_dask::op::Out<#value>),
                OutKind::Optional => quote!(::dagster_dask::op::OptionalOut<#value>),
                OutKind::Dynamic => quote!(::dagster_dask::op::DynamicOut<#value>),
            }
        });
        let decls = outputs.iter().map(|o| {
            let name = &o.name;
            match o.kind {
                OutKind::Required => quote!(::dagster_dask::op::out(#name)),
                OutKind::Optional => quote!(::dagster_dask::op::optional_out(#name)),
                OutKind::Dynamic => quote!(::dagster_dask::op::dynamic_out(#name)),
            }
        });
        let (parts, decls) = if outputs.len() == 1 {
            (quote!(#(#parts)*), quote!(#(#decls)*))
        } else {
            (quote!((#(#parts,)*)), quote!((#(#decls,)*)))
        };
        output_value = quote_spanned!(output.span()=> ::dagster_dask::op::Named<#parts>);
        declared = Some(decls);
    }
    // The items are spanned at the user's types too: rustc checks them where they stand.
    let inputs_span = types.first().map_or_else(|| fn_ident.span(), |t| t.span());
    let inputs_item = quote_spanned!(inputs_span=> type Inputs = (#(#input_values,)*););
    let output_item = quote_spanned!(output.span()=> type Output = #output_value;);

    let ctx = format_ident!("__dd_ctx");
    let ctx_arg = sig.context.then(|| quote!(#ctx,));
    // Resources (`&T` parameters) are read from the context, built on first use.
    let res: Vec<Ident> = (0..sig.resources.len())
        .map(|i| format_ident!("__dd_res{}", i))
        .collect();
    let call_args = sig.params.iter().map(|p| match *p {
        Param::Input(i) => {
            let a = &args[i];
            quote!(#a)
        }
        Param::Resource(i) => {
            let r = &res[i];
            quote!(&*#r)
        }
    });
    let mut call = quote!(#fn_ident(#ctx_arg #(#call_args),*));
    if sig.is_async {
        call = quote!(::dagster_dask::__private::block_on(#call));
    }
    let with_resources = !sig.resources.is_empty();
    if with_resources {
        let types = &sig.resources;
        let result = if sig.fallible {
            quote!(#call.map_err(::core::convert::Into::<::dagster_dask::op::BoxError>::into))
        } else {
            quote!(::core::result::Result::<_, ::dagster_dask::op::BoxError>::Ok(#call))
        };
        call = quote!({
            #(let #res = #ctx.resource::<#types>()?;)*
            #result
        });
    }
    let constructor = match (sig.fallible || with_resources, declared.is_some()) {
        (true, false) => quote!(try_new),
        (false, false) => quote!(new),
        (true, true) => quote!(try_multi),
        (false, true) => quote!(multi),
    };
    let declared = declared.map(|d| quote!(#d,));
    let ctx_pat = if sig.context || with_resources {
        quote!(#ctx)
    } else {
        quote!(_)
    };
    // Spanned at the user's types: a type that is not a resource is reported there.
    let resource_types = sig
        .resources
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> ::dagster_dask::resource::Needs<#ty>));
    let resources_span = sig
        .resources
        .first()
        .map_or_else(|| fn_ident.span(), |t| t.span());
    let resources_item = quote_spanned!(resources_span=> type Resources = (#(#resource_types,)*););
    let needs = sig
        .resources
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> .needs::<#ty>()));

    let description = options
        .description
        .as_ref()
        .map(LitStr::value)
        .or_else(|| doc_text(&func.attrs))
        .map(|d| quote!(.description(#d)));
    let tags = options.tags.iter().map(|(k, v)| quote!(.tag(#k, #v)));
    let resources = options.resources.iter().map(|(k, amount, span)| {
        let lit = Literal::f64_suffixed(*amount);
        quote_spanned!(*span=> .resource(#k, #lit))
    });
    let retry = retry_tokens(options);
    let config = options
        .config
        .as_ref()
        .map(|ty| quote_spanned!(ty.span()=> .config::<#ty>()));
    let code_version = options
        .code_version
        .as_ref()
        .map(|v| quote!(.code_version(#v)));

    let body = quote! {
        ::dagster_dask::op::OpDef::#constructor(
            Self::NAME,
            [#(#names),*],
            #declared
            move |#ctx_pat: &::dagster_dask::op::OpContext, (#(#args,)*): Self::Inputs| #call,
        )
        #description
        #(#tags)*
        #(#resources)*
        #retry
        #config
        #code_version
        #(#needs)*
    };
    // With a broken signature only the type exists: code that uses it as an op gets one
    // "not an op" error, and the errors above say what to fix.
    let implementation = (!broken).then(|| {
        quote! {
            impl ::dagster_dask::op::OpDefinition for #fn_ident {
                #inputs_item
                #output_item
                #resources_item
                const NAME: &'static str = #op_name;

                fn definition() -> ::dagster_dask::op::OpDef<Self::Inputs, Self::Output> {
                    #body
                }
            }
        }
    });
    let struct_doc = format!(
        " The op `{op_name}`, defined by the function [`{fn_ident}()`]: add it to a job with \
         `job!`, or with `JobBuilder::add(&<{fn_ident} as OpDefinition>::definition(), ...)`."
    );

    quote! {
        #[doc = #struct_doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #fn_ident {}

        #implementation
    }
}

pub(crate) fn retry_tokens(options: &Options) -> Option<TokenStream> {
    if let Some(n) = &options.retries {
        return Some(quote!(.retry_policy(::dagster_dask::op::RetryPolicy::new(#n))));
    }
    let policy = options.retry_policy.as_ref()?;
    let max = policy.max_retries.as_ref()?;
    let delay = policy
        .delay_ms
        .as_ref()
        .map(|d| quote!(.with_delay(::core::time::Duration::from_millis(#d))));
    let backoff = policy.backoff.as_ref().map(|b| {
        let variant = if b == "linear" {
            quote!(Linear)
        } else {
            quote!(Exponential)
        };
        quote!(.with_backoff(::dagster_dask::op::Backoff::#variant))
    });
    let jitter = policy.jitter.as_ref().map(|j| {
        let variant = if j == "full" {
            quote!(Full)
        } else {
            quote!(PlusMinus)
        };
        quote!(.with_jitter(::dagster_dask::op::Jitter::#variant))
    });
    Some(quote!(.retry_policy(::dagster_dask::op::RetryPolicy::new(#max) #delay #backoff #jitter)))
}
