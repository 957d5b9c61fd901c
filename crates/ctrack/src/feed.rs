//! Replay's reader thread: the capture's records are read, decapsulated, and each IP
//! packet parsed and hashed (its [`FlowHint`]) on a second core, a chunk at a time,
//! while this thread tracks. Tracking stays on one thread and sees the records in
//! file order, so results are those of a single-threaded replay; the reader only does
//! work that depends on nothing but the bytes (and the table's hash key, copied).

use ctrack_capture::{Capture, CaptureError, Record};
use ctrack_core::lookahead::FlowHint;
use ctrack_core::table::FlowHasher;
use std::sync::mpsc;

/// One record as the reader hands it over, with its IP packet's hint.
pub type Item<'a> = (Result<Record<'a>, CaptureError>, Option<FlowHint>);

/// Records per chunk: large enough that the hand-over costs little per record, small
/// enough that the tracking thread starts at once.
const CHUNK: usize = 128;

/// Chunks in flight between the threads.
const DEPTH: usize = 8;

/// A chunk of records and the file offset after its last one (for progress).
pub struct Chunk<'a> {
    /// The records, in file order.
    pub items: Vec<Item<'a>>,
    /// Byte offset of the next record to read after this chunk.
    pub offset: u64,
}

/// Read `cap` on a scoped thread and call `each` on every chunk, in order, on this
/// thread; `each` returns `false` to stop early (the reader then stops too). A record
/// error ends the records, as [`ctrack_capture::Records::next_record`] does.
pub fn read_ahead<'a, E>(
    cap: &'a Capture,
    hasher: FlowHasher,
    mut each: impl FnMut(&mut Chunk<'a>) -> Result<bool, E>,
) -> Result<(), E> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Chunk<'a>>(DEPTH);
        // Emptied chunks go back to the reader, so their buffers are reused.
        let (back_tx, back_rx) = mpsc::channel::<Vec<Item<'a>>>();
        s.spawn(move || {
            let mut recs = cap.records();
            let mut done = false;
            while !done {
                let mut items = back_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                items.clear();
                while items.len() < CHUNK {
                    let Some(rec) = recs.next_record() else {
                        done = true;
                        break;
                    };
                    let hint = rec
                        .as_ref()
                        .ok()
                        .and_then(|r| r.payload.l3())
                        .and_then(|l3| FlowHint::compute(&hasher, l3));
                    done = rec.is_err();
                    items.push((rec, hint));
                    if done {
                        break;
                    }
                }
                let chunk = Chunk {
                    items,
                    offset: recs.offset(),
                };
                if chunk.items.is_empty() || tx.send(chunk).is_err() {
                    break;
                }
            }
        });
        for mut chunk in rx {
            let go_on = each(&mut chunk)?;
            let _ = back_tx.send(std::mem::take(&mut chunk.items));
            if !go_on {
                break;
            }
        }
        Ok(())
    })
}

/// Replay `cap` through `r` as `ctrack replay` does: the records come from the reader
/// thread ([`read_ahead`]) and go through the look-ahead window, whose prefetches are
/// issued here, on the tracking thread; `each` gets every record with its hint, in
/// file order, and returns `false` to stop. `progress` gets the file offset reached
/// after each chunk.
pub fn replay<'a, E>(
    cap: &'a Capture,
    r: &mut crate::replay::Replay,
    mut progress: impl FnMut(u64),
    mut each: impl FnMut(&mut crate::replay::Replay, Item<'a>) -> Result<bool, E>,
) -> Result<(), E> {
    let mut window = ctrack_core::lookahead::Lookahead::default();
    let mut stopped = false;
    let hasher = r.ct.table().hasher();
    read_ahead(cap, hasher, |chunk| {
        progress(chunk.offset);
        for (rec, hint) in chunk.items.drain(..) {
            window.push_hinted(&r.ct, rec, hint);
            if window.is_full() {
                if let Some(item) = window.pop(&r.ct) {
                    if !each(r, item)? {
                        stopped = true;
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    })?;
    while !stopped {
        let Some(item) = window.pop(&r.ct) else {
            break;
        };
        stopped = !each(r, item)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_every_record_in_order_with_the_windows_hints() {
        let pcap =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/sample.pcap");
        let cap = Capture::open(&pcap).expect("opens");
        let hasher = FlowHasher::new(7);
        let want: Vec<(u64, Option<FlowHint>)> = cap
            .records()
            .map(|r| {
                let r = r.expect("record");
                let hint = r.payload.l3().and_then(|l3| FlowHint::compute(&hasher, l3));
                (r.index, hint)
            })
            .collect();
        let mut got = Vec::new();
        read_ahead::<()>(&cap, hasher, |chunk| {
            for (rec, hint) in &chunk.items {
                got.push((rec.as_ref().expect("record").index, *hint));
            }
            Ok(true)
        })
        .expect("no error");
        assert!(!want.is_empty());
        assert!(
            want.iter().any(|w| w.1.is_some()),
            "some packets carry a hint"
        );
        assert_eq!(got, want);
    }
}
