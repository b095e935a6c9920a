//! Run config: Dagster's shape, strict validation, errors that name the YAML path.

use std::path::PathBuf;
use std::time::Duration;

use dagster_dask::config::{
    self, ClusterConfig, ConfigError, ExecutionConfig, RunConfig, ShipBinary,
};

const SCALE: &str = "ops: { scale: { config: { factor: 2 } } }\n";

fn check(yaml: &str) -> Result<RunConfig, ConfigError> {
    RunConfig::from_yaml(yaml, &tests::diamond())
}

/// Asserts the config is refused with a problem at `path` whose message contains `needle`.
fn refused(yaml: &str, path: &str, needle: &str) -> ConfigError {
    let err = check(yaml).expect_err("config should be refused");
    assert!(
        err.problems
            .iter()
            .any(|p| p.path == path && p.message.contains(needle)),
        "no problem at `{path}` containing `{needle}` in:\n{err}"
    );
    err
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/docs_yaml")
        .join(name)
}

#[test]
fn no_execution_block_means_the_embedded_multithreaded_executor() {
    let cfg = check(SCALE).unwrap();
    assert_eq!(
        cfg.execution,
        ExecutionConfig::Multithread {
            max_concurrent: None
        }
    );
    assert_eq!(cfg.ops["scale"], serde_json::json!({"factor": 2}));
    let cfg = check(&format!(
        "{SCALE}execution: {{ config: {{ in_process: }} }}"
    ))
    .unwrap();
    assert_eq!(cfg.execution, ExecutionConfig::InProcess);
    let cfg = check(&format!(
        "{SCALE}execution: {{ config: {{ multithread: {{ max_concurrent: 3 }} }} }}"
    ))
    .unwrap();
    assert_eq!(
        cfg.execution,
        ExecutionConfig::Multithread {
            max_concurrent: Some(3)
        }
    );
}

#[test]
fn the_dagster_docs_yaml_parses_into_the_dask_config() {
    let job = tests::diamond();
    let scale = config::parse_yaml(SCALE, "scale").unwrap();

    let mut local = config::load_files(&[fixture("dask_hello_world.yaml")]).unwrap();
    config::merge(&mut local, scale.clone());
    let cfg = RunConfig::from_value(&local, &job).unwrap();
    let ExecutionConfig::Dask(dask) = &cfg.execution else {
        panic!("{cfg:?}")
    };
    let ClusterConfig::Local(kwargs) = &dask.cluster else {
        panic!("{dask:?}")
    };
    assert_eq!(kwargs["n_workers"], 2);
    assert_eq!(kwargs["threads_per_worker"], 1);
    assert_eq!(dask.no_worker_timeout, config::DEFAULT_NO_WORKER_TIMEOUT);
    assert_eq!(dask.ship_binary, ShipBinary::Auto);

    let mut remote = config::load_files(&[fixture("dask_remote.yaml")]).unwrap();
    config::merge(&mut remote, scale);
    let cfg = RunConfig::from_value(&remote, &job).unwrap();
    let ExecutionConfig::Dask(dask) = &cfg.execution else {
        panic!("{cfg:?}")
    };
    assert_eq!(
        dask.cluster,
        ClusterConfig::Existing {
            address: "tcp://127.0.0.1:38786".into()
        }
    );

    // `local:` with a YAML null is valid, as in Dagster.
    let cfg = check(&format!(
        "{SCALE}execution: {{ config: {{ cluster: {{ local: }} }} }}"
    ))
    .unwrap();
    assert!(
        matches!(cfg.execution, ExecutionConfig::Dask(ref d) if d.cluster == ClusterConfig::Local(Default::default()))
    );
}

#[test]
fn dask_options_parse() {
    let cfg = check(&format!(
        "{SCALE}execution:\n  config:\n    cluster: {{ existing: {{ address: 'tcp://h:1' }} }}\n    python: /opt/py/bin/python\n    no_worker_timeout: 2.5\n    ship_binary: always\n"
    ))
    .unwrap();
    let ExecutionConfig::Dask(d) = cfg.execution else {
        panic!()
    };
    assert_eq!(d.python.as_deref(), Some("/opt/py/bin/python"));
    assert_eq!(d.no_worker_timeout, Duration::from_millis(2500));
    assert_eq!(d.ship_binary, ShipBinary::Always);
}

#[test]
fn unknown_keys_list_what_is_allowed() {
    refused(
        &format!("{SCALE}bogus: 1"),
        "bogus",
        "allowed here: `execution`, `resources`, `ops`",
    );
    refused(
        &format!("{SCALE}execution: {{ config: {{ multithread: {{ threads: 2 }} }} }}"),
        "execution.config.multithread.threads",
        "allowed here: `max_concurrent`",
    );
    refused(
        &format!("{SCALE}resources: {{ io_manager: {{ config: {{ s3_bucket: b }} }} }}"),
        "resources.io_manager.config.s3_bucket",
        "allowed here: `base_dir`, `in_memory`",
    );
    refused(
        &format!(
            "{SCALE}execution: {{ config: {{ cluster: {{ existing: {{ address: a, port: 1 }} }} }} }}"
        ),
        "execution.config.cluster.existing.port",
        "allowed here: `address`",
    );
}

#[test]
fn wrong_types_are_named() {
    refused(
        &format!("{SCALE}execution: {{ config: {{ multithread: {{ max_concurrent: many }} }} }}"),
        "execution.config.multithread.max_concurrent",
        "expected a whole number of at least 1, found \"many\"",
    );
    refused(
        &format!("{SCALE}execution: 3"),
        "execution",
        "expected a mapping with keys among `config`, found a number",
    );
    refused(
        &format!(
            "{SCALE}execution: {{ config: {{ cluster: {{ existing: {{ address: 8786 }} }} }} }}"
        ),
        "execution.config.cluster.existing.address",
        "expected a string or `{env: VAR}`, found a number",
    );
    refused(
        &format!(
            "{SCALE}execution: {{ config: {{ cluster: {{ local: }}, ship_binary: sometimes }} }}"
        ),
        "execution.config.ship_binary",
        "expected one of `auto`, `always`, `never`",
    );
    refused(
        &format!(
            "{SCALE}execution: {{ config: {{ cluster: {{ local: }}, no_worker_timeout: -1 }} }}"
        ),
        "execution.config.no_worker_timeout",
        "positive number of seconds",
    );
    refused(
        &format!("{SCALE}resources: {{ io_manager: {{ config: {{ in_memory: yes please }} }} }}"),
        "resources.io_manager.config.in_memory",
        "expected true or false",
    );
}

#[test]
fn cluster_needs_exactly_one_entry() {
    refused(
        &format!("{SCALE}execution: {{ config: {{ cluster: {{}} }} }}"),
        "execution.config.cluster",
        "choose one cluster type: `local`, `existing`",
    );
    refused(
        &format!(
            "{SCALE}execution: {{ config: {{ cluster: {{ local: {{}}, existing: {{ address: a }} }} }} }}"
        ),
        "execution.config.cluster",
        "choose exactly one cluster type",
    );
    refused(
        &format!("{SCALE}execution: {{ config: {{ cluster: {{ slurm: {{}} }} }} }}"),
        "execution.config.cluster.slurm",
        "cluster type `slurm` is not supported yet; supported: `local`, `existing`",
    );
    refused(
        &format!("{SCALE}execution: {{ config: {{ cluster: {{ existing: {{}} }} }} }}"),
        "execution.config.cluster.existing",
        "missing required key `address`",
    );
    refused(
        &format!("{SCALE}execution: {{ config: {{}} }}"),
        "execution.config",
        "choose one executor: `in_process`, `multithread`, `cluster`; found none",
    );
    refused(
        &format!("{SCALE}execution: {{ config: {{ in_process: {{}}, multithread: {{}} }} }}"),
        "execution.config",
        "choose exactly one executor",
    );
    refused(
        &format!("{SCALE}execution: {{ config: {{ in_process: {{}}, python: py }} }}"),
        "execution.config.python",
        "needs `cluster`",
    );
}

#[test]
fn env_sources_resolve_or_name_the_variable() {
    // Cargo sets CARGO_PKG_NAME for the test process; the workspace forbids `unsafe`
    // (and so `std::env::set_var`).
    let cfg = check(&format!(
        "{SCALE}execution: {{ config: {{ cluster: {{ existing: {{ address: {{ env: CARGO_PKG_NAME }} }} }} }} }}"
    ))
    .unwrap();
    let ExecutionConfig::Dask(d) = &cfg.execution else {
        panic!()
    };
    assert_eq!(
        d.cluster,
        ClusterConfig::Existing {
            address: "tests".into()
        }
    );
    // The resolved value is what step processes are given.
    assert_eq!(
        cfg.to_value()["execution"]["config"]["cluster"]["existing"]["address"],
        "tests"
    );
    refused(
        &format!(
            "{SCALE}execution: {{ config: {{ cluster: {{ existing: {{ address: {{ env: DAGSTER_DASK_TEST_UNSET_VAR }} }} }} }} }}"
        ),
        "execution.config.cluster.existing.address",
        "environment variable `DAGSTER_DASK_TEST_UNSET_VAR` is not set",
    );
}

#[test]
fn op_config_is_checked_against_the_op_and_the_steps() {
    refused(
        "{}",
        "ops.scale.config",
        "required: op `scale` takes config `tests::ScaleConfig`",
    );
    refused(
        "ops: { scale: { config: { factor: two } } }",
        "ops.scale.config",
        "does not fit `tests::ScaleConfig`: at `factor`: invalid type: string \"two\", expected i64",
    );
    refused(
        "ops: { scale: { config: { factor: 2, extra: 1 } } }",
        "ops.scale.config",
        "unknown field `extra`",
    );
    refused(
        "ops: { scale: { config: { factor: 2 } }, nope: { config: {} } }",
        "ops.nope",
        "unknown key `nope`; allowed here: `numbers`, `scale`, `square`, `negate`, `total`, `describe`",
    );
    refused(
        "ops: { scale: { config: { factor: 2 } }, square: { config: { a: 1 } } }",
        "ops.square.config",
        "op `square` of step `square` takes no config",
    );
    refused(
        "ops: { scale: { config: { factor: 2 }, inputs: {} } }",
        "ops.scale.inputs",
        "allowed here: `config`",
    );
}

#[test]
fn storage_choices_are_checked() {
    refused(
        &format!(
            "{SCALE}execution: {{ config: {{ cluster: {{ local: }} }} }}\nresources: {{ io_manager: {{ config: {{ in_memory: true }} }} }}"
        ),
        "resources.io_manager.config.in_memory",
        "cannot be used with the Dask executor",
    );
    refused(
        &format!(
            "{SCALE}resources: {{ io_manager: {{ config: {{ base_dir: /a, in_memory: true }} }} }}"
        ),
        "resources.io_manager.config",
        "exclude each other",
    );
    refused(
        &format!(
            "{SCALE}resources: {{ io_manager: {{ config: {{ base_dir: 's3://bucket/prefix' }} }} }}"
        ),
        "resources.io_manager.config.base_dir",
        "`s3://` storage is not supported yet",
    );
    let cfg = check(&format!(
        "{SCALE}resources: {{ io_manager: {{ config: {{ base_dir: /shared/storage }} }} }}"
    ))
    .unwrap();
    assert_eq!(
        cfg.io_manager.base_dir,
        Some(PathBuf::from("/shared/storage"))
    );
}

#[test]
fn all_problems_come_at_once() {
    let err =
        check("bogus: 1\nexecution: { config: { cluster: {} } }\nops: { nope: {} }").unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "bogus",
            "execution.config.cluster",
            "ops.nope",
            "ops.scale.config"
        ],
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("invalid run config (4 problems):\n  - bogus: unknown key"),
        "{err}"
    );
}

#[test]
fn files_merge_later_wins_and_yaml_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::fs::write(&a, "execution: { config: { multithread: { max_concurrent: 2 } } }\nops: { scale: { config: { factor: 2 } } }").unwrap();
    std::fs::write(&b, "ops: { scale: { config: { factor: 5 } } }").unwrap();
    let merged = config::load_files(&[a, b]).unwrap();
    let cfg = RunConfig::from_value(&merged, &tests::diamond()).unwrap();
    assert_eq!(cfg.ops["scale"]["factor"], 5);
    assert_eq!(
        cfg.execution,
        ExecutionConfig::Multithread {
            max_concurrent: Some(2)
        }
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "execution: [unclosed").unwrap();
    let err = config::load_files(std::slice::from_ref(&bad)).unwrap_err();
    assert_eq!(err.problems[0].path, bad.display().to_string());
    assert!(
        err.problems[0].message.starts_with("not valid YAML"),
        "{err}"
    );

    let missing = dir.path().join("missing.yaml");
    let err = config::load_files(std::slice::from_ref(&missing)).unwrap_err();
    assert_eq!(err.problems[0].path, missing.display().to_string());
    assert!(err.problems[0].message.starts_with("cannot read"), "{err}");

    let two_docs = dir.path().join("two.yaml");
    std::fs::write(&two_docs, "a: 1\n---\nb: 2\n").unwrap();
    let err = config::load_files(&[two_docs]).unwrap_err();
    assert!(err.to_string().contains("holds 2 YAML documents"), "{err}");
}

#[test]
fn to_value_round_trips() {
    let cfg = check(&format!(
        "{SCALE}execution: {{ config: {{ cluster: {{ local: {{ n_workers: 2 }} }}, no_worker_timeout: 5 }} }}\nresources: {{ io_manager: {{ config: {{ base_dir: /tmp/x }} }} }}"
    ))
    .unwrap();
    let again = RunConfig::from_value(&cfg.to_value(), &tests::diamond()).unwrap();
    assert_eq!(again, cfg);
}
