//! Object stores in the cloud (S3, GCS, Azure): built from run config and the environment, and
//! driven on one runtime per process.
//!
//! Their clients are asynchronous (reqwest on tokio); IO managers are called from plain
//! threads, so each call is spawned on a shared runtime and waited for. The runtime lives as
//! long as the process: dropping a runtime from inside another one panics, and a library
//! caller may well hold a run's result inside `#[tokio::main]`.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::MultipartId;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, RetryConfig};

use super::IoError;
use crate::config::{Cloud, StoreConfig};

/// A cloud store, where its runs are, and how errors name it.
pub(super) struct CloudStore {
    pub(super) store: Arc<dyn ObjectStore>,
    /// The same store, for multipart uploads whose ids are kept (see [`Upload`]).
    pub(super) multipart: Arc<dyn MultipartStore>,
    /// `s3://bucket/prefix`.
    pub(super) url: String,
    /// The endpoint, when config or the environment names one.
    pub(super) endpoint: Option<String>,
    /// Where the credentials come from, for errors (never the credentials).
    pub(super) credentials: String,
}

fn runtime() -> Result<&'static tokio::runtime::Runtime, IoError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("dagster-dask-storage")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| IoError::Open {
            location: "object storage".to_owned(),
            reason: format!("cannot start its runtime: {reason}"),
        })
}

/// Runs `fut` on the storage runtime and waits for it, from any thread (inside another
/// runtime too).
pub(super) fn block<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, IoError> {
    let handle = runtime()?.spawn(fut);
    futures_executor::block_on(handle).map_err(|e| IoError::Open {
        location: "object storage".to_owned(),
        reason: format!("a storage call did not finish: {e}"),
    })
}

/// Builds the store `config` names: options from config first, the environment for the rest.
pub(super) fn open(config: &StoreConfig) -> Result<CloudStore, IoError> {
    let url = config.url();
    let fail = |reason: String| IoError::Open {
        location: url.clone(),
        reason,
    };
    // Timeouts as options, before config's own: `with_client_options` would replace what
    // the environment and config set (such as `allow_http`).
    let timeouts = [
        ("timeout", config.timeout),
        (
            "connect_timeout",
            config.timeout.min(Duration::from_secs(5)),
        ),
    ]
    .map(|(key, d)| (key.to_owned(), format!("{}ms", d.as_millis())));
    let options = || timeouts.iter().map(|(k, v)| (k, v)).chain(&config.options);
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: config.retries,
        retry_timeout: config.timeout * u32::try_from(config.retries + 1).unwrap_or(u32::MAX),
    };
    let bucket_url = format!("{}://{}", config.cloud.scheme(), config.bucket);
    let option = |key: &str, env: &[&str]| {
        config
            .options
            .get(key)
            .cloned()
            .or_else(|| env.iter().find_map(|v| std::env::var(v).ok()))
    };
    // The three builders share no trait: the same steps, spelled once.
    macro_rules! build {
        ($builder:ty, $key:ty) => {{
            let mut b = <$builder>::from_env().with_url(&bucket_url);
            for (k, v) in options() {
                let key: $key = k.parse().map_err(|e| fail(format!("{e}")))?;
                b = b.with_config(key, v);
            }
            let store = b
                .with_retry(retry)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            if config.prefix.is_empty() {
                (
                    Arc::new(store.clone()) as Arc<dyn ObjectStore>,
                    Arc::new(store) as Arc<dyn MultipartStore>,
                )
            } else {
                let prefix = config.prefix.as_str();
                (
                    Arc::new(PrefixStore::new(store.clone(), prefix)) as Arc<dyn ObjectStore>,
                    Arc::new(PrefixStore::new(store, prefix)) as Arc<dyn MultipartStore>,
                )
            }
        }};
    }
    let (store, endpoint, credentials) = match config.cloud {
        Cloud::S3 => (
            build!(AmazonS3Builder, AmazonS3ConfigKey),
            option("aws_endpoint", &["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]),
            credential_source(
                config,
                &[
                    ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
                    ("aws_skip_signature", "AWS_SKIP_SIGNATURE"),
                ],
                "AWS's default chain (web identity, ECS or EC2 instance metadata)",
            ),
        ),
        Cloud::Gcs => (
            build!(GoogleCloudStorageBuilder, GoogleConfigKey),
            None,
            credential_source(
                config,
                &[
                    ("google_service_account", "GOOGLE_SERVICE_ACCOUNT"),
                    ("google_service_account_key", "GOOGLE_SERVICE_ACCOUNT_KEY"),
                    (
                        "google_application_credentials",
                        "GOOGLE_APPLICATION_CREDENTIALS",
                    ),
                ],
                "Google's default credentials (instance metadata)",
            ),
        ),
        Cloud::Azure => (
            build!(MicrosoftAzureBuilder, AzureConfigKey),
            option("azure_endpoint", &["AZURE_ENDPOINT"]),
            credential_source(
                config,
                &[
                    ("azure_storage_account_key", "AZURE_STORAGE_ACCOUNT_KEY"),
                    ("azure_storage_sas_key", "AZURE_STORAGE_SAS_KEY"),
                    ("azure_use_emulator", "AZURE_STORAGE_USE_EMULATOR"),
                ],
                "Azure's default chain (managed identity)",
            ),
        ),
    };
    let (store, multipart) = store;
    Ok(CloudStore {
        store,
        multipart,
        url,
        endpoint,
        credentials,
    })
}

/// Which of `sources` (an option in config, else its environment variable) gives the
/// credentials, else `chain`.
fn credential_source(config: &StoreConfig, sources: &[(&str, &str)], chain: &str) -> String {
    for (option, var) in sources {
        if config.options.contains_key(*option) {
            return format!("run config (`{option}`)");
        }
        if std::env::var_os(var).is_some() {
            return format!("the environment (`{var}`)");
        }
    }
    chain.to_owned()
}

/// Outputs of this size and more go up as multipart uploads, in parts of this size.
const PART: usize = 16 << 20;
/// Parts of one output in flight at once: the memory an upload holds is bounded by
/// `PART * (IN_FLIGHT + 1)`, whatever the output's size.
const IN_FLIGHT: usize = 3;

/// Where an upload under way is noted, beside the run's outputs: `<run>/.uploads/<hash>`
/// holds the object's path and the upload's id, so that one a killed process left behind
/// can be aborted when its run is deleted ([`abort_leftovers`]).
pub(super) const UPLOADS_DIR: &str = ".uploads";

/// What an upload's note holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct UploadNote {
    path: String,
    id: String,
}

/// Writes one object as it is encoded: a small one with one put at the end, a large one as a
/// multipart upload whose parts go up while encoding goes on. The object appears only once
/// complete; a failed or abandoned upload is aborted, so no parts stay behind, and one that
/// a killed process left is noted, to be aborted with its run.
pub(super) struct Upload {
    store: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    path: object_store::path::Path,
    buf: Vec<u8>,
    /// The multipart upload's id and note, once it started.
    upload: Option<(MultipartId, object_store::path::Path)>,
    /// Each part sent, by index.
    in_flight: std::collections::VecDeque<tokio::task::JoinHandle<object_store::Result<PartId>>>,
    parts: Vec<PartId>,
    /// The first storage error, returned by `finish`.
    failed: Option<object_store::Error>,
}

impl Upload {
    pub(super) fn new(
        store: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
        path: object_store::path::Path,
    ) -> Self {
        Self {
            store,
            multipart,
            path,
            buf: Vec::new(),
            upload: None,
            in_flight: std::collections::VecDeque::new(),
            parts: Vec::new(),
            failed: None,
        }
    }

    /// Starts the multipart upload and notes it under the run's `.uploads`.
    fn start(&mut self) -> Result<(), object_store::Error> {
        let (multipart, path) = (Arc::clone(&self.multipart), self.path.clone());
        let id = block(async move { multipart.create_multipart(&path).await })
            .map_err(engine_error)??;
        let run = self.path.parts().next();
        let hash = {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(format!("{}\n{id}", self.path));
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let note_path = object_store::path::Path::from_iter(
            run.iter()
                .map(|p| p.as_ref().to_owned())
                .chain([UPLOADS_DIR.to_owned(), hash]),
        );
        let note = serde_json::to_vec(&UploadNote {
            path: self.path.to_string(),
            id: id.clone(),
        })
        .map_err(engine_error)?;
        let (store, at) = (Arc::clone(&self.store), note_path.clone());
        let noted =
            block(async move { store.put(&at, note.into()).await }).map_err(engine_error)?;
        self.upload = Some((id, note_path));
        if let Err(e) = noted {
            self.abort_started();
            return Err(e);
        }
        Ok(())
    }

    fn send_part(&mut self) -> Result<(), object_store::Error> {
        if self.upload.is_none() {
            self.start()?;
        }
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(PART));
        if let Some((id, _)) = &self.upload {
            let (multipart, path, id) =
                (Arc::clone(&self.multipart), self.path.clone(), id.clone());
            let index = self.parts.len() + self.in_flight.len();
            let sent = async move { multipart.put_part(&path, &id, index, part.into()).await };
            self.in_flight
                .push_back(runtime().map_err(engine_error)?.spawn(sent));
        }
        while self.in_flight.len() > IN_FLIGHT {
            self.wait_one()?;
        }
        Ok(())
    }

    fn wait_one(&mut self) -> Result<(), object_store::Error> {
        if let Some(part) = self.in_flight.pop_front() {
            let id =
                futures_executor::block_on(part).map_err(|e| engine_error(e.to_string()))??;
            self.parts.push(id);
        }
        Ok(())
    }

    /// Stores what was written: the object exists, complete, when this returns `Ok`.
    pub(super) fn finish(mut self) -> Result<(), object_store::Error> {
        if let Some(e) = self.failed.take() {
            self.abort();
            return Err(e);
        }
        if self.upload.is_none() {
            let (store, path) = (Arc::clone(&self.store), self.path.clone());
            let data = std::mem::take(&mut self.buf);
            return block(async move { store.put(&path, data.into()).await.map(drop) })
                .map_err(engine_error)?;
        }
        let sent = if self.buf.is_empty() {
            Ok(())
        } else {
            self.send_part()
        };
        let done = sent.and_then(|()| {
            while !self.in_flight.is_empty() {
                self.wait_one()?;
            }
            Ok(())
        });
        if let Err(e) = done {
            self.abort();
            return Err(e);
        }
        let Some((id, note)) = self.upload.take() else {
            return Ok(()); // (checked above: a multipart upload is under way)
        };
        let (multipart, store, path) = (
            Arc::clone(&self.multipart),
            Arc::clone(&self.store),
            self.path.clone(),
        );
        let parts = std::mem::take(&mut self.parts);
        block(async move {
            let completed = multipart.complete_multipart(&path, &id, parts).await;
            if completed.is_err() {
                let _ = multipart.abort_multipart(&path, &id).await;
            }
            let _ = store.delete(&note).await;
            completed.map(drop)
        })
        .map_err(engine_error)?
    }

    /// The storage error that stopped the writing, if one did.
    pub(super) fn take_failure(&mut self) -> Option<object_store::Error> {
        self.failed.take()
    }

    /// Gives the object up: parts already sent are deleted.
    pub(super) fn abort(mut self) {
        self.abort_started();
    }

    fn abort_started(&mut self) {
        for part in self.in_flight.drain(..) {
            part.abort();
        }
        if let Some((id, note)) = self.upload.take() {
            let (multipart, store, path) = (
                Arc::clone(&self.multipart),
                Arc::clone(&self.store),
                self.path.clone(),
            );
            let _ = block(async move {
                let _ = multipart.abort_multipart(&path, &id).await;
                let _ = store.delete(&note).await;
            });
        }
    }
}

/// Aborts the multipart uploads noted under run `run_id` (a process killed mid-upload
/// leaves them, and their parts cost storage): returns how many.
pub(super) fn abort_leftovers(
    store: &Arc<dyn ObjectStore>,
    multipart: &Arc<dyn MultipartStore>,
    run_id: &str,
) -> Result<usize, object_store::Error> {
    use futures_util::TryStreamExt as _;
    let prefix = object_store::path::Path::from_iter([run_id, UPLOADS_DIR]);
    let (store, multipart) = (Arc::clone(store), Arc::clone(multipart));
    block(async move {
        let notes: Vec<object_store::path::Path> = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let mut aborted = 0;
        for note in notes {
            let bytes = store.get(&note).await?.bytes().await?;
            // (a note that does not parse is not ours to act on: it goes with the run)
            if let Ok(UploadNote { path, id }) = serde_json::from_slice(&bytes) {
                let path = object_store::path::Path::from(path);
                match multipart.abort_multipart(&path, &id).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => aborted += 1,
                    Err(e) => return Err(e),
                }
            }
            store.delete(&note).await?;
        }
        Ok(aborted)
    })
    .map_err(engine_error)?
}

impl std::io::Write for Upload {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        // (written in pieces no larger than what completes the current part)
        let take = data.len().min(PART - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() >= PART {
            if let Err(e) = self.send_part() {
                let message = e.to_string();
                self.failed = Some(e);
                return Err(std::io::Error::other(message));
            }
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn engine_error(e: impl std::fmt::Display) -> object_store::Error {
    object_store::Error::Generic {
        store: "dagster-dask",
        source: e.to_string().into(),
    }
}

/// Reads one object as it arrives: the body streams through a small channel, so at most a
/// few chunks are held, whatever the object's size.
pub(super) struct Download {
    chunks: tokio::sync::mpsc::Receiver<object_store::Result<bytes::Bytes>>,
    current: bytes::Bytes,
    /// The storage error that ended the body early.
    failed: Option<object_store::Error>,
}

impl Download {
    /// Asks for the object; a missing one is an error here, before any byte is read.
    pub(super) fn start(
        store: Arc<dyn ObjectStore>,
        path: object_store::path::Path,
    ) -> Result<Self, object_store::Error> {
        let got = block(async move { store.get(&path).await }).map_err(engine_error)??;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        runtime().map_err(engine_error)?.spawn(async move {
            use futures_util::StreamExt as _;
            let mut body = got.into_stream();
            while let Some(chunk) = body.next().await {
                // (a reader that stopped reading has what it needs)
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            chunks: rx,
            current: bytes::Bytes::new(),
            failed: None,
        })
    }

    /// The storage error that ended the body early, if one did.
    pub(super) fn take_failure(&mut self) -> Option<object_store::Error> {
        self.failed.take()
    }
}

impl std::io::Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            // (blocks this thread, which is never one of the storage runtime's own)
            match futures_executor::block_on(self.chunks.recv()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    let message = e.to_string();
                    self.failed = Some(e);
                    return Err(std::io::Error::other(message));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
