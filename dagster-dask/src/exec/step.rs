//! Running one step: load its inputs, call the op, store its output, report events.
//!
//! Every executor runs steps through [`execute_step`]: the embedded executor on its threads,
//! and the step modes of the job binary (`__step`, one attempt per process, and the warm
//! runner `__serve` Dask workers keep per run). How
//! the attempt ended goes to the run's state, which decides retries and skips.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Instant;

use super::cache::{self, KeyBuilder};
use super::state::AttemptEnd;
use crate::error::{ErrorInfo, ErrorKind};
use crate::events::{Event, EventKind, EventSink};
use crate::graph::Job;
use crate::io::{IoManager, OutputKey};
use crate::op::{AnyValue, OpContext, OpSpec, Split};

/// What a step needs from its run.
pub(crate) struct StepEnv<'a> {
    pub(crate) job: &'a Job,
    pub(crate) run_id: &'a str,
    pub(crate) io: &'a dyn IoManager,
    pub(crate) sink: &'a Arc<dyn EventSink>,
    /// Op config and inputs given in run config.
    pub(crate) config: &'a crate::config::RunConfig,
    /// The job's resources, built as steps need them.
    pub(crate) resources: &'a Arc<crate::resource::Resources>,
    /// Whether steps of ops with a code version may reuse earlier outputs.
    pub(crate) cache: bool,
}

impl StepEnv<'_> {
    fn emit(&self, step: &str, kind: EventKind) {
        self.sink.emit(Event::new(self.run_id, Some(step), kind));
    }
}

/// Runs attempt `attempt` (from 1) of the step at plan index `index`: emits its start and
/// what it loads and stores, and returns how it ended. The run's state decides what follows.
///
/// With a `deadline`, the op runs on a thread of its own, and `None` means the op had not
/// returned by then: its thread is abandoned (a thread cannot be killed), and nothing it does
/// later reaches the run (its events are dropped, its output never stored).
pub(crate) fn execute_step(
    env: &StepEnv<'_>,
    index: usize,
    attempt: u32,
    deadline: Option<Instant>,
) -> Option<AttemptEnd> {
    let key = env.job.plan().steps[index].key.as_str();
    env.emit(
        key,
        if attempt > 1 {
            EventKind::StepRestarted { attempt }
        } else {
            EventKind::StepStart
        },
    );
    let started = Instant::now();
    match run_attempt(env, index, attempt, deadline) {
        Ok(Some(not_produced)) => Some(AttemptEnd::Success {
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
            not_produced,
        }),
        Ok(None) => None,
        Err(error) => Some(AttemptEnd::Failure(error)),
    }
}

/// The optional outputs the op did not produce, by position; `Ok(None)`: the op passed the
/// deadline.
fn run_attempt(
    env: &StepEnv<'_>,
    index: usize,
    attempt: u32,
    deadline: Option<Instant>,
) -> Result<Option<Vec<usize>>, ErrorInfo> {
    let plan = env.job.plan();
    let plan_step = &plan.steps[index];
    let key = plan_step.key.as_str();
    let step = env.job.step(index);

    // The cache key is built from what the step reads, as it reads it.
    let mut cache_key = match (&plan_step.code_version, env.cache) {
        (Some(version), true) => Some(KeyBuilder::new(
            &plan_step.op,
            version,
            env.config.ops.get(key),
        )),
        _ => None,
    };
    let mut values = Vec::with_capacity(step.inputs.len());
    for (input, plan_input) in step.inputs.iter().zip(&plan_step.inputs) {
        if let Some(read) = input.from_config {
            let (value, given) = input_from_config(env, key, &plan_input.name, read)?;
            if let Some(cache_key) = &mut cache_key {
                let text = given.to_string();
                cache_key.input(&plan_input.name, &cache::data_version(text.as_bytes()));
            }
            values.push(value);
            continue;
        }
        let mut decoded = Vec::with_capacity(plan_input.sources.len());
        for source in &plan_input.sources {
            let upstream = source.step.as_str();
            // (a step outside a selection: its output of the parent run)
            let out_key = OutputKey {
                run_id: source.run.as_deref().unwrap_or(env.run_id),
                step: upstream,
                output: &source.output,
            };
            let input_err = |message: String| {
                ErrorInfo::new(
                    ErrorKind::Input,
                    format!(
                        "cannot load input `{}` of step `{key}` from {}: {message}",
                        plan_input.name,
                        if source.output == crate::op::RESULT {
                            format!("step `{upstream}`")
                        } else {
                            format!("output `{}` of step `{upstream}`", source.output)
                        }
                    ),
                )
            };
            let mut version = None;
            let hashing = cache_key.is_some();
            let loaded = env.io.load_with(out_key, &mut |r| {
                if !hashing {
                    return (input.decode)(r);
                }
                let mut reader = cache::Hashing::new(r);
                let value = (input.decode)(&mut reader);
                version = Some(reader.version());
                value
            });
            if let (Some(cache_key), Some(version)) = (&mut cache_key, &version) {
                cache_key.input(&format!("{}[{}]", plan_input.name, decoded.len()), version);
            }
            let value = match loaded {
                Err(e) => return Err(input_err(e.to_string())),
                // A fan-in list gets the items that were produced (the run's state skips a
                // step whose single input, or whole list, was not produced).
                Ok(Err(e)) if e.is_not_produced() && input.collect.is_some() => {
                    continue;
                }
                Ok(Err(e)) if e.is_not_produced() => {
                    return Err(input_err("it was not produced".to_owned()));
                }
                Ok(Err(e)) => {
                    return Err(input_err(format!("{e} (at {})", env.io.location(out_key))));
                }
                Ok(Ok(value)) => value,
            };
            decoded.push(value);
            env.emit(
                key,
                EventKind::LoadedInput {
                    input: plan_input.name.clone(),
                    upstream: source.to_string(),
                    location: env.io.location(out_key),
                },
            );
        }
        let value = match input.collect {
            Some(collect) => collect(decoded),
            None => decoded.pop(),
        };
        values.push(value.ok_or_else(|| {
            ErrorInfo::new(
                ErrorKind::Input,
                format!(
                    "internal error: input `{}` of step `{key}` has no value",
                    plan_input.name
                ),
            )
        })?);
    }

    let cache_key = cache_key.map(KeyBuilder::finish);
    if let Some(entry) = cache_key.as_deref().and_then(|k| cache::lookup(env.io, k)) {
        if let Some(not_produced) = reuse(env, index, &entry) {
            return Ok(Some(not_produced));
        }
    }

    let mut ctx = OpContext {
        run_id: env.run_id.to_owned(),
        step_key: key.to_owned(),
        attempt,
        config: env.config.ops.get(key).cloned(),
        resources: Arc::clone(env.resources),
        sink: Arc::clone(env.sink),
    };
    let output = match deadline {
        None => call_op(&step.spec, &ctx, values)?,
        Some(deadline) => {
            let gate = Arc::new(Gate {
                inner: Arc::clone(env.sink),
                open: AtomicBool::new(true),
            });
            ctx.sink = Arc::clone(&gate) as Arc<dyn EventSink>;
            let (tx, rx) = sync_channel(1);
            let spec = Arc::clone(&step.spec);
            std::thread::Builder::new()
                .name(format!("op {key}"))
                .spawn(move || {
                    let _ = tx.send(call_op(&spec, &ctx, values));
                })
                .map_err(|e| ErrorInfo::from_error(ErrorKind::Engine, &e))?;
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(result) => result?,
                Err(RecvTimeoutError::Timeout) => {
                    gate.open.store(false, Ordering::SeqCst);
                    return Ok(None);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ErrorInfo::new(
                        ErrorKind::Engine,
                        format!("the thread of step `{key}` ended without a result"),
                    ));
                }
            }
        }
    };

    let not_produced = store_outputs(env, index, output)?;
    if let Some(cache_key) = cache_key {
        let entry = cache::Entry {
            run_id: env.run_id.to_owned(),
            step: key.to_owned(),
            not_produced: not_produced.clone(),
        };
        if let Err(e) = cache::record(env.io, &cache_key, &entry) {
            env.emit(
                key,
                EventKind::Log {
                    level: crate::events::LogLevel::Warning,
                    message: format!("could not record the step in the cache (it ran): {e}"),
                },
            );
        }
    }
    Ok(Some(not_produced))
}

/// Stores, as this step's outputs, those of the earlier step `entry` names: the step is
/// cached. `None` when one of them cannot be read any more (a miss: the step runs).
fn reuse(env: &StepEnv<'_>, index: usize, entry: &cache::Entry) -> Option<Vec<usize>> {
    let plan_step = &env.job.plan().steps[index];
    let key = plan_step.key.as_str();
    let mut stored = Vec::with_capacity(plan_step.outputs.len());
    for (k, declared) in plan_step.outputs.iter().enumerate() {
        let out_key = OutputKey {
            run_id: env.run_id,
            step: key,
            output: &declared.name,
        };
        let bytes = if entry.not_produced.contains(&k) {
            crate::codec::not_produced()
        } else {
            let from = OutputKey {
                run_id: &entry.run_id,
                step: &entry.step,
                output: &declared.name,
            };
            env.io.load(from).ok()?
        };
        let size = bytes.len();
        let location = env.io.store(out_key, bytes).ok()?;
        if !entry.not_produced.contains(&k) {
            stored.push((declared, size, location));
        }
    }
    for (declared, size, location) in stored {
        emit_output(env, key, declared, size, location, Some(&entry.run_id));
    }
    Some(entry.not_produced.clone())
}

/// The value of input `input` of step `key` that run config gives (checked before the run;
/// checked again here, since a step process reads the config on its own), and the JSON it
/// was read from.
fn input_from_config<'e>(
    env: &StepEnv<'e>,
    key: &str,
    input: &str,
    read: crate::graph::FromJsonFn,
) -> Result<(AnyValue, &'e serde_json::Value), ErrorInfo> {
    let location = format!("{}.inputs.{input}", crate::config::step_path(key));
    let err = |message: String| {
        ErrorInfo::new(
            ErrorKind::Input,
            format!(
                "cannot read input `{input}` of step `{key}` from run config `{location}`: {message}"
            ),
        )
    };
    let given = env
        .config
        .inputs
        .get(key)
        .and_then(|inputs| inputs.get(input))
        .ok_or_else(|| err("it is not given".to_owned()))?;
    let value = read(given).map_err(err)?;
    env.emit(
        key,
        EventKind::LoadedInput {
            input: input.to_owned(),
            upstream: "run config".to_owned(),
            location,
        },
    );
    Ok((value, given))
}

/// Stores each output the op produced, with its events, and the mark of each optional
/// output it did not produce; returns those, by position.
fn store_outputs(env: &StepEnv<'_>, index: usize, outputs: Split) -> Result<Vec<usize>, ErrorInfo> {
    let plan_step = &env.job.plan().steps[index];
    let key = plan_step.key.as_str();
    let mut not_produced = Vec::new();
    for (k, (produced, declared)) in outputs.into_iter().zip(&plan_step.outputs).enumerate() {
        let out_key = OutputKey {
            run_id: env.run_id,
            step: key,
            output: &declared.name,
        };
        let Some(produced) = produced else {
            // (a step re-run after a success that produced it must not find the old value)
            env.io
                .store(out_key, crate::codec::not_produced())
                .map_err(|e| ErrorInfo::from_error(ErrorKind::Output, &e))?;
            not_produced.push(k);
            continue;
        };
        let (location, bytes) = env
            .io
            .store_encoded(out_key, &mut |w| produced.encode_into(w))
            .map_err(|e| ErrorInfo::from_error(ErrorKind::Output, &e))?;
        drop(produced);
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        emit_output(env, key, declared, bytes, location, None);
    }
    Ok(not_produced)
}

/// The events of one stored output of step `key`: `STEP_OUTPUT` (saying which run it is
/// cached from, when it is) and `HANDLED_OUTPUT`.
fn emit_output(
    env: &StepEnv<'_>,
    key: &str,
    declared: &crate::plan::PlanOutput,
    bytes: usize,
    location: String,
    cached_from: Option<&str>,
) {
    env.emit(
        key,
        EventKind::StepOutput {
            output: declared.name.clone(),
            type_name: declared.type_name.clone(),
            bytes,
            cached_from: cached_from.map(str::to_owned),
        },
    );
    env.emit(
        key,
        EventKind::HandledOutput {
            output: declared.name.clone(),
            location,
        },
    );
}

/// Calls the op, a panic caught as its error.
fn call_op(spec: &OpSpec, ctx: &OpContext, values: Vec<AnyValue>) -> Result<Split, ErrorInfo> {
    match catch_unwind(AssertUnwindSafe(|| (spec.compute)(ctx, values))) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic payload that is not a string)".to_owned());
            Err(ErrorInfo::new(
                ErrorKind::Panic,
                format!("op `{}` panicked: {message}", spec.name),
            ))
        }
    }
}

/// The events of an op that may be abandoned: closed once it is, so that a late log never
/// speaks for an attempt that has ended.
struct Gate {
    inner: Arc<dyn EventSink>,
    open: AtomicBool,
}

impl EventSink for Gate {
    fn emit(&self, event: Event) {
        if self.open.load(Ordering::SeqCst) {
            self.inner.emit(event);
        }
    }
}
