//! Injection: `AF_PACKET` sockets on the client's and the server's veth end, the Ethernet
//! header rebuilt for the firewall, and the barrier frames that follow each packet.
//!
//! Ordering argument: veth hands a transmitted frame to the peer with `netif_rx`, which
//! queues it on the backlog of the CPU that sent it. The injecting thread is pinned to
//! one CPU, so a packet and its barrier sit in one queue in order, and the softirq that
//! drains it handles the packet completely (conntrack, forwarding, every log) before it
//! gets to the barrier.

use crate::error::OracleError;
use crate::netns::{self, NetnsSet, Ns};
use crate::nft::BARRIER_ETHERTYPE;
use crate::Side;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BARRIER_MAGIC: [u8; 8] = *b"ctkobar\0";

/// One injection point.
struct Port {
    fd: OwnedFd,
    src: [u8; 6],
    dst: [u8; 6],
}

impl Port {
    /// Opens a send-only packet socket on `ifname`; call inside the namespace.
    fn open_here(ifname: &str, src: [u8; 6], dst: [u8; 6]) -> io::Result<Port> {
        let name = CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // Protocol 0: the socket receives nothing, it only sends.
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Port { fd, src, dst })
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is valid for its length during the call.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
            return Err(io::Error::other(format!(
                "short send: {n} of {} bytes",
                frame.len()
            )));
        }
        Ok(())
    }
}

/// The two injection points of a run.
pub(crate) struct Injector {
    client: Port,
    server: Port,
    frame: Vec<u8>,
    nonce: u32,
}

impl Injector {
    /// Opens the sockets in the client and server namespaces of `ns`.
    pub(crate) fn open(ns: &NetnsSet, nonce: u32) -> Result<Injector, OracleError> {
        let open = |which: Ns, src, dst| {
            netns::in_netns(ns.file(which), || Port::open_here(netns::PEER_IF, src, dst))
                .and_then(|r| r)
                .map_err(|e| OracleError::io(format!("AF_PACKET socket in {}", ns.name(which)), e))
        };
        Ok(Injector {
            client: open(Ns::Client, netns::CLIENT_MAC, netns::FW_CLIENT_MAC)?,
            server: open(Ns::Server, netns::SERVER_MAC, netns::FW_SERVER_MAC)?,
            frame: Vec::with_capacity(2048),
            nonce,
        })
    }

    fn port(&self, side: Side) -> &Port {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    fn build(&mut self, side: Side, ethertype: u16, payload: &[u8]) {
        let (src, dst) = {
            let p = self.port(side);
            (p.src, p.dst)
        };
        self.frame.clear();
        self.frame.extend_from_slice(&dst);
        self.frame.extend_from_slice(&src);
        self.frame.extend_from_slice(&ethertype.to_be_bytes());
        self.frame.extend_from_slice(payload);
    }

    /// Sends one IP packet from `side`.
    pub(crate) fn send_packet(&mut self, side: Side, l3: &[u8]) -> io::Result<()> {
        self.build(side, ethertype_for(l3), l3);
        self.port(side).send(&self.frame)
    }

    /// Sends barrier `seq` from `side`.
    pub(crate) fn send_barrier(&mut self, side: Side, seq: u64) -> io::Result<()> {
        let payload = barrier_payload(self.nonce, seq);
        self.build(side, BARRIER_ETHERTYPE, &payload);
        self.port(side).send(&self.frame)
    }
}

/// 0x86dd for a version-6 packet, 0x0800 otherwise.
pub(crate) fn ethertype_for(l3: &[u8]) -> u16 {
    match l3.first().map(|b| b >> 4) {
        Some(6) => 0x86dd,
        _ => 0x0800,
    }
}

fn barrier_payload(nonce: u32, seq: u64) -> [u8; 20] {
    let mut p = [0u8; 20];
    p[..8].copy_from_slice(&BARRIER_MAGIC);
    p[8..12].copy_from_slice(&nonce.to_be_bytes());
    p[12..20].copy_from_slice(&seq.to_be_bytes());
    p
}

/// The sequence number of a barrier whose logged payload is `payload`, if it is one of
/// this run's (`nonce`).
pub(crate) fn barrier_seq(payload: &[u8], nonce: u32) -> Option<u64> {
    let p = payload.get(..20)?;
    if p[..8] != BARRIER_MAGIC || p[8..12] != nonce.to_be_bytes() {
        return None;
    }
    Some(u64::from_be_bytes(p[12..20].try_into().ok()?))
}

/// Pins the calling thread to the CPU it is running on; returns that CPU.
pub(crate) fn pin_to_current_cpu() -> io::Result<usize> {
    // SAFETY: no arguments; returns the CPU or -1.
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 {
        return Err(io::Error::last_os_error());
    }
    let cpu = cpu as usize;
    // SAFETY: all-zero is an empty cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` comes from the kernel, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 = the calling thread; `set` is valid for its size.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barrier_round_trip() {
        let p = barrier_payload(0xdead_beef, 42);
        assert_eq!(barrier_seq(&p, 0xdead_beef), Some(42));
        assert_eq!(barrier_seq(&p, 1), None, "another run's barrier");
        assert_eq!(barrier_seq(&p[..19], 0xdead_beef), None);
        let mut longer = p.to_vec();
        longer.extend_from_slice(&[0; 30]);
        assert_eq!(barrier_seq(&longer, 0xdead_beef), Some(42));
    }

    #[test]
    fn ethertype_by_version() {
        assert_eq!(ethertype_for(&[0x45]), 0x0800);
        assert_eq!(ethertype_for(&[0x60]), 0x86dd);
        assert_eq!(ethertype_for(&[0x50]), 0x0800);
        assert_eq!(ethertype_for(&[]), 0x0800);
    }
}
