//! Dynamic outputs: fan out over what is only known at run time (Dagster's `DynamicOut`).
//!
//! An op returns a [`Dynamic<T>`]: values, each under a *mapping key*. A job maps an op over
//! it ([`JobBuilder::map`](crate::graph::JobBuilder::map), `files.map(op)` in `job!`): the
//! run creates one step per key, `op[key]`, once the dynamic output is stored, and each runs,
//! retries, fails and is skipped on its own. A chain of maps stays per key; `.collect()`
//! gathers the mapped outputs into a `Vec<T>`, in the order the keys were emitted.
//!
//! Storage: each item is an output of its own, `<run>/<step>/<output>/<key>`, and the keys
//! in order are kept at `<run>/<step>/<output>.keys` (written after the items: a dynamic
//! output is whole once its keys are stored). A mapped step `op[key]` stores at
//! `<run>/op/<key>/<output>`.

use std::fmt;

/// The most mapping keys one dynamic output may emit.
pub const MAX_MAPPING_KEYS: usize = 100_000;

/// What an op with a dynamic output returns: values, each under a mapping key (letters,
/// digits and `_`, unique within the output), in the order the mapped steps are collected.
///
/// ```
/// use dagster_dask::dynamic::Dynamic;
///
/// let files: Dynamic<String> = ["a.csv", "b.csv"]
///     .into_iter()
///     .map(|f| (f.replace('.', "_"), f.to_owned()))
///     .collect();
/// assert_eq!(files.keys().collect::<Vec<_>>(), ["a_csv", "b_csv"]);
/// ```
pub struct Dynamic<T> {
    items: Vec<(String, T)>,
}

impl<T> Dynamic<T> {
    /// No items: the steps mapped over it are not created, and what collects it is skipped.
    pub fn new() -> Self {
        Self { items: Vec::new() }
    }

    /// Adds `value` under mapping key `key`. Keys are checked when the op returns: a key
    /// with other characters than letters, digits and `_`, or one given twice, fails the step.
    pub fn push(&mut self, key: impl Into<String>, value: T) {
        self.items.push((key.into(), value));
    }

    /// How many items it has.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it has no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The mapping keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|(k, _)| k.as_str())
    }

    /// The items, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub(crate) fn into_items(self) -> Vec<(String, T)> {
        self.items
    }
}

impl<T> Default for Dynamic<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Dynamic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dynamic")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<K: Into<String>, T> FromIterator<(K, T)> for Dynamic<T> {
    fn from_iter<I: IntoIterator<Item = (K, T)>>(iter: I) -> Self {
        Self {
            items: iter.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        }
    }
}

impl<K: Into<String>, T> Extend<(K, T)> for Dynamic<T> {
    fn extend<I: IntoIterator<Item = (K, T)>>(&mut self, iter: I) {
        self.items
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v)));
    }
}

/// Checks one mapping key (Dagster's rule: letters, digits and `_`, at most 128 of them).
pub fn check_mapping_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a mapping key is empty".to_owned());
    }
    if key.len() > 128 {
        return Err(format!(
            "mapping key `{}...` is {} characters long (at most 128)",
            key.chars().take(32).collect::<String>(),
            key.len()
        ));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "mapping key `{}` has the character {bad:?}: mapping keys may use only letters, \
             digits and `_` (replace the others, e.g. `.` with `_`)",
            key.escape_debug()
        ));
    }
    Ok(())
}

/// Checks the keys of one dynamic output: each valid, none twice, not too many.
pub(crate) fn check_keys<'k>(keys: impl IntoIterator<Item = &'k str>) -> Result<(), String> {
    let mut seen = std::collections::HashMap::new();
    for (i, key) in keys.into_iter().enumerate() {
        if i >= MAX_MAPPING_KEYS {
            return Err(format!(
                "more than {MAX_MAPPING_KEYS} mapping keys: group the items into fewer keys"
            ));
        }
        check_mapping_key(key)?;
        if let Some(first) = seen.insert(key, i) {
            return Err(format!(
                "mapping key `{key}` is emitted twice (items {} and {}): each item needs a key \
                 of its own",
                first + 1,
                i + 1
            ));
        }
    }
    Ok(())
}

/// The key of the step of template `step` for mapping key `key`: `step[key]`.
pub(crate) fn instance_key(step: &str, key: &str) -> String {
    format!("{step}[{key}]")
}

/// `("step", "key")` for a mapped step's key `step[key]`; `None` for any other key.
pub(crate) fn split_instance(key: &str) -> Option<(&str, &str)> {
    let (step, rest) = key.strip_suffix(']')?.split_once('[')?;
    (!step.is_empty() && !rest.is_empty()).then_some((step, rest))
}

/// The output name under which item `key` of dynamic output `output` is stored.
pub(crate) fn item_output(output: &str, key: &str) -> String {
    instance_key(output, key)
}

/// The output name under which the keys of dynamic output `output` are stored.
pub(crate) fn keys_output(output: &str) -> String {
    format!("{output}.keys")
}

/// The stored form of a dynamic output's keys.
pub(crate) fn encode_keys(keys: &[String]) -> Vec<u8> {
    // (a list of strings always serializes)
    serde_json::to_vec(keys).unwrap_or_default()
}

/// The keys stored by [`encode_keys`], checked again (they come from storage).
fn decode_keys(bytes: &[u8]) -> Result<Vec<String>, String> {
    let keys: Vec<String> = serde_json::from_slice(bytes)
        .map_err(|e| format!("the stored mapping keys are not a JSON list of strings: {e}"))?;
    check_keys(keys.iter().map(String::as_str))?;
    Ok(keys)
}

/// The mapping keys of dynamic output `root` as run `run_id` (or the run `root` names)
/// stored them; the error says what is wrong and where.
pub(crate) fn read_keys(
    io: &dyn crate::io::IoManager,
    run_id: &str,
    root: &crate::plan::PlanSource,
) -> Result<Vec<String>, String> {
    let output = keys_output(&root.output);
    let key = crate::io::OutputKey {
        run_id: root.run.as_deref().unwrap_or(run_id),
        step: &root.step,
        output: &output,
    };
    let bytes = io
        .load(key)
        .map_err(|e| format!("{e} (dynamic output `{root}`)"))?;
    decode_keys(&bytes).map_err(|e| format!("{e} (at {})", io.location(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_keys_follow_dagsters_rule() {
        assert!(check_mapping_key("file_1").is_ok());
        let err = check_mapping_key("a.csv").unwrap_err();
        assert!(err.contains("'.'") && err.contains("`a.csv`"), "{err}");
        assert!(check_mapping_key("").is_err());
        assert!(check_mapping_key(&"x".repeat(129)).is_err());
        let err = check_keys(["a", "b", "a"]).unwrap_err();
        assert!(
            err.contains("`a` is emitted twice (items 1 and 3)"),
            "{err}"
        );
    }

    #[test]
    fn instance_keys_round_trip() {
        let key = instance_key("size", "k_1");
        assert_eq!(key, "size[k_1]");
        assert_eq!(split_instance(&key), Some(("size", "k_1")));
        assert_eq!(split_instance("size"), None);
        assert_eq!(split_instance("size[]"), None);
        let keys = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(decode_keys(&encode_keys(&keys)).unwrap(), keys);
        assert!(decode_keys(b"[\"a\", \"a\"]").is_err());
    }
}
