//! IO managers: where step outputs live between steps.
//!
//! An [`IoManager`] stores and loads one step output, by run id, step key and output name.
//! Data never goes through the executor: a step stores its output, and each downstream step
//! loads it, possibly on another machine. The layout mirrors Dagster's:
//! `<base>/<run_id>/<step>/<output>`.
//!
//! [`ObjectStoreIoManager`] is the implementation, over the [`object_store`] crate: a local
//! directory ([`ObjectStoreIoManager::local`], atomic writes: a staged file renamed into
//! place), memory ([`ObjectStoreIoManager::in_memory`], for in-process runs and tests), or
//! S3, GCS and Azure ([`ObjectStoreIoManager::cloud`]), where an object appears whole or not
//! at all: a put replaces the old value only once the new one is complete, and large values
//! go up as a multipart upload that is aborted, not left as parts, when it fails.

mod cloud;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::codec::CodecError;
use crate::op::AnyValue;

/// The address of one step output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutputKey<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The step.
    pub step: &'a str,
    /// The output's name.
    pub output: &'a str,
}

/// Stores and loads step outputs.
pub trait IoManager: Send + Sync + fmt::Debug {
    /// Stores the encoded output; returns where it went.
    fn store(&self, key: OutputKey<'_>, bytes: Vec<u8>) -> Result<String, IoError>;

    /// Stores an output that `encode` writes (returning its size), as it is written where
    /// the storage can take a stream (object stores: a large value is then never held
    /// twice in memory); returns where it went and its size. The default encodes into
    /// memory, then [`store`](Self::store)s.
    fn store_encoded(
        &self,
        key: OutputKey<'_>,
        encode: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<u64, CodecError>,
    ) -> Result<(String, u64), IoError> {
        store_buffered(self, key, encode)
    }

    /// Loads an encoded output stored by [`store`](Self::store).
    fn load(&self, key: OutputKey<'_>) -> Result<Vec<u8>, IoError>;

    /// Hands a stored output to `decode` as a reader, as it arrives where the storage can
    /// stream (object stores and directories: a large value is then never held twice in
    /// memory). The outer error is the storage's; the inner one `decode`'s. The default
    /// [`load`](Self::load)s the whole object first.
    fn load_with(
        &self,
        key: OutputKey<'_>,
        decode: &mut dyn FnMut(&mut dyn std::io::Read) -> Result<AnyValue, CodecError>,
    ) -> Result<Result<AnyValue, CodecError>, IoError> {
        load_buffered(self, key, decode)
    }

    /// The size in bytes of a stored output, without loading it (where the store can).
    fn size(&self, key: OutputKey<'_>) -> Result<u64, IoError> {
        self.load(key).map(|bytes| bytes.len() as u64)
    }

    /// Where `key` is (or would be) stored, for messages.
    fn location(&self, key: OutputKey<'_>) -> String;

    /// The local directory under which runs are stored, if the storage is a local directory:
    /// the run's event log goes there too.
    fn local_base(&self) -> Option<&Path>;

    /// Whether other processes (Dask workers) can see what this IO manager stores.
    fn is_shared(&self) -> bool;

    /// Checks, before a run starts, that outputs can be stored (the bucket exists and may be
    /// written): an error here means nothing runs.
    fn preflight(&self) -> Result<(), IoError> {
        Ok(())
    }

    /// Stores a file of run `run_id` beside its outputs, at `<base>/<run_id>/<name>` (`name`
    /// may hold `/`): the run's summary, and its event log where the storage cannot append.
    fn put_run_file(&self, run_id: &str, name: &str, bytes: Vec<u8>) -> Result<String, IoError> {
        let _ = (run_id, bytes);
        Err(no_run_files(name))
    }

    /// Reads a file stored with [`put_run_file`](Self::put_run_file).
    fn get_run_file(&self, run_id: &str, name: &str) -> Result<Vec<u8>, IoError> {
        let _ = run_id;
        Err(no_run_files(name))
    }

    /// The names of run `run_id`'s files under `dir` (e.g. `events`), sorted.
    fn list_run_files(&self, run_id: &str, dir: &str) -> Result<Vec<String>, IoError> {
        let _ = run_id;
        Err(no_run_files(dir))
    }

    /// Where the storage is, for messages: its directory or URL.
    fn base_location(&self) -> String {
        "the storage".to_owned()
    }

    /// The top-level names under the storage's base, sorted: the runs (and `cache`). A run
    /// history reads each one's summary from there.
    fn list_runs(&self) -> Result<Vec<String>, IoError> {
        Err(no_run_files("(runs)"))
    }

    /// Removes a file stored with [`put_run_file`](Self::put_run_file).
    fn delete_run_file(&self, run_id: &str, name: &str) -> Result<(), IoError> {
        let _ = run_id;
        Err(no_run_files(name))
    }

    /// Removes everything stored under run `run_id` (outputs, summary, event log, staged
    /// parts); returns how many objects it removed.
    fn delete_run(&self, run_id: &str) -> Result<usize, IoError> {
        Err(no_run_files(run_id))
    }

    /// Aborts the multipart uploads of run `run_id` that a killed process left behind (their
    /// parts cost storage and show nowhere); returns how many.
    fn abort_uploads(&self, run_id: &str) -> Result<usize, IoError> {
        let _ = run_id;
        Ok(0)
    }
}

/// [`IoManager::store_encoded`] for storage that takes whole objects: encoded into memory,
/// then stored.
fn store_buffered<M: IoManager + ?Sized>(
    io: &M,
    key: OutputKey<'_>,
    encode: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<u64, CodecError>,
) -> Result<(String, u64), IoError> {
    let mut bytes = Vec::new();
    let size = encode(&mut bytes).map_err(|source| IoError::Encode {
        step: key.step.to_owned(),
        output: key.output.to_owned(),
        source,
    })?;
    Ok((io.store(key, bytes)?, size))
}

/// [`IoManager::load_with`] for storage that gives whole objects: loaded, then decoded.
fn load_buffered<M: IoManager + ?Sized>(
    io: &M,
    key: OutputKey<'_>,
    decode: &mut dyn FnMut(&mut dyn std::io::Read) -> Result<AnyValue, CodecError>,
) -> Result<Result<AnyValue, CodecError>, IoError> {
    let bytes = io.load(key)?;
    Ok(decode(&mut bytes.as_slice()))
}

fn no_run_files(name: &str) -> IoError {
    IoError::Open {
        location: name.to_owned(),
        reason: "this IO manager keeps no run files".to_owned(),
    }
}

/// Why an output could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// Nothing is stored for this output.
    #[error(
        "no stored output `{output}` of step `{step}` at {location}: \
         the step has not run in this run, or its storage was removed"
    )]
    NotFound {
        /// The step.
        step: String,
        /// The output.
        output: String,
        /// Where it was looked for.
        location: String,
    },
    /// The storage failed.
    #[error("cannot {action} output `{output}` of step `{step}` at {location}: {source}")]
    Storage {
        /// `store` or `load`.
        action: &'static str,
        /// The step.
        step: String,
        /// The output.
        output: String,
        /// Where.
        location: String,
        /// What the storage reported.
        source: Box<object_store::Error>,
    },
    /// Something other than a stored object sits where an output belongs.
    #[error(
        "cannot load output `{output}` of step `{step}`: {location} is {what}, not a stored \
         output; remove it and run the step again"
    )]
    NotAnObject {
        /// The step.
        step: String,
        /// The output.
        output: String,
        /// Where.
        location: String,
        /// What is there instead.
        what: &'static str,
    },
    /// The output could not be encoded.
    #[error("cannot encode output `{output}` of step `{step}`: {source}")]
    Encode {
        /// The step.
        step: String,
        /// The output.
        output: String,
        /// What the codec reported.
        source: CodecError,
    },
    /// The storage could not be opened.
    #[error("cannot open storage at {location}: {reason}")]
    Open {
        /// Where.
        location: String,
        /// Why.
        reason: String,
    },
}

/// An [`IoManager`] over an [`ObjectStore`].
#[derive(Clone)]
pub struct ObjectStoreIoManager {
    store: Arc<dyn ObjectStore>,
    /// The local directory behind `store`, when it is one.
    base: Option<PathBuf>,
    /// How locations are shown: the directory, or a URL prefix such as `memory://`.
    display_root: String,
    /// A cloud store: its endpoint and credential source, for errors.
    cloud: Option<Arc<CloudInfo>>,
}

struct CloudInfo {
    endpoint: Option<String>,
    credentials: String,
    /// The store, for multipart uploads (see `cloud::Upload`).
    multipart: Arc<dyn object_store::multipart::MultipartStore>,
}

impl fmt::Debug for CloudInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudInfo")
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ObjectStoreIoManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreIoManager")
            .field("root", &self.display_root)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreIoManager {
    /// Outputs under the local directory `base` (created if missing).
    pub fn local(base: impl AsRef<Path>) -> Result<Self, IoError> {
        let base = base.as_ref();
        let open_err = |reason: String| IoError::Open {
            location: base.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(base).map_err(|e| open_err(e.to_string()))?;
        let base = std::fs::canonicalize(base).map_err(|e| open_err(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&base).map_err(|e| open_err(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            display_root: base.display().to_string(),
            base: Some(base),
            cloud: None,
        })
    }

    /// Outputs in this process's memory: only for executors that run every step in-process.
    pub fn in_memory() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            base: None,
            display_root: "memory://".to_owned(),
            cloud: None,
        }
    }

    /// Outputs in an object store (S3, GCS, Azure) under the config's bucket and prefix. The
    /// client is built here (options from config, the rest from the standard environment);
    /// nothing touches the network before [`IoManager::preflight`] or the first output.
    pub fn cloud(config: &crate::config::StoreConfig) -> Result<Self, IoError> {
        let opened = cloud::open(config)?;
        Ok(Self {
            store: opened.store,
            base: None,
            display_root: opened.url,
            cloud: Some(Arc::new(CloudInfo {
                endpoint: opened.endpoint,
                credentials: opened.credentials,
                multipart: opened.multipart,
            })),
        })
    }

    /// `<run>/<step>/<output>`; a mapped step `step[k]` and a dynamic output's item
    /// `output[k]` are a directory of their own each (`step/k`, `output/k`), so that no
    /// bracket has to be escaped on any store.
    fn path(key: OutputKey<'_>) -> StorePath {
        let split = |name| match crate::dynamic::split_instance(name) {
            Some((base, k)) => [Some(base), Some(k)],
            None => [Some(name), None],
        };
        StorePath::from_iter(
            std::iter::once(key.run_id)
                .chain(split(key.step).into_iter().flatten())
                .chain(split(key.output).into_iter().flatten()),
        )
    }

    /// Runs a storage call: inline for the local and in-memory stores (they do their work
    /// when no tokio runtime is current, so a minimal executor is enough), on the storage
    /// runtime for cloud stores.
    fn block<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, IoError> {
        if self.cloud.is_some() {
            cloud::block(fut)
        } else {
            Ok(futures_executor::block_on(fut))
        }
    }

    /// `at <endpoint>, credentials from <source>`: for errors of a cloud store.
    fn where_from(&self) -> String {
        match &self.cloud {
            None => String::new(),
            Some(info) => format!(
                " (endpoint {}; credentials from {})",
                info.endpoint.as_deref().unwrap_or("the cloud's default"),
                info.credentials
            ),
        }
    }

    /// The file of `key`, when the storage is a local directory.
    fn local_file(&self, key: OutputKey<'_>) -> Option<PathBuf> {
        let base = self.base.as_ref()?;
        Some(
            Self::path(key)
                .parts()
                .fold(base.clone(), |path, part| path.join(part.as_ref())),
        )
    }

    /// Refuses what would block or mislead a read on local storage: a FIFO (opening it waits
    /// for a writer), a directory, a dangling link. A missing file is left to the store.
    fn check_local_file(&self, key: OutputKey<'_>) -> Result<(), IoError> {
        let Some(file) = self.local_file(key) else {
            return Ok(());
        };
        let what = match std::fs::symlink_metadata(&file) {
            Err(_) => return Ok(()),
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::metadata(&file) {
                Err(_) => "a symbolic link to nothing",
                Ok(target) if target.is_file() => return Ok(()),
                Ok(_) => "a symbolic link to something other than a file",
            },
            Ok(meta) if meta.is_file() => return Ok(()),
            Ok(meta) if meta.is_dir() => "a directory",
            Ok(_) => "a FIFO, socket or device",
        };
        Err(IoError::NotAnObject {
            step: key.step.to_owned(),
            output: key.output.to_owned(),
            location: self.location(key),
            what,
        })
    }

    fn storage_err(
        &self,
        action: &'static str,
        key: OutputKey<'_>,
        e: object_store::Error,
    ) -> IoError {
        match e {
            object_store::Error::NotFound { .. } => IoError::NotFound {
                step: key.step.to_owned(),
                output: key.output.to_owned(),
                location: self.location(key),
            },
            source => IoError::Storage {
                action,
                step: key.step.to_owned(),
                output: key.output.to_owned(),
                location: format!("{}{}", self.location(key), self.where_from()),
                source: Box::new(source),
            },
        }
    }
}

impl IoManager for ObjectStoreIoManager {
    fn store(&self, key: OutputKey<'_>, bytes: Vec<u8>) -> Result<String, IoError> {
        if self.cloud.is_some() {
            return self
                .store_encoded(key, &mut |w| {
                    w.write_all(&bytes)
                        .map(|()| bytes.len() as u64)
                        .map_err(|e| CodecError::Encode {
                            type_name: "bytes".to_owned(),
                            reason: e.to_string(),
                        })
                })
                .map(|(location, _)| location);
        }
        let path = Self::path(key);
        let store = Arc::clone(&self.store);
        self.block(async move { store.put(&path, bytes.into()).await })?
            .map_err(|e| self.storage_err("store", key, e))?;
        Ok(self.location(key))
    }

    fn store_encoded(
        &self,
        key: OutputKey<'_>,
        encode: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<u64, CodecError>,
    ) -> Result<(String, u64), IoError> {
        let encode_err = |source| IoError::Encode {
            step: key.step.to_owned(),
            output: key.output.to_owned(),
            source,
        };
        let Some(cloud) = &self.cloud else {
            // (a local file is written whole and renamed into place: staged, then stored)
            return store_buffered(self, key, encode);
        };
        let mut upload = cloud::Upload::new(
            Arc::clone(&self.store),
            Arc::clone(&cloud.multipart),
            Self::path(key),
        );
        match encode(&mut upload) {
            Ok(size) => {
                upload
                    .finish()
                    .map_err(|e| self.storage_err("store", key, e))?;
                Ok((self.location(key), size))
            }
            Err(source) => {
                // A storage failure mid-way shows as the encoder's write error: say which.
                let failed = upload.take_failure();
                upload.abort();
                Err(match failed {
                    Some(e) => self.storage_err("store", key, e),
                    None => encode_err(source),
                })
            }
        }
    }
    fn load(&self, key: OutputKey<'_>) -> Result<Vec<u8>, IoError> {
        self.check_local_file(key)?;
        let path = Self::path(key);
        let store = Arc::clone(&self.store);
        let bytes = self
            .block(async move { store.get(&path).await?.bytes().await })?
            .map_err(|e| self.storage_err("load", key, e))?;
        Ok(bytes.into())
    }

    fn load_with(
        &self,
        key: OutputKey<'_>,
        decode: &mut dyn FnMut(&mut dyn std::io::Read) -> Result<AnyValue, CodecError>,
    ) -> Result<Result<AnyValue, CodecError>, IoError> {
        self.check_local_file(key)?;
        if let Some(file) = self.local_file(key) {
            let opened = std::fs::File::open(&file).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => IoError::NotFound {
                    step: key.step.to_owned(),
                    output: key.output.to_owned(),
                    location: self.location(key),
                },
                _ => self.storage_err(
                    "load",
                    key,
                    object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    },
                ),
            })?;
            return Ok(decode(&mut std::io::BufReader::with_capacity(
                1 << 16,
                opened,
            )));
        }
        if self.cloud.is_none() {
            return load_buffered(self, key, decode);
        }
        let mut download = cloud::Download::start(Arc::clone(&self.store), Self::path(key))
            .map_err(|e| self.storage_err("load", key, e))?;
        let decoded = decode(&mut std::io::BufReader::with_capacity(
            1 << 16,
            &mut download,
        ));
        // A storage failure mid-way shows as the decoder's read error: say which it was.
        match download.take_failure() {
            Some(e) if decoded.is_err() => Err(self.storage_err("load", key, e)),
            _ => Ok(decoded),
        }
    }

    fn size(&self, key: OutputKey<'_>) -> Result<u64, IoError> {
        self.check_local_file(key)?;
        let path = Self::path(key);
        let store = Arc::clone(&self.store);
        let meta = self
            .block(async move { store.head(&path).await })?
            .map_err(|e| self.storage_err("look up", key, e))?;
        Ok(meta.size)
    }

    fn location(&self, key: OutputKey<'_>) -> String {
        // (`memory://` ends with its separator; a directory or a bucket URL does not)
        let sep = if self.display_root.ends_with('/') {
            ""
        } else {
            "/"
        };
        // (the stored path: a mapped step's or an item's key is a directory of its own)
        format!("{}{sep}{}", self.display_root, Self::path(key))
    }

    fn local_base(&self) -> Option<&Path> {
        self.base.as_deref()
    }

    fn is_shared(&self) -> bool {
        self.base.is_some() || self.cloud.is_some()
    }

    fn put_run_file(&self, run_id: &str, name: &str, bytes: Vec<u8>) -> Result<String, IoError> {
        let path = run_file_path(run_id, name);
        let location = format!(
            "{}/{run_id}/{name}",
            self.display_root.trim_end_matches('/')
        );
        let store = Arc::clone(&self.store);
        self.block(async move { store.put(&path, bytes.into()).await })?
            .map_err(|e| IoError::Open {
                location: format!("{location}{}", self.where_from()),
                reason: format!("cannot write: {}", short_store_error(&e)),
            })?;
        Ok(location)
    }

    fn get_run_file(&self, run_id: &str, name: &str) -> Result<Vec<u8>, IoError> {
        let path = run_file_path(run_id, name);
        let store = Arc::clone(&self.store);
        let bytes = self
            .block(async move { store.get(&path).await?.bytes().await })?
            .map_err(|e| IoError::Open {
                location: format!(
                    "{}/{run_id}/{name}",
                    self.display_root.trim_end_matches('/')
                ),
                reason: format!("cannot read: {}", short_store_error(&e)),
            })?;
        Ok(bytes.into())
    }

    fn list_run_files(&self, run_id: &str, dir: &str) -> Result<Vec<String>, IoError> {
        use futures_util::TryStreamExt as _;
        let prefix = run_file_path(run_id, dir);
        let store = Arc::clone(&self.store);
        let listed = self
            .block(async move {
                store
                    .list(Some(&prefix))
                    .map_ok(|meta| meta.location.filename().unwrap_or_default().to_owned())
                    .try_collect::<Vec<String>>()
                    .await
            })?
            .map_err(|e| IoError::Open {
                location: format!("{}/{run_id}/{dir}", self.display_root.trim_end_matches('/')),
                reason: format!("cannot list: {}", short_store_error(&e)),
            })?;
        let mut names = listed;
        names.sort();
        Ok(names)
    }

    fn base_location(&self) -> String {
        self.display_root.clone()
    }

    fn list_runs(&self) -> Result<Vec<String>, IoError> {
        let store = Arc::clone(&self.store);
        let listed = self
            .block(async move { store.list_with_delimiter(None).await })?
            .map_err(|e| IoError::Open {
                location: self.display_root.clone(),
                reason: format!("cannot list: {}", short_store_error(&e)),
            })?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn delete_run_file(&self, run_id: &str, name: &str) -> Result<(), IoError> {
        let path = run_file_path(run_id, name);
        let store = Arc::clone(&self.store);
        self.block(async move { store.delete(&path).await })?
            .map_err(|e| IoError::Open {
                location: format!(
                    "{}/{run_id}/{name}",
                    self.display_root.trim_end_matches('/')
                ),
                reason: format!("cannot delete: {}", short_store_error(&e)),
            })
    }

    fn abort_uploads(&self, run_id: &str) -> Result<usize, IoError> {
        let Some(cloud) = &self.cloud else {
            return Ok(0);
        };
        cloud::abort_leftovers(&self.store, &cloud.multipart, run_id).map_err(|e| IoError::Open {
            location: format!("{}/{run_id}", self.display_root.trim_end_matches('/')),
            reason: format!("cannot abort its uploads: {}", short_store_error(&e)),
        })
    }

    fn delete_run(&self, run_id: &str) -> Result<usize, IoError> {
        use futures_util::TryStreamExt as _;
        let location = format!("{}/{run_id}", self.display_root.trim_end_matches('/'));
        let failed = |e: &object_store::Error| IoError::Open {
            location: location.clone(),
            reason: format!("cannot delete: {}", short_store_error(e)),
        };

        let prefix = StorePath::from(run_id);
        let store = Arc::clone(&self.store);
        let paths = self
            .block(async move {
                store
                    .list(Some(&prefix))
                    .map_ok(|meta| meta.location)
                    .try_collect::<Vec<StorePath>>()
                    .await
            })?
            .map_err(|e| failed(&e))?;
        let count = paths.len();
        // A directory goes whole (with its folders, and staged files a crash left behind);
        // an object store, object by object.
        if let Some(base) = &self.base {
            let dir = base.join(run_id);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| IoError::Open {
                    location: dir.display().to_string(),
                    reason: format!("cannot delete: {e}"),
                })?;
            }
            return Ok(count);
        }
        for path in paths {
            let store = Arc::clone(&self.store);
            self.block(async move { store.delete(&path).await })?
                .map_err(|e| failed(&e))?;
        }
        Ok(count)
    }

    fn preflight(&self) -> Result<(), IoError> {
        if self.cloud.is_none() {
            return Ok(());
        }
        // One small object written and removed: the bucket exists, and we may write it.
        let probe = StorePath::from(format!(".dagster-dask-probe-{}", crate::run::new_run_id()));
        let store = Arc::clone(&self.store);
        self.block(async move {
            store.put(&probe, "probe".into()).await?;
            store.delete(&probe).await
        })?
        .map_err(|e| IoError::Open {
            location: format!("{}{}", self.display_root, self.where_from()),
            reason: format!("cannot write there: {}", short_store_error(&e)),
        })
    }
}

/// `<run_id>/<name>`, `name` split at `/`.
fn run_file_path(run_id: &str, name: &str) -> StorePath {
    StorePath::from_iter(std::iter::once(run_id).chain(name.split('/')))
}

/// An object_store error in one line: its message, and the deepest cause (the HTTP status or
/// the connection error), which is what tells a person what to fix.
fn short_store_error(e: &object_store::Error) -> String {
    let mut deepest: &dyn std::error::Error = e;
    while let Some(next) = deepest.source() {
        deepest = next;
    }
    let top = e.to_string();
    let cause = deepest.to_string();
    if top.contains(&cause) {
        top
    } else {
        format!("{top}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: OutputKey<'static> = OutputKey {
        run_id: "r1",
        step: "hello",
        output: "result",
    };

    #[test]
    fn a_fifo_a_directory_or_a_dangling_link_at_an_output_is_an_error_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let io = ObjectStoreIoManager::local(dir.path()).unwrap();
        let place = dir.path().join("r1/hello");
        std::fs::create_dir_all(&place).unwrap();
        let file = place.join("result");
        let cases: [(&str, &dyn Fn()); 3] = [
            ("a FIFO, socket or device", &|| {
                let made = std::process::Command::new("mkfifo").arg(&file).status();
                assert!(made.unwrap().success());
            }),
            ("a directory", &|| std::fs::create_dir(&file).unwrap()),
            ("a symbolic link to nothing", &|| {
                std::os::unix::fs::symlink(place.join("gone"), &file).unwrap();
            }),
        ];
        for (what, make) in cases {
            make();
            let (tx, rx) = std::sync::mpsc::channel();
            let io = io.clone();
            std::thread::spawn(move || tx.send(io.load(KEY).map_err(|e| e.to_string())));
            let got = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("loading from {what} blocked"));
            let err = got.unwrap_err();
            assert!(
                err.contains(&format!("is {what}, not a stored output")),
                "{err}"
            );
            let _ = std::fs::remove_file(&file).or_else(|_| std::fs::remove_dir(&file));
        }
    }

    #[test]
    fn local_round_trip_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let io = ObjectStoreIoManager::local(dir.path().join("storage")).unwrap();
        let location = io.store(KEY, b"abc".to_vec()).unwrap();
        let expected = std::fs::canonicalize(dir.path())
            .unwrap()
            .join("storage/r1/hello/result");
        assert_eq!(location, expected.display().to_string());
        assert_eq!(std::fs::read(&expected).unwrap(), b"abc");
        assert_eq!(io.load(KEY).unwrap(), b"abc");
        // Overwrite is atomic and leaves no staging files behind.
        io.store(KEY, b"second".to_vec()).unwrap();
        assert_eq!(io.load(KEY).unwrap(), b"second");
        let entries: Vec<_> = std::fs::read_dir(expected.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec![std::ffi::OsString::from("result")]);
    }

    #[test]
    fn missing_output_names_step_output_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let io = ObjectStoreIoManager::local(dir.path()).unwrap();
        let err = io.load(KEY).unwrap_err();
        assert!(matches!(err, IoError::NotFound { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("output `result` of step `hello`"), "{msg}");
        assert!(msg.contains("r1/hello/result"), "{msg}");
        let mem = ObjectStoreIoManager::in_memory();
        let msg = mem.load(KEY).unwrap_err().to_string();
        assert!(msg.contains("memory://r1/hello/result"), "{msg}");
    }

    #[test]
    fn in_memory_round_trip() {
        let io = ObjectStoreIoManager::in_memory();
        io.store(KEY, vec![1, 2, 3]).unwrap();
        assert_eq!(io.load(KEY).unwrap(), vec![1, 2, 3]);
        assert!(!io.is_shared());
        assert!(io.local_base().is_none());
    }
}
