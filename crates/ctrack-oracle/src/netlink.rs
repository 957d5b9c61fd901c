//! Netlink primitives shared by the NFLOG reader (`nflog.rs`) and the NFQUEUE client
//! (`nfqueue.rs`): the `NETLINK_NETFILTER` socket (open, send to the kernel, wait and
//! drain), header length, alignment, native-endian field reads and the attribute
//! iterator. Every read is bounds-checked: a short or corrupt message gives `None` or
//! an error, never a panic.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// `NLA_TYPE_MASK`: an attribute's type without the nested/byte-order flag bits.
pub(crate) const NLA_TYPE_MASK: u16 = !(1 << 15 | 1 << 14);
/// `NLMSG_HDRLEN`: the netlink message header's length.
pub(crate) const NLMSG_HDRLEN: usize = 16;

/// `NLA_ALIGN` / `NLMSG_ALIGN`: round up to a multiple of 4.
pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The native-endian `u16` at `at`, if the bytes are there.
pub(crate) fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The native-endian `u32` at `at`, if the bytes are there.
pub(crate) fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Iterates over netlink attributes: (type without flag bits, data). A malformed
/// attribute ends the iteration with an error.
pub(crate) fn attrs(mut b: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), String>> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let (Some(len), Some(ty)) = (u16_ne(b, 0), u16_ne(b, 2)) else {
            return None;
        };
        let len = usize::from(len);
        if len < 4 || len > b.len() {
            b = &[];
            return Some(Err(format!("bad attribute length {len}")));
        }
        let data = &b[4..len];
        b = b.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((ty & NLA_TYPE_MASK, data)))
    })
}

/// Why draining the socket stopped.
#[derive(Debug)]
pub(crate) enum RecvError {
    /// poll(2) or recv(2) failed.
    Io(io::Error),
    /// `ENOBUFS`: the receive buffer overran, messages were lost.
    Overrun,
    /// A datagram did not parse.
    Parse(String),
}

/// A raw `NETLINK_NETFILTER` socket, bound in the calling thread's network namespace.
#[derive(Debug)]
pub(crate) struct NfnlFd {
    fd: OwnedFd,
}

impl NfnlFd {
    /// Opens and binds the socket; with `rcvbuf`, a receive buffer of that many bytes
    /// (forced past the sysctl limit when allowed, else as large as the limit permits).
    pub(crate) fn open(rcvbuf: Option<libc::c_int>) -> io::Result<NfnlFd> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        for opt in rcvbuf.map_or(&[][..], |_| &[libc::SO_RCVBUFFORCE, libc::SO_RCVBUF][..]) {
            let rcvbuf = rcvbuf.unwrap_or_default();
            // SAFETY: `rcvbuf` is a c_int that outlives the call; its size is passed.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    *opt,
                    (&rcvbuf as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
        }
        // SAFETY: all-zero is a valid sockaddr_nl (pid 0: the kernel assigns one).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a valid sockaddr_nl and its size is passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NfnlFd { fd })
    }

    /// Sends one message to the kernel.
    pub(crate) fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: all-zero is a valid sockaddr_nl: the kernel (pid 0).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` and `kernel` are valid for the given lengths during the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until `deadline` for a datagram, then reads every queued one into `buf`
    /// and hands it to `each`. Returns whether anything was read (an interrupted wait
    /// reads nothing).
    pub(crate) fn drain(
        &self,
        buf: &mut [u8],
        deadline: Instant,
        mut each: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<bool, RecvError> {
        let ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .min(i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(RecvError::Io(e))
            };
        }
        if r == 0 {
            return Ok(false);
        }
        let mut any = false;
        loop {
            // SAFETY: the buffer is valid for its length during the call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(any),
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => return Err(RecvError::Overrun),
                    _ => return Err(RecvError::Io(e)),
                }
            }
            any = true;
            let got = buf.get(..n as usize).unwrap_or(&[]);
            each(got).map_err(RecvError::Parse)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_bounds() {
        // Two attributes: type 1 with 2 bytes (padded to 8), nested-flagged type 2 with 4.
        let mut b = Vec::new();
        b.extend_from_slice(&6u16.to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(&[0xab, 0xcd, 0, 0]);
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&(2u16 | 1 << 15).to_ne_bytes());
        b.extend_from_slice(&7u32.to_ne_bytes());
        let got: Vec<_> = attrs(&b).collect::<Result<_, _>>().expect("well formed");
        assert_eq!(
            got,
            vec![(1, &[0xab, 0xcd][..]), (2, &7u32.to_ne_bytes()[..])]
        );
        // A length past the end is an error, not a panic; truncations end quietly.
        let mut bad = b.clone();
        bad[0] = 200;
        assert!(attrs(&bad).next().is_some_and(|r| r.is_err()));
        for n in 0..b.len() {
            let _ = attrs(&b[..n]).count();
        }
        assert_eq!(u16_ne(&[1], 0), None);
        assert_eq!(u32_ne(&[0; 4], usize::MAX - 1), None);
        assert_eq!(align4(5), 8);
    }
}
