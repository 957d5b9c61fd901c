//! The kernel's conntrack sysctls (`/proc/sys/net/netfilter/nf_conntrack_*`): same
//! names, same defaults (read on the target kernel 6.18, 24 GiB RAM, 2 CPUs; see
//! kernel-semantics.md §1), same units (seconds for timeouts).
//!
//! [`Sysctls::set`] is the only parser; `--sysctl NAME=VALUE` and tests go through it.

use core::fmt;

/// Error from [`Sysctls::set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlError {
    /// No such sysctl.
    Unknown(String),
    /// The value does not parse or is out of range.
    BadValue {
        /// The sysctl.
        name: String,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
}

impl fmt::Display for SysctlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysctlError::Unknown(n) => write!(
                f,
                "unknown sysctl `{n}` (expected a name under net.netfilter, e.g. nf_conntrack_tcp_loose)"
            ),
            SysctlError::BadValue {
                name,
                value,
                expected,
            } => write!(f, "bad value `{value}` for {name}: expected {expected}"),
        }
    }
}

impl std::error::Error for SysctlError {}

macro_rules! sysctls {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty = $default:expr, $range:expr, $expected:expr; )*) => {
        /// The conntrack sysctls, one field per kernel sysctl, named as in the kernel.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Sysctls {
            $( $(#[$doc])* pub $name: $ty, )*
        }

        impl Default for Sysctls {
            fn default() -> Self {
                Sysctls { $( $name: $default, )* }
            }
        }

        impl Sysctls {
            /// Every sysctl name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$( stringify!($name), )*];

            /// Set a sysctl by its kernel name (with or without the `net.netfilter.` prefix).
            pub fn set(&mut self, name: &str, value: &str) -> Result<(), SysctlError> {
                let short = name
                    .trim_start_matches("net.netfilter.")
                    .trim_start_matches("net/netfilter/");
                match short {
                    $( stringify!($name) => {
                        let v: u64 = value.trim().parse().map_err(|_| SysctlError::BadValue {
                            name: short.to_string(), value: value.to_string(), expected: $expected })?;
                        let range: core::ops::RangeInclusive<u64> = $range;
                        if !range.contains(&v) {
                            return Err(SysctlError::BadValue {
                                name: short.to_string(), value: value.to_string(), expected: $expected });
                        }
                        self.$name = v as $ty;
                        Ok(())
                    } )*
                    _ => Err(SysctlError::Unknown(name.to_string())),
                }
            }

            /// Whether any timeout (a sysctl in seconds) is 0: an entry refreshed
            /// with it expires at once (its deadline is `now`).
            pub fn any_zero_timeout(&self) -> bool {
                false $( || ($expected == SECS && self.$name as u64 == 0) )*
            }

            /// The shortest timeout (s) among the timeout sysctls whose name starts with
            /// `prefix` (every one for `""`); `None` when there is none.
            pub fn shortest_timeout(&self, prefix: &str) -> Option<u64> {
                let mut min: Option<u64> = None;
                $( if $expected == SECS && stringify!($name).starts_with(prefix) {
                    let v = self.$name as u64;
                    min = Some(min.map_or(v, |m| m.min(v)));
                } )*
                min
            }

            /// Read a sysctl by name.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $( stringify!($name) => Some(self.$name as u64), )*
                    _ => None,
                }
            }
        }
    };
}

const SECS: &str = "whole seconds (0..=2147483)";
const BOOL: &str = "0 or 1";
const MAX_SECS: u64 = 2_147_483;

sysctls! {
    /// Maximum number of entries (global). Default = buckets on a 64-bit machine with > 4 GiB.
    nf_conntrack_max: u32 = 262_144, 0..=u32::MAX as u64, "a count (0 = no limit)";
    /// Hash table size. The kernel rounds it up to a multiple of 512 (see [`Sysctls::buckets`]).
    nf_conntrack_buckets: u32 = 262_144, 1..=(1 << 28), "a bucket count (1..=268435456)";
    /// Verify L4 checksums at PRE_ROUTING.
    nf_conntrack_checksum: u8 = 1, 0..=1, BOOL;
    /// Log invalid packets of this L4 protocol (255 = all, 0 = off).
    nf_conntrack_log_invalid: u8 = 0, 0..=255, "0..=255";
    /// Maximum number of expectations (= buckets / 64).
    nf_conntrack_expect_max: u32 = 4096, 1..=u32::MAX as u64, "a count (>= 1)";
    /// Add packet/byte counters to new entries.
    nf_conntrack_acct: u8 = 0, 0..=1, BOOL;
    /// Add start/stop timestamps to new entries.
    nf_conntrack_timestamp: u8 = 0, 0..=1, BOOL;
    /// Event delivery: 0 off, 1 on, 2 auto.
    nf_conntrack_events: u8 = 2, 0..=2, "0, 1 or 2";
    /// Generic protocol timeout (s).
    nf_conntrack_generic_timeout: u32 = 600, 0..=MAX_SECS, SECS;
    /// ICMP timeout (s).
    nf_conntrack_icmp_timeout: u32 = 30, 0..=MAX_SECS, SECS;
    /// ICMPv6 timeout (s).
    nf_conntrack_icmpv6_timeout: u32 = 30, 0..=MAX_SECS, SECS;
    /// UDP timeout, unreplied or not yet a stream (s).
    nf_conntrack_udp_timeout: u32 = 30, 0..=MAX_SECS, SECS;
    /// UDP stream timeout (s).
    nf_conntrack_udp_timeout_stream: u32 = 120, 0..=MAX_SECS, SECS;
    /// GRE timeout (s).
    nf_conntrack_gre_timeout: u32 = 30, 0..=MAX_SECS, SECS;
    /// GRE stream timeout (s).
    nf_conntrack_gre_timeout_stream: u32 = 180, 0..=MAX_SECS, SECS;
    /// TCP SYN_SENT (and "new") timeout (s).
    nf_conntrack_tcp_timeout_syn_sent: u32 = 120, 0..=MAX_SECS, SECS;
    /// TCP SYN_RECV timeout (s).
    nf_conntrack_tcp_timeout_syn_recv: u32 = 60, 0..=MAX_SECS, SECS;
    /// TCP ESTABLISHED timeout (s).
    nf_conntrack_tcp_timeout_established: u32 = 432_000, 0..=MAX_SECS, SECS;
    /// TCP FIN_WAIT timeout (s).
    nf_conntrack_tcp_timeout_fin_wait: u32 = 120, 0..=MAX_SECS, SECS;
    /// TCP CLOSE_WAIT timeout (s).
    nf_conntrack_tcp_timeout_close_wait: u32 = 60, 0..=MAX_SECS, SECS;
    /// TCP LAST_ACK timeout (s).
    nf_conntrack_tcp_timeout_last_ack: u32 = 30, 0..=MAX_SECS, SECS;
    /// TCP TIME_WAIT timeout (s).
    nf_conntrack_tcp_timeout_time_wait: u32 = 120, 0..=MAX_SECS, SECS;
    /// TCP CLOSE timeout (s).
    nf_conntrack_tcp_timeout_close: u32 = 10, 0..=MAX_SECS, SECS;
    /// TCP RETRANS pseudo-state timeout (s).
    nf_conntrack_tcp_timeout_max_retrans: u32 = 300, 0..=MAX_SECS, SECS;
    /// TCP UNACK pseudo-state timeout (s).
    nf_conntrack_tcp_timeout_unacknowledged: u32 = 300, 0..=MAX_SECS, SECS;
    /// Pick up connections in mid-stream.
    nf_conntrack_tcp_loose: u8 = 1, 0..=1, BOOL;
    /// Accept out-of-window TCP packets.
    nf_conntrack_tcp_be_liberal: u8 = 0, 0..=1, BOOL;
    /// Do not mark out-of-window RSTs invalid.
    nf_conntrack_tcp_ignore_invalid_rst: u8 = 0, 0..=1, BOOL;
    /// Identical retransmissions before the RETRANS timeout applies.
    nf_conntrack_tcp_max_retrans: u8 = 3, 0..=255, "0..=255";
    /// SCTP CLOSED timeout (s).
    nf_conntrack_sctp_timeout_closed: u32 = 10, 0..=MAX_SECS, SECS;
    /// SCTP COOKIE_WAIT timeout (s).
    nf_conntrack_sctp_timeout_cookie_wait: u32 = 3, 0..=MAX_SECS, SECS;
    /// SCTP COOKIE_ECHOED timeout (s).
    nf_conntrack_sctp_timeout_cookie_echoed: u32 = 3, 0..=MAX_SECS, SECS;
    /// SCTP ESTABLISHED timeout (s).
    nf_conntrack_sctp_timeout_established: u32 = 210, 0..=MAX_SECS, SECS;
    /// SCTP SHUTDOWN_SENT timeout (s).
    nf_conntrack_sctp_timeout_shutdown_sent: u32 = 3, 0..=MAX_SECS, SECS;
    /// SCTP SHUTDOWN_RECD timeout (s).
    nf_conntrack_sctp_timeout_shutdown_recd: u32 = 3, 0..=MAX_SECS, SECS;
    /// SCTP SHUTDOWN_ACK_SENT timeout (s).
    nf_conntrack_sctp_timeout_shutdown_ack_sent: u32 = 3, 0..=MAX_SECS, SECS;
    /// SCTP HEARTBEAT_SENT timeout (s).
    nf_conntrack_sctp_timeout_heartbeat_sent: u32 = 30, 0..=MAX_SECS, SECS;
    /// IPv6 defrag queue lifetime (s).
    nf_conntrack_frag6_timeout: u32 = 60, 0..=MAX_SECS, SECS;
    /// IPv6 defrag memory high threshold (bytes).
    nf_conntrack_frag6_high_thresh: u32 = 4_194_304, 0..=u32::MAX as u64, "bytes";
    /// IPv6 defrag memory low threshold (bytes, unused by the kernel since 4.17).
    nf_conntrack_frag6_low_thresh: u32 = 3_145_728, 0..=u32::MAX as u64, "bytes";
    /// IPv4 reassembly lifetime (`net.ipv4.ipfrag_time`, s).
    ipfrag_time: u32 = 30, 0..=MAX_SECS, SECS;
    /// IPv4 reassembly memory limit (`net.ipv4.ipfrag_high_thresh`, bytes).
    ipfrag_high_thresh: u32 = 4_194_304, 0..=u32::MAX as u64, "bytes";
    /// IPv4 reorder distance (`net.ipv4.ipfrag_max_dist`).
    ipfrag_max_dist: u32 = 64, 0..=u32::MAX as u64, "a count";
}

impl Sysctls {
    /// The effective bucket count: rounded up to a multiple of 512 (one page of heads).
    pub fn buckets(&self) -> u32 {
        let b = self.nf_conntrack_buckets.max(1);
        b.div_ceil(512).saturating_mul(512)
    }

    /// Whether `name` is one of the global (init-netns only) sysctls.
    pub fn is_global(name: &str) -> bool {
        matches!(
            name,
            "nf_conntrack_max" | "nf_conntrack_buckets" | "nf_conntrack_expect_max"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kernel() {
        let s = Sysctls::default();
        assert_eq!(s.nf_conntrack_tcp_timeout_established, 432_000);
        assert_eq!(s.nf_conntrack_udp_timeout_stream, 120);
        assert_eq!(s.nf_conntrack_tcp_loose, 1);
        assert_eq!(s.buckets(), 262_144);
    }

    #[test]
    fn set_parses_and_rejects() {
        let mut s = Sysctls::default();
        s.set("net.netfilter.nf_conntrack_tcp_loose", "0").unwrap();
        assert_eq!(s.nf_conntrack_tcp_loose, 0);
        assert!(matches!(
            s.set("nf_conntrack_tcp_loose", "2"),
            Err(SysctlError::BadValue { .. })
        ));
        assert!(matches!(
            s.set("nf_conntrack_bogus", "2"),
            Err(SysctlError::Unknown(_))
        ));
        assert!(matches!(
            s.set("nf_conntrack_udp_timeout", "x"),
            Err(SysctlError::BadValue { .. })
        ));
    }

    #[test]
    fn buckets_round_up_to_512() {
        let mut s = Sysctls::default();
        s.set("nf_conntrack_buckets", "1000").unwrap();
        assert_eq!(s.buckets(), 1024);
    }
}
