//! `conntrack -E -o timestamp` running in the firewall namespace during a run: the
//! kernel's own event stream, printed by the real conntrack tool, for comparison with
//! `ctrack replay --events`.

use crate::error::OracleError;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A running `conntrack -E`.
pub(crate) struct EventListener {
    child: Child,
    reader: Option<JoinHandle<()>>,
    lines: Arc<Mutex<Vec<(u64, String)>>>,
}

/// Time for conntrack to subscribe before the first packet, and to print the last event.
const SETTLE: Duration = Duration::from_millis(250);

impl EventListener {
    /// Start `conntrack -E [expect] -o timestamp` in the namespace `fw`, without waiting
    /// for it to subscribe (the caller waits [`settle`] once for several listeners).
    pub(crate) fn spawn(fw: &std::fs::File, expect: bool) -> Result<EventListener, OracleError> {
        let mut cmd = crate::netns::command_in(fw, "conntrack");
        if expect {
            cmd.args(["-E", "expect", "-o", "timestamp"]);
        } else {
            // `labels`: an event that changed labels carries them (`labels=`).
            cmd.args(["-E", "-o", "timestamp,labels"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| OracleError::io("starting conntrack -E", e))?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| OracleError::Netns("conntrack -E has no stdout".to_owned()))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let ns = parse_stamp(&line).unwrap_or(0);
                if let Ok(mut v) = sink.lock() {
                    v.push((ns, line));
                }
            }
        });
        Ok(EventListener {
            child,
            reader: Some(reader),
            lines,
        })
    }

    /// Stop the listener at once (after the caller let the last events arrive).
    pub(crate) fn finish_now(mut self) -> Vec<(u64, String)> {
        // SAFETY: sending SIGINT to our own child process by its pid; no memory involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for EventListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The wall-clock time of a `-o timestamp` line (`[1795723847.278826]\t...`), in ns.
fn parse_stamp(line: &str) -> Option<u64> {
    let rest = line.strip_prefix('[')?;
    let (stamp, _) = rest.split_once(']')?;
    let (s, us) = stamp.split_once('.')?;
    Some(s.trim().parse::<u64>().ok()? * 1_000_000_000 + us.trim().parse::<u64>().ok()? * 1000)
}

/// Wait for listeners to subscribe or for their last events to be printed.
pub(crate) fn settle() {
    std::thread::sleep(SETTLE);
}

/// Wall-clock nanoseconds now.
pub(crate) fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamp_parses() {
        assert_eq!(
            super::parse_stamp("[1795723847.278826]\t [UPDATE] udp"),
            Some(1_795_723_847_278_826_000)
        );
        assert_eq!(super::parse_stamp("    [NEW] tcp"), None);
    }
}
