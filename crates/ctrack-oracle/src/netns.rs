//! The three namespaces of a run (client — firewall — server), their links and routes,
//! helpers to run code or programs inside one, and removal of stale sets.
//!
//! Namespaces are created with `ip netns add` (so `ip netns exec` works on them while a
//! run is kept for debugging) and removed natively (unmount and unlink), so the removal
//! path spawns nothing and can run from `Drop`.

use crate::error::OracleError;
use crate::sysctl;
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where `ip netns` keeps its bind mounts.
const NETNS_DIR: &str = "/run/netns";
/// Prefix of every namespace the oracle creates: `ctko-<pid>-<n>-{c,f,s}`.
pub(crate) const PREFIX: &str = "ctko-";

/// The veth end inside the client and the server namespace.
pub(crate) const PEER_IF: &str = "veth0";
/// MAC of the firewall's client-side interface.
pub(crate) const FW_CLIENT_MAC: [u8; 6] = [0x02, 0x63, 0x74, 0x6b, 0x01, 0x01];
/// MAC of the client namespace's veth end.
pub(crate) const CLIENT_MAC: [u8; 6] = [0x02, 0x63, 0x74, 0x6b, 0x01, 0x02];
/// MAC of the firewall's server-side interface.
pub(crate) const FW_SERVER_MAC: [u8; 6] = [0x02, 0x63, 0x74, 0x6b, 0x02, 0x01];
/// MAC of the server namespace's veth end.
pub(crate) const SERVER_MAC: [u8; 6] = [0x02, 0x63, 0x74, 0x6b, 0x02, 0x02];
/// MAC of the fake gateways: foreign to both veth peers, so forwarded frames are
/// PACKET_OTHERHOST there and dropped without a trace.
const GW_MAC: &str = "02:63:74:6b:00:fe";
const GW4: &str = "192.0.2.1";
const GW6: &str = "fe80::1";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// One of the three namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ns {
    Client = 0,
    Fw = 1,
    Server = 2,
}

/// A created set of namespaces; removed on drop unless kept.
pub(crate) struct NetnsSet {
    names: [String; 3],
    files: Vec<File>,
    keep: bool,
}

pub(crate) fn mac_str(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl NetnsSet {
    /// Creates the three namespaces, sets their base sysctls and creates the veth pairs
    /// (still down). Routing and links up come later in [`NetnsSet::start`], after the
    /// nft tables exist.
    pub(crate) fn create(
        ifnames: &(String, String),
        mtu: u32,
        keep: bool,
    ) -> Result<NetnsSet, OracleError> {
        validate_ifname(&ifnames.0)?;
        validate_ifname(&ifnames.1)?;
        if ifnames.0 == ifnames.1 {
            return Err(OracleError::Netns(format!(
                "the two firewall interfaces have the same name {:?}",
                ifnames.0
            )));
        }
        let base = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut set = NetnsSet {
            names: [
                format!("{base}-c"),
                format!("{base}-f"),
                format!("{base}-s"),
            ],
            files: Vec::new(),
            keep,
        };
        let batch: String = set
            .names
            .iter()
            .map(|n| format!("netns add {n}\n"))
            .collect();
        ip_batch(None, false, &batch)?;
        for name in &set.names {
            let path = Path::new(NETNS_DIR).join(name);
            let file = File::open(&path)
                .map_err(|e| OracleError::Netns(format!("open {}: {e}", path.display())))?;
            set.files.push(file);
        }

        // Defaults first, so the interfaces created below inherit them.
        let quiet = [
            ("net.ipv6.conf.all.disable_ipv6", "1"),
            ("net.ipv6.conf.default.disable_ipv6", "1"),
        ];
        sysctl::set_in(set.file(Ns::Client), &quiet)?;
        sysctl::set_in(set.file(Ns::Server), &quiet)?;
        let fw = [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv6.conf.default.forwarding", "1"),
            ("net.ipv6.conf.default.addr_gen_mode", "1"),
            ("net.ipv6.conf.default.accept_ra", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
            ("net.ipv4.conf.all.send_redirects", "0"),
            ("net.ipv4.conf.default.send_redirects", "0"),
        ];
        sysctl::set_in(set.file(Ns::Fw), &fw)?;

        let [c, f, s] = &set.names;
        let links = format!(
            "link add name {ci} address {fcm} mtu {mtu} netns {f} type veth peer name {PEER_IF} \
             address {cm} mtu {mtu} netns {c}\n\
             link add name {si} address {fsm} mtu {mtu} netns {f} type veth peer name {PEER_IF} \
             address {sm} mtu {mtu} netns {s}\n",
            ci = ifnames.0,
            si = ifnames.1,
            fcm = mac_str(&FW_CLIENT_MAC),
            cm = mac_str(&CLIENT_MAC),
            fsm = mac_str(&FW_SERVER_MAC),
            sm = mac_str(&SERVER_MAC),
        );
        ip_batch(None, false, &links)?;
        Ok(set)
    }

    /// Brings the links up and installs the policy routing of the firewall. Call after
    /// the nft tables are loaded, so nothing passes before the output drop rule exists.
    pub(crate) fn start(
        &self,
        ifnames: &(String, String),
        addrs: &[(crate::Side, std::net::IpAddr)],
    ) -> Result<(), OracleError> {
        let (ci, si) = (&ifnames.0, &ifnames.1);
        let per_if: Vec<(String, &str)> = [ci, si]
            .iter()
            .flat_map(|i| {
                [
                    (format!("net.ipv4.conf.{i}.rp_filter"), "0"),
                    (format!("net.ipv6.conf.{i}.addr_gen_mode"), "1"),
                ]
            })
            .collect();
        let per_if: Vec<(&str, &str)> = per_if.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        sysctl::set_in(self.file(Ns::Fw), &per_if)?;

        let mut fw_addrs = String::new();
        for (side, a) in addrs {
            let dev = if *side == crate::Side::Client { ci } else { si };
            fw_addrs += &match a {
                std::net::IpAddr::V4(a) => format!("addr add {a}/32 dev {dev}\n"),
                std::net::IpAddr::V6(a) => format!("addr add {a}/128 dev {dev} nodad\n"),
            };
        }
        let fw4 = format!(
            "link set lo up\n\
             link set {ci} up\n\
             link set {si} up\n\
             neigh replace {GW4} lladdr {GW_MAC} dev {si} nud permanent\n\
             neigh replace {GW4} lladdr {GW_MAC} dev {ci} nud permanent\n\
             neigh replace {GW6} lladdr {GW_MAC} dev {si} nud permanent\n\
             neigh replace {GW6} lladdr {GW_MAC} dev {ci} nud permanent\n\
             route add default via {GW4} dev {si} table 101 onlink\n\
             route add default via {GW4} dev {ci} table 102 onlink\n\
             route add ::/0 via {GW6} dev {si} table 101\n\
             route add ::/0 via {GW6} dev {ci} table 102\n\
             rule add iif {ci} lookup 101 pref 1000\n\
             rule add iif {si} lookup 102 pref 1001\n\
             {fw_addrs}"
        );
        ip_batch(Some(self.name(Ns::Fw)), false, &fw4)?;
        let fw6 = format!(
            "rule add iif {ci} lookup 101 pref 1000\n\
             rule add iif {si} lookup 102 pref 1001\n"
        );
        ip_batch(Some(self.name(Ns::Fw)), true, &fw6)?;
        let up = format!("link set {PEER_IF} up\n");
        ip_batch(Some(self.name(Ns::Client)), false, &up)?;
        ip_batch(Some(self.name(Ns::Server)), false, &up)?;
        Ok(())
    }

    /// The name of one namespace (for `ip netns exec`).
    pub(crate) fn name(&self, ns: Ns) -> &str {
        &self.names[ns as usize]
    }

    /// An open handle on one namespace, for `setns`.
    pub(crate) fn file(&self, ns: Ns) -> &File {
        &self.files[ns as usize]
    }

    /// Removes the namespaces now (idempotent).
    fn delete(&mut self) {
        self.files.clear();
        for name in &self.names {
            delete_netns(name);
        }
    }
}

impl Drop for NetnsSet {
    fn drop(&mut self) {
        if !self.keep {
            self.delete();
        }
    }
}

fn validate_ifname(name: &str) -> Result<(), OracleError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "lo"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(OracleError::Netns(format!(
            "bad interface name {name:?}: 1-15 characters of [A-Za-z0-9_-], not \"lo\""
        )))
    }
}

/// Unmounts and unlinks one `/run/netns` entry; the namespace dies with its last user.
fn delete_netns(name: &str) {
    let path = Path::new(NETNS_DIR).join(name);
    if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: `c` is a valid NUL-terminated path; a failure (not mounted) is harmless.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Removes every `ctko-<pid>-...` namespace whose process is gone.
pub(crate) fn cleanup_stale() {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            delete_netns(name);
        }
    }
}

/// Runs `f` on a fresh thread that has entered the network namespace `ns`. Sockets and
/// `/proc/thread-self/net` files opened there stay bound to that namespace.
pub(crate) fn in_netns<T, F>(ns: &File, f: F) -> std::io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let fd = ns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: `fd` is an open namespace file kept alive by the borrow of `ns`;
            // setns affects only this thread, which ends with the closure.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| std::io::Error::other("thread inside the namespace panicked"))?
    })
}

/// A command that will run inside the network namespace `ns` (setns before exec).
pub(crate) fn command_in(ns: &File, program: &str) -> Command {
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new(program);
    // SAFETY: the closure only calls setns(2), which is async-signal-safe; `fd` stays
    // open in the child until exec (the parent holds `ns` while spawning).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Runs a command to completion, feeding `stdin`; returns its stdout or a
/// [`OracleError::Command`] with its stderr.
pub(crate) fn run_command(mut cmd: Command, stdin: Option<&str>) -> Result<String, OracleError> {
    let line = format!("{cmd:?}").replace('"', "");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let fail = |status: String, stderr: String| OracleError::Command {
        command: line.clone(),
        status,
        stderr,
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(e.to_string(), String::new()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| fail(format!("writing stdin: {e}"), String::new()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(e.to_string(), String::new()))?;
    if !out.status.success() {
        return Err(fail(
            out.status.to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip [-n ns] [-6] -b -` with `batch` on stdin.
fn ip_batch(ns: Option<&str>, v6: bool, batch: &str) -> Result<(), OracleError> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    if v6 {
        cmd.arg("-6");
    }
    cmd.args(["-b", "-"]);
    run_command(cmd, Some(batch)).map_err(|e| match e {
        OracleError::Command { stderr, .. } => {
            OracleError::Netns(format!("ip batch failed: {stderr}\nbatch was:\n{batch}"))
        }
        other => other,
    })?;
    Ok(())
}
