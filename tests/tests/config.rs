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
    assert_eq!(dask.cluster_timeout, config::DEFAULT_CLUSTER_TIMEOUT);
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
        "{SCALE}execution:\n  config:\n    cluster: {{ existing: {{ address: 'tcp://h:1' }} }}\n    python: /opt/py/bin/python\n    no_worker_timeout: 2.5\n    cluster_timeout: 7\n    ship_binary: always\n"
    ))
    .unwrap();
    let ExecutionConfig::Dask(d) = cfg.execution else {
        panic!()
    };
    assert_eq!(d.python.as_deref(), Some("/opt/py/bin/python"));
    assert_eq!(d.no_worker_timeout, Duration::from_millis(2500));
    assert_eq!(d.cluster_timeout, Duration::from_secs(7));
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
        &format!("{SCALE}resources: {{ io_manager: {{ config: {{ bucket: b }} }} }}"),
        "resources.io_manager.config.bucket",
        "allowed here: `base_dir`, `in_memory`, `base_url`, `s3_bucket`",
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
        "ops: { scale: { config: { factor: 2 }, outputs: {} } }",
        "ops.scale.outputs",
        "allowed here: `config`, `inputs`",
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
        "`s3://...` is a URL and `base_dir` a directory path: write `base_url: s3://bucket/prefix` instead",
    );
    let cfg = check(&format!(
        "{SCALE}resources: {{ io_manager: {{ config: {{ base_dir: /shared/storage }} }} }}"
    ))
    .unwrap();
    assert_eq!(
        cfg.io_manager.base_dir,
        Some(PathBuf::from("/shared/storage"))
    );
    refused(
        &format!("{SCALE}resources: {{ io_manager: {{ config: {{ base_dir: '' }} }} }}"),
        "resources.io_manager.config.base_dir",
        "is empty: name the directory",
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

/// The classic "billion laughs": 700 bytes that expand to billions of nodes.
fn alias_bomb() -> String {
    let mut yaml = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        yaml.push_str(&format!(
            "{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    yaml
}

/// `depth` nested mappings, in block style.
fn deep_block(depth: usize) -> String {
    (0..depth)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect()
}

#[test]
fn aliases_and_deep_nesting_are_refused_before_anything_is_built() {
    let started = std::time::Instant::now();
    let err = config::parse_yaml(&alias_bomb(), "bomb.yaml").unwrap_err();
    assert!(
        err.to_string()
            .contains("YAML anchors (`&name`) are not supported"),
        "{err}"
    );
    assert!(err.to_string().contains("bomb.yaml, line 1"), "{err}");
    // An alias is refused at its anchor, or as an unknown anchor.
    let err = config::parse_yaml("a: *nothing\n", "alias.yaml").unwrap_err();
    assert!(err.to_string().contains("alias.yaml"), "{err}");
    for yaml in [
        deep_block(3_000),
        format!("{}{}", "{a: ".repeat(3_000), "}".repeat(3_000)),
        format!("{}{}", "[".repeat(3_000), "]".repeat(3_000)),
    ] {
        let err = config::parse_yaml(&yaml, "deep.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "nested deeper than {} levels",
                config::MAX_NESTING
            )) || err.contains("recursion limit"),
            "{err}"
        );
    }
    // Nesting up to the limit is fine.
    assert!(config::parse_yaml(&deep_block(config::MAX_NESTING), "ok.yaml").is_ok());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn ten_thousand_malformed_configs_end_in_a_config_or_an_error() {
    let seeds = [
        std::fs::read_to_string(fixture("dask_remote.yaml")).unwrap(),
        std::fs::read_to_string(fixture("dask_hello_world.yaml")).unwrap(),
        format!("{SCALE}execution: {{ config: {{ multithread: {{ max_concurrent: 2 }} }} }}\n"),
    ];
    let nasty = [
        "&a ",
        "*a",
        "[",
        "]",
        "{",
        "}",
        "\t",
        ": ",
        "- ",
        "\n",
        "\"",
        "'",
        "!!binary ",
        "? ",
        "---\n",
        "...\n",
        "\u{0}",
        "\u{feff}",
        "%YAML 1.2\n",
        "<<: ",
        "1e999",
        "-9223372036854775809",
    ];
    let job = tests::diamond();
    let mut rng = fastrand_rng();
    let (mut ok, mut refused) = (0, 0);
    for n in 0..10_000 {
        let mut text: Vec<char> = seeds[n % seeds.len()].chars().collect();
        for _ in 0..rng(1, 4) {
            let at = rng(0, text.len());
            match rng(0, 4) {
                0 => text.truncate(at),
                1 => {
                    let piece = nasty[rng(0, nasty.len())];
                    text.splice(at..at, piece.chars());
                }
                2 if !text.is_empty() => {
                    text.remove(at.min(text.len() - 1));
                }
                _ => {
                    // A duplicated line: duplicate keys.
                    let line: String = text.iter().take_while(|c| **c != '\n').collect();
                    text.splice(0..0, format!("{line}\n").chars());
                }
            }
        }
        let text: String = text.into_iter().collect();
        match config::parse_yaml(&text, "fuzz.yaml").and_then(|v| RunConfig::from_value(&v, &job)) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(!e.problems.is_empty());
                refused += 1;
            }
        }
    }
    assert!(ok > 0 && refused > 0, "{ok} valid, {refused} refused");
}

/// A small deterministic generator: `rng(lo, hi)` is in `lo..hi` (or `lo` when empty).
fn fastrand_rng() -> impl FnMut(usize, usize) -> usize {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    move |lo, hi| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if hi <= lo {
            lo
        } else {
            lo + (state % (hi - lo) as u64) as usize
        }
    }
}

#[test]
fn nasty_config_files_exit_2_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, Vec<u8>); 6] = [
        ("bomb.yaml", alias_bomb().into_bytes()),
        ("deep.yaml", deep_block(3_000).into_bytes()),
        ("binary.yaml", (0..=255_u8).cycle().take(4096).collect()),
        (
            "huge.yaml",
            format!(
                "ops: {{ scale: {{ config: {{ factor: {} }} }} }}",
                "9".repeat(1 << 20)
            )
            .into_bytes(),
        ),
        (
            "tabs.yaml",
            b"ops:\n\tscale:\n\t\tconfig: { factor: 2 }\n".to_vec(),
        ),
        (
            "dupes.yaml",
            b"ops: { scale: { config: { factor: 2 } } }\nops: {}\n".to_vec(),
        ),
    ];
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let started = std::time::Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_diamond"))
            .arg("validate")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn max_runtime_limits_any_executor_and_alone_keeps_the_default_one() {
    let cfg = check(&format!(
        "{SCALE}execution: {{ config: {{ max_runtime: 90 }} }}"
    ))
    .unwrap();
    assert_eq!(cfg.execution, ExecutionConfig::default());
    assert_eq!(cfg.max_runtime, Some(Duration::from_secs(90)));
    let cfg = check(&format!(
        "{SCALE}execution: {{ config: {{ in_process: {{}}, max_runtime: 0.5 }} }}"
    ))
    .unwrap();
    assert_eq!(cfg.execution, ExecutionConfig::InProcess);
    assert_eq!(cfg.max_runtime, Some(Duration::from_millis(500)));
    // What step processes are given says the same.
    let again = RunConfig::from_value(&cfg.to_value(), &tests::diamond()).unwrap();
    assert_eq!(again, cfg);
    for bad in ["0", "-1", "soon"] {
        refused(
            &format!("{SCALE}execution: {{ config: {{ max_runtime: {bad} }} }}"),
            "execution.config.max_runtime",
            "expected a positive number of seconds",
        );
    }
}

fn store_of(yaml: &str) -> config::StoreConfig {
    let cfg = check(&format!("{SCALE}{yaml}")).unwrap_or_else(|e| panic!("{e}"));
    cfg.io_manager.store.clone().expect("an object store")
}

#[test]
fn the_dagster_docs_s3_yaml_validates_unchanged() {
    let job = tests::diamond();
    let mut value = config::load_files(&[fixture("dask_remote_s3.yaml")]).unwrap();
    config::merge(&mut value, config::parse_yaml(SCALE, "scale").unwrap());
    let cfg = RunConfig::from_value(&value, &job).unwrap();
    let store = cfg.io_manager.store.expect("the S3 IO manager");
    assert_eq!(store.cloud, config::Cloud::S3);
    assert_eq!(store.url(), "s3://your_bucket_name/dagster/storage");
    assert_eq!(store.timeout, config::DEFAULT_STORE_TIMEOUT);
    assert_eq!(store.retries, config::DEFAULT_STORE_RETRIES);
}

#[test]
fn dagster_storage_keys_and_urls_name_the_same_places() {
    let io = |body: &str| format!("resources: {{ io_manager: {{ config: {{ {body} }} }} }}\n");
    let cases = [
        ("s3_bucket: b, s3_prefix: team/x", "s3://b/team/x/storage"),
        ("gcs_bucket: g", "gs://g/dagster/storage"),
        ("adls2_file_system: fs, adls2_prefix: ''", "az://fs/storage"),
        ("base_url: 's3://b/some/prefix/'", "s3://b/some/prefix"),
        ("base_url: 'gs://g'", "gs://g"),
        ("base_url: 'abfss://c/p'", "az://c/p"),
    ];
    for (body, url) in cases {
        assert_eq!(store_of(&io(body)).url(), url, "{body}");
    }
    let cfg = check(&format!("{SCALE}{}", io("base_url: 'file:///tmp/runs'"))).unwrap();
    assert_eq!(cfg.io_manager.base_dir, Some(PathBuf::from("/tmp/runs")));
    assert!(cfg.io_manager.store.is_none());
}

#[test]
fn dagsters_client_resources_become_object_store_options_and_stay_secret() {
    let store = store_of(
        "resources:\n  io_manager: { config: { s3_bucket: b, timeout: 7, retries: 0 } }\n  \
         s3:\n    config: { endpoint_url: 'http://127.0.0.1:9000', use_ssl: false, \
         region_name: eu-west-1, aws_access_key_id: AKIA, aws_secret_access_key: s3cr3t }\n",
    );
    let option = |k: &str| store.options.get(k).map(String::as_str);
    assert_eq!(option("aws_endpoint"), Some("http://127.0.0.1:9000"));
    assert_eq!(option("aws_allow_http"), Some("true"));
    assert_eq!(option("aws_region"), Some("eu-west-1"));
    assert_eq!(option("aws_secret_access_key"), Some("s3cr3t"));
    assert_eq!(store.timeout, Duration::from_secs(7));
    assert_eq!(store.retries, 0);
    let shown = format!("{store:?}");
    assert!(
        !shown.contains("s3cr3t") && shown.contains("aws_secret_access_key"),
        "{shown}"
    );

    let store = store_of(
        "resources:\n  io_manager: { config: { adls2_file_system: fs } }\n  adls2:\n    \
         config: { storage_account: acct, credential: { key: k3y } }\n",
    );
    assert_eq!(
        store
            .options
            .get("azure_storage_account_name")
            .map(String::as_str),
        Some("acct")
    );
    assert_eq!(
        store
            .options
            .get("azure_storage_account_key")
            .map(String::as_str),
        Some("k3y")
    );
    // What step processes get names the same store with the same options.
    let cfg = check(&format!(
        "{SCALE}resources:\n  io_manager: {{ config: {{ base_url: 's3://b/p', storage_options: \
         {{ aws_endpoint: 'http://h:1', aws_allow_http: true }} }} }}\n"
    ))
    .unwrap();
    let again = RunConfig::from_value(&cfg.to_value(), &tests::diamond()).unwrap();
    assert_eq!(again, cfg);
}

#[test]
fn wrong_storage_config_is_named_before_anything_runs() {
    let io =
        |body: &str| format!("{SCALE}resources: {{ io_manager: {{ config: {{ {body} }} }} }}\n");
    refused(
        &io("base_url: 'ftp://host/x'"),
        "resources.io_manager.config.base_url",
        "`ftp://` storage is not supported",
    );
    refused(
        &io("s3_prefix: p"),
        "resources.io_manager.config.s3_prefix",
        "`s3_prefix` needs `s3_bucket`",
    );
    refused(
        &io("s3_bucket: b, base_dir: /tmp/x"),
        "resources.io_manager.config",
        "exclude each other",
    );
    refused(
        &io("s3_bucket: b, storage_options: { aws_endpont: x }"),
        "resources.io_manager.config.storage_options.aws_endpont",
        "not an option of object_store's s3 store",
    );
    refused(
        &io("s3_bucket: b, timeout: 0"),
        "resources.io_manager.config.timeout",
        "expected a positive number of seconds",
    );
    refused(
        &format!(
            "{SCALE}resources: {{ io_manager: {{ config: {{ s3_bucket: b }} }}, gcs: {{ config: {{ project: p }} }} }}\n"
        ),
        "resources.gcs",
        "outputs are stored on `s3://`",
    );
    refused(
        &format!(
            "{SCALE}resources: {{ io_manager: {{ config: {{ s3_bucket: b }} }}, s3: {{ config: {{ profile_name: dev }} }} }}\n"
        ),
        "resources.s3.config.profile_name",
        "AWS profiles are not read",
    );
}

#[test]
fn ops_whose_config_has_defaults_or_is_optional_run_without_config() {
    use dagster_dask::prelude::*;

    #[derive(serde::Deserialize)]
    struct Defaults {
        #[serde(default = "three")]
        times: u64,
    }
    fn three() -> u64 {
        3
    }
    let optional = OpDef::try_new("optional", [], |ctx, (): ()| {
        ctx.config::<Option<u64>>().map(|n| n.unwrap_or(7))
    })
    .config::<Option<u64>>();
    let defaults = OpDef::try_new("defaults", [], |ctx, (): ()| {
        ctx.config::<Defaults>().map(|d| d.times)
    })
    .config::<Defaults>();
    let mut b = JobBuilder::new("configs");
    b.add(&optional, ());
    b.add(&defaults, ());
    let job = b.build().unwrap();

    let config = RunConfig::from_yaml("", &job).unwrap();
    let result = Run::new(&job).config(config).in_memory().execute().unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(result.output::<u64>("optional").unwrap(), 7);
    assert_eq!(result.output::<u64>("defaults").unwrap(), 3);

    let given = "ops: { optional: { config: 5 }, defaults: { config: { times: 4 } } }";
    let config = RunConfig::from_yaml(given, &job).unwrap();
    let result = Run::new(&job).config(config).in_memory().execute().unwrap();
    assert_eq!(result.output::<u64>("optional").unwrap(), 5);
    assert_eq!(result.output::<u64>("defaults").unwrap(), 4);

    // A config that cannot be built from nothing is still required.
    let err = RunConfig::from_yaml("", &tests::diamond()).unwrap_err();
    assert!(err.to_string().contains("ops.scale.config"), "{err}");
}

#[test]
fn a_later_file_that_picks_another_selector_entry_replaces_the_earlier_choice() {
    let mut value = config::parse_yaml(
        "execution: { config: { cluster: { local: { n_workers: 2 } }, no_worker_timeout: 5 } }\n\
         ops: { scale: { config: { factor: 2 } } }",
        "defaults",
    )
    .unwrap();
    let remote = config::parse_yaml(
        "execution: { config: { cluster: { existing: { address: 'tcp://10.0.0.5:8786' } } } }",
        "remote.yaml",
    )
    .unwrap();
    config::merge(&mut value, remote);
    let cfg = RunConfig::from_value(&value, &tests::diamond()).unwrap();
    let ExecutionConfig::Dask(dask) = &cfg.execution else {
        panic!("{:?}", cfg.execution)
    };
    assert_eq!(
        dask.cluster,
        ClusterConfig::Existing {
            address: "tcp://10.0.0.5:8786".into()
        }
    );
    // What is not a choice still merges key by key.
    assert_eq!(dask.no_worker_timeout, Duration::from_secs(5));

    // The executor itself is a choice too; the same choice merges its keys.
    let mut value = config::parse_yaml(
        "execution: { config: { multithread: { max_concurrent: 2 } } }",
        "a",
    )
    .unwrap();
    let overlay = config::parse_yaml("execution: { config: { in_process: {} } }", "b").unwrap();
    config::merge(&mut value, overlay);
    config::merge(&mut value, config::parse_yaml(SCALE, "c").unwrap());
    let cfg = RunConfig::from_value(&value, &tests::diamond()).unwrap();
    assert_eq!(cfg.execution, ExecutionConfig::InProcess);
}

#[test]
fn inputs_marked_from_config_are_read_from_run_config_and_checked_first() {
    use dagster_dask::prelude::*;

    let job = tests::greeting();
    let text = job.plan().to_text();
    assert!(
        text.contains("times: u32 <- run config (ops.repeat.inputs.times)"),
        "{text}"
    );
    let yaml = "ops: { upper: { inputs: { word: hi } }, repeat: { inputs: { times: 3 } } }";
    let config = RunConfig::from_yaml(yaml, &job).unwrap();
    // What step processes get reads back the same.
    assert_eq!(
        RunConfig::from_value(&config.to_value(), &job).unwrap(),
        config
    );
    let result = Run::new(&job).config(config).in_memory().execute().unwrap();
    assert!(result.success(), "{:?}", result.events());
    assert_eq!(result.output::<String>("repeat").unwrap(), "HIHIHI");

    let problems = |yaml: &str| -> Vec<(String, String)> {
        RunConfig::from_yaml(yaml, &job)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    };
    // Missing, each named at its path.
    let missing = problems("");
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert_eq!(missing[0].0, "ops.upper.inputs.word");
    assert!(missing[0].1.starts_with("required"), "{missing:?}");
    assert_eq!(missing[1].0, "ops.repeat.inputs.times");
    // The wrong type, an input wired from a step, an input that does not exist.
    let wrong = problems(
        "ops: { upper: { inputs: { word: hi } }, \
         repeat: { inputs: { times: many, word: x, nope: 1 } } }",
    );
    let at = |path: &str| {
        wrong
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, m)| m.clone())
    };
    assert!(
        at("ops.repeat.inputs.times")
            .unwrap()
            .contains("does not fit `u32`")
    );
    assert!(
        at("ops.repeat.inputs.word")
            .unwrap()
            .contains("comes from its upstream step")
    );
    assert!(at("ops.repeat.inputs.nope").is_some(), "{wrong:?}");
}
