//! Shared by the `--write` tests (`write_nat.rs`, `write_ftp_nat.rs`): the manifest's
//! NAT entries, running `ctrack replay --write`, and the kernel-availability check.

#![allow(dead_code)] // each test file uses its own subset

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One entry of `tests/rulesets/manifest.json` (the fields these tests use).
#[derive(Deserialize)]
pub(crate) struct Entry {
    /// The ruleset file under tests/rulesets.
    pub(crate) ruleset: String,
    /// Scenario names (tests/scenarios/pcap/NAME.pcap).
    pub(crate) scenarios: Vec<String>,
    /// `--addr SIDE=ADDR` values.
    #[serde(default)]
    pub(crate) addrs: Vec<String>,
    /// `--client-net` prefixes.
    #[serde(default)]
    pub(crate) client_nets: Vec<String>,
}

/// Every manifest entry.
pub(crate) fn manifest() -> Vec<Entry> {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/rulesets/manifest.json")).expect("manifest"),
    )
    .expect("manifest parses")
}

/// `ctrack replay --packets -o json --ruleset R --write out [--write-side side]` of
/// scenario `s`; returns the per-packet JSON reports of the replay.
pub(crate) fn write_rewritten(
    e: &Entry,
    s: &str,
    out: &Path,
    side: Option<&str>,
) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctrack"));
    cmd.arg("replay")
        .args(["--packets", "-o", "json", "--ruleset"])
        .arg(root().join("tests/rulesets").join(&e.ruleset))
        .arg("--write")
        .arg(out);
    if let Some(side) = side {
        cmd.arg("--write-side").arg(side);
    }
    for a in &e.addrs {
        cmd.arg("--addr").arg(a);
    }
    for n in &e.client_nets {
        cmd.arg("--client-net").arg(n);
    }
    cmd.arg(
        root()
            .join("tests/scenarios/pcap")
            .join(format!("{s}.pcap")),
    );
    let st = cmd.output().expect("run ctrack");
    assert!(
        st.status.success(),
        "{}: {}",
        e.ruleset,
        String::from_utf8_lossy(&st.stderr)
    );
    String::from_utf8_lossy(&st.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON packet report"))
        .collect()
}

/// Whether the live kernel can be asked (root, network namespaces). Outside CI a
/// missing kernel skips, saying so; with `CI=true` it fails.
pub(crate) fn kernel_ready(what: &str) -> bool {
    match ctrack_oracle::available() {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{what} cannot run in CI: {why}");
            }
            eprintln!("SKIPPED: {what} needs root and network namespaces ({why}); CI runs it");
            false
        }
    }
}
