//! Sysctls: per-namespace writes (through a thread inside the namespace) and the global
//! conntrack limits of the init namespace, set for one run and always restored.
//!
//! Global limits (`nf_conntrack_max`, `nf_conntrack_buckets`, `nf_conntrack_expect_max`)
//! are read-only in child namespaces and apply to all of them, so a run that changes them
//! holds an exclusive lock on `/run/ctrack-oracle/global.lock` while every other run holds
//! a shared one. Before changing anything, the original values are written to
//! `/run/ctrack-oracle/global-sysctls.restore`; the file is applied and removed when the
//! run ends, or at the next start if the process was killed.

use crate::error::OracleError;
use crate::netns;
use crate::signal;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUN_DIR: &str = "/run/ctrack-oracle";
const LOCK_FILE: &str = "/run/ctrack-oracle/global.lock";
const RESTORE_FILE: &str = "/run/ctrack-oracle/global-sysctls.restore";
const GLOBAL_DIR: &str = "/proc/sys/net/netfilter";
/// The global sysctls a run may change.
pub(crate) const GLOBAL_NAMES: [&str; 3] = [
    "nf_conntrack_max",
    "nf_conntrack_buckets",
    "nf_conntrack_expect_max",
];
/// How long a run waits for another run's global settings to end.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// `/proc/sys/...` path of a full sysctl name (`net.ipv4.ip_forward` or `net/ipv4/...`).
fn full_path(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name.replace('.', "/"))
}

/// Path of a user sysctl: relative to `net/netfilter`, or a full name when it starts
/// with `net.` / `net/`.
fn user_path(name: &str) -> Result<PathBuf, OracleError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains("..")
        || name.contains("//")
        || name.chars().any(char::is_whitespace);
    if bad {
        return Err(OracleError::Sysctl {
            name: name.to_owned(),
            reason: "not a sysctl name".to_owned(),
        });
    }
    if name.starts_with("net.") || name.starts_with("net/") {
        Ok(full_path(name))
    } else {
        Ok(Path::new("/proc/sys/net/netfilter").join(name))
    }
}

fn write_value(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

fn read_value(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

fn write_all_in(ns: &File, list: &[(String, PathBuf, String)]) -> Result<(), OracleError> {
    netns::in_netns(ns, || {
        for (name, path, value) in list {
            write_value(path, value).map_err(|e| OracleError::Sysctl {
                name: name.clone(),
                reason: format!("writing {value:?} to {}: {e}", path.display()),
            })?;
        }
        Ok(())
    })
    .map_err(|e| OracleError::io("entering the namespace", e))?
}

/// Writes full-name sysctls inside the namespace `ns`.
pub(crate) fn set_in(ns: &File, list: &[(&str, &str)]) -> Result<(), OracleError> {
    let list: Vec<_> = list
        .iter()
        .map(|(n, v)| ((*n).to_owned(), full_path(n), (*v).to_owned()))
        .collect();
    write_all_in(ns, &list)
}

/// Writes the user's sysctls (names relative to `net/netfilter`) inside `ns`.
pub(crate) fn set_user_in(ns: &File, list: &[(String, String)]) -> Result<(), OracleError> {
    let list = list
        .iter()
        .map(|(n, v)| Ok((n.clone(), user_path(n)?, v.clone())))
        .collect::<Result<Vec<_>, OracleError>>()?;
    write_all_in(ns, &list)
}

/// Holds the global lock of a run and restores changed global sysctls when dropped.
pub(crate) struct GlobalGuard {
    _lock: File,
    /// (name, original value), in the order they were changed.
    restore: Vec<(String, String)>,
}

fn lock_file() -> std::io::Result<File> {
    std::fs::create_dir_all(RUN_DIR)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(LOCK_FILE)
}

/// Tries `flock(op | LOCK_NB)`; `Ok(false)` if someone else holds it.
fn try_flock(f: &File, op: libc::c_int) -> std::io::Result<bool> {
    // SAFETY: flock on a valid open descriptor; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn parse_restore(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(' ')?;
            GLOBAL_NAMES
                .contains(&n)
                .then(|| (n.to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// Applies and removes a leftover restore file. Caller holds the exclusive lock.
fn apply_restore_file() {
    let Ok(text) = std::fs::read_to_string(RESTORE_FILE) else {
        return;
    };
    for (name, value) in parse_restore(&text).iter().rev() {
        let _ = write_value(&Path::new(GLOBAL_DIR).join(name), value);
    }
    let _ = std::fs::remove_file(RESTORE_FILE);
}

/// Restores global sysctls left changed by a run that was killed (best effort; skipped
/// while any other run is active).
pub(crate) fn restore_leftover() {
    if !Path::new(RESTORE_FILE).exists() {
        return;
    }
    let Ok(lock) = lock_file() else { return };
    if let Ok(true) = try_flock(&lock, libc::LOCK_EX) {
        apply_restore_file();
    }
}

fn check_globals(globals: &[(String, String)]) -> Result<Vec<(String, u64)>, OracleError> {
    globals
        .iter()
        .map(|(name, value)| {
            if !GLOBAL_NAMES.contains(&name.as_str()) {
                return Err(OracleError::Sysctl {
                    name: name.clone(),
                    reason: format!("not a global sysctl the oracle may set ({GLOBAL_NAMES:?})"),
                });
            }
            let v = value
                .trim()
                .parse::<u64>()
                .map_err(|e| OracleError::Sysctl {
                    name: name.clone(),
                    reason: format!("value {value:?}: {e}"),
                })?;
            Ok((name.clone(), v))
        })
        .collect()
}

impl GlobalGuard {
    /// Takes the machine-wide oracle lock (exclusive if `globals` is not empty), then
    /// applies `globals` in the init namespace, recording the originals first.
    pub(crate) fn acquire(globals: &[(String, String)]) -> Result<GlobalGuard, OracleError> {
        let wanted = check_globals(globals)?;
        let lock = lock_file().map_err(|e| OracleError::io(format!("opening {LOCK_FILE}"), e))?;
        let op = if wanted.is_empty() {
            libc::LOCK_SH
        } else {
            libc::LOCK_EX
        };
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            if try_flock(&lock, op).map_err(|e| OracleError::io("locking", e))? {
                break;
            }
            if let Some(sig) = signal::pending() {
                return Err(OracleError::Interrupted(sig));
            }
            if Instant::now() > deadline {
                return Err(OracleError::Sysctl {
                    name: "global lock".to_owned(),
                    reason: format!(
                        "another oracle run held {LOCK_FILE} for more than {LOCK_WAIT:?}"
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut guard = GlobalGuard {
            _lock: lock,
            restore: Vec::new(),
        };
        if wanted.is_empty() {
            return Ok(guard);
        }
        // Exclusive: a restore file still here belongs to a run that died.
        apply_restore_file();

        let path = |n: &str| Path::new(GLOBAL_DIR).join(n);
        let sys_err = |name: &str, what: String| OracleError::Sysctl {
            name: name.to_owned(),
            reason: what,
        };
        let mut originals = Vec::new();
        for (name, value) in &wanted {
            if name == "nf_conntrack_max" && *value != 0 {
                let count = read_value(&path("nf_conntrack_count"))
                    .map_err(|e| sys_err("nf_conntrack_count", e.to_string()))?;
                let host_count = count.parse::<u64>().unwrap_or(u64::MAX);
                if *value <= host_count {
                    return Err(OracleError::MaxTooLow {
                        requested: *value,
                        host_count,
                    });
                }
            }
            let old = read_value(&path(name)).map_err(|e| sys_err(name, e.to_string()))?;
            if old != value.to_string() {
                originals.push((name.clone(), old, *value));
            }
        }
        if originals.is_empty() {
            return Ok(guard);
        }
        let text: String = originals
            .iter()
            .map(|(n, old, _)| format!("{n} {old}\n"))
            .collect();
        let tmp = format!("{RESTORE_FILE}.{}", std::process::id());
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, RESTORE_FILE))
            .map_err(|e| OracleError::io(format!("writing {RESTORE_FILE}"), e))?;
        for (name, old, value) in originals {
            // Record first: a failed write may still have changed something.
            guard.restore.push((name.clone(), old));
            write_value(&path(&name), &value.to_string())
                .map_err(|e| sys_err(&name, format!("writing {value}: {e}")))?;
        }
        Ok(guard)
    }
}

impl Drop for GlobalGuard {
    fn drop(&mut self) {
        if self.restore.is_empty() {
            return;
        }
        for (name, value) in self.restore.iter().rev() {
            let _ = write_value(&Path::new(GLOBAL_DIR).join(name), value);
        }
        let _ = std::fs::remove_file(RESTORE_FILE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_paths() {
        assert_eq!(
            user_path("nf_conntrack_tcp_loose").unwrap(),
            Path::new("/proc/sys/net/netfilter/nf_conntrack_tcp_loose")
        );
        assert_eq!(
            user_path("nf_log/2").unwrap(),
            Path::new("/proc/sys/net/netfilter/nf_log/2")
        );
        assert_eq!(
            user_path("net.ipv4.ipfrag_time").unwrap(),
            Path::new("/proc/sys/net/ipv4/ipfrag_time")
        );
        assert!(user_path("../../kernel/panic").is_err());
        assert!(user_path("").is_err());
    }

    #[test]
    fn restore_file_format() {
        let r = parse_restore("nf_conntrack_max 262144\nbogus 1\nnf_conntrack_buckets 1024\n");
        assert_eq!(
            r,
            vec![
                ("nf_conntrack_max".to_owned(), "262144".to_owned()),
                ("nf_conntrack_buckets".to_owned(), "1024".to_owned())
            ]
        );
    }

    #[test]
    fn globals_are_checked() {
        assert!(check_globals(&[("nf_conntrack_tcp_loose".into(), "0".into())]).is_err());
        assert!(check_globals(&[("nf_conntrack_max".into(), "x".into())]).is_err());
        assert_eq!(
            check_globals(&[("nf_conntrack_max".into(), " 512 ".into())]).unwrap(),
            vec![("nf_conntrack_max".to_owned(), 512)]
        );
    }
}
