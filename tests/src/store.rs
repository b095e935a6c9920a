//! Test harness for object storage: real servers on free loopback ports, started per test and
//! stopped when dropped: an S3-compatible server (moto's server mode) and Azurite (Azure).
//!
//! [`python`] is a venv at `target/store-venv` with the pinned moto and Azure SDK
//! (`tests/requirements-store.txt`), created on first use unless `DAGSTER_DASK_STORE_PYTHON`
//! names one. Azurite is `target/azurite` from npm (`azurite@3.35.0`, the last that supports
//! the machine's Node 20), installed on first use unless `DAGSTER_DASK_AZURITE` names its
//! `azurite-blob`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Names a Python with moto's server and boto3, instead of `target/store-venv`.
pub const STORE_PYTHON_ENV: &str = "DAGSTER_DASK_STORE_PYTHON";

/// The Python with moto and the Azure SDK the storage tests use (created on first use).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            crate::venv::venv_python(
                STORE_PYTHON_ENV,
                "store-venv",
                "tests/requirements-store.txt",
                "moto.server, boto3, azure.storage.blob",
            )
        })
        .clone()
}

/// Runs a script with the storage tests' Python; returns what it printed.
fn run_python(script: &str) -> String {
    let out = Command::new(python())
        .args(["-c", script])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running S3-compatible server (moto) on loopback.
#[derive(Debug)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    process: Child,
    log: tempfile::NamedTempFile,
}

impl S3Server {
    /// Starts the server and waits until it answers.
    pub fn start() -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let process = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("moto starts");
        let server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            process,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the S3 server did not start: {}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Runs boto3 code against the server (`s3` in it is a client); returns what it printed.
    pub fn boto(&self, code: &str) -> String {
        run_python(&format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n{code}\n",
            self.endpoint
        ))
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        self.boto(&format!("s3.create_bucket(Bucket='{bucket}')"));
    }

    /// The keys in `bucket`, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let listed = self.boto(&format!(
            "p = s3.get_paginator('list_objects_v2')\n\
             for page in p.paginate(Bucket='{bucket}'):\n    \
             for o in page.get('Contents', []):\n        print(o['Key'])"
        ));
        let mut keys: Vec<String> = listed.lines().map(str::to_owned).collect();
        keys.sort();
        keys
    }

    /// The keys of the multipart uploads under way in `bucket` (started, neither completed
    /// nor aborted).
    pub fn multipart_uploads(&self, bucket: &str) -> Vec<String> {
        let listed = self.boto(&format!(
            "r = s3.list_multipart_uploads(Bucket='{bucket}')\n\
             for u in r.get('Uploads', []):\n    print(u['Key'])"
        ));
        listed.lines().map(str::to_owned).collect()
    }

    /// Stops the server (a test of a server that goes away).
    pub fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// The server's log.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Names an `azurite-blob` executable, instead of `target/azurite`.
pub const AZURITE_ENV: &str = "DAGSTER_DASK_AZURITE";

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key (public, in Azurite's documentation).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn azurite() -> PathBuf {
    static AZURITE: OnceLock<PathBuf> = OnceLock::new();
    static INSTALLING: Mutex<()> = Mutex::new(());
    AZURITE
        .get_or_init(|| {
            let _guard = INSTALLING
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(p) = std::env::var_os(AZURITE_ENV) {
                return PathBuf::from(p);
            }
            let dir = crate::venv::workspace().join("target/azurite");
            let bin = dir.join("node_modules/.bin/azurite-blob");
            if !bin.exists() {
                eprintln!("installing azurite@3.35.0 into {} (once)", dir.display());
                std::fs::create_dir_all(&dir).expect("target/azurite");
                let ok = Command::new("npm")
                    .args([
                        "install",
                        "--silent",
                        "--no-audit",
                        "--no-fund",
                        "azurite@3.35.0",
                    ])
                    .current_dir(&dir)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok && bin.exists(), "npm install azurite@3.35.0 failed");
            }
            bin
        })
        .clone()
}

/// A running Azurite blob service on loopback.
#[derive(Debug)]
pub struct AzureServer {
    /// `http://127.0.0.1:PORT/devstoreaccount1`: the account's endpoint.
    pub endpoint: String,
    process: Child,
    _data: tempfile::TempDir,
}

impl AzureServer {
    /// Starts Azurite and waits until it listens.
    pub fn start() -> Self {
        let port = free_port();
        let data = tempfile::tempdir().expect("a data dir");
        let process = Command::new(azurite())
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--silent",
            ])
            .arg("--skipApiVersionCheck")
            .arg("--location")
            .arg(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "azurite did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            endpoint: format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
            process,
            _data: data,
        }
    }

    /// Runs Azure SDK code against the server (`svc` in it is a `BlobServiceClient`).
    pub fn sdk(&self, code: &str) -> String {
        run_python(&format!(
            "from azure.storage.blob import BlobServiceClient\n\
             svc = BlobServiceClient.from_connection_string('DefaultEndpointsProtocol=http;\
             AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={};')\n{code}\n",
            self.endpoint
        ))
    }

    /// Creates a container.
    pub fn create_container(&self, name: &str) {
        self.sdk(&format!("svc.create_container('{name}')"));
    }

    /// The blob names in `container`, sorted.
    pub fn blobs(&self, container: &str) -> Vec<String> {
        let listed = self.sdk(&format!(
            "for b in svc.get_container_client('{container}').list_blobs():\n    print(b.name)"
        ));
        let mut names: Vec<String> = listed.lines().map(str::to_owned).collect();
        names.sort();
        names
    }
}

impl Drop for AzureServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
