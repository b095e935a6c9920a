//! IO managers: where step outputs live between steps.
//!
//! An [`IoManager`] stores and loads one step output, by run id, step key and output name.
//! Data never goes through the executor: a step stores its output, and each downstream step
//! loads it, possibly on another machine. The layout mirrors Dagster's:
//! `<base>/<run_id>/<step>/<output>`.
//!
//! [`ObjectStoreIoManager`] is the implementation, over the [`object_store`] crate: a local
//! directory ([`ObjectStoreIoManager::local`], atomic writes: a staged file renamed into
//! place) or memory ([`ObjectStoreIoManager::in_memory`], for in-process runs and tests).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

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

    /// Loads an encoded output stored by [`store`](Self::store).
    fn load(&self, key: OutputKey<'_>) -> Result<Vec<u8>, IoError>;

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
        })
    }

    /// Outputs in this process's memory: only for executors that run every step in-process.
    pub fn in_memory() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            base: None,
            display_root: "memory://".to_owned(),
        }
    }

    fn path(key: OutputKey<'_>) -> StorePath {
        StorePath::from_iter([key.run_id, key.step, key.output])
    }

    /// Refuses what would block or mislead a read on local storage: a FIFO (opening it waits
    /// for a writer), a directory, a dangling link. A missing file is left to the store.
    fn check_local_file(&self, key: OutputKey<'_>) -> Result<(), IoError> {
        let Some(base) = &self.base else {
            return Ok(());
        };
        let file = base.join(key.run_id).join(key.step).join(key.output);
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
                location: self.location(key),
                source: Box::new(source),
            },
        }
    }
}

impl IoManager for ObjectStoreIoManager {
    fn store(&self, key: OutputKey<'_>, bytes: Vec<u8>) -> Result<String, IoError> {
        let path = Self::path(key);
        // The local and in-memory stores do their work inline when no tokio runtime is
        // current, so a minimal executor is enough and no runtime is started per call.
        futures_executor::block_on(self.store.put(&path, bytes.into()))
            .map_err(|e| self.storage_err("store", key, e))?;
        Ok(self.location(key))
    }

    fn load(&self, key: OutputKey<'_>) -> Result<Vec<u8>, IoError> {
        self.check_local_file(key)?;
        let path = Self::path(key);
        let bytes =
            futures_executor::block_on(async { self.store.get(&path).await?.bytes().await })
                .map_err(|e| self.storage_err("load", key, e))?;
        Ok(bytes.to_vec())
    }

    fn size(&self, key: OutputKey<'_>) -> Result<u64, IoError> {
        self.check_local_file(key)?;
        let path = Self::path(key);
        let meta = futures_executor::block_on(self.store.head(&path))
            .map_err(|e| self.storage_err("look up", key, e))?;
        Ok(meta.size)
    }

    fn location(&self, key: OutputKey<'_>) -> String {
        let sep = if self.base.is_some() { "/" } else { "" };
        format!(
            "{}{sep}{}/{}/{}",
            self.display_root, key.run_id, key.step, key.output
        )
    }

    fn local_base(&self) -> Option<&Path> {
        self.base.as_deref()
    }

    fn is_shared(&self) -> bool {
        self.base.is_some()
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
