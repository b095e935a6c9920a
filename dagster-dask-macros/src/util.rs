//! Shared helpers: error accumulation, doc comments, names.

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Collects every error of one expansion, so that one build reports them all.
#[derive(Default)]
pub(crate) struct Errors {
    errors: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(error),
            None => self.errors = Some(error),
        }
    }

    pub(crate) fn push_all(&mut self, other: Errors) {
        if let Some(e) = other.errors {
            self.push(e);
        }
    }

    pub(crate) fn at<T: ToTokens>(&mut self, tokens: T, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_none()
    }

    /// `compile_error!`s for every error collected, or nothing.
    pub(crate) fn into_tokens(self) -> TokenStream {
        self.errors
            .map(|e| e.to_compile_error())
            .unwrap_or_default()
    }
}

/// The text of `///` comments among `attrs`, lines joined, `None` when there are none.
pub(crate) fn doc_text(attrs: &[syn::Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| line.strip_prefix(' ').unwrap_or(&line).to_owned())
        .collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Step, op and job names: letters, digits and `_` (Dagster's rule).
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An identifier's name without a raw `r#` prefix.
pub(crate) fn unraw(ident: &syn::Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

/// Lists names for messages: `` `a`, `b`, `c` ``.
pub(crate) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key in `tags(...)`: an identifier, or a string for keys such as `"dagster/priority"`.
pub(crate) fn parse_tag_key(
    input: syn::parse::ParseStream<'_>,
) -> syn::Result<(String, proc_macro2::Span)> {
    if input.peek(syn::LitStr) {
        let s: syn::LitStr = input.parse()?;
        Ok((s.value(), s.span()))
    } else {
        let id: syn::Ident = input.call(syn::ext::IdentExt::parse_any)?;
        Ok((unraw(&id), id.span()))
    }
}

/// Dagster's tag for the Dask resources a step needs, its value JSON (`{"GPU": 1}`).
pub(crate) const RESOURCES_TAG: &str = "dagster-dask/resource_requirements";

/// The resource amounts in a `dagster-dask/resource_requirements` tag's JSON: an object of
/// non-negative numbers.
pub(crate) fn parse_resources_json(json: &str) -> Result<Vec<(String, f64)>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| e.to_string())?;
    map.into_iter()
        .map(|(k, v)| match v.as_f64() {
            Some(a) if a.is_finite() && a >= 0.0 => Ok((k, a)),
            _ => Err(format!(
                "the amount of `{k}` is {v}, not a number of at least 0"
            )),
        })
        .collect()
}

/// The tag whose value the runtime reads as seconds: an op's attempt limit, a job's run limit.
pub(crate) const MAX_RUNTIME_TAG: &str = "dagster/max_runtime";

/// Whether `text` is a positive, finite number of seconds.
pub(crate) fn is_positive_seconds(text: &str) -> bool {
    text.trim()
        .parse::<f64>()
        .is_ok_and(|v| v > 0.0 && v.is_finite())
}

/// Refuses a `dagster/max_runtime` tag whose value is not a number of seconds, at the value.
pub(crate) fn check_tag_value(key: &str, value: &syn::LitStr, errors: &mut Errors) {
    if key == MAX_RUNTIME_TAG && !is_positive_seconds(&value.value()) {
        errors.at(
            value,
            format!("`{MAX_RUNTIME_TAG}` is a number of seconds above 0, e.g. \"300\""),
        );
    }
}
