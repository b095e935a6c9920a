//! Tags, and the cluster resources a step requires.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The tag that limits how long a step's attempt (on an op) or a whole run (on a job) may
/// take, in seconds: Dagster's `dagster/max_runtime`.
pub const MAX_RUNTIME_TAG: &str = "dagster/max_runtime";

/// Dagster's tag for the Dask resources an op needs, its value JSON (`{"GPU": 1}`): an op
/// given it has those resource requirements (see [`OpDef::resource`](super::OpDef::resource)).
pub const RESOURCES_TAG: &str = "dagster-dask/resource_requirements";

/// The amounts of a [`RESOURCES_TAG`] value: a JSON object of numbers of at least 0.
pub(crate) fn parse_resource_requirements(json: &str) -> Result<BTreeMap<String, f64>, String> {
    let amounts: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| format!("expected a JSON object of amounts such as {{\"GPU\": 1}}: {e}"))?;
    amounts
        .into_iter()
        .map(|(k, v)| match v.as_f64() {
            Some(a) if a.is_finite() && a >= 0.0 => Ok((k, a)),
            _ => Err(format!(
                "the amount of `{k}` is {v}, not a number of at least 0"
            )),
        })
        .collect()
}

/// Free-form tags plus the resources a step needs from the cluster.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tags {
    /// Free key/value tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// Resource name to amount, e.g. `{"GPU": 1}`: Dask's `resources=` for this step.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "resource_amounts"
    )]
    pub resource_requirements: BTreeMap<String, f64>,
}

impl Tags {
    /// Adds tag `key`: Dagster's [`RESOURCES_TAG`] with a value that parses sets resource
    /// requirements; anything else (a resources tag that does not parse included, which
    /// building the job refuses) is kept as a tag.
    pub(crate) fn insert(&mut self, key: String, value: String) {
        match parse_resource_requirements(&value) {
            Ok(amounts) if key == RESOURCES_TAG => self.resource_requirements.extend(amounts),
            _ => {
                self.values.insert(key, value);
            }
        }
    }

    /// `other`'s tags and amounts over these: a nested graph's over its outer graph's.
    pub(crate) fn overlay(&mut self, other: &Tags) {
        self.values.extend(other.values.clone());
        self.resource_requirements
            .extend(other.resource_requirements.clone());
    }

    /// Adds the tags and amounts of `outer` that these lack: an op's own win over its
    /// graph's.
    pub(crate) fn inherit(&mut self, outer: &Tags) {
        for (k, v) in &outer.values {
            self.values.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &outer.resource_requirements {
            self.resource_requirements.entry(k.clone()).or_insert(*v);
        }
    }

    /// Whether [`inherit`](Self::inherit) would add anything.
    pub(crate) fn lacks_any_of(&self, outer: &Tags) -> bool {
        outer.values.keys().any(|k| !self.values.contains_key(k))
            || outer
                .resource_requirements
                .keys()
                .any(|k| !self.resource_requirements.contains_key(k))
    }

    /// The op's `dagster/max_runtime`, when it has a valid one.
    pub fn max_runtime(&self) -> Option<Duration> {
        parse_max_runtime(self.values.get(MAX_RUNTIME_TAG)?).ok()
    }
}

/// A `dagster/max_runtime` value: a positive number of seconds.
pub(crate) fn parse_max_runtime(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a positive number of seconds, found `{value}`"))
}

/// Whole amounts serialize as integers (`{"GPU": 1}`), as people write them.
pub(crate) mod resource_amounts {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        map: &BTreeMap<String, f64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(map.len()))?;
        for (k, v) in map {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                out.serialize_entry(k, &(*v as i64))?;
            } else {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, f64>, D::Error> {
        BTreeMap::deserialize(d)
    }
}

/// `{"GPU":1}`: resource requirements as compact JSON, for messages and plans.
pub(crate) fn resources_json(map: &BTreeMap<String, f64>) -> String {
    struct Amounts<'a>(&'a BTreeMap<String, f64>);
    impl Serialize for Amounts<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            resource_amounts::serialize(self.0, s)
        }
    }
    serde_json::to_string(&Amounts(map)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_resource_amounts_serialize_as_integers() {
        let mut tags = Tags::default();
        tags.resource_requirements.insert("GPU".into(), 1.0);
        tags.resource_requirements.insert("MEMORY".into(), 0.5);
        let json = serde_json::to_string(&tags).unwrap();
        assert_eq!(json, r#"{"resource_requirements":{"GPU":1,"MEMORY":0.5}}"#);
        let back: Tags = serde_json::from_str(&json).unwrap();
        assert_eq!(back, tags);
    }
}
