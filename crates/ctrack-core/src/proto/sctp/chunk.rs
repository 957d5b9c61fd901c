//! The SCTP packet walk (kernel: `for_each_sctp_chunk`, `do_basic_checks`): chunk
//! headers, the chunk-type map, and the two fields the tracker reads (the common
//! verification tag and the INIT / INIT_ACK initiate tag). Offsets are from the start
//! of the SCTP common header; nothing here indexes past a length it checked.

use super::{cid, SctpReason, CHUNK_HDR_LEN, COMMON_LEN, INIT_HDR_LEN};

/// One chunk header seen by the walk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk {
    /// Index in the packet (kernel `count`).
    pub(super) index: u32,
    /// Offset of the chunk header from the start of the SCTP header.
    pub(super) offset: usize,
    /// Chunk type.
    pub(super) ctype: u8,
    /// Chunk flags.
    pub(super) flags: u8,
    /// The length field's two bytes as on the wire.
    pub(super) len_raw: [u8; 2],
}

impl Chunk {
    /// The length field (big-endian).
    pub(super) fn len(&self) -> u16 {
        u16::from_be_bytes(self.len_raw)
    }
}

/// The kernel's `for_each_sctp_chunk`: from offset 12, while the offset is inside the
/// packet and a 4-byte chunk header can be read; advance by the length rounded up to 4.
/// Trailing 1-3 bytes end the walk silently, a length running past the end just stops
/// it. A zero length would loop forever in the kernel's macro; every kernel walk runs
/// after `do_basic_checks` rejected it, so this one simply stops after such a chunk.
pub(super) struct Chunks<'a> {
    l4: &'a [u8],
    offset: usize,
    index: u32,
}

impl<'a> Chunks<'a> {
    pub(super) fn new(l4: &'a [u8]) -> Chunks<'a> {
        Chunks {
            l4,
            offset: COMMON_LEN,
            index: 0,
        }
    }
}

impl Iterator for Chunks<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        let end = self.offset.checked_add(CHUNK_HDR_LEN)?;
        let h = self.l4.get(self.offset..end)?;
        let chunk = Chunk {
            index: self.index,
            offset: self.offset,
            ctype: h[0],
            flags: h[1],
            len_raw: [h[2], h[3]],
        };
        let step = (usize::from(chunk.len()) + 3) & !3;
        self.offset = if step == 0 {
            usize::MAX
        } else {
            self.offset + step
        };
        self.index = self.index.saturating_add(1);
        Some(chunk)
    }
}

/// The 256-bit "chunk types present" map `do_basic_checks` fills.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ChunkMap([u64; 4]);

impl ChunkMap {
    fn set(&mut self, t: u8) {
        self.0[usize::from(t >> 6)] |= 1 << (t & 63);
    }
    pub(super) fn has(&self, t: u8) -> bool {
        self.0[usize::from(t >> 6)] & (1 << (t & 63)) != 0
    }
}

/// `do_basic_checks`: walk the chunks, reject the bundles §1.4 step 2 forbids, and
/// return the map of chunk types present.
pub(super) fn basic_checks(l4: &[u8]) -> Result<ChunkMap, SctpReason> {
    let mut map = ChunkMap::default();
    // Sticky: once INIT, INIT_ACK or SHUTDOWN_COMPLETE is seen, no later chunk may follow
    // (they must be alone, RFC 9260 §6.10).
    let mut flag = false;
    let mut count = 0u32;
    for ch in Chunks::new(l4) {
        if matches!(ch.ctype, cid::INIT | cid::INIT_ACK | cid::SHUTDOWN_COMPLETE) {
            flag = true;
        }
        let must_be_first = matches!(ch.ctype, cid::COOKIE_ACK | cid::COOKIE_ECHO) || flag;
        if (must_be_first && ch.index != 0) || ch.len() == 0 {
            return Err(SctpReason::BasicChecks {
                chunk_num: ch.index,
                chunk_type: ch.ctype,
                len_printed: u16::from_le_bytes(ch.len_raw),
                flag,
            });
        }
        map.set(ch.ctype);
        count += 1;
    }
    if count == 0 {
        return Err(SctpReason::NoChunks);
    }
    Ok(map)
}

/// The common header's verification tag, if the header is there.
pub(super) fn common_vtag(l4: &[u8]) -> Option<u32> {
    let b = l4.get(4..8)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The initiate tag of the INIT / INIT_ACK chunk at `offset`, if its whole 16-byte fixed
/// header is inside the packet (the chunk's own length field is not consulted, as in
/// the kernel's `skb_header_pointer`).
pub(super) fn init_tag(l4: &[u8], offset: usize) -> Option<u32> {
    let start = offset.checked_add(CHUNK_HDR_LEN)?;
    let hdr = l4.get(start..start.checked_add(INIT_HDR_LEN)?)?;
    Some(u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]))
}
