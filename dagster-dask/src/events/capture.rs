//! What an op, and the libraries it calls, log with `tracing` (events, inside their spans)
//! or the `log` crate, captured as `LOG` events of the step that runs: level, target, fields.
//!
//! Capture is per step and per thread: while an op runs, its thread's default `tracing`
//! dispatcher is ours (`tracing::dispatcher::with_default`), so the process's global
//! subscriber, if a caller set one, is never replaced and sees nothing of the op. `log`
//! records reach `tracing` through `tracing-log`'s bridge, which only the job binary installs
//! (its `main` owns the process, on the driver and in step processes on workers); a library
//! that runs jobs with [`Run`](crate::exec::Run) keeps its own logger, and `log` records are
//! then not captured. Not captured either: what threads the op spawns log (they do not
//! inherit the dispatcher).
//!
//! What is captured follows a `RUST_LOG`-style filter (`info`, `my_crate=debug,hyper=warn`),
//! `info` and up by default: [`set_filter`] sets it for the process (the job binary reads
//! `RUST_LOG`, and passes it to step processes on workers).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Dispatch, Level};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use super::{Event, EventKind, EventSink, LogLevel};

/// The filter of what is captured, once set, and the directive it was set from.
static FILTER: OnceLock<Targets> = OnceLock::new();
static DIRECTIVES: OnceLock<String> = OnceLock::new();

/// Sets the process's capture filter from a `RUST_LOG`-style directive (`info`,
/// `my_crate=debug,hyper=warn`); an empty one keeps the default, `info`. Only the first call
/// sets it. A directive that does not parse is an error saying what is wrong.
pub fn set_filter(directives: &str) -> Result<(), String> {
    let targets: Targets = if directives.trim().is_empty() {
        default_filter()
    } else {
        directives
            .parse()
            .map_err(|e| format!("log filter `{directives}`: {e}"))?
    };
    if FILTER.set(targets).is_ok() {
        let _ = DIRECTIVES.set(directives.trim().to_owned());
    }
    Ok(())
}

/// The directive [`set_filter`] was given, when it was given one: what step processes of
/// this process's runs are passed (`--log-filter`), so that they capture the same.
pub(crate) fn filter_directives() -> Option<&'static str> {
    DIRECTIVES
        .get()
        .map(String::as_str)
        .filter(|d| !d.is_empty())
}

fn default_filter() -> Targets {
    Targets::new().with_default(Level::INFO)
}

fn filter() -> &'static Targets {
    FILTER.get_or_init(default_filter)
}

/// Sends `log` records to `tracing` (then, while a step runs, to its events), unless the
/// process has a logger already. For processes the job binary owns.
pub(crate) fn bridge_log_records() {
    let level = filter()
        .iter()
        .map(|(_, l)| l)
        .chain(filter().default_level())
        .filter_map(|l| l.into_level())
        .max()
        .unwrap_or(Level::INFO);
    let _ = tracing_log::LogTracer::builder()
        .with_max_level(match level {
            Level::TRACE => tracing_log::log::LevelFilter::Trace,
            Level::DEBUG => tracing_log::log::LevelFilter::Debug,
            Level::INFO => tracing_log::log::LevelFilter::Info,
            Level::WARN => tracing_log::log::LevelFilter::Warn,
            Level::ERROR => tracing_log::log::LevelFilter::Error,
        })
        .init();
}

/// The step whose op runs on this thread now.
struct Current {
    sink: Arc<dyn EventSink>,
    run_id: String,
    step: String,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
    /// This thread's dispatcher: made once, it reads the step from [`CURRENT`].
    static DISPATCH: Dispatch = Dispatch::new(
        tracing_subscriber::registry().with(filter().clone()).with(ToEvents),
    );
}

/// Runs `f` (an op) with what it logs through `tracing` and `log` captured as `LOG` events
/// of step `step` of run `run_id`.
pub(crate) fn captured<R>(
    sink: &Arc<dyn EventSink>,
    run_id: &str,
    step: &str,
    f: impl FnOnce() -> R,
) -> R {
    let previous = CURRENT.with(|c| {
        c.replace(Some(Current {
            sink: Arc::clone(sink),
            run_id: run_id.to_owned(),
            step: step.to_owned(),
        }))
    });
    let result = DISPATCH.with(|dispatch| tracing::dispatcher::with_default(dispatch, f));
    CURRENT.with(|c| c.replace(previous));
    result
}

/// The layer that turns each record into an event of the current step.
struct ToEvents;

impl<S> tracing_subscriber::Layer<S> for ToEvents
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        // (a `log` record's target and module come as fields of the bridge's event)
        let target = fields
            .map
            .remove("log.target")
            .unwrap_or_else(|| meta.target().to_owned());
        fields.map.retain(|k, _| !k.starts_with("log."));
        if let Some(scope) = ctx.event_scope(event) {
            let spans: Vec<&str> = scope.from_root().map(|s| s.name()).collect();
            if !spans.is_empty() {
                fields.map.insert("spans".to_owned(), spans.join(":"));
            }
        }
        let level = match *meta.level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warning,
            Level::INFO => LogLevel::Info,
            Level::DEBUG | Level::TRACE => LogLevel::Debug,
        };
        CURRENT.with(|c| {
            if let Some(current) = &*c.borrow() {
                current.sink.emit(Event::new(
                    &current.run_id,
                    Some(&current.step),
                    EventKind::Log {
                        level,
                        message: fields.message,
                        target: Some(target),
                        fields: fields.map,
                    },
                ));
            }
        });
    }
}

/// A record's message and other fields, as text.
#[derive(Default)]
struct Fields {
    message: String,
    map: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.map.insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.map
                .insert(field.name().to_owned(), format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RunLog;

    #[test]
    fn a_record_inside_a_span_becomes_a_log_event_of_the_step() {
        let log = Arc::new(RunLog::in_memory(false));
        let sink: Arc<dyn EventSink> = Arc::clone(&log) as _;
        captured(&sink, "r", "load", || {
            let span = tracing::info_span!("fetch", table = "users");
            let _guard = span.enter();
            tracing::info!(rows = 3, "loaded {} rows", 3);
            tracing::debug!("not captured: below info");
        });
        tracing::info!("not captured: no step runs");
        let events = log.events();
        assert_eq!(events.len(), 1, "{events:?}");
        let EventKind::Log {
            level,
            message,
            target,
            fields,
        } = &events[0].kind
        else {
            panic!("{events:?}")
        };
        assert_eq!(*level, LogLevel::Info);
        assert_eq!(message, "loaded 3 rows");
        assert_eq!(target.as_deref(), Some(module_path!()));
        assert_eq!(fields.get("rows").map(String::as_str), Some("3"));
        assert_eq!(fields.get("spans").map(String::as_str), Some("fetch"));
        assert_eq!(events[0].step_key.as_deref(), Some("load"));
    }
}
