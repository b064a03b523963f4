//! Running one of the tests' Python scripts (numpy, the PyPI `gguf` package, `safetensors`)
//! to write reference files, shared by the tests that check against them. Included with
//! `#[path = "common/python.rs"] mod python;`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What to do when the interpreter is missing.
pub const HOW: &str = "create it with `python3 -m venv .venv && .venv/bin/pip install numpy gguf \
                       safetensors` at the repository root (or point BITNET_PYTHON at a python \
                       with them), or set BITNET_SKIP_PYTHON=1 to skip this test";

/// Runs `script` (relative to the repository root) with `$BITNET_PYTHON` (default
/// `.venv/bin/python`) into a fresh directory named after `tag`, and returns it; None when
/// `BITNET_SKIP_PYTHON=1` asks to skip. A missing interpreter or a failing script fails the
/// test: without them these tests would check nothing.
pub fn run_script(script: &str, tag: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var("BITNET_SKIP_PYTHON").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: BITNET_SKIP_PYTHON=1, {script} was not run");
        return None;
    }
    let python = std::env::var_os("BITNET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python interpreter at {}: {HOW}",
        python.display()
    );
    let dir = std::env::temp_dir().join(format!("bitnet-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(&python)
        .arg(root.join(script))
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HOW}", python.display()));
    assert!(
        out.status.success(),
        "{script} failed ({}); {HOW}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}
