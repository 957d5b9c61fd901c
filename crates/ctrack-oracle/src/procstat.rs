//! `/proc/net/stat/nf_conntrack`: per-CPU counters in hex, parsed by header name.
//!
//! Layout (kernel 6.18):
//! ```text
//! entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
//! 00000000  00000000 00000000 ...
//! ```
//! one line per possible CPU. `entries` is the namespace's entry count repeated on every
//! line; the others are per-CPU u32 counters, summed here. `new`, `ignore` and `delete`
//! are always 0 and dropped. Names are mapped to the ones `conntrack -S` uses
//! (`clashres` → `clash_resolve`, `chainlength` → `chaintoolong`, `icmp_error` → `error`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Conntrack counters of the firewall namespace, summed over CPUs, under the names of
/// `conntrack -S`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Entries in the namespace's table (a gauge, including unconfirmed ones).
    pub entries: u64,
    /// NAT tuple search found a tuple in use.
    pub found: u64,
    /// Packets that got no conntrack (no L4 protocol, bad tuple, tracker rejected).
    pub invalid: u64,
    /// Entries inserted by ctnetlink (not the packet path).
    pub insert: u64,
    /// Confirm failed (clash not resolvable, chain too long, dying entry).
    pub insert_failed: u64,
    /// Packets dropped by conntrack (table full, tracker drop, ...).
    pub drop: u64,
    /// Entries evicted to make room.
    pub early_drop: u64,
    /// ICMP/ICMPv6 error path rejections (`icmp_error` in /proc).
    pub error: u64,
    /// Hash lookups restarted.
    pub search_restart: u64,
    /// Clashes resolved at confirm (`clashres` in /proc).
    pub clash_resolve: u64,
    /// Hash chain too long (`chainlength` in /proc).
    pub chaintoolong: u64,
    /// Entries created from an expectation.
    pub expect_new: u64,
    /// Expectations created.
    pub expect_create: u64,
    /// Expectations removed.
    pub expect_delete: u64,
}

/// The per-CPU counters, in [`Stats`] order after `entries`.
const COUNTERS: [(&str, &str); 13] = [
    ("found", "found"),
    ("invalid", "invalid"),
    ("insert", "insert"),
    ("insert_failed", "insert_failed"),
    ("drop", "drop"),
    ("early_drop", "early_drop"),
    ("icmp_error", "error"),
    ("search_restart", "search_restart"),
    ("clashres", "clash_resolve"),
    ("chainlength", "chaintoolong"),
    ("expect_new", "expect_new"),
    ("expect_create", "expect_create"),
    ("expect_delete", "expect_delete"),
];

/// One reading of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    entries: u64,
    per_cpu: Vec<[u32; 13]>,
}

/// Parses the file's text. Columns are found by header name; a missing counter column
/// reads as 0, a missing `entries` column or a bad number is an error.
pub(crate) fn parse(text: &str) -> Result<Snapshot, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty /proc/net/stat/nf_conntrack")?
        .split_whitespace()
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let entries_col = col("entries").ok_or("no `entries` column")?;
    let cols: Vec<Option<usize>> = COUNTERS.iter().map(|(p, _)| col(p)).collect();
    let mut snap = Snapshot {
        entries: 0,
        per_cpu: Vec::new(),
    };
    for (n, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() != header.len() {
            return Err(format!(
                "line {}: {} fields, header has {}",
                n + 2,
                fields.len(),
                header.len()
            ));
        }
        let hex = |i: usize| {
            u32::from_str_radix(fields[i], 16)
                .map_err(|e| format!("line {}: {:?}: {e}", n + 2, fields[i]))
        };
        if snap.per_cpu.is_empty() {
            snap.entries = u64::from(hex(entries_col)?);
        }
        let mut row = [0u32; 13];
        for (slot, c) in row.iter_mut().zip(&cols) {
            if let Some(c) = c {
                *slot = hex(*c)?;
            }
        }
        snap.per_cpu.push(row);
    }
    if snap.per_cpu.is_empty() {
        return Err("no CPU lines".to_owned());
    }
    Ok(snap)
}

impl Snapshot {
    /// Sums over CPUs.
    pub(crate) fn totals(&self) -> Stats {
        let mut t = [0u64; 13];
        for row in &self.per_cpu {
            for (acc, v) in t.iter_mut().zip(row) {
                *acc += u64::from(*v);
            }
        }
        Stats {
            entries: self.entries,
            found: t[0],
            invalid: t[1],
            insert: t[2],
            insert_failed: t[3],
            drop: t[4],
            early_drop: t[5],
            error: t[6],
            search_restart: t[7],
            clash_resolve: t[8],
            chaintoolong: t[9],
            expect_new: t[10],
            expect_create: t[11],
            expect_delete: t[12],
        }
    }

    /// Non-zero counter increases since `before` (per CPU, modulo 2^32), by [`Stats`]
    /// name. `entries` is a gauge and is not included.
    pub(crate) fn delta(&self, before: &Snapshot) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (i, (_, name)) in COUNTERS.iter().enumerate() {
            let d: u64 = self
                .per_cpu
                .iter()
                .enumerate()
                .map(|(cpu, row)| {
                    let old = before.per_cpu.get(cpu).map_or(0, |r| r[i]);
                    u64::from(row[i].wrapping_sub(old))
                })
                .sum();
            if d != 0 {
                out.insert((*name).to_owned(), d);
            }
        }
        out
    }
}

/// The open file of one namespace, re-read from offset 0 after each packet.
pub(crate) struct StatFile {
    file: File,
    buf: Vec<u8>,
}

impl StatFile {
    /// Opens `/proc/thread-self/net/stat/nf_conntrack`; call on a thread inside the
    /// namespace to read.
    pub(crate) fn open_here() -> std::io::Result<StatFile> {
        Ok(StatFile {
            file: File::open("/proc/thread-self/net/stat/nf_conntrack")?,
            buf: vec![0; 16 * 1024],
        })
    }

    /// Reads the whole file again and parses it.
    pub(crate) fn read(&mut self) -> Result<Snapshot, String> {
        let mut len = 0;
        loop {
            if len == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = self
                .file
                .read_at(&mut self.buf[len..], len as u64)
                .map_err(|e| format!("reading /proc/net/stat/nf_conntrack: {e}"))?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let text = std::str::from_utf8(&self.buf[..len]).map_err(|e| e.to_string())?;
        parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n";

    fn fixture(cpu0: &str, cpu1: &str) -> String {
        format!("{HEADER}{cpu0}\n{cpu1}\n")
    }

    #[test]
    fn parses_and_sums() {
        let text = fixture(
            "00000003  00000001 00000000 00000000 0000000a 00000000 00000000 00000000 00000000 00000002 00000005 00000000 00000001  00000000 00000004 00000000 00000007",
            "00000003  00000000 00000000 00000000 000000f0 00000000 00000000 00000009 00000000 00000000 00000000 00000006 00000000  00000001 00000000 00000003 00000000",
        );
        let s = parse(&text).unwrap();
        let t = s.totals();
        assert_eq!(t.entries, 3, "entries is repeated, not summed");
        assert_eq!(t.invalid, 0xfa);
        assert_eq!(t.clash_resolve, 1);
        assert_eq!(t.insert_failed, 2);
        assert_eq!(t.drop, 5);
        assert_eq!(t.early_drop, 6);
        assert_eq!(t.error, 1);
        assert_eq!(t.chaintoolong, 9);
        assert_eq!(t.expect_new, 1);
        assert_eq!(t.expect_create, 4);
        assert_eq!(t.expect_delete, 3);
        assert_eq!(t.search_restart, 7);
        assert_eq!(t.found, 0);
    }

    #[test]
    fn deltas_per_cpu_with_wrap() {
        let zero = "00000000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000";
        let before = parse(&fixture(
            zero,
            "00000001  00000000 00000000 00000000 ffffffff 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000",
        ))
        .unwrap();
        let after = parse(&fixture(
            "00000005  00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002  00000000 00000000 00000000 00000000",
            "00000005  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000",
        ))
        .unwrap();
        let d = after.delta(&before);
        assert_eq!(
            d.get("invalid"),
            Some(&2),
            "1 on cpu0, wrap 0xffffffff→0 on cpu1"
        );
        assert_eq!(d.get("error"), Some(&2));
        assert_eq!(d.len(), 2, "entries and zero deltas are left out: {d:?}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("").is_err());
        assert!(parse(HEADER).is_err());
        assert!(parse(&format!("{HEADER}0000000g\n")).is_err());
        assert!(parse("foo bar\n1 2\n").is_err());
    }

    #[test]
    fn column_order_comes_from_the_header() {
        let s = parse("invalid entries\n00000002 00000007\n00000001 00000007\n").unwrap();
        assert_eq!(s.totals().invalid, 3);
        assert_eq!(s.totals().entries, 7);
    }
}
