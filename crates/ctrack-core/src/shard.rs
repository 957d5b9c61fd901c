//! A table shared by worker threads: shards chosen by a direction-symmetric hash of the
//! packet's flow, each shard an independent [`Conntrack`] behind its own lock (issue 6).
//!
//! * Both directions of a flow (and ICMP errors about it, which quote it) map to one
//!   shard, so a connection's two tuples live in one shard and no operation ever takes
//!   two locks. There is no global lock: a worker locks only the shard it works on,
//!   once per batch. With symmetric RSS steering (every NIC queue's flows hash to the
//!   shards its worker owns) the locks are never contended.
//! * Counters are per shard and summed on read ([`Sharded::stats`]).
//! * Ordering rules, hence determinism: a shard processes its packets in arrival order
//!   (the order of each worker's input, which keeps capture order per flow); shards
//!   never interact. So for a given shard count the results do not depend on the number
//!   of threads or their timing.
//! * Limits: `nf_conntrack_max` and the bucket count are split evenly between shards;
//!   early drop and the chain limit are bucket-local within a shard. With one shard
//!   (replay's default) the table is exactly the kernel's.

use crate::conntrack::{Config, Conntrack};
use crate::stats::Stats;
use std::sync::{Mutex, MutexGuard};

/// A conntrack table split into independently locked shards.
pub struct Sharded {
    shards: Box<[Mutex<Conntrack>]>,
    key: u64,
}

impl Sharded {
    /// `n` shards (at least one), each with `cfg`'s sysctls and a 1/n share of the
    /// bucket count and of `nf_conntrack_max`.
    pub fn new(cfg: Config, n: usize) -> Sharded {
        let n = n.max(1);
        let shards = (0..n)
            .map(|i| {
                let mut c = cfg.clone();
                let s = &mut c.sysctls;
                let per = |v: u32| (v / n as u32).max(1);
                s.nf_conntrack_buckets = per(s.nf_conntrack_buckets);
                if s.nf_conntrack_max != 0 {
                    s.nf_conntrack_max = per(s.nf_conntrack_max);
                }
                c.seed = cfg.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                Mutex::new(Conntrack::new(c))
            })
            .collect();
        Sharded {
            shards,
            key: cfg.seed ^ 0x5348_4152_4421_0001,
        }
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Whether there are no shards (never: there is at least one).
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The shard of an IP packet: a keyed hash of its addresses, protocol and ports
    /// combined so that both directions agree (ICMP errors use the quoted packet).
    pub fn shard_of(&self, ip: &[u8]) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        let h = symmetric_hash(ip, self.key);
        ((u128::from(h) * self.shards.len() as u128) >> 64) as usize
    }

    /// Run `f` on shard `i` under its lock.
    pub fn with_shard<R>(&self, i: usize, f: impl FnOnce(&mut Conntrack) -> R) -> R {
        f(&mut self.lock(i))
    }

    /// Lock shard `i` (a poisoned lock is taken over: a shard has no invariant a panic
    /// in a caller's closure can break halfway).
    pub fn lock(&self, i: usize) -> MutexGuard<'_, Conntrack> {
        self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Entries in all shards.
    pub fn count(&self) -> u64 {
        (0..self.shards.len())
            .map(|i| u64::from(self.lock(i).count()))
            .sum()
    }

    /// The counters of all shards, summed.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for i in 0..self.shards.len() {
            s += self.lock(i).stats();
        }
        s
    }
}

/// A direction-symmetric flow hash: the two (address, port) endpoints are ordered
/// before mixing, so A→B and B→A hash alike. For ICMP/ICMPv6 errors the quoted packet's
/// endpoints are used, so the error lands in its flow's shard.
fn symmetric_hash(ip: &[u8], key: u64) -> u64 {
    let (mut a, mut b, proto) = endpoints(ip).unwrap_or((0, 0, 0));
    if a > b {
        std::mem::swap(&mut a, &mut b);
    }
    let mut h = key ^ u64::from(proto);
    for w in [a as u64, (a >> 64) as u64, b as u64, (b >> 64) as u64] {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    h.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
}

/// (endpoint, endpoint, protocol): an endpoint is the address folded to 96 bits and
/// the port (0 for portless protocols). ICMP errors are resolved to the quoted packet.
fn endpoints(ip: &[u8]) -> Option<(u128, u128, u8)> {
    let v = ip.first()? >> 4;
    let (src, dst, proto, l4) = match v {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let a = u128::from(u32::from_be_bytes(ip.get(12..16)?.try_into().ok()?));
            let b = u128::from(u32::from_be_bytes(ip.get(16..20)?.try_into().ok()?));
            (a, b, *ip.get(9)?, ip.get(ihl..).unwrap_or(&[]))
        }
        6 => {
            let a = u128::from_be_bytes(ip.get(8..24)?.try_into().ok()?);
            let b = u128::from_be_bytes(ip.get(24..40)?.try_into().ok()?);
            (a, b, *ip.get(6)?, ip.get(40..).unwrap_or(&[]))
        }
        _ => return None,
    };
    let is_err = match (v, proto) {
        (4, 1) => matches!(l4.first(), Some(3 | 4 | 5 | 11 | 12)),
        (6, 58) => matches!(l4.first(), Some(1..=4)),
        _ => false,
    };
    if is_err {
        if let Some(q) = l4.get(8..).and_then(endpoints) {
            return Some(q);
        }
    }
    let ports = match proto {
        6 | 17 | 132 | 136 => l4.get(..4).map(|p| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        }),
        _ => None,
    }
    .unwrap_or((0, 0));
    let ep = |addr: u128, port: u16| (addr << 16) ^ u128::from(port);
    Some((ep(src, ports.0), ep(dst, ports.1), proto))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sp.to_be_bytes());
        p[22..24].copy_from_slice(&dp.to_be_bytes());
        p
    }

    #[test]
    fn both_directions_and_icmp_errors_share_a_shard() {
        let sh = Sharded::new(Config::default(), 16);
        let mut seen = std::collections::HashSet::new();
        for i in 0..200u16 {
            let a = [10, 0, (i >> 8) as u8, i as u8];
            let fwd = udp(a, 1000 + i, [10, 1, 1, 2], 53);
            let rev = udp([10, 1, 1, 2], 53, a, 1000 + i);
            assert_eq!(sh.shard_of(&fwd), sh.shard_of(&rev));
            // ICMP port unreachable from the server quoting the forward packet.
            let mut err = udp([10, 1, 1, 2], 0, a, 0);
            err[9] = 1;
            err.truncate(20);
            err.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
            err.extend_from_slice(&fwd);
            assert_eq!(sh.shard_of(&err), sh.shard_of(&fwd));
            seen.insert(sh.shard_of(&fwd));
        }
        assert!(
            seen.len() > 8,
            "flows spread over the shards: {}",
            seen.len()
        );
    }

    #[test]
    fn limits_are_split_between_shards() {
        let sh = Sharded::new(Config::default(), 4);
        assert_eq!(sh.len(), 4);
        let s = sh.lock(0).sysctls().clone();
        assert_eq!(s.nf_conntrack_max, 262_144 / 4);
    }
}
