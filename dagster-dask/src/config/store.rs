//! Object storage in run config: where on S3, GCS or Azure outputs go, and how to connect.
//!
//! Dagster's own keys work unchanged (`s3_bucket` + `s3_prefix`, `gcs_bucket` + `gcs_prefix`,
//! `adls2_file_system` + `adls2_prefix`, with the connection in `resources.s3.config`,
//! `resources.gcs.config` and `resources.adls2.config`), and so does a URL
//! (`base_url: s3://bucket/prefix`). Connection options are object_store's own option names
//! (`aws_endpoint`, `azure_storage_account_name`, ...), checked here without touching the
//! network; whatever config does not give comes from the standard environment (`AWS_*`,
//! `AZURE_*`, `GOOGLE_*`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Map, Value};

use super::check::{Checker, join, list, type_of};

/// Request timeout of object storage calls, by default.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of a failed object storage call, by default.
pub const DEFAULT_STORE_RETRIES: usize = 3;

/// Which cloud an object store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cloud {
    /// Amazon S3 and S3-compatible servers (`s3://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage / ADLS Gen2 (`az://`).
    Azure,
}

impl Cloud {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gs",
            Self::Azure => "az",
        }
    }

    fn of_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "s3" | "s3a" => Some(Self::S3),
            "gs" => Some(Self::Gcs),
            "az" | "abfs" | "abfss" | "adl" | "azure" => Some(Self::Azure),
            _ => None,
        }
    }

    /// The Dagster resource that holds its connection settings.
    fn resource(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gcs",
            Self::Azure => "adls2",
        }
    }

    /// Whether object_store knows `key` as an option of this cloud.
    fn knows(self, key: &str) -> bool {
        use object_store::aws::AmazonS3ConfigKey;
        use object_store::azure::AzureConfigKey;
        use object_store::gcp::GoogleConfigKey;
        match self {
            Self::S3 => AmazonS3ConfigKey::from_str(key).is_ok(),
            Self::Gcs => GoogleConfigKey::from_str(key).is_ok(),
            Self::Azure => AzureConfigKey::from_str(key).is_ok(),
        }
    }
}

/// Outputs in an object store.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The cloud.
    pub cloud: Cloud,
    /// The bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// The prefix under which runs are stored (`<prefix>/<run_id>/<step>/<output>`); may be
    /// empty.
    pub prefix: String,
    /// object_store options (`aws_endpoint`, `aws_region`, ...), from config; the rest come
    /// from the environment. Never printed: `Debug` hides the values.
    pub options: BTreeMap<String, String>,
    /// The timeout of one request.
    pub timeout: Duration,
    /// Retries of a failed request.
    pub retries: usize,
}

impl StoreConfig {
    /// `s3://bucket/prefix`: where the runs are.
    pub fn url(&self) -> String {
        let sep = if self.prefix.is_empty() { "" } else { "/" };
        format!(
            "{}://{}{sep}{}",
            self.cloud.scheme(),
            self.bucket,
            self.prefix
        )
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Option values may be secrets: only their names.
        f.debug_struct("StoreConfig")
            .field("url", &self.url())
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// The keys of `resources.io_manager.config` that choose an object store.
pub(super) const STORE_KEYS: &[&str] = &[
    "base_url",
    "s3_bucket",
    "s3_prefix",
    "gcs_bucket",
    "gcs_prefix",
    "adls2_file_system",
    "adls2_prefix",
    "storage_options",
    "timeout",
    "retries",
];

/// Dagster's resources beside `io_manager` that carry a store's connection.
pub(super) const CLIENT_RESOURCES: &[&str] = &["s3", "gcs", "adls2"];

/// Reads the object store that `io` (the io_manager's config) names, by its `base_url` (`url`,
/// resolved) or Dagster's bucket keys, with the connection in `resources`; `None` when it
/// names none (or is wrong: the problem is recorded).
pub(super) fn parse_store(
    c: &mut Checker,
    io: &Map<String, Value>,
    url: Option<&str>,
    resources: &Map<String, Value>,
) -> Option<StoreConfig> {
    let path = "resources.io_manager.config";
    let (cloud, bucket, prefix) = location(c, io, url, path)?;
    let mut options = BTreeMap::new();
    client_resource(c, cloud, resources, &mut options);
    if let Some(v) = io.get("storage_options") {
        let opath = join(path, "storage_options");
        if let Value::Object(map) = v {
            for (key, value) in map {
                let kpath = join(&opath, key);
                if !cloud.knows(key) {
                    c.problem(
                        &kpath,
                        format!(
                            "not an option of object_store's {} store (e.g. {})",
                            cloud.scheme(),
                            example_options(cloud)
                        ),
                    );
                    continue;
                }
                if let Some(value) = scalar_source(c, value, &kpath) {
                    options.insert(key.clone(), value);
                }
            }
        } else {
            c.problem(
                &opath,
                format!(
                    "expected a mapping of object_store options, found {}",
                    type_of(v)
                ),
            );
        }
    }
    let timeout = match io.get("timeout") {
        None => DEFAULT_STORE_TIMEOUT,
        Some(v) => match v.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
            Some(d) if !d.is_zero() => d,
            _ => {
                c.problem(
                    &join(path, "timeout"),
                    format!("expected a positive number of seconds, found {v}"),
                );
                return None;
            }
        },
    };
    // (Dagster's `max_attempts` of the S3 resource counts the first attempt too)
    let attempts = options
        .remove("max_attempts")
        .and_then(|n| n.parse::<usize>().ok());
    let retries = match io.get("retries") {
        None => attempts.map_or(DEFAULT_STORE_RETRIES, |n| n - 1),
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => n,
            None => {
                c.problem(
                    &join(path, "retries"),
                    format!("expected a whole number of at least 0, found {v}"),
                );
                return None;
            }
        },
    };
    Some(StoreConfig {
        cloud,
        bucket,
        prefix,
        options,
        timeout,
        retries,
    })
}

/// The cloud, bucket and prefix: from `base_url`, or from Dagster's bucket keys.
fn location(
    c: &mut Checker,
    io: &Map<String, Value>,
    url: Option<&str>,
    path: &str,
) -> Option<(Cloud, String, String)> {
    let dagster = [
        (Cloud::S3, "s3_bucket", "s3_prefix"),
        (Cloud::Gcs, "gcs_bucket", "gcs_prefix"),
        (Cloud::Azure, "adls2_file_system", "adls2_prefix"),
    ];
    for (_, bucket_key, prefix_key) in dagster {
        if io.contains_key(prefix_key) && !io.contains_key(bucket_key) {
            c.problem(
                &join(path, prefix_key),
                format!("`{prefix_key}` needs `{bucket_key}`"),
            );
        }
    }
    if let Some(url) = url {
        return parse_url(c, url, &join(path, "base_url"));
    }
    let (cloud, bucket_key, prefix_key) = dagster
        .into_iter()
        .find(|(_, bucket_key, _)| io.contains_key(*bucket_key))?;
    let bucket = c.string_source(&io[bucket_key], &join(path, bucket_key))?;
    let prefix = match io.get(prefix_key) {
        Some(v) => c.string_source(v, &join(path, prefix_key))?,
        None => "dagster".to_owned(),
    };
    if bucket.is_empty() || bucket.contains('/') {
        c.problem(
            &join(path, bucket_key),
            format!("expected a bucket name (no `/`), found `{bucket}`"),
        );
        return None;
    }
    // Dagster's layout: <prefix>/storage/<run_id>/<step>/<output>.
    let prefix = [prefix.trim_matches('/'), "storage"]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    Some((cloud, bucket, prefix))
}

fn parse_url(c: &mut Checker, text: &str, path: &str) -> Option<(Cloud, String, String)> {
    let supported = "`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` or \
                     `file:///absolute/path`";
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            c.problem(
                path,
                format!("`{text}` is not a URL ({e}); expected {supported}"),
            );
            return None;
        }
    };
    let Some(cloud) = Cloud::of_scheme(url.scheme()) else {
        c.problem(
            path,
            format!(
                "`{}://` storage is not supported; expected {supported}",
                url.scheme()
            ),
        );
        return None;
    };
    let bucket = url.host_str().unwrap_or_default().to_owned();
    if bucket.is_empty() {
        c.problem(
            path,
            format!("`{text}` names no bucket; expected {supported}"),
        );
        return None;
    }
    let prefix = url.path().trim_matches('/').to_owned();
    Some((cloud, bucket, prefix))
}

/// `resources.<s3|gcs|adls2>.config`: Dagster's client resources, as object_store options.
fn client_resource(
    c: &mut Checker,
    cloud: Cloud,
    resources: &Map<String, Value>,
    options: &mut BTreeMap<String, String>,
) {
    for other in CLIENT_RESOURCES {
        if *other != cloud.resource() && resources.contains_key(*other) {
            c.problem(
                &join("resources", other),
                format!(
                    "`{other}` configures {} storage, but outputs are stored on `{}://`",
                    other,
                    cloud.scheme()
                ),
            );
        }
    }
    let name = cloud.resource();
    let Some(resource) = resources.get(name) else {
        return;
    };
    let Some((cfg, path)) = c.config_of(resource, &join("resources", name)) else {
        return;
    };
    match cloud {
        Cloud::S3 => s3_resource(c, cfg, &path, options),
        Cloud::Gcs => {
            // `project` names the billing project; object_store needs none.
            let _ = c.mapping(cfg, &path, &["project"]);
        }
        Cloud::Azure => adls2_resource(c, cfg, &path, options),
    }
}

/// Dagster's `S3Resource` keys, as object_store's S3 options.
fn s3_resource(c: &mut Checker, cfg: &Value, path: &str, options: &mut BTreeMap<String, String>) {
    let keys = [
        ("region_name", "aws_region"),
        ("endpoint_url", "aws_endpoint"),
        ("aws_access_key_id", "aws_access_key_id"),
        ("aws_secret_access_key", "aws_secret_access_key"),
        ("aws_session_token", "aws_session_token"),
    ];
    let flags = [
        ("use_ssl", "aws_allow_http", true),
        ("verify", "aws_allow_invalid_certificates", true),
        ("use_unsigned_session", "aws_skip_signature", false),
    ];
    let mut allowed: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
    allowed.extend(flags.iter().map(|(k, _, _)| *k));
    allowed.extend(["max_attempts", "retry_mode", "profile_name"]);
    let Some(m) = c.mapping(cfg, path, &allowed) else {
        return;
    };
    for (key, option) in keys {
        if let Some(v) = m.get(key) {
            if let Some(value) = c.string_source(v, &join(path, key)) {
                options.insert(option.to_owned(), value);
            }
        }
    }
    for (key, option, negated) in flags {
        match m.get(key) {
            None => {}
            Some(Value::Bool(b)) => {
                options.insert(option.to_owned(), (*b != negated).to_string());
            }
            Some(v) => c.problem(
                &join(path, key),
                format!("expected true or false, found {v}"),
            ),
        }
    }
    if let Some(v) = m.get("max_attempts") {
        match v.as_u64() {
            Some(n) if n >= 1 => {
                options.insert("max_attempts".to_owned(), n.to_string());
            }
            _ => c.problem(
                &join(path, "max_attempts"),
                format!("expected a whole number of at least 1, found {v}"),
            ),
        }
    }
    if m.contains_key("profile_name") {
        c.problem(
            &join(path, "profile_name"),
            "AWS profiles are not read; give the keys (or `{env: VAR}`), or set AWS_ACCESS_KEY_ID \
             and AWS_SECRET_ACCESS_KEY in the environment",
        );
    }
    // `retry_mode` is boto's; retries here are `resources.io_manager.config.retries`.
}

/// Dagster's `ADLS2Resource` keys: the account and a credential.
fn adls2_resource(
    c: &mut Checker,
    cfg: &Value,
    path: &str,
    options: &mut BTreeMap<String, String>,
) {
    let Some(m) = c.mapping(cfg, path, &["storage_account", "credential"]) else {
        return;
    };
    if let Some(v) = m.get("storage_account") {
        if let Some(account) = c.string_source(v, &join(path, "storage_account")) {
            options.insert("azure_storage_account_name".to_owned(), account);
        }
    }
    let Some(credential) = m.get("credential") else {
        return;
    };
    let cpath = join(path, "credential");
    let kinds = ["key", "sas", "DefaultAzureCredential"];
    let Some(cm) = c.mapping(credential, &cpath, &kinds) else {
        return;
    };
    let Some((kind, value)) = c.selector(cm, &cpath, &kinds, "credential") else {
        return;
    };
    let option = match kind {
        "key" => "azure_storage_account_key",
        "sas" => "azure_storage_sas_key",
        // The environment's credential chain, as object_store reads it.
        _ => return,
    };
    if let Some(secret) = c.string_source(value, &join(&cpath, kind)) {
        options.insert(option.to_owned(), secret);
    }
}

/// A string, number or boolean option value, or `{env: VAR}`.
fn scalar_source(c: &mut Checker, v: &Value, path: &str) -> Option<String> {
    match v {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => c.string_source(v, path),
    }
}

fn example_options(cloud: Cloud) -> String {
    list(match cloud {
        Cloud::S3 => &["aws_endpoint", "aws_region", "aws_allow_http"],
        Cloud::Gcs => &["google_service_account", "google_bucket"],
        Cloud::Azure => &["azure_storage_account_name", "azure_use_emulator"],
    })
}

/// The config of a store as step processes get it: the URL and options, resolved.
pub(super) fn store_value(store: &StoreConfig) -> Map<String, Value> {
    let mut io = Map::new();
    io.insert("base_url".into(), Value::from(store.url()));
    if !store.options.is_empty() {
        let options: Map<String, Value> = store
            .options
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        io.insert("storage_options".into(), Value::Object(options));
    }
    io.insert("timeout".into(), Value::from(store.timeout.as_secs_f64()));
    io.insert("retries".into(), Value::from(store.retries));
    io
}
