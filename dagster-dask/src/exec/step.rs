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

use super::state::AttemptEnd;
use crate::cache::{self, KeyBuilder};
use crate::error::{ErrorInfo, ErrorKind};
use crate::events::{Event, EventKind, EventSink};
use crate::graph::Job;
use crate::io::{IoManager, OutputKey};
use crate::op::{AnyValue, OpContext, OpSpec, Split};
use crate::plan::Fan;

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

/// Which step to run: a step of the plan, or one made from a template for a mapping key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepTarget<'k> {
    /// The plan step it runs (a template for a made step).
    pub(crate) plan: usize,
    /// Its key (`template[mapping_key]` for a made step).
    pub(crate) key: &'k str,
}

impl<'k> StepTarget<'k> {
    /// The step `key` names in `plan`: a step of the plan, or `template[mapping_key]` for a
    /// mapped step of the plan and a valid mapping key.
    pub(crate) fn find(plan: &crate::plan::Plan, key: &'k str) -> Option<Self> {
        if let Some(index) = plan.index_of(key) {
            return (plan.steps[index].mapped.is_none()).then_some(Self { plan: index, key });
        }
        let (template, mapping_key) = crate::dynamic::split_instance(key)?;
        crate::dynamic::check_mapping_key(mapping_key).ok()?;
        let index = plan.index_of(template)?;
        plan.steps[index]
            .mapped
            .is_some()
            .then_some(Self { plan: index, key })
    }

    /// Its mapping key, for a step made from a template.
    fn mapping_key(&self) -> Option<&str> {
        crate::dynamic::split_instance(self.key).map(|(_, k)| k)
    }
}

/// What a successful attempt stored, beyond its events.
struct Stored {
    not_produced: Vec<usize>,
    mapping_keys: Vec<(usize, Vec<String>)>,
}

/// Runs attempt `attempt` (from 1) of step `target`: emits its start and what it loads and
/// stores, and returns how it ended. The run's state decides what follows.
///
/// With a `deadline`, the op runs on a thread of its own, and `None` means the op had not
/// returned by then: its thread is abandoned (a thread cannot be killed), and nothing it does
/// later reaches the run (its events are dropped, its output never stored).
pub(crate) fn execute_step(
    env: &StepEnv<'_>,
    target: StepTarget<'_>,
    attempt: u32,
    deadline: Option<Instant>,
) -> Option<AttemptEnd> {
    let key = target.key;
    env.emit(
        key,
        if attempt > 1 {
            EventKind::StepRestarted { attempt }
        } else {
            EventKind::StepStart
        },
    );
    let started = Instant::now();
    match run_attempt(env, target, attempt, deadline) {
        Ok(Some(stored)) => Some(AttemptEnd::Success {
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
            not_produced: stored.not_produced,
            mapping_keys: stored.mapping_keys,
        }),
        Ok(None) => None,
        Err(error) => Some(AttemptEnd::Failure(error)),
    }
}

/// What the attempt stored; `Ok(None)`: the op passed the deadline.
fn run_attempt(
    env: &StepEnv<'_>,
    target: StepTarget<'_>,
    attempt: u32,
    deadline: Option<Instant>,
) -> Result<Option<Stored>, ErrorInfo> {
    let plan = env.job.plan();
    let plan_step = &plan.steps[target.plan];
    // (a step made from a template: its config and inputs from config are the template's)
    let config_key = plan_step.key.as_str();
    let key = target.key;
    let step = env.job.step(target.plan);

    // The cache key is built from what the step reads, as it reads it. (A dynamic output is
    // stored item by item: such an op is not cached.)
    let dynamic = plan_step.outputs.iter().any(|o| o.dynamic);
    let mut cache_key = match (&plan_step.code_version, env.cache && !dynamic) {
        (Some(version), true) => Some(KeyBuilder::new(
            &plan_step.op,
            version,
            env.config.ops.get(config_key),
        )),
        _ => None,
    };
    let mut values = Vec::with_capacity(step.inputs.len());
    for (input, plan_input) in step.inputs.iter().zip(&plan_step.inputs) {
        if let Some(read) = input.from_config {
            let (value, given) = input_from_config(env, config_key, &plan_input.name, read)?;
            if let Some(cache_key) = &mut cache_key {
                let text = given.to_string();
                cache_key.input(&plan_input.name, &cache::data_version(text.as_bytes()));
            }
            values.push(value);
            continue;
        }
        let loads = input_sources(env, target, plan_input)?;
        let mut decoded = Vec::with_capacity(loads.len());
        for load in &loads {
            let upstream = load.step.as_str();
            let mut out_key = load.key();
            let input_err = |message: String| {
                ErrorInfo::new(
                    ErrorKind::Input,
                    format!(
                        "cannot load input `{}` of step `{key}` from {}: {message}",
                        plan_input.name,
                        if load.output == crate::op::RESULT {
                            format!("step `{upstream}`")
                        } else {
                            format!("output `{}` of step `{upstream}`", load.output)
                        }
                    ),
                )
            };
            let mut version = None;
            let hashing = cache_key.is_some();
            let mut decode = |r: &mut dyn std::io::Read| {
                if !hashing {
                    return (input.decode)(r);
                }
                let mut reader = cache::Hashing::new(r);
                let value = (input.decode)(&mut reader);
                version = Some(reader.version());
                value
            };
            let mut loaded = env.io.load_with(out_key, &mut decode);
            // (a re-execution did not make the steps its parent finished: theirs are read)
            if let (Err(crate::io::IoError::NotFound { .. }), Some(parent)) =
                (&loaded, load.or_in.as_deref())
            {
                out_key.run_id = parent;
                loaded = env.io.load_with(out_key, &mut decode);
            }
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
            if plan_input.fan != Fan::All {
                env.emit(
                    key,
                    EventKind::LoadedInput {
                        input: plan_input.name.clone(),
                        upstream: load.shown(),
                        location: env.io.location(out_key),
                    },
                );
            }
        }
        if let (Fan::All, Some(source)) = (plan_input.fan, plan_input.sources.first()) {
            // (one event for a collect, not one per mapping key)
            env.emit(
                key,
                EventKind::LoadedInput {
                    input: plan_input.name.clone(),
                    upstream: format!(
                        "{}[*] ({} of {} mapping keys)",
                        source,
                        decoded.len(),
                        loads.len()
                    ),
                    location: loads
                        .first()
                        .map(|l| env.io.location(l.key()))
                        .unwrap_or_default(),
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
        if let Some(not_produced) = reuse(env, target, &entry) {
            return Ok(Some(Stored {
                not_produced,
                mapping_keys: Vec::new(),
            }));
        }
    }

    let mut ctx = OpContext {
        run_id: env.run_id.to_owned(),
        step_key: key.to_owned(),
        mapping_key: target.mapping_key().map(str::to_owned),
        attempt,
        config: env.config.ops.get(config_key).cloned(),
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

    let stored = store_outputs(env, target, output)?;
    if let Some(cache_key) = cache_key {
        let entry = cache::Entry {
            run_id: env.run_id.to_owned(),
            step: key.to_owned(),
            not_produced: stored.not_produced.clone(),
        };
        if let Err(e) = cache::record(env.io, &cache_key, &entry) {
            env.emit(
                key,
                EventKind::Log {
                    level: crate::events::LogLevel::Warning,
                    message: format!("could not record the step in the cache (it ran): {e}"),
                    target: None,
                    fields: std::collections::BTreeMap::new(),
                },
            );
        }
    }
    Ok(Some(stored))
}

/// One stored value an input reads.
struct Load {
    run: String,
    step: String,
    output: String,
    /// Where it is when this run did not store it: a re-execution reads the steps its
    /// parent finished for a mapping key from the parent.
    or_in: Option<String>,
}

impl Load {
    fn key(&self) -> OutputKey<'_> {
        OutputKey {
            run_id: &self.run,
            step: &self.step,
            output: &self.output,
        }
    }

    /// As events name it: `step`, `step.output`, `step.output[key]`.
    fn shown(&self) -> String {
        if self.output == crate::op::RESULT {
            self.step.clone()
        } else {
            format!("{}.{}", self.step, self.output)
        }
    }
}

/// The stored values input `input` of step `target` reads, in order: its sources, with the
/// dynamic part resolved (the value of the step's own mapping key, or one per key of the
/// dynamic output for a collect, in emission order).
fn input_sources(
    env: &StepEnv<'_>,
    target: StepTarget<'_>,
    input: &crate::plan::PlanInput,
) -> Result<Vec<Load>, ErrorInfo> {
    let at = |source: &crate::plan::PlanSource, mapping_key: Option<&str>| {
        let run = source.run.as_deref().unwrap_or(env.run_id).to_owned();
        let is_root = input
            .root
            .as_ref()
            .is_some_and(|r| r.step == source.step && r.output == source.output);
        let or_in = input
            .root
            .as_ref()
            .and_then(|r| r.run.clone())
            .filter(|_| source.run.is_none());
        match mapping_key {
            None => Load {
                run,
                step: source.step.clone(),
                output: source.output.clone(),
                or_in: None,
            },
            // An item of the dynamic output itself, or the output of the step made for the key.
            Some(k) if is_root => Load {
                run,
                step: source.step.clone(),
                output: crate::dynamic::item_output(&source.output, k),
                or_in: None,
            },
            Some(k) => Load {
                run,
                step: crate::dynamic::instance_key(&source.step, k),
                output: source.output.clone(),
                or_in,
            },
        }
    };
    match input.fan {
        Fan::One => Ok(input.sources.iter().map(|s| at(s, None)).collect()),
        Fan::Each => {
            let k = target.mapping_key().ok_or_else(|| {
                ErrorInfo::new(
                    ErrorKind::Input,
                    format!(
                        "step `{}` is mapped over a dynamic output but has no mapping key: run \
                         it as `{}[<mapping key>]`",
                        target.key, target.key
                    ),
                )
            })?;
            Ok(input.sources.iter().map(|s| at(s, Some(k))).collect())
        }
        Fan::All => {
            let keys = mapping_keys(env, input)?;
            Ok(input
                .sources
                .iter()
                .flat_map(|s| keys.iter().map(|k| at(s, Some(k))))
                .collect())
        }
    }
}

/// The mapping keys of the dynamic output a collecting input follows, as stored.
fn mapping_keys(
    env: &StepEnv<'_>,
    input: &crate::plan::PlanInput,
) -> Result<Vec<String>, ErrorInfo> {
    let err = |message: String| {
        ErrorInfo::new(
            ErrorKind::Input,
            format!(
                "cannot read the mapping keys that input `{}` collects: {message}",
                input.name
            ),
        )
    };
    let root = input
        .root
        .as_ref()
        .ok_or_else(|| err("the plan names no dynamic output".to_owned()))?;
    crate::dynamic::read_keys(env.io, env.run_id, root).map_err(err)
}

/// Stores, as this step's outputs, those of the earlier step `entry` names: the step is
/// cached. `None` when one of them cannot be read any more (a miss: the step runs).
fn reuse(env: &StepEnv<'_>, target: StepTarget<'_>, entry: &cache::Entry) -> Option<Vec<usize>> {
    let plan_step = &env.job.plan().steps[target.plan];
    let key = target.key;
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
/// output it did not produce; returns those, by position, and the keys of each dynamic one.
fn store_outputs(
    env: &StepEnv<'_>,
    target: StepTarget<'_>,
    outputs: Split,
) -> Result<Stored, ErrorInfo> {
    let plan_step = &env.job.plan().steps[target.plan];
    let key = target.key;
    let mut stored = Stored {
        not_produced: Vec::new(),
        mapping_keys: Vec::new(),
    };
    for (k, (mut produced, declared)) in outputs.into_iter().zip(&plan_step.outputs).enumerate() {
        let out_key = OutputKey {
            run_id: env.run_id,
            step: key,
            output: &declared.name,
        };
        if let Some(items) = produced.as_mut().and_then(|p| p.take_items()) {
            let keys = store_items(env, key, declared, items)?;
            stored.mapping_keys.push((k, keys));
            continue;
        }
        let Some(produced) = produced else {
            // (a step re-run after a success that produced it must not find the old value)
            env.io
                .store(out_key, crate::codec::not_produced())
                .map_err(|e| ErrorInfo::from_error(ErrorKind::Output, &e))?;
            stored.not_produced.push(k);
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
    Ok(stored)
}

/// Stores the items of dynamic output `declared` of step `key`, then its keys (the output
/// is whole once they are stored); returns the keys.
fn store_items(
    env: &StepEnv<'_>,
    key: &str,
    declared: &crate::plan::PlanOutput,
    items: Vec<(String, Box<dyn crate::op::Produced>)>,
) -> Result<Vec<String>, ErrorInfo> {
    crate::dynamic::check_keys(items.iter().map(|(k, _)| k.as_str())).map_err(|problem| {
        ErrorInfo::new(
            ErrorKind::Output,
            format!(
                "dynamic output `{}` of step `{key}`: {problem}",
                declared.name
            ),
        )
    })?;
    let mut keys = Vec::with_capacity(items.len());
    let mut total = 0_u64;
    for (mapping_key, value) in items {
        let output = crate::dynamic::item_output(&declared.name, &mapping_key);
        let out_key = OutputKey {
            run_id: env.run_id,
            step: key,
            output: &output,
        };
        let (_, bytes) = env
            .io
            .store_encoded(out_key, &mut |w| value.encode_into(w))
            .map_err(|e| ErrorInfo::from_error(ErrorKind::Output, &e))?;
        total += bytes;
        keys.push(mapping_key);
    }
    let output = crate::dynamic::keys_output(&declared.name);
    let keys_key = OutputKey {
        run_id: env.run_id,
        step: key,
        output: &output,
    };
    let location = env
        .io
        .store(keys_key, crate::dynamic::encode_keys(&keys))
        .map_err(|e| ErrorInfo::from_error(ErrorKind::Output, &e))?;
    env.emit(
        key,
        EventKind::StepOutput {
            output: declared.name.clone(),
            type_name: format!("Dynamic<{}>", declared.type_name),
            bytes: usize::try_from(total).unwrap_or(usize::MAX),
            cached_from: None,
            mapping_keys: Some(keys.len()),
        },
    );
    env.emit(
        key,
        EventKind::HandledOutput {
            output: declared.name.clone(),
            location,
        },
    );
    Ok(keys)
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
            mapping_keys: None,
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
    let run = || catch_unwind(AssertUnwindSafe(|| (spec.compute)(ctx, values)));
    // (what the op logs with `tracing` or `log` is the step's)
    match crate::events::captured(&ctx.sink, &ctx.run_id, &ctx.step_key, run) {
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
