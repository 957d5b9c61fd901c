//! Reading pcap and pcapng captures down to the IP packets they carry.
//!
//! [`Capture::open`] maps a capture file into memory; [`Capture::records`]
//! walks its packet records and hands out, for each, a [`Record`] whose
//! [`Payload`] is either the IP packet inside the frame (the L3 bytes, with
//! the frame's VLAN ids) or the reason there is none. Nothing is copied and
//! nothing is allocated per record.
//!
//! * Formats: classic pcap (microsecond and nanosecond magics, both byte
//!   orders) and pcapng (several sections of either byte order, several
//!   interfaces with their own link types, any `if_tsresol`, power of 10 or
//!   of 2, and `if_tsoffset`; Enhanced, Simple and obsolete Packet Blocks;
//!   other blocks skipped). The magic number decides, never the file name.
//! * Link types: see [`link::decode`].
//! * Timestamps: `u64` nanoseconds since the Unix epoch.
//! * Errors: a [`CaptureError`] names the file and the byte offset. A cut or
//!   damaged file yields every good record before the damage, then one error,
//!   then nothing.
//!
//! ```no_run
//! use ctrack_capture::{Capture, Payload};
//! # fn main() -> Result<(), ctrack_capture::CaptureError> {
//! let cap = Capture::open(std::path::Path::new("trace.pcap"))?;
//! for rec in cap.records() {
//!     let rec = rec?;
//!     if let Payload::Ip { family, l3, vlans } = rec.payload {
//!         println!("{} {:?} {} bytes vlans {:?}", rec.ts_ns, family, l3.len(), vlans);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::Read;
use std::path::Path;

mod error;
pub mod link;
mod pcap;
mod pcapng;

pub use error::CaptureError;
pub use link::{IpFamily, NonIpReason, Payload, VlanStack, MAX_VLAN_TAGS};

use pcap::{PcapHeader, PcapReader};
use pcapng::PcapNgReader;

/// The container format of a capture, as its magic number says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Classic pcap.
    Pcap {
        /// Nanosecond timestamps (magic `a1b23c4d`); else microseconds (`a1b2c3d4`).
        nanos: bool,
        /// The file is big-endian.
        big_endian: bool,
    },
    /// pcapng (its byte order may change from one section to the next).
    PcapNg,
}

/// The bytes of a capture: a read-only memory map of the file, or a buffer.
enum Backing {
    /// A mapped file.
    Map(memmap2::Mmap),
    /// Bytes in memory (from [`Capture::from_bytes`], or a file that cannot
    /// be mapped, such as a pipe).
    Owned(Vec<u8>),
}

impl Backing {
    /// All the bytes.
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// What the file header said.
#[derive(Clone, Copy, Debug)]
enum Header {
    /// Classic pcap.
    Pcap(PcapHeader),
    /// pcapng.
    PcapNg,
}

/// An opened capture file whose header has been checked.
pub struct Capture {
    /// The file name, as given (used in error messages).
    name: String,
    /// The file's bytes.
    data: Backing,
    /// The parsed file header.
    header: Header,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("name", &self.name)
            .field("len", &self.data.bytes().len())
            .field("format", &self.format())
            .finish()
    }
}

impl Capture {
    /// Opens a capture file: maps it into memory (or reads it, if it cannot
    /// be mapped) and checks its header. The file name in errors is `path`
    /// as given.
    ///
    /// The file must not be modified or truncated while the `Capture` lives
    /// (for a capture still being written, copy it first or use
    /// [`Capture::from_bytes`]).
    pub fn open(path: &Path) -> Result<Capture, CaptureError> {
        let name = path.display().to_string();
        let io = |source: std::io::Error| CaptureError::Io {
            file: name.clone(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let data = if meta.is_file() && meta.len() > 0 {
            // Not populated at open (`MAP_POPULATE` took 0.1 s per GB before the first
            // record could be read): the pages are faulted in as they are read, by
            // replay's reader thread, while the tracking thread works; the
            // sequential-access hint below makes the kernel read ahead.
            let options = memmap2::MmapOptions::new();
            // SAFETY: `Mmap::map` is unsafe because the bytes of a file-backed
            // map can change under the `&[u8]` slices handed out, if another
            // process writes or truncates the file while it is mapped (Rust
            // assumes bytes behind a shared reference do not change, and
            // reading pages past a truncated end raises SIGBUS). The map is
            // read-only and private to this `Capture`; its length is fixed at
            // map time and every slice is bounds-checked against it, so even
            // a concurrent writer could only make the parser see different
            // bytes, never read outside the map. Capture files are inputs
            // that nothing rewrites while they are replayed; callers must not
            // open a file that is still being written (documented on `open`).
            let map = unsafe { options.map(&file) };
            match map {
                Ok(map) => {
                    #[cfg(unix)]
                    {
                        // Only a hint: reading goes on if the kernel refuses it.
                        let _ = map.advise(memmap2::Advice::Sequential);
                    }
                    Backing::Map(map)
                }
                Err(_) => Backing::Owned(read_all(&mut file).map_err(io)?),
            }
        } else {
            // Empty files, pipes and other special files cannot be mapped.
            Backing::Owned(read_all(&mut file).map_err(io)?)
        };
        Capture::new(name, data)
    }

    /// A capture from bytes in memory (for tests and fuzzing); `name` is used
    /// in error messages.
    pub fn from_bytes(name: &str, data: Vec<u8>) -> Result<Capture, CaptureError> {
        Capture::new(name.to_owned(), Backing::Owned(data))
    }

    /// Checks the magic number and the file header.
    fn new(name: String, data: Backing) -> Result<Capture, CaptureError> {
        let bytes = data.bytes();
        let header = match bytes.first_chunk::<4>() {
            Some(m) if *m == pcapng::SHB_MAGIC_BYTES => {
                PcapNgReader::check_first_section(&name, bytes)?;
                Header::PcapNg
            }
            Some(
                [0xA1, 0xB2, 0xC3, 0xD4]
                | [0xD4, 0xC3, 0xB2, 0xA1]
                | [0xA1, 0xB2, 0x3C, 0x4D]
                | [0x4D, 0x3C, 0xB2, 0xA1]
                | [0xA1, 0xB2, 0xCD, 0x34]
                | [0x34, 0xCD, 0xB2, 0xA1],
            ) => Header::Pcap(pcap::parse_header(&name, bytes)?),
            _ => {
                return Err(CaptureError::BadMagic {
                    file: name,
                    found: describe_magic(bytes),
                })
            }
        };
        Ok(Capture { name, data, header })
    }

    /// The file name, as given to [`Capture::open`] or [`Capture::from_bytes`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The container format.
    pub fn format(&self) -> Format {
        match self.header {
            Header::Pcap(h) => Format::Pcap {
                nanos: h.nanos,
                big_endian: h.big_endian,
            },
            Header::PcapNg => Format::PcapNg,
        }
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    /// A cursor over the packet records, from the first.
    pub fn records(&self) -> Records<'_> {
        let (state, pos) = match self.header {
            Header::Pcap(h) => (State::Pcap(PcapReader::new(h)), pcap::FILE_HEADER_LEN),
            Header::PcapNg => (State::PcapNg(PcapNgReader::new()), 0),
        };
        Records {
            name: &self.name,
            data: self.data.bytes(),
            pos,
            index: 0,
            done: false,
            state,
        }
    }
}

/// Reads a whole file into memory.
fn read_all(file: &mut File) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    file.read_to_end(&mut v)?;
    Ok(v)
}

/// Describes what a file that is not a capture starts with.
fn describe_magic(bytes: &[u8]) -> String {
    let Some(m) = bytes.first_chunk::<4>() else {
        return format!("file is only {} bytes long, no magic number", bytes.len());
    };
    let hint = match m {
        [0x1F, 0x8B, ..] => " (gzip-compressed? decompress it first)",
        [0x28, 0xB5, 0x2F, 0xFD] => " (zstd-compressed? decompress it first)",
        [b'B', b'Z', b'h', _] => " (bzip2-compressed? decompress it first)",
        [0xFD, b'7', b'z', b'X'] => " (xz-compressed? decompress it first)",
        [b'P', b'K', 3, 4] => " (zip archive?)",
        _ => "",
    };
    format!("unknown magic 0x{:08x}{hint}", u32::from_be_bytes(*m))
}

/// Per-format cursor state.
#[derive(Debug)]
enum State {
    /// Classic pcap.
    Pcap(PcapReader),
    /// pcapng.
    PcapNg(PcapNgReader),
}

/// A packet record before link-layer decoding.
#[derive(Debug)]
pub(crate) struct RawRecord<'a> {
    /// Nanoseconds since the epoch.
    pub(crate) ts_ns: u64,
    /// pcapng interface id (0 for pcap).
    pub(crate) interface: u32,
    /// The interface's link type.
    pub(crate) link_type: u32,
    /// Length on the wire.
    pub(crate) orig_len: u32,
    /// Captured bytes.
    pub(crate) frame: &'a [u8],
    /// Byte order of the file / section (the capturing host's).
    pub(crate) big_endian: bool,
}

/// A streaming cursor over the packet records of a [`Capture`].
///
/// After an error it yields nothing more. It is also an [`Iterator`] of
/// `Result<Record, CaptureError>`.
pub struct Records<'a> {
    /// File name for errors.
    name: &'a str,
    /// The file's bytes.
    data: &'a [u8],
    /// Byte offset of the next record or block.
    pos: usize,
    /// Index of the next packet record.
    index: u64,
    /// Set after an error.
    done: bool,
    /// Format-specific state.
    state: State,
}

/// One packet record of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// 0-based number of this record among all the packet records of the
    /// file (IP or not).
    pub index: u64,
    /// Timestamp, nanoseconds since the Unix epoch (0 for pcapng Simple
    /// Packet Blocks, which have none).
    pub ts_ns: u64,
    /// pcapng interface id within its section (0 for classic pcap).
    pub interface: u32,
    /// Link type of the interface (`LINKTYPE_*` value).
    pub link_type: u32,
    /// Length of the packet on the wire (may exceed `frame.len()`).
    pub orig_len: u32,
    /// The captured bytes, link-layer header included.
    pub frame: &'a [u8],
    /// The IP packet inside `frame`, or why there is none.
    pub payload: Payload<'a>,
}

impl<'a> Records<'a> {
    /// The next packet record; `None` at the end of the file or after an
    /// error.
    #[inline]
    pub fn next_record(&mut self) -> Option<Result<Record<'a>, CaptureError>> {
        if self.done {
            return None;
        }
        let raw = match &mut self.state {
            State::Pcap(r) => r.next(self.name, self.data, &mut self.pos),
            State::PcapNg(r) => r.next(self.name, self.data, &mut self.pos),
        };
        match raw {
            Some(Ok(raw)) => {
                let index = self.index;
                self.index += 1;
                Some(Ok(Record {
                    index,
                    ts_ns: raw.ts_ns,
                    interface: raw.interface,
                    link_type: raw.link_type,
                    orig_len: raw.orig_len,
                    frame: raw.frame,
                    payload: link::decode(raw.link_type, raw.frame, raw.big_endian),
                }))
            }
            Some(Err(e)) => {
                self.done = true;
                Some(Err(*e))
            }
            None => {
                self.done = true;
                None
            }
        }
    }

    /// Byte offset of the next record or block to read.
    pub fn offset(&self) -> u64 {
        error::u64_of(self.pos)
    }
}

impl std::fmt::Debug for Records<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("file", &self.name)
            .field("offset", &self.pos)
            .field("index", &self.index)
            .field("done", &self.done)
            .finish()
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, CaptureError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

impl std::iter::FusedIterator for Records<'_> {}

#[cfg(test)]
mod tests {
    use super::{Backing, Capture};

    /// A pcap file with one raw-IP record.
    fn sample() -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&101u32.to_le_bytes());
        v.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0, 20, 0, 0, 0, 20, 0, 0, 0]);
        v.extend_from_slice(&[0x45; 20]);
        v
    }

    #[test]
    fn open_uses_a_memory_map_for_regular_files() {
        let path =
            std::env::temp_dir().join(format!("ctrack-capture-unit-{}.pcap", std::process::id()));
        std::fs::write(&path, sample()).expect("write temp file");
        let cap = Capture::open(&path).expect("opens");
        assert!(matches!(cap.data, Backing::Map(_)), "mapped");
        assert_eq!(cap.bytes(), &sample()[..]);
        let rec = cap.records().next().expect("a record").expect("ok");
        assert_eq!((rec.ts_ns, rec.frame.len()), (1_000_002_000, 20));
        assert_eq!(cap.records().count(), 1);
        drop(cap);
        std::fs::remove_file(&path).expect("remove temp file");
    }

    #[test]
    fn debug_output_does_not_dump_the_bytes() {
        let cap = Capture::from_bytes("dbg.pcap", sample()).expect("opens");
        assert!(matches!(cap.data, Backing::Owned(_)));
        let text = format!("{cap:?} {:?}", cap.records());
        assert!(text.len() < 300, "{text}");
        assert!(text.contains("dbg.pcap"));
    }
}
