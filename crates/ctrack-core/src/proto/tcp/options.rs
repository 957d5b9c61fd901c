//! TCP option parsing: window scale and SACK-permitted on SYNs, SACK blocks on ACKs.
//!
//! Mirrors `tcp_options()` and `tcp_sack()` of the kernel's
//! `net/netfilter/nf_conntrack_proto_tcp.c` (kernel-semantics.md §7.6, "Options
//! parsing"). Both walk the option bytes the same, forgiving way: EOL stops, NOP is
//! skipped, an option whose length byte is missing, below 2 or longer than what remains
//! stops the walk (nothing after it is looked at, but what was found before it stays).
//!
//! All reads go through the option slice with bounds-checked accessors: no option
//! layout can make these functions panic.

use super::{after, DirState, DIR_FLAG_BE_LIBERAL, DIR_FLAG_SACK_PERM, DIR_FLAG_WINDOW_SCALE};

/// Option kinds (RFC 793, 7323, 2018).
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_WINDOW: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TIMESTAMP: u8 = 8;

/// Option lengths the kernel insists on.
const LEN_WINDOW: u8 = 3;
const LEN_SACK_PERM: u8 = 2;
const LEN_TIMESTAMP: u8 = 10;
/// SACK: kind + length, then 8 bytes per block (left edge, right edge).
const LEN_SACK_PERBLOCK: usize = 8;

/// The largest window-scale shift (RFC 7323 §2.3; kernel `TCP_MAX_WSCALE`).
pub(super) const MAX_WSCALE: u8 = 14;

/// What a SYN or SYN/ACK announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct SynOptions {
    /// SACK-permitted (kind 4, length 2) was present.
    pub(super) sack_perm: bool,
    /// Window scale (kind 3, length 3) was present: the shift, clamped to 14.
    pub(super) wscale: Option<u8>,
}

/// Walk `opts` the kernel's way and call `f(kind, option bytes after kind and length)`
/// for every well-formed option; stop when `f` returns `true`.
fn walk(opts: &[u8], mut f: impl FnMut(u8, &[u8]) -> bool) {
    let mut i = 0usize;
    while let Some(&kind) = opts.get(i) {
        match kind {
            // kernel: "case TCPOPT_EOL: return"
            OPT_EOL => return,
            // kernel: "case TCPOPT_NOP: length--; continue"
            OPT_NOP => i += 1,
            _ => {
                // kernel: "if (length < 2) return" — a kind byte with no length byte.
                let Some(&size) = opts.get(i + 1) else { return };
                // kernel: "silly options" and "don't parse partial options".
                let size = usize::from(size);
                if size < 2 {
                    return;
                }
                let Some(body) = opts.get(i + 2..i + size) else {
                    return;
                };
                if f(kind, body) {
                    return;
                }
                i += size;
            }
        }
    }
}

/// Parse the options of a SYN or SYN/ACK (kernel: `tcp_options()` into a zeroed state).
pub(super) fn syn_options(opts: &[u8]) -> SynOptions {
    let mut out = SynOptions::default();
    walk(opts, |kind, body| {
        match kind {
            // kernel: SACK_PERM counts only with its exact length 2.
            OPT_SACK_PERM if body.len() + 2 == usize::from(LEN_SACK_PERM) => {
                out.sack_perm = true;
            }
            // kernel: WINDOW only with length 3; the shift is clamped to 14 (RFC 7323
            // caps it there, and a larger one would overflow a 32-bit window).
            OPT_WINDOW if body.len() + 2 == usize::from(LEN_WINDOW) => {
                let shift = body.first().copied().unwrap_or(0);
                out.wscale = Some(shift.min(MAX_WSCALE));
            }
            _ => {}
        }
        false
    });
    out
}

/// Apply a SYN's options to one direction's data (kernel: `tcp_options(..., state)`).
///
/// kernel quirk kept: with no option bytes at all the direction is left untouched
/// ("if (!length) return"); otherwise td_scale is zeroed and every flag except
/// BE_LIBERAL is cleared before the options are read — a re-initialising SYN with
/// options therefore also drops CLOSE_INIT, DATA_UNACKNOWLEDGED and MAXACK_SET.
pub(super) fn apply_syn_options(state: &mut DirState, opts: &[u8]) {
    if opts.is_empty() {
        return;
    }
    let o = syn_options(opts);
    state.td_scale = 0;
    state.flags &= DIR_FLAG_BE_LIBERAL;
    if o.sack_perm {
        state.flags |= DIR_FLAG_SACK_PERM;
    }
    if let Some(shift) = o.wscale {
        state.td_scale = shift;
        state.flags |= DIR_FLAG_WINDOW_SCALE;
    }
}

/// The highest SACK right edge after `sack` (kernel: `tcp_sack()`); `sack` comes in as
/// the ack number. Only the first well-formed SACK option is read.
pub(super) fn highest_sack(opts: &[u8], sack: u32) -> u32 {
    // kernel fast path: exactly NOP, NOP, TIMESTAMP(10) — the usual option block of an
    // established Linux connection — carries no SACK.
    if opts.len() == 12 && opts.get(..4) == Some(&[OPT_NOP, OPT_NOP, OPT_TIMESTAMP, LEN_TIMESTAMP])
    {
        return sack;
    }
    let mut best = sack;
    walk(opts, |kind, body| {
        // kernel: at least one block and a whole number of blocks, else skip it.
        let blocks = body.len() / LEN_SACK_PERBLOCK;
        if kind != OPT_SACK || blocks == 0 || blocks * LEN_SACK_PERBLOCK != body.len() {
            return false;
        }
        for block in body.chunks_exact(LEN_SACK_PERBLOCK) {
            // The right edge is the second 32-bit word of a block.
            if let Some(&[a, b, c, d]) = block.get(4..8) {
                let edge = u32::from_be_bytes([a, b, c, d]);
                if after(edge, best) {
                    best = edge;
                }
            }
        }
        // kernel: returns after the first SACK option.
        true
    });
    best
}
