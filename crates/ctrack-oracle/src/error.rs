//! The oracle's error type.

use std::io;
use std::time::Duration;

/// Why a [`run`](crate::run) failed. Every variant says what to do about it in its text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OracleError {
    /// The oracle needs root (network namespaces, nft, AF_PACKET).
    #[error("the kernel oracle needs root, but the effective uid is {0}")]
    NotRoot(u32),
    /// Creating or configuring the namespaces failed.
    #[error("network namespace setup failed: {0}")]
    Netns(String),
    /// A helper program (`ip`, `conntrack`) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status, or the spawn error.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// `nft` refused a ruleset.
    #[error("nft failed to load {what}: {stderr}")]
    Nft {
        /// Which ruleset: the oracle's own or the user's file.
        what: String,
        /// nft's error output.
        stderr: String,
    },
    /// A sysctl could not be read or written, or is not allowed.
    #[error("sysctl {name}: {reason}")]
    Sysctl {
        /// The sysctl name as given.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// `nf_conntrack_max` would break the host's own conntrack.
    #[error(
        "refusing nf_conntrack_max={requested}: the host itself has {host_count} entries; \
         choose a larger value"
    )]
    MaxTooLow {
        /// The requested maximum.
        requested: u64,
        /// The init namespace's current `nf_conntrack_count`.
        host_count: u64,
    },
    /// A packet could not be injected (too long for the MTU, empty, ...).
    #[error("packet {index}: {reason}")]
    Packet {
        /// [`InjectPacket::index`](crate::InjectPacket::index).
        index: u64,
        /// Why.
        reason: String,
    },
    /// The barrier after a packet never came back: the kernel path is not what the oracle
    /// expects (lost NFLOG messages, a missing nft table, a hung softirq).
    #[error(
        "barrier timeout at packet {index} (barrier {seq}): no NFLOG barrier message within \
         {timeout:?}"
    )]
    BarrierTimeout {
        /// [`InjectPacket::index`](crate::InjectPacket::index) of the packet.
        index: u64,
        /// The barrier's sequence number.
        seq: u64,
        /// How long the oracle waited.
        timeout: Duration,
    },
    /// Talking NFLOG over netlink failed.
    #[error("nflog netlink: {0}")]
    Netlink(String),
    /// Another system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What the oracle was doing.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// SIGINT or SIGTERM arrived; the namespaces were removed.
    #[error("interrupted by signal {0}; namespaces removed")]
    Interrupted(i32),
}

impl OracleError {
    /// Wraps an `io::Error` with what the oracle was doing.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        OracleError::Io {
            context: context.into(),
            source,
        }
    }
}
