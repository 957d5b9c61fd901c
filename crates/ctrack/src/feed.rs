//! Replay's reader thread: the capture's records are read, decapsulated, and each IP
//! packet parsed and hashed (its [`FlowHint`]) on a second core, a chunk at a time,
//! while this thread tracks. Tracking stays on one thread and sees the records in
//! file order, so results are those of a single-threaded replay; the reader only does
//! work that depends on nothing but the bytes (and the table's hash key, copied).

use ctrack_capture::{Capture, CaptureError, Record};
use ctrack_core::lookahead::{FlowHint, Stages};
use ctrack_core::table::FlowHasher;
use std::sync::mpsc;

/// One record as the reader hands it over, with its IP packet's hint.
pub type Item<'a> = (Result<Record<'a>, CaptureError>, Option<FlowHint>);

/// Records per chunk: large enough that the hand-over (the channel, and the reader's
/// naps when it is ahead) costs little per record, small enough that the tracking
/// thread starts at once.
const CHUNK: usize = 512;

/// Chunks in flight between the threads.
const DEPTH: usize = 4;

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
                if chunk.items.is_empty() || !send_without_wake(&tx, chunk) {
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

/// How long the reader naps when the tracking thread has every chunk it can hold.
const NAP: std::time::Duration = std::time::Duration::from_micros(50);

/// Send `chunk`, napping while the channel is full, instead of blocking in `send`: a
/// blocked sender must be woken by the receiver (a futex wake per chunk taken, 3 % of
/// the tracking thread's time in replay), a napping one costs the tracking thread
/// nothing. The channel holds `DEPTH` chunks, far more than the reader's nap. `false`
/// when the receiver is gone.
fn send_without_wake<T>(tx: &mpsc::SyncSender<T>, mut chunk: T) -> bool {
    loop {
        match tx.try_send(chunk) {
            Ok(()) => return true,
            Err(mpsc::TrySendError::Full(c)) => {
                chunk = c;
                std::thread::sleep(NAP);
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return false,
        }
    }
}

/// Replay `cap` through `r` as `ctrack replay` does: the records come from the reader
/// thread ([`read_ahead`]) and stay in its chunks, which this thread holds until every
/// record in them is tracked; the look-ahead's prefetch stages
/// ([`ctrack_core::lookahead::Stages`]) are issued here, on the tracking thread, from
/// the hints of the records up to 32 ahead (across chunk boundaries). `each` gets every
/// record with its hint, in file order, and returns `false` to stop. `progress` gets
/// the file offset reached after each chunk.
pub fn replay<'a, E>(
    cap: &'a Capture,
    r: &mut crate::replay::Replay,
    mut progress: impl FnMut(u64),
    mut each: impl FnMut(&mut crate::replay::Replay, &Item<'a>) -> Result<bool, E>,
) -> Result<(), E> {
    let mut held = Held::default();
    let hasher = r.ct.table().hasher();
    let mut stopped = false;
    read_ahead(cap, hasher, |chunk| {
        progress(chunk.offset);
        held.push(std::mem::take(&mut chunk.items));
        // Track while the window ahead is full; the next chunk fills it again.
        while held.ahead() > Stages::DEPTH {
            if !held.track_one(r, &mut each)? {
                stopped = true;
                break;
            }
        }
        // A chunk emptied here goes back to the reader for reuse.
        if let Some(v) = held.spent.take() {
            chunk.items = v;
        }
        Ok(!stopped)
    })?;
    while !stopped && held.ahead() > 0 {
        stopped = !held.track_one(r, &mut each)?;
    }
    Ok(())
}

/// Record `i` of `chunks` (counted across them).
#[inline]
fn item_at<'b, 'a>(
    chunks: &'b std::collections::VecDeque<Vec<Item<'a>>>,
    mut i: usize,
) -> Option<&'b Item<'a>> {
    for c in chunks {
        match c.get(i) {
            Some(item) => return Some(item),
            None => i -= c.len(),
        }
    }
    None
}

/// How far ahead of the record being tracked its lines are requested: the reader
/// thread wrote them on the other core, and the first stage reads its hint.
const ITEM_AHEAD: usize = Stages::DEPTH + 16;

/// The chunks the tracking thread holds: the one being tracked first, then those
/// received after it (the look-ahead reads into them).
#[derive(Default)]
struct Held<'a> {
    chunks: std::collections::VecDeque<Vec<Item<'a>>>,
    /// Position in the first chunk of the next record to track.
    pos: usize,
    /// Records held and not yet tracked.
    left: usize,
    /// Stream number of the next record to track.
    n: u64,
    /// The prefetch stages.
    stages: Stages,
    /// A chunk whose records are all tracked, to hand back to the reader (which clears
    /// it before reuse).
    spent: Option<Vec<Item<'a>>>,
}

impl<'a> Held<'a> {
    fn push(&mut self, items: Vec<Item<'a>>) {
        self.left += items.len();
        self.chunks.push_back(items);
    }

    /// Records held and not yet tracked.
    fn ahead(&self) -> usize {
        self.left
    }

    /// Issue the prefetch stages, then track the next record with `each`.
    #[inline]
    fn track_one<E>(
        &mut self,
        r: &mut crate::replay::Replay,
        each: &mut impl FnMut(&mut crate::replay::Replay, &Item<'a>) -> Result<bool, E>,
    ) -> Result<bool, E> {
        let (chunks, pos) = (&self.chunks, self.pos);
        if let Some(item) = item_at(chunks, pos + ITEM_AHEAD) {
            ctrack_core::lookahead::prefetch(item);
        }
        self.stages.step(&r.ct, self.n, |k| {
            item_at(chunks, pos + k).and_then(|x| x.1)
        });
        let Some(item) = self.chunks.front().and_then(|c| c.get(self.pos)) else {
            return Ok(false);
        };
        let go_on = each(r, item)?;
        self.n += 1;
        self.left -= 1;
        self.pos += 1;
        if self.chunks.front().is_some_and(|c| self.pos >= c.len()) {
            // Handed back as it is: the reader clears it (dropping the records there).
            self.spent = self.chunks.pop_front();
            self.pos = 0;
        }
        Ok(go_on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{Replay, ReplayOptions};

    /// (index, hint) of every record of `cap`, read one at a time on this thread.
    fn hints_of(cap: &Capture, hasher: &FlowHasher) -> Vec<(u64, Option<FlowHint>)> {
        cap.records()
            .map(|r| {
                let r = r.expect("record");
                let hint = r.payload.l3().and_then(|l3| FlowHint::compute(hasher, l3));
                (r.index, hint)
            })
            .collect()
    }

    #[test]
    fn chunks_hold_every_record_in_order_with_the_windows_hints() {
        let pcap =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/sample.pcap");
        let cap = Capture::open(&pcap).expect("opens");
        let hasher = FlowHasher::new(7);
        let want = hints_of(&cap, &hasher);
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

    /// A classic pcap of `n` Ethernet/IPv4/UDP records on 37 flows, the last `cut`
    /// bytes cut off the final record.
    fn pcap(n: usize, cut: usize) -> Vec<u8> {
        let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for i in 0..n {
            let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
            f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0]);
            f.extend_from_slice(&[10, 0, 0, (i % 37) as u8, 10, 0, 1, 1]);
            f.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
            let c = ctrack_core::packet::checksum::compute(0, &f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&(1_000 + i as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&f);
        }
        out.truncate(out.len() - cut);
        out
    }

    /// (index, hint) of every record `feed::replay` hands over, stopping after `stop`.
    fn fed(cap: &Capture, stop: usize) -> (Vec<(u64, Option<FlowHint>)>, Option<String>) {
        let mut r = Replay::new(&ReplayOptions::default());
        let mut got = Vec::new();
        let mut err = None;
        replay::<()>(
            cap,
            &mut r,
            |_| {},
            |_, (rec, hint)| {
                match rec {
                    Ok(rec) => got.push((rec.index, *hint)),
                    Err(e) => err = Some(e.to_string()),
                }
                Ok(got.len() < stop && err.is_none())
            },
        )
        .expect("no error from each");
        (got, err)
    }

    #[test]
    fn replay_hands_over_every_record_in_order_across_chunks() {
        // Several chunks and a partial last one, so the look-ahead crosses boundaries.
        let n = 3 * CHUNK + 45;
        let cap = Capture::from_bytes("t.pcap", pcap(n, 0)).expect("valid");
        let hasher = Replay::new(&ReplayOptions::default()).ct.table().hasher();
        let want = hints_of(&cap, &hasher);
        assert_eq!(want.len(), n);
        assert!(want.iter().all(|w| w.1.is_some()));
        let (got, err) = fed(&cap, usize::MAX);
        assert_eq!((got, err), (want.clone(), None));
        // `each` saying stop ends the replay there, in the middle of a chunk.
        let (got, _) = fed(&cap, CHUNK + 7);
        assert_eq!(got, want[..CHUNK + 7]);
    }

    #[test]
    fn replay_reports_a_broken_record_after_the_good_ones() {
        let n = CHUNK + 20;
        let cap = Capture::from_bytes("cut.pcap", pcap(n, 5)).expect("valid header");
        let (got, err) = fed(&cap, usize::MAX);
        assert_eq!(got.len(), n - 1);
        let err = err.expect("the cut record is an error");
        assert!(err.contains("cut.pcap"), "{err}");
    }
}
