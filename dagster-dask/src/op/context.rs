//! What an op sees of its run while it runs.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::BoxError;
use crate::codec;
use crate::events::{Event, EventKind, EventSink, LogLevel};

/// What an op sees of its run: identity, config, and a logger whose messages become events.
pub struct OpContext {
    pub(crate) run_id: String,
    pub(crate) step_key: String,
    pub(crate) mapping_key: Option<String>,
    pub(crate) attempt: u32,
    pub(crate) config: Option<serde_json::Value>,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) resources: Arc<crate::resource::Resources>,
}

impl fmt::Debug for OpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpContext")
            .field("run_id", &self.run_id)
            .field("step_key", &self.step_key)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl OpContext {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// This step's key (the op name, or its alias).
    pub fn step_key(&self) -> &str {
        &self.step_key
    }

    /// The mapping key of a step mapped over a dynamic output (`size[a_csv]`: `a_csv`);
    /// `None` for any other step.
    pub fn mapping_key(&self) -> Option<&str> {
        self.mapping_key.as_deref()
    }

    /// The attempt now running, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The job's resource of type `R`, built now if no step in this process built it yet;
    /// an error when it cannot be built (with the constructor's error as its cause) or the
    /// job does not provide it.
    pub fn resource<R: crate::resource::Resource>(&self) -> Result<Arc<R>, BoxError> {
        self.resources.get::<R>()
    }

    /// The op's logger: messages become `LOG` events in the run's event log and console.
    pub fn log(&self) -> Logger<'_> {
        Logger { ctx: self }
    }

    /// This step's config from run config `ops.<step>.config`, as a `C`.
    ///
    /// With no config given, `C` is built from an empty map (a struct whose fields all have
    /// defaults) or from nothing (an `Option`: `None`). Fails when that cannot be done, or
    /// when the config does not fit `C` (run config validation checks this before the run
    /// for ops that declare their config type with [`OpDef::config`](super::OpDef::config)).
    pub fn config<C: DeserializeOwned>(&self) -> Result<C, BoxError> {
        let value = match &self.config {
            Some(value) => value,
            None => super::absent_config::<C>(),
        };
        serde_path_to_error::deserialize::<_, C>(value).map_err(|e| {
            format!(
                "config of step `{}` (run config `{}.config`) does not fit `{}`: {e}",
                self.step_key,
                crate::config::step_path(&self.step_key),
                codec::type_name_of::<C>()
            )
            .into()
        })
    }
}

/// Logs through an op's context; see [`OpContext::log`].
#[derive(Debug, Clone, Copy)]
pub struct Logger<'a> {
    ctx: &'a OpContext,
}

impl Logger<'_> {
    /// Logs at `level`.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.ctx.sink.emit(Event::new(
            &self.ctx.run_id,
            Some(&self.ctx.step_key),
            EventKind::Log {
                level,
                message: message.into(),
                target: None,
                fields: std::collections::BTreeMap::new(),
            },
        ));
    }

    /// Logs a debugging detail.
    pub fn debug(&self, message: impl Into<String>) {
        self.log(LogLevel::Debug, message);
    }

    /// Logs progress.
    pub fn info(&self, message: impl Into<String>) {
        self.log(LogLevel::Info, message);
    }

    /// Logs something odd.
    pub fn warning(&self, message: impl Into<String>) {
        self.log(LogLevel::Warning, message);
    }

    /// Logs an error.
    pub fn error(&self, message: impl Into<String>) {
        self.log(LogLevel::Error, message);
    }
}
