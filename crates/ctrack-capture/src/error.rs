//! The one error type of this crate.
//!
//! Every variant names the capture file, and every variant about the file's
//! content gives the byte offset (from the start of the file) of the header,
//! record or block where the problem is.

/// An error while opening or reading a capture.
///
/// The display form always starts with the file name, for example
/// `zeek__x.pcap: truncated record at byte offset 1234 (header says 1514 bytes, 60 remain)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file could not be opened, mapped or read.
    #[error("{file}: cannot read the file: {source}")]
    Io {
        /// The file, as given to [`crate::Capture::open`].
        file: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with a pcap or pcapng magic number.
    #[error("{file}: not a pcap or pcapng file: {found} at byte offset 0")]
    BadMagic {
        /// The file name.
        file: String,
        /// What was found instead, for example `magic 0x1f8b0800 (gzip-compressed?)`.
        found: String,
    },

    /// The file starts with a magic number of a pcap variant this crate does
    /// not read.
    #[error("{file}: unsupported capture format at byte offset 0: {detail}")]
    Unsupported {
        /// The file name.
        file: String,
        /// Which variant was found.
        detail: String,
    },

    /// A file header, record header or block header is cut short by the end
    /// of the file.
    #[error(
        "{file}: truncated {what} at byte offset {offset} ({needed} bytes needed, {remain} remain)"
    )]
    Truncated {
        /// The file name.
        file: String,
        /// What is cut short (`pcap file header`, `record header`, `block header`).
        what: &'static str,
        /// Byte offset of the start of that header.
        offset: u64,
        /// How many bytes that header needs.
        needed: u64,
        /// How many bytes remain in the file from `offset`.
        remain: u64,
    },

    /// A record or block whose own length field runs past the end of the
    /// file: the file was cut in the middle of it.
    #[error("{file}: truncated {what} at byte offset {offset} (header says {needed} bytes, {remain} remain)")]
    TruncatedRecord {
        /// The file name.
        file: String,
        /// `record` (classic pcap) or `block` (pcapng).
        what: &'static str,
        /// Byte offset of the start of the record or block.
        offset: u64,
        /// The length its header announces (packet data for pcap, whole block for pcapng).
        needed: u64,
        /// How many bytes remain in the file for it.
        remain: u64,
    },

    /// A header or block whose fields are impossible (bad lengths, unknown
    /// interface, unsupported version...). Reading stops here: what follows
    /// cannot be located reliably.
    #[error("{file}: corrupt {what} at byte offset {offset}: {detail}")]
    Corrupt {
        /// The file name.
        file: String,
        /// What is corrupt (`record header`, `block`, `section header block`...).
        what: &'static str,
        /// Byte offset of the start of that record or block.
        offset: u64,
        /// What is wrong with it.
        detail: String,
    },
}

impl CaptureError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            CaptureError::Io { file, .. }
            | CaptureError::BadMagic { file, .. }
            | CaptureError::Unsupported { file, .. }
            | CaptureError::Truncated { file, .. }
            | CaptureError::TruncatedRecord { file, .. }
            | CaptureError::Corrupt { file, .. } => file,
        }
    }

    /// The byte offset where the problem is, when the error is about the
    /// file's content (`None` for I/O errors).
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Io { .. } => None,
            CaptureError::BadMagic { .. } | CaptureError::Unsupported { .. } => Some(0),
            CaptureError::Truncated { offset, .. }
            | CaptureError::TruncatedRecord { offset, .. }
            | CaptureError::Corrupt { offset, .. } => Some(*offset),
        }
    }

    /// True when the error means the file ends early (it was cut short),
    /// as opposed to a damaged or unreadable file.
    pub fn is_truncation(&self) -> bool {
        matches!(
            self,
            CaptureError::Truncated { .. } | CaptureError::TruncatedRecord { .. }
        )
    }
}

/// Widens a `usize` byte count or offset for an error message.
pub(crate) fn u64_of(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
