//! Resources: configured from run config, built lazily once per run, only for steps that
//! use them, a failed build fails the step (and is retried); checked before the run.

use std::sync::atomic::{AtomicUsize, Ordering};

use dagster_dask::events::EventKind;
use dagster_dask::graph::GraphProblem;
use dagster_dask::op::BoxError;
use dagster_dask::prelude::*;

static WAREHOUSE_BUILDS: AtomicUsize = AtomicUsize::new(0);
static UNUSED_BUILDS: AtomicUsize = AtomicUsize::new(0);

/// A client built from config.
struct Warehouse {
    schema: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WarehouseConfig {
    schema: String,
    #[serde(default)]
    fail: bool,
}

impl Resource for Warehouse {
    type Config = WarehouseConfig;
    fn build(config: WarehouseConfig, ctx: &ResourceContext) -> Result<Self, BoxError> {
        WAREHOUSE_BUILDS.fetch_add(1, Ordering::SeqCst);
        if config.fail {
            let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
            return Err(Box::new(Wrapped(
                format!("cannot connect `{}`", ctx.name()),
                cause,
            )));
        }
        Ok(Warehouse {
            schema: config.schema,
        })
    }
}

#[derive(Debug)]
struct Wrapped(String, std::io::Error);
impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.1)
    }
}

/// A resource no step of the job uses.
struct Unused;

impl Resource for Unused {
    type Config = Option<u32>;
    fn build(_: Option<u32>, _: &ResourceContext) -> Result<Self, BoxError> {
        UNUSED_BUILDS.fetch_add(1, Ordering::SeqCst);
        Ok(Unused)
    }
}

#[op(retries = 1)]
fn table(warehouse: &Warehouse, name: String) -> String {
    format!("{}.{name}", warehouse.schema)
}

#[op]
fn name() -> String {
    "events".to_owned()
}

job! {
    #[job(resources(warehouse = Warehouse, unused = Unused))]
    fn tables() {
        let n = name();
        table(n);
        table(n).alias("again");
    }
}

fn run(yaml: &str) -> RunResult {
    let job = tables();
    let config = RunConfig::from_yaml(yaml, &job).unwrap();
    Run::new(&job).config(config).in_memory().execute().unwrap()
}

// One test: the build counters are process-wide.
#[test]
fn resources_are_built_once_per_run_only_when_used_and_a_failed_build_fails_the_step() {
    let result = run("resources: { warehouse: { config: { schema: analytics } } }");
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(
        result.output::<String>("table").unwrap(),
        "analytics.events"
    );
    assert_eq!(
        result.output::<String>("again").unwrap(),
        "analytics.events"
    );
    assert_eq!(
        WAREHOUSE_BUILDS.load(Ordering::SeqCst),
        1,
        "once for both steps"
    );
    assert_eq!(UNUSED_BUILDS.load(Ordering::SeqCst), 0, "never used");

    let result = run("resources: { warehouse: { config: { schema: a, fail: true } } }");
    assert!(!result.success());
    let error = result
        .step_events("table")
        .find_map(|e| match &e.kind {
            EventKind::StepFailure { error, .. } => Some(error.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        error
            .causes
            .iter()
            .any(|c| c.contains("cannot connect `warehouse`"))
            && error.causes.iter().any(|c| c == "refused")
            && error
                .message
                .contains("resource `warehouse` could not be built"),
        "{error:?}"
    );
    // The retry policy applies, and each attempt builds it again.
    assert!(
        result
            .step_events("table")
            .any(|e| matches!(e.kind, EventKind::StepUpForRetry { .. }))
    );
    // (two steps, two attempts each, after the one build of the first run)
    assert_eq!(WAREHOUSE_BUILDS.load(Ordering::SeqCst), 1 + 2 * 2);
}

#[test]
fn resource_config_is_checked_before_the_run_and_secrets_stay_out_of_messages() {
    let job = tables();
    let text = job.plan().to_text();
    assert!(text.contains("table -> String  uses warehouse"), "{text}");
    let err = RunConfig::from_yaml("", &job).unwrap_err().to_string();
    assert!(
        err.contains("resources.warehouse.config") && err.contains("required"),
        "{err}"
    );
    let err = RunConfig::from_yaml(
        "resources: { warehouse: { config: { schema: 3, extra: 1 } } }",
        &job,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("resources.warehouse.config"), "{err}");
    // A value from the environment is resolved, and never printed.
    let path = std::env::var("PATH").unwrap();
    let config = RunConfig::from_yaml(
        "resources: { warehouse: { config: { schema: { env: PATH } } } }",
        &job,
    )
    .unwrap();
    assert_eq!(config.resources["warehouse"]["schema"], path.as_str());
    let err = RunConfig::from_yaml(
        "resources: { warehouse: { config: { schema: a, fail: { env: PATH } } } }",
        &job,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("resources.warehouse.config"), "{err}");
    assert!(!err.contains(&path), "{err}");
    // Not a resource of this job.
    let err = RunConfig::from_yaml("resources: { nope: { config: {} } }", &job)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`warehouse`, `unused`") || err.contains("`unused`"),
        "{err}"
    );
}

#[test]
fn a_job_missing_a_resource_or_naming_one_io_manager_does_not_build() {
    let op = OpDef::try_new("table", ["name"], |ctx, (name,): (String,)| {
        ctx.resource::<Warehouse>()
            .map(|w| format!("{}.{name}", w.schema))
    })
    .needs::<Warehouse>();
    let source = OpDef::new("name", [], |_ctx, (): ()| "t".to_owned());
    let mut b = JobBuilder::new("j");
    let n = b.add(&source, ());
    b.add(&op, n);
    let problems = b.build().unwrap_err().problems;
    assert!(
        matches!(&problems[..], [GraphProblem::MissingResource { step, resource }]
        if step == "table" && resource.ends_with("Warehouse")),
        "{problems:?}"
    );

    let mut b = JobBuilder::new("j");
    b.resource::<Warehouse>("io_manager");
    b.resource::<Unused>("unused");
    b.resource::<Unused>("unused_2");
    let problems = b.build().unwrap_err().problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().any(|p| matches!(p,
        GraphProblem::InvalidResource { name, .. } if name == "io_manager")));
    assert!(problems.iter().any(|p| matches!(p,
        GraphProblem::InvalidResource { name, problem } if name == "unused_2" && problem.contains("once"))));
}

/// A resource read by an `async` op and by an op inside a graph.
struct Prefix(String);

impl Resource for Prefix {
    type Config = Option<String>;
    fn build(config: Option<String>, _: &ResourceContext) -> Result<Self, BoxError> {
        Ok(Prefix(config.unwrap_or_else(|| "p".to_owned())))
    }
}

#[op]
async fn prefixed(prefix: &Prefix, name: String) -> String {
    format!("{}:{name}", prefix.0)
}

graph! {
    fn labelled(name: String) -> String {
        prefixed(name)
    }
}

job! {
    #[job(resources(prefix = Prefix))]
    fn labels() {
        let n = name();
        labelled(n);
    }
}

#[test]
fn async_ops_and_ops_inside_graphs_receive_resources() {
    let job = labels();
    let result = Run::new(&job).in_memory().execute().unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(
        result.output::<String>("labelled.prefixed").unwrap(),
        "p:events"
    );
}
