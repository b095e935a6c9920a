//! Where a run's data lives: the default storage directory, the IO manager a run config asks
//! for, and the place of a run's event log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::IoManagerConfig;
use crate::io::{IoManager, ObjectStoreIoManager};
use crate::run::RunError;

/// The default storage directory: `$DAGSTER_DASK_HOME/storage`, else under the temp dir.
pub fn default_storage_dir() -> PathBuf {
    match std::env::var_os("DAGSTER_DASK_HOME") {
        Some(home) => PathBuf::from(home).join("storage"),
        None => std::env::temp_dir().join("dagster-dask").join("storage"),
    }
}

/// Opens the IO manager a run config asks for.
pub fn open_io_manager(config: &IoManagerConfig) -> Result<Arc<dyn IoManager>, RunError> {
    if config.in_memory {
        return Ok(Arc::new(ObjectStoreIoManager::in_memory()));
    }
    if let Some(store) = &config.store {
        return Ok(Arc::new(ObjectStoreIoManager::cloud(store)?));
    }
    let base = config.base_dir.clone().unwrap_or_else(default_storage_dir);
    Ok(Arc::new(ObjectStoreIoManager::local(base)?))
}

/// Where a run's event log lives under a storage directory.
pub fn event_log_path(base: &Path, run_id: &str) -> PathBuf {
    base.join(run_id).join("events.jsonl")
}
