//! SCTP tracker (kernel: `net/netfilter/nf_conntrack_proto_sctp.c`, Linux 6.18 behaviour).
//!
//! Mirrors `sctp_error` (`error`: common-header length and CRC32c, the CRC itself in
//! `crc32c.rs`), `do_basic_checks` (`chunk.rs`: the chunk walk), `sctp_new`
//! (`SctpConn::new`: which first packets may create an entry), `sctp_new_state` +
//! `sctp_conntracks` (`table.rs`), `nf_conntrack_sctp_packet` (`SctpConn::packet`:
//! verification tags, per-chunk transitions, INIT/INIT_ACK bookkeeping, heartbeat
//! re-keying, timeouts, ASSURED) and `sctp_can_early_drop`.
//! The behaviour is described in kernel-semantics-2.md §1 (every transition cell and
//! special case there was checked on the live kernel) and kernel-semantics.md §4, §6.
//!
//! Wire layout (RFC 9260 §3): a 12-byte common header (source port, destination port,
//! verification tag, CRC32c stored little-endian), then chunks of (type, flags, length
//! including the 4-byte chunk header), each padded to 4 bytes. Verification tags are
//! kept as the big-endian value of the wire bytes; the kernel keeps them in wire order
//! and prints them with `%x` on a little-endian CPU, so its logs show them byte-swapped
//! ([`SctpReason::VtagCheck`] reproduces that).
//!
//! Not done: cttimeout policies (`nf_ct_timeout_lookup`), the ctnetlink
//! `from_nlattr`/`to_nlattr` pair, and CHECKSUM_COMPLETE offload (a replay is always
//! "not verified yet", so the CRC is checked whenever `cx.check_checksum` is set).
//! A multi-chunk packet that enters ESTABLISHED on an early chunk and then fails on a
//! later one (e.g. COOKIE_ACK + an ABORT with a wrong tag) keeps the new state, ASSURED
//! and the state-change event, as in the kernel (`TrackerResult::InvalidAfterUpdate`).

mod chunk;
mod crc32c;
pub(crate) use crc32c::sctp_checksum;
mod table;
#[cfg(test)]
mod tests;

use super::{Accepted, Cx, EntryCx, TrackerResult};
use crate::invalid::InvalidReason;
use crate::packet::Packet;
use crate::sysctl::Sysctls;
use crate::time::Duration;
use crate::tuple::Dir;
use chunk::{basic_checks, common_vtag, init_tag, ChunkMap, Chunks};
use core::fmt;

/// Chunk type numbers (RFC 9260 §3.2, kernel `enum sctp_cid`) the tracker looks at.
mod cid {
    pub(super) const DATA: u8 = 0;
    pub(super) const INIT: u8 = 1;
    pub(super) const INIT_ACK: u8 = 2;
    pub(super) const HEARTBEAT: u8 = 4;
    pub(super) const HEARTBEAT_ACK: u8 = 5;
    pub(super) const ABORT: u8 = 6;
    pub(super) const SHUTDOWN: u8 = 7;
    pub(super) const SHUTDOWN_ACK: u8 = 8;
    pub(super) const ERROR: u8 = 9;
    pub(super) const COOKIE_ECHO: u8 = 10;
    pub(super) const COOKIE_ACK: u8 = 11;
    pub(super) const SHUTDOWN_COMPLETE: u8 = 14;
}

/// The T bit of ABORT and SHUTDOWN_COMPLETE: the sender used the peer's tag, not its own.
const FLAG_T: u8 = 0x01;
/// Common header length.
const COMMON_LEN: usize = 12;
/// Chunk header length (type, flags, length).
const CHUNK_HDR_LEN: usize = 4;
/// Fixed part of INIT / INIT_ACK after the chunk header (`struct sctp_inithdr`):
/// initiate tag, a_rwnd, outbound and inbound streams, initial TSN.
const INIT_HDR_LEN: usize = 16;

/// SCTP connection states (kernel `enum sctp_conntrack`, same numbers). The uapi value 9
/// (HEARTBEAT_ACKED) is never entered by the kernel and has no name, so it is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum SctpState {
    /// Transient: only while a new entry is being built (never stored).
    #[default]
    None = 0,
    /// No association (or closed by ABORT / SHUTDOWN_COMPLETE); also after the first INIT.
    Closed = 1,
    /// INIT_ACK seen in the reply direction.
    CookieWait = 2,
    /// COOKIE_ECHO seen.
    CookieEchoed = 3,
    /// COOKIE_ACK (or a reply HEARTBEAT_ACK on a secondary path) seen.
    Established = 4,
    /// SHUTDOWN seen in the original direction.
    ShutdownSent = 5,
    /// SHUTDOWN seen in the reply direction.
    ShutdownRecd = 6,
    /// SHUTDOWN_ACK seen after a SHUTDOWN (or as an out-of-the-blue first packet).
    ShutdownAckSent = 7,
    /// The entry was created by a HEARTBEAT (a secondary path of a multi-homed association).
    HeartbeatSent = 8,
}

impl SctpState {
    /// Every state, in the kernel's order.
    pub const ALL: [SctpState; 9] = [
        SctpState::None,
        SctpState::Closed,
        SctpState::CookieWait,
        SctpState::CookieEchoed,
        SctpState::Established,
        SctpState::ShutdownSent,
        SctpState::ShutdownRecd,
        SctpState::ShutdownAckSent,
        SctpState::HeartbeatSent,
    ];

    /// The word /proc and `conntrack -L` print after the timeout (`sctp_conntrack_names`).
    pub fn name(self) -> &'static str {
        match self {
            SctpState::None => "NONE",
            SctpState::Closed => "CLOSED",
            SctpState::CookieWait => "COOKIE_WAIT",
            SctpState::CookieEchoed => "COOKIE_ECHOED",
            SctpState::Established => "ESTABLISHED",
            SctpState::ShutdownSent => "SHUTDOWN_SENT",
            SctpState::ShutdownRecd => "SHUTDOWN_RECD",
            SctpState::ShutdownAckSent => "SHUTDOWN_ACK_SENT",
            SctpState::HeartbeatSent => "HEARTBEAT_SENT",
        }
    }

    /// The kernel's number (ctnetlink `CTA_PROTOINFO_SCTP_STATE`, log messages).
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The timeout an accepted packet leaving the entry in this state sets (§1.7), from
    /// the `nf_conntrack_sctp_timeout_*` sysctls.
    pub fn timeout(self, sysctls: &Sysctls) -> Duration {
        table::timeout(self, sysctls)
    }
}

impl fmt::Display for SctpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the SCTP tracker rejected (or ignored) a packet: one variant per check. `Display`
/// uses the kernel's log text for the five checks the kernel logs
/// ([`SctpReason::kernel_logs`]); the others are silent in the kernel and get our own
/// wording. Verification tags are carried as the big-endian value of the wire bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SctpReason {
    /// `sctp_error`: less than the 12-byte common header. Logged "nf_ct_sctp: short packet".
    ShortPacket,
    /// `sctp_error`: CRC32c mismatch (checked at PRE_ROUTING with `nf_conntrack_checksum=1`).
    /// Logged "nf_ct_sctp: bad CRC".
    BadCrc {
        /// The checksum field (read little-endian, as it is stored).
        wire: u32,
        /// The CRC32c computed over the packet.
        computed: u32,
    },
    /// `do_basic_checks`: a zero chunk length, INIT / INIT_ACK / SHUTDOWN_COMPLETE not
    /// alone, or COOKIE_ECHO / COOKIE_ACK not first. Logged with the kernel's fields.
    BasicChecks {
        /// Index of the failing chunk (0 = first).
        chunk_num: u32,
        /// Its type.
        chunk_type: u8,
        /// Its length field as the kernel prints it: the big-endian field read in host
        /// (little-endian) order, so 21 prints as 5376.
        len_printed: u16,
        /// The sticky "INIT, INIT_ACK or SHUTDOWN_COMPLETE seen" flag.
        flag: bool,
    },
    /// `do_basic_checks`: no chunk header after the common header (not logged).
    NoChunks,
    /// First packet carrying ABORT, SHUTDOWN_COMPLETE or COOKIE_ACK: out of the blue
    /// (RFC 9260 §8.4), no entry (not logged).
    OutOfTheBlue {
        /// The first of ABORT, SHUTDOWN_COMPLETE, COOKIE_ACK found (in that order).
        chunk_type: u8,
    },
    /// `sctp_new`: a chunk of the first packet does not move the state away from NONE
    /// (DATA, SACK, any type without a table row), so no entry (not logged).
    NewEntryChunk {
        /// The chunk type.
        chunk_type: u8,
    },
    /// `sctp_new`: an INIT with a non-zero verification tag cannot create an entry
    /// (RFC 9260 §8.5.1 (A); not logged).
    NewEntryInitVtag {
        /// The common header's tag.
        vtag: u32,
    },
    /// The 16-byte INIT / INIT_ACK header after the chunk header runs past the packet
    /// (not logged).
    InitHeaderTruncated {
        /// INIT or INIT_ACK.
        chunk_type: u8,
    },
    /// The common verification tag differs from the one expected for the direction.
    /// Logged "verification tag check failed %x vs %x for dir %d" with both tags
    /// byte-swapped (the kernel prints the wire-order words on a little-endian CPU).
    VtagCheck {
        /// The packet's tag.
        vtag: u32,
        /// The tag expected in this direction.
        expected: u32,
        /// The packet's direction.
        dir: Dir,
    },
    /// RFC 9260 §8.5.1 (A): an INIT on an existing entry with a non-zero tag (not logged).
    InitVtagNonZero {
        /// The common header's tag.
        vtag: u32,
    },
    /// §8.5.1 (B)/(C): ABORT or SHUTDOWN_COMPLETE whose tag is not the direction's own
    /// tag (T bit clear) or the other direction's tag (T bit set) (not logged).
    TBitVtag {
        /// ABORT or SHUTDOWN_COMPLETE.
        chunk_type: u8,
        /// Whether the T bit was set.
        t_bit: bool,
        /// The packet's tag.
        vtag: u32,
        /// The tag required.
        expected: u32,
    },
    /// §8.5.1 (D): COOKIE_ECHO whose tag is not the direction's tag (on a first packet
    /// only 0 passes) (not logged).
    CookieEchoVtag {
        /// The packet's tag.
        vtag: u32,
        /// The tag required.
        expected: u32,
    },
    /// HEARTBEAT or HEARTBEAT_ACK with an unknown tag in a packet that also carries DATA,
    /// or after an earlier chunk of the packet was already let through unchecked (not
    /// logged).
    HeartbeatVtagBundled {
        /// HEARTBEAT or HEARTBEAT_ACK.
        chunk_type: u8,
        /// The packet's tag.
        vtag: u32,
        /// The tag known for the direction.
        expected: u32,
    },
    /// HEARTBEAT_ACK with an unknown tag that is not the answer to a mismatching
    /// HEARTBEAT from the other direction (not logged).
    HeartbeatAckVtag {
        /// The packet's tag.
        vtag: u32,
        /// The tag known for the direction.
        expected: u32,
    },
    /// The transition table says invalid. Logged "Invalid, old_state %d, dir %d, type %d".
    Invalid {
        /// The state before the chunk.
        old_state: SctpState,
        /// The packet's direction.
        dir: Dir,
        /// The chunk type.
        chunk_type: u8,
    },
    /// INIT_ACK whose initiate tag would replace a known tag although no INIT from the
    /// other side is pending (not logged).
    InitAckWithoutInit {
        /// The tag known for the other direction.
        vtag: u32,
        /// The INIT_ACK's initiate tag.
        init_tag: u32,
    },
    /// INIT_ACK during an INIT collision (INITs pending from both sides) whose initiate
    /// tag is not the one already known (not logged).
    InitCollision {
        /// The tag known for the other direction.
        vtag: u32,
        /// The INIT_ACK's initiate tag.
        init_tag: u32,
    },
    /// Accepted without refreshing the timeout: an INIT in CLOSED on a confirmed entry
    /// (retransmit or port reuse must not keep the entry alive). Not logged.
    InitRetransmit,
    /// Accepted without refreshing the timeout or changing the state: a HEARTBEAT with an
    /// unknown tag (possible peer restart); the mismatch is remembered for the
    /// HEARTBEAT_ACK (§1.9). Not logged.
    HeartbeatVtagIgnored {
        /// The packet's tag.
        vtag: u32,
        /// The tag known for the direction.
        expected: u32,
    },
}

impl SctpReason {
    /// Whether the kernel writes a log line (`nf_conntrack_log_invalid`) for this reason.
    pub fn kernel_logs(self) -> bool {
        matches!(
            self,
            SctpReason::ShortPacket
                | SctpReason::BadCrc { .. }
                | SctpReason::BasicChecks { .. }
                | SctpReason::VtagCheck { .. }
                | SctpReason::Invalid { .. }
        )
    }
}

/// A chunk type's RFC name, for our own messages.
fn chunk_name(t: u8) -> &'static str {
    match t {
        cid::DATA => "DATA",
        cid::INIT => "INIT",
        cid::INIT_ACK => "INIT_ACK",
        3 => "SACK",
        cid::HEARTBEAT => "HEARTBEAT",
        cid::HEARTBEAT_ACK => "HEARTBEAT_ACK",
        cid::ABORT => "ABORT",
        cid::SHUTDOWN => "SHUTDOWN",
        cid::SHUTDOWN_ACK => "SHUTDOWN_ACK",
        cid::ERROR => "ERROR",
        cid::COOKIE_ECHO => "COOKIE_ECHO",
        cid::COOKIE_ACK => "COOKIE_ACK",
        cid::SHUTDOWN_COMPLETE => "SHUTDOWN_COMPLETE",
        _ => "chunk",
    }
}

impl fmt::Display for SctpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SctpReason::ShortPacket => f.write_str("nf_ct_sctp: short packet"),
            SctpReason::BadCrc { .. } => f.write_str("nf_ct_sctp: bad CRC"),
            SctpReason::BasicChecks {
                chunk_num,
                chunk_type,
                len_printed,
                flag,
            } => write!(
                f,
                "do_basic_checks failed. chunk num {chunk_num}, type {chunk_type}, len {len_printed} flag {}",
                u8::from(flag)
            ),
            SctpReason::NoChunks => f.write_str("no chunk after the SCTP common header"),
            SctpReason::OutOfTheBlue { chunk_type } => write!(
                f,
                "out-of-the-blue {} (type {chunk_type}) cannot create an entry",
                chunk_name(chunk_type)
            ),
            SctpReason::NewEntryChunk { chunk_type } => write!(
                f,
                "{} (type {chunk_type}) cannot create an entry",
                chunk_name(chunk_type)
            ),
            SctpReason::NewEntryInitVtag { vtag } => write!(
                f,
                "INIT with non-zero verification tag {vtag:#010x} cannot create an entry"
            ),
            SctpReason::InitHeaderTruncated { chunk_type } => {
                write!(f, "{} header truncated", chunk_name(chunk_type))
            }
            SctpReason::VtagCheck {
                vtag,
                expected,
                dir,
            } => write!(
                f,
                "verification tag check failed {:x} vs {:x} for dir {}",
                vtag.swap_bytes(),
                expected.swap_bytes(),
                dir.index()
            ),
            SctpReason::InitVtagNonZero { vtag } => {
                write!(f, "INIT with non-zero verification tag {vtag:#010x}")
            }
            SctpReason::TBitVtag {
                chunk_type,
                t_bit,
                vtag,
                expected,
            } => write!(
                f,
                "{} with T bit {} has verification tag {vtag:#010x}, expected {expected:#010x}",
                chunk_name(chunk_type),
                if t_bit { "set" } else { "clear" }
            ),
            SctpReason::CookieEchoVtag { vtag, expected } => write!(
                f,
                "COOKIE_ECHO has verification tag {vtag:#010x}, expected {expected:#010x}"
            ),
            SctpReason::HeartbeatVtagBundled {
                chunk_type,
                vtag,
                expected,
            } => write!(
                f,
                "{} with unknown verification tag {vtag:#010x} (known {expected:#010x}) bundled with DATA or a second mismatch",
                chunk_name(chunk_type)
            ),
            SctpReason::HeartbeatAckVtag { vtag, expected } => write!(
                f,
                "HEARTBEAT_ACK with unknown verification tag {vtag:#010x} (known {expected:#010x}) answers no mismatching HEARTBEAT from the other side"
            ),
            SctpReason::Invalid {
                old_state,
                dir,
                chunk_type,
            } => write!(
                f,
                "Invalid, old_state {}, dir {}, type {chunk_type}",
                old_state.number(),
                dir.index()
            ),
            SctpReason::InitAckWithoutInit { vtag, init_tag } => write!(
                f,
                "INIT_ACK without INIT: initiate tag {init_tag:#010x} would replace {vtag:#010x}"
            ),
            SctpReason::InitCollision { vtag, init_tag } => write!(
                f,
                "INIT collision: INIT_ACK initiate tag {init_tag:#010x} is not {vtag:#010x}"
            ),
            SctpReason::InitRetransmit => {
                f.write_str("INIT in CLOSED (retransmit): timeout not refreshed")
            }
            SctpReason::HeartbeatVtagIgnored { vtag, expected } => write!(
                f,
                "HEARTBEAT with unknown verification tag {vtag:#010x} (known {expected:#010x}): let through, timeout not refreshed"
            ),
        }
    }
}

/// `sctp_error`: the 12-byte common header must be there ("short packet"), and when
/// `cx.check_checksum` (PRE_ROUTING with `nf_conntrack_checksum=1`) the CRC32c over the
/// SCTP packet must match the field ("bad CRC"). Called on every SCTP packet before
/// [`SctpConn::new`] / [`SctpConn::packet`]; `Err` makes the packet INVALID.
pub(crate) fn error(pkt: &Packet<'_>, cx: &Cx<'_>) -> Result<(), InvalidReason> {
    let l4 = pkt.l4();
    let Some(field) = l4.get(8..COMMON_LEN) else {
        return Err(SctpReason::ShortPacket.into());
    };
    if cx.check_checksum {
        let wire = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
        let computed = crc32c::sctp_checksum(l4);
        if wire != computed {
            return Err(SctpReason::BadCrc { wire, computed }.into());
        }
    }
    Ok(())
}

/// Per-connection SCTP state (kernel `struct ip_ct_sctp`).
///
/// Size: 16 bytes (two 4-byte tags, then 5 one-byte fields, padded to the 4-byte
/// alignment); pinned by a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SctpConn {
    /// The verification tag expected on packets travelling in direction ORIGINAL / REPLY
    /// (0 = not learnt yet), as the big-endian value of the wire bytes.
    vtag: [u32; 2],
    /// Current state.
    state: SctpState,
    /// "An INIT was seen from this direction and the handshake is not finished"
    /// (cleared by COOKIE_ACK): tells an INIT collision from an INIT_ACK without INIT.
    init: [bool; 2],
    /// Direction of the last HEARTBEAT with an unknown tag.
    last_dir: Dir,
    /// A HEARTBEAT with an unknown tag was let through and the answering HEARTBEAT_ACK
    /// may re-key the entry (kernel `SCTP_FLAG_HEARTBEAT_VTAG_FAILED`).
    hb_vtag_failed: bool,
}

impl Default for SctpConn {
    /// All zero, as the kernel's `memset` in `sctp_new`.
    fn default() -> Self {
        SctpConn {
            vtag: [0; 2],
            state: SctpState::None,
            init: [false; 2],
            last_dir: Dir::Original,
            hb_vtag_failed: false,
        }
    }
}

/// What one accepted packet did (internal result of the chunk loop).
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    /// Accept without refresh, with the reason (kernel `ignore`).
    ignore: Option<SctpReason>,
    /// Some chunk changed the state (IPCT_PROTOINFO).
    state_changed: bool,
    /// Some chunk moved the state into ESTABLISHED.
    set_assured: bool,
}

impl SctpConn {
    /// Current state.
    pub fn state(&self) -> SctpState {
        self.state
    }

    /// The verification tag expected on packets travelling in `dir` (0 = not learnt):
    /// ctnetlink's `CTA_PROTOINFO_SCTP_VTAG_ORIGINAL` / `_REPLY`. After a normal setup
    /// the ORIGINAL tag is the INIT_ACK's initiate tag and the REPLY tag the INIT's.
    pub fn vtag(&self, dir: Dir) -> u32 {
        self.vtag[dir.index()]
    }

    /// Whether the GC worker's early-eviction mode may delete this entry even when it is
    /// ASSURED (`sctp_can_early_drop`): the shutdown states.
    pub fn can_early_drop(&self) -> bool {
        matches!(
            self.state,
            SctpState::ShutdownSent | SctpState::ShutdownRecd | SctpState::ShutdownAckSent
        )
    }

    /// First packet of a would-be entry, after [`error`]: `do_basic_checks`, the
    /// out-of-the-blue rule and `sctp_new` (§1.4 step 3, §1.6). Returns the entry's
    /// initial state (NONE, with the tags the first packet sets), or why no entry may be
    /// created. The engine then calls [`SctpConn::packet`] on the same packet with
    /// `Dir::Original` and `ecx.unconfirmed`, which re-runs these rules (as the kernel
    /// does for an unconfirmed entry) and makes the transitions.
    pub(crate) fn new(pkt: &Packet<'_>, _cx: &Cx<'_>) -> Result<SctpConn, InvalidReason> {
        let l4 = pkt.l4();
        let vtag = common_vtag(l4).ok_or(SctpReason::ShortPacket)?;
        let map = basic_checks(l4)?;
        Ok(SctpConn::new_entry(l4, vtag, &map)?)
    }

    /// The out-of-the-blue rule and `sctp_new`, after `do_basic_checks` passed.
    fn new_entry(l4: &[u8], vtag: u32, map: &ChunkMap) -> Result<SctpConn, SctpReason> {
        // RFC 9260 §8.4: an out-of-the-blue ABORT, SHUTDOWN_COMPLETE or COOKIE_ACK must
        // not create state.
        for t in [cid::ABORT, cid::SHUTDOWN_COMPLETE, cid::COOKIE_ACK] {
            if map.has(t) {
                return Err(SctpReason::OutOfTheBlue { chunk_type: t });
            }
        }
        let mut conn = SctpConn::default();
        for ch in Chunks::new(l4) {
            // Every chunk must move the state away from NONE: a first packet of DATA or
            // SACK belongs to an association we never saw set up.
            match table::next(Dir::Original, SctpState::None, ch.ctype) {
                Some(s) if s != SctpState::None => {}
                _ => {
                    return Err(SctpReason::NewEntryChunk {
                        chunk_type: ch.ctype,
                    })
                }
            }
            match ch.ctype {
                cid::INIT => {
                    // §8.5.1 (A): an INIT carries tag 0. Its initiate tag is what the
                    // responder will put on its packets, i.e. the REPLY direction's tag.
                    if vtag != 0 {
                        return Err(SctpReason::NewEntryInitVtag { vtag });
                    }
                    conn.vtag[Dir::Reply.index()] =
                        init_tag(l4, ch.offset).ok_or(SctpReason::InitHeaderTruncated {
                            chunk_type: ch.ctype,
                        })?;
                }
                // A HEARTBEAT on a secondary path carries the sender's peer tag, which
                // is what later packets in this direction carry.
                cid::HEARTBEAT => conn.vtag[Dir::Original.index()] = vtag,
                // Anything else (e.g. an OOTB SHUTDOWN_ACK, §8.4 (5)): the answer
                // (SHUTDOWN_COMPLETE with the T bit, or ABORT) reflects this tag.
                _ => conn.vtag[Dir::Reply.index()] = vtag,
            }
        }
        Ok(conn)
    }

    /// `nf_conntrack_sctp_packet` after [`error`]: the chunk walk, verification tags,
    /// one table transition per chunk, INIT bookkeeping and the refresh (§1.4, §1.5).
    ///
    /// On INVALID the entry keeps whatever earlier chunks of the same packet changed
    /// (§1.4 step 5, as the kernel); a rejected first packet leaves no entry anyway.
    /// Accepted packets refresh with the timeout of the final state, except INIT
    /// retransmits in CLOSED on a confirmed entry and HEARTBEATs with an unknown tag,
    /// which are accepted without refresh (`refresh: None`, with a note).
    pub(crate) fn packet(
        &mut self,
        pkt: &Packet<'_>,
        dir: Dir,
        ecx: &EntryCx,
        cx: &Cx<'_>,
    ) -> TrackerResult {
        let before = self.state;
        match self.track(pkt.l4(), dir, ecx.unconfirmed) {
            Ok(step) => TrackerResult::Accept(Accepted {
                refresh: match step.ignore {
                    Some(_) => None,
                    None => Some(self.state.timeout(cx.sysctls)),
                },
                set_assured: step.set_assured,
                state_changed: step.state_changed,
                kill: false,
                note: step.ignore.map(InvalidReason::from),
            }),
            // A later chunk failed after an earlier one changed the state (§1.4 step 5):
            // the change stays, with its ASSURED and event, as in the kernel.
            Err(reason) if !ecx.unconfirmed && self.state != before => {
                TrackerResult::InvalidAfterUpdate {
                    reason: reason.into(),
                    set_assured: self.state == SctpState::Established,
                    state_changed: true,
                }
            }
            Err(reason) => TrackerResult::Invalid {
                reason: reason.into(),
                set_timeout: None,
            },
        }
    }

    /// The body of `nf_conntrack_sctp_packet`, mutating `self` in place as the kernel
    /// does (so a failure part-way keeps earlier chunks' changes).
    fn track(&mut self, l4: &[u8], dir: Dir, unconfirmed: bool) -> Result<Step, SctpReason> {
        let vtag = common_vtag(l4).ok_or(SctpReason::ShortPacket)?;
        let map = basic_checks(l4)?;
        if unconfirmed {
            *self = SctpConn::new_entry(l4, vtag, &map)?;
        }
        let d = dir.index();
        let o = dir.opposite().index();

        // §8.5: the common tag must be the direction's tag, unless a chunk with its own
        // tag rule is present (checked per chunk below) or a heartbeat may learn it.
        let own_rule = [
            cid::INIT,
            cid::SHUTDOWN_COMPLETE,
            cid::COOKIE_ECHO,
            cid::ABORT,
            cid::SHUTDOWN_ACK,
            cid::HEARTBEAT,
            cid::HEARTBEAT_ACK,
        ];
        if !own_rule.iter().any(|&t| map.has(t)) && vtag != self.vtag[d] {
            return Err(SctpReason::VtagCheck {
                vtag,
                expected: self.vtag[d],
                dir,
            });
        }

        let mut step = Step::default();
        for ch in Chunks::new(l4) {
            // Per-chunk tag rules (RFC 9260 §8.5.1) and heartbeat learning / re-keying.
            match ch.ctype {
                cid::INIT if vtag != 0 => return Err(SctpReason::InitVtagNonZero { vtag }),
                cid::ABORT | cid::SHUTDOWN_COMPLETE => {
                    let t_bit = ch.flags & FLAG_T != 0;
                    // T set: the sender had no TCB and reflected the peer's tag.
                    let expected = if t_bit { self.vtag[o] } else { self.vtag[d] };
                    if vtag != expected {
                        return Err(SctpReason::TBitVtag {
                            chunk_type: ch.ctype,
                            t_bit,
                            vtag,
                            expected,
                        });
                    }
                }
                cid::COOKIE_ECHO if vtag != self.vtag[d] => {
                    return Err(SctpReason::CookieEchoVtag {
                        vtag,
                        expected: self.vtag[d],
                    });
                }
                // The handshake is complete: no INIT is pending any more.
                cid::COOKIE_ACK => self.init = [false; 2],
                cid::HEARTBEAT | cid::HEARTBEAT_ACK => {
                    let known = self.vtag[d];
                    if known == 0 {
                        // First packet this way on a secondary path: learn the tag.
                        self.vtag[d] = vtag;
                    } else if vtag != known {
                        if map.has(cid::DATA) || step.ignore.is_some() {
                            return Err(SctpReason::HeartbeatVtagBundled {
                                chunk_type: ch.ctype,
                                vtag,
                                expected: known,
                            });
                        }
                        if ch.ctype == cid::HEARTBEAT {
                            // Maybe the peer restarted unseen: let it through, touch
                            // nothing else, and let the answer re-key the entry.
                            self.hb_vtag_failed = true;
                            self.last_dir = dir;
                            step.ignore = Some(SctpReason::HeartbeatVtagIgnored {
                                vtag,
                                expected: known,
                            });
                            continue;
                        }
                        // A HEARTBEAT_ACK re-keys only as the answer to such a HEARTBEAT
                        // from the other side.
                        if !self.hb_vtag_failed || self.last_dir == dir {
                            return Err(SctpReason::HeartbeatAckVtag {
                                vtag,
                                expected: known,
                            });
                        }
                        self.hb_vtag_failed = false;
                        self.vtag[d] = vtag;
                        // The other side's tag is relearnt from its next HEARTBEAT.
                        self.vtag[o] = 0;
                    } else {
                        self.hb_vtag_failed = false;
                    }
                }
                _ => {}
            }

            let old = self.state;
            let new = table::next(dir, old, ch.ctype).ok_or(SctpReason::Invalid {
                old_state: old,
                dir,
                chunk_type: ch.ctype,
            })?;

            match ch.ctype {
                cid::INIT => {
                    let tag = init_tag(l4, ch.offset).ok_or(SctpReason::InitHeaderTruncated {
                        chunk_type: ch.ctype,
                    })?;
                    // A stale or retransmitted INIT (its tag is already the other
                    // direction's tag) is not recorded as a new pending INIT.
                    if old == SctpState::None || self.vtag[o] != tag {
                        if self.init[d] && self.init[o] {
                            self.init[o] = false;
                        }
                        self.init[d] = true;
                    }
                    self.vtag[o] = tag;
                    // An INIT retransmit (or a reused port) must not keep a CLOSED
                    // entry, and its NAT binding, alive forever.
                    if old == SctpState::Closed && new == SctpState::Closed && !unconfirmed {
                        step.ignore.get_or_insert(SctpReason::InitRetransmit);
                    }
                }
                cid::INIT_ACK => {
                    let tag = init_tag(l4, ch.offset).ok_or(SctpReason::InitHeaderTruncated {
                        chunk_type: ch.ctype,
                    })?;
                    let known = self.vtag[o];
                    if !self.init[o] && known != 0 && known != tag {
                        return Err(SctpReason::InitAckWithoutInit {
                            vtag: known,
                            init_tag: tag,
                        });
                    }
                    if self.init[d] && self.init[o] && known != tag {
                        return Err(SctpReason::InitCollision {
                            vtag: known,
                            init_tag: tag,
                        });
                    }
                    self.vtag[o] = tag;
                }
                _ => {}
            }

            self.state = new;
            if old != new {
                step.state_changed = true;
                if new == SctpState::Established {
                    step.set_assured = true;
                }
            }
        }
        Ok(step)
    }
}
