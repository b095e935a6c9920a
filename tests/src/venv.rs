//! Python environments the test harness needs: one named by an environment variable, else a
//! venv under `target/`, created once from a requirements file and reused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The workspace's root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Whether `python` can import `modules` (comma-separated, as Python writes them).
fn imports(python: &Path, modules: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python named by `env`, else `target/<venv>/bin/python`, created from `requirements`
/// (relative to the workspace) when it cannot import `modules`.
pub(crate) fn venv_python(env: &str, venv: &str, requirements: &str, modules: &str) -> PathBuf {
    static CREATING: Mutex<()> = Mutex::new(());
    let _guard = CREATING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(
            imports(&p, modules),
            "{env} = {} cannot import {modules}",
            p.display()
        );
        return p;
    }
    let venv = workspace().join("target").join(venv);
    let python = venv.join("bin/python");
    if !imports(&python, modules) {
        eprintln!("creating {} from {requirements} (once)", venv.display());
        let requirements = workspace().join(requirements);
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(&requirements)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok && imports(&python, modules),
            "pip install -r {} into {} failed",
            requirements.display(),
            venv.display()
        );
    }
    python
}
