//! A minimal NFQUEUE client over a raw `NETLINK_NETFILTER` socket (no libnetfilter_queue).
//!
//! Netfilter hands a packet to userspace when a rule returns `NF_QUEUE` (nft `queue`,
//! or the xtables `NFQUEUE` target, see [`add_xt_queue_rule`]). The packet stays inside
//! the kernel, in the middle of its hook traversal, **with its conntrack attached**, until
//! a verdict names it: [`Verdict::Accept`] resumes the traversal at the next hook
//! function, [`Verdict::Drop`] frees it. A queued NEW packet therefore holds an
//! unconfirmed conntrack (and the NAT bindings made so far) for as long as userspace
//! wants — which is how the oracle makes two packets of one flow race to confirm
//! ([`crate::race`]).
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use ctrack_oracle::nfqueue::{CopyMode, Queue, Verdict};
//! use std::time::Duration;
//! let mut q = Queue::open(7, CopyMode::Packet(0xffff))?; // in the namespace that queues
//! while let Some(p) = q.recv(Duration::from_secs(1))? {
//!     let verdict = if p.payload.len() > 20 { Verdict::Accept } else { Verdict::Drop };
//!     q.verdict(p.id, verdict)?;
//! }
//! # Ok(()) }
//! ```
//!
//! ## Wire format (`include/uapi/linux/netfilter/nfnetlink_queue.h`)
//! Netlink headers are in host order, everything inside the nfnetlink payload in big
//! endian. A message is `nlmsghdr` (16 bytes), `nfgenmsg` (family, version 0, `res_id` =
//! the queue number), then attributes (`nla_len`, `nla_type`, data padded to 4 bytes).
//! Types are `NFNL_SUBSYS_QUEUE (3) << 8 | msg`:
//!
//! | message | direction | attributes used here |
//! |---|---|---|
//! | `NFQNL_MSG_CONFIG` (2) | to the kernel | `NFQA_CFG_CMD` {u8 command, pad, be16 pf}, `NFQA_CFG_PARAMS` {be32 copy_range, u8 copy_mode} |
//! | `NFQNL_MSG_PACKET` (0) | from the kernel | `NFQA_PACKET_HDR` {be32 id, be16 hw_protocol, u8 hook}, `NFQA_MARK`, `NFQA_IFINDEX_INDEV`/`OUTDEV` (be32), `NFQA_PAYLOAD`, `NFQA_CAP_LEN` |
//! | `NFQNL_MSG_VERDICT` (1) | to the kernel | `NFQA_VERDICT_HDR` {be32 verdict, be32 id} |
//!
//! Queue instances are per network namespace: open the [`Queue`] on a thread that is in
//! the namespace whose packets are queued (the socket stays bound to it). Only one socket
//! can bind a given queue number in a namespace. Since Linux 3.8 a bound queue receives
//! packets of every family (`NFQNL_CFG_CMD_PF_BIND` is a no-op), so [`Queue::open`] takes
//! no family. Closing the socket destroys the instance; packets still queued are dropped.

use crate::netlink::{align4, attrs, u16_ne, u32_ne, NfnlFd, RecvError, NLMSG_HDRLEN};
use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;

const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_IFINDEX_INDEV: u16 = 5;
const NFQA_IFINDEX_OUTDEV: u16 = 6;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CAP_LEN: u16 = 13;

const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLA_F_NESTED: u16 = 1 << 15;

/// How much of each packet the kernel copies into [`QueuedPacket::payload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// Metadata only: no payload.
    Meta,
    /// Up to this many bytes from the network header on (the kernel caps it at 65531).
    Packet(u32),
}

/// What to do with a queued packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `NF_ACCEPT`: resume the hook traversal after the rule that queued it.
    Accept,
    /// `NF_DROP`: free the packet (and an unconfirmed conntrack it holds).
    Drop,
}

impl Verdict {
    /// The netfilter verdict code (`NF_DROP` 0, `NF_ACCEPT` 1).
    pub fn code(self) -> u32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
        }
    }
}

/// One packet handed to userspace (`NFQNL_MSG_PACKET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPacket {
    /// The queue number it arrived on (`nfgenmsg.res_id`).
    pub queue: u16,
    /// The packet id to give to [`Queue::verdict`].
    pub id: u32,
    /// The link-layer protocol (ethertype: 0x0800 IPv4, 0x86dd IPv6).
    pub hw_protocol: u16,
    /// The netfilter hook it was queued at (0 PRE_ROUTING, 1 LOCAL_IN, 2 FORWARD,
    /// 3 LOCAL_OUT, 4 POST_ROUTING).
    pub hook: u8,
    /// The packet mark (`NFQA_MARK`), if non-zero.
    pub mark: Option<u32>,
    /// Input interface index, if any.
    pub indev: Option<u32>,
    /// Output interface index, if any.
    pub outdev: Option<u32>,
    /// The packet from the network header on, as rewritten so far (NAT already applied
    /// by earlier hooks), possibly truncated to the copy range.
    pub payload: Vec<u8>,
    /// The packet's full length when the payload was truncated (`NFQA_CAP_LEN`).
    pub cap_len: Option<u32>,
}

/// One item of a netlink datagram read from an nfnetlink socket.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Packet(QueuedPacket),
    /// An acknowledgement (errno 0) or error for request `seq`.
    Ack {
        seq: u32,
        errno: i32,
    },
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// A netlink message under construction: header, `nfgenmsg`, attributes (nested ones
/// through [`Msg::nest`]).
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    buf: Vec<u8>,
    /// Offsets of the open nested attributes.
    open: Vec<usize>,
}

impl Msg {
    /// A message of type `ty` with `flags`, sequence `seq` and the nfgenmsg (`family`,
    /// version 0, `res_id` big endian).
    pub(crate) fn new(ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Msg {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[family, 0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
        Msg {
            buf,
            open: Vec::new(),
        }
    }

    /// Appends an attribute.
    pub(crate) fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// Opens a nested attribute; close it with [`Msg::end`].
    pub(crate) fn nest(&mut self, ty: u16) -> &mut Msg {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Closes the innermost nested attribute.
    pub(crate) fn end(&mut self) -> &mut Msg {
        if let Some(at) = self.open.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The finished message (length filled in, open nests closed).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        while !self.open.is_empty() {
            self.end();
        }
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

const REQ_ACK: u16 = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;

/// `NFQNL_MSG_CONFIG`: bind queue `num` with a copy mode.
fn config_msg(seq: u32, num: u16, copy: CopyMode) -> Vec<u8> {
    let (mode, range) = match copy {
        CopyMode::Meta => (NFQNL_COPY_META, 0),
        CopyMode::Packet(n) => (NFQNL_COPY_PACKET, n),
    };
    let mut params = range.to_be_bytes().to_vec();
    params.push(mode);
    let mut m = Msg::new(
        NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_CONFIG,
        REQ_ACK,
        seq,
        libc::AF_UNSPEC as u8,
        num,
    );
    m.attr(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0])
        .attr(NFQA_CFG_PARAMS, &params);
    m.finish()
}

/// `NFQNL_MSG_VERDICT` for packet `id` of queue `num`.
fn verdict_msg(seq: u32, num: u16, id: u32, verdict: Verdict) -> Vec<u8> {
    let mut hdr = verdict.code().to_be_bytes().to_vec();
    hdr.extend_from_slice(&id.to_be_bytes());
    let mut m = Msg::new(
        NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_VERDICT,
        REQ_ACK,
        seq,
        libc::AF_UNSPEC as u8,
        num,
    );
    m.attr(NFQA_VERDICT_HDR, &hdr);
    m.finish()
}

fn parse_packet(msg: &[u8]) -> Result<QueuedPacket, String> {
    let queue = msg
        .get(NLMSG_HDRLEN + 2..NLMSG_HDRLEN + 4)
        .map(|g| u16::from_be_bytes([g[0], g[1]]))
        .ok_or("packet message without nfgenmsg")?;
    let mut p = QueuedPacket {
        queue,
        id: 0,
        hw_protocol: 0,
        hook: 0,
        mark: None,
        indev: None,
        outdev: None,
        payload: Vec::new(),
        cap_len: None,
    };
    let mut have_hdr = false;
    for a in attrs(msg.get(NLMSG_HDRLEN + 4..).unwrap_or(&[])) {
        let (ty, data) = a?;
        match ty {
            NFQA_PACKET_HDR => {
                let (Some(id), Some(proto), Some(&hook)) =
                    (be32(data), data.get(4..6), data.get(6))
                else {
                    return Err(format!("short NFQA_PACKET_HDR ({} bytes)", data.len()));
                };
                p.id = id;
                p.hw_protocol = u16::from_be_bytes([proto[0], proto[1]]);
                p.hook = hook;
                have_hdr = true;
            }
            NFQA_MARK => p.mark = be32(data).filter(|&m| m != 0),
            NFQA_IFINDEX_INDEV => p.indev = be32(data),
            NFQA_IFINDEX_OUTDEV => p.outdev = be32(data),
            NFQA_PAYLOAD => p.payload = data.to_vec(),
            NFQA_CAP_LEN => p.cap_len = be32(data),
            _ => {}
        }
    }
    if !have_hdr {
        return Err("packet message without NFQA_PACKET_HDR".to_owned());
    }
    Ok(p)
}

/// Parses one datagram into `out`. Unknown message types are skipped; a malformed
/// message is an error (the items before it are kept).
fn parse_datagram(mut buf: &[u8], out: &mut Vec<Item>) -> Result<(), String> {
    while !buf.is_empty() {
        let (Some(len), Some(ty), Some(seq)) = (u32_ne(buf, 0), u16_ne(buf, 4), u32_ne(buf, 8))
        else {
            return Err(format!("truncated netlink header ({} bytes)", buf.len()));
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(format!(
                "bad netlink message length {len} ({} bytes left)",
                buf.len()
            ));
        }
        let msg = &buf[..len];
        match ty {
            NLMSG_NOOP | NLMSG_DONE => {}
            NLMSG_ERROR => {
                let errno = u32_ne(msg, NLMSG_HDRLEN).ok_or("short NLMSG_ERROR")? as i32;
                out.push(Item::Ack {
                    seq,
                    errno: errno.wrapping_neg(),
                });
            }
            NLMSG_OVERRUN => return Err("netlink overrun: queued packets lost".to_owned()),
            t if t == NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET => {
                out.push(Item::Packet(parse_packet(msg)?));
            }
            _ => {}
        }
        buf = buf.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(())
}

/// A raw `NETLINK_NETFILTER` socket with request/acknowledgement handling.
struct NfnlSocket {
    fd: NfnlFd,
    buf: Vec<u8>,
    seq: u32,
    /// Items read while waiting for something else.
    pending: VecDeque<Item>,
}

impl NfnlSocket {
    /// Opens and binds the socket in the calling thread's network namespace (with a
    /// receive buffer of `rcvbuf` bytes when given).
    fn open(rcvbuf: Option<libc::c_int>) -> io::Result<NfnlSocket> {
        Ok(NfnlSocket {
            fd: NfnlFd::open(rcvbuf)?,
            buf: vec![0; 128 * 1024],
            seq: 0,
            pending: VecDeque::new(),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        self.fd.send(msg)
    }

    /// Waits until `deadline` for a datagram, then reads every queued one into
    /// `pending`. Returns whether anything was read.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        let pending = &mut self.pending;
        self.fd
            .drain(&mut self.buf, deadline, |d| {
                let mut items = Vec::new();
                let parsed = parse_datagram(d, &mut items);
                pending.extend(items);
                parsed
            })
            .map_err(|e| match e {
                RecvError::Io(e) => e,
                RecvError::Overrun => {
                    io::Error::other("netlink receive buffer overrun: queued packets were lost")
                }
                RecvError::Parse(m) => io::Error::other(m),
            })
    }

    /// Sends `msg` (a request with NLM_F_ACK and sequence `seq`) and waits up to 2 s for
    /// its acknowledgement; other items read meanwhile stay pending.
    fn request(&mut self, msg: &[u8], seq: u32, what: &str) -> io::Result<()> {
        self.send(msg)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pos = self
                .pending
                .iter()
                .position(|i| matches!(i, Item::Ack { seq: s, .. } if *s == seq));
            if let Some(Item::Ack { errno, .. }) = pos.and_then(|p| self.pending.remove(p)) {
                return match errno {
                    0 => Ok(()),
                    e => Err(io::Error::new(
                        io::Error::from_raw_os_error(e).kind(),
                        format!("{what}: {}", io::Error::from_raw_os_error(e)),
                    )),
                };
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what}: no acknowledgement from the kernel"),
                ));
            }
            self.fill(deadline)?;
        }
    }
}

/// A bound NFQUEUE queue of one network namespace.
pub struct Queue {
    sock: NfnlSocket,
    num: u16,
}

impl Queue {
    /// Opens a netlink socket in the calling thread's network namespace and binds queue
    /// `num` with copy mode `copy`. Fails with `EBUSY`-like errors if another socket has
    /// the queue, `EPERM` without CAP_NET_ADMIN.
    pub fn open(num: u16, copy: CopyMode) -> io::Result<Queue> {
        let mut sock = NfnlSocket::open(Some(4 << 20))?;
        let seq = sock.next_seq();
        sock.request(
            &config_msg(seq, num, copy),
            seq,
            &format!("binding NFQUEUE {num}"),
        )?;
        Ok(Queue { sock, num })
    }

    /// The queue number.
    pub fn num(&self) -> u16 {
        self.num
    }

    /// The next queued packet, waiting at most `timeout`; `None` when none came.
    /// Malformed messages from the kernel are errors, not panics.
    pub fn recv(&mut self, timeout: Duration) -> io::Result<Option<QueuedPacket>> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(item) = self.sock.pending.pop_front() {
                match item {
                    Item::Packet(p) => return Ok(Some(p)),
                    // An error for a verdict we did not wait for: report it.
                    Item::Ack { errno, .. } if errno != 0 => {
                        return Err(io::Error::from_raw_os_error(errno))
                    }
                    Item::Ack { .. } => {}
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.sock.fill(deadline)?;
        }
    }

    /// Issues `verdict` for packet `id` and waits for the kernel's acknowledgement. The
    /// verdict is carried out inside this call: an accepted packet has finished its
    /// remaining hooks (up to its transmission or local delivery, including conntrack
    /// confirmation) when it returns. An unknown id is an error (`ENOENT`).
    pub fn verdict(&mut self, id: u32, verdict: Verdict) -> io::Result<()> {
        let seq = self.sock.next_seq();
        let msg = verdict_msg(seq, self.num, id, verdict);
        self.sock
            .request(&msg, seq, &format!("verdict for packet {id}"))
    }
}

/// Appends to nft chain `chain` of table `table` (family `family`: `libc::NFPROTO_IPV4`
/// for an `ip` table) a rule made of the xtables target `NFQUEUE` (revision 0, queue
/// `num`), through nft_compat: the same rule `iptables-nft -j NFQUEUE --queue-num N`
/// writes. For kernels without the native nft `queue` expression (`CONFIG_NFT_QUEUE`
/// unset, as on the oracle's machine) but with `CONFIG_NFT_COMPAT` and
/// `CONFIG_NETFILTER_XT_TARGET_NFQUEUE`. The chain must exist; match conditions go in
/// the rule that jumps to it. `nft list ruleset` prints the rule as an xt target.
/// Call on a thread inside the namespace.
pub fn add_xt_queue_rule(family: u8, table: &str, chain: &str, num: u16) -> io::Result<()> {
    let mut sock = NfnlSocket::open(None)?;
    let seq = sock.next_seq();
    let batch = xt_queue_batch(seq, family, table, chain, num);
    sock.request(
        &batch,
        seq + 1,
        &format!("adding an NFQUEUE {num} rule to {table} {chain}"),
    )
}

/// The nf_tables batch of [`add_xt_queue_rule`]: BATCH_BEGIN (`seq`), NEWRULE
/// (`seq + 1`, acknowledged), BATCH_END (`seq + 2`).
fn xt_queue_batch(seq: u32, family: u8, table: &str, chain: &str, num: u16) -> Vec<u8> {
    const NFNL_MSG_BATCH_BEGIN: u16 = 16;
    const NFNL_MSG_BATCH_END: u16 = 17;
    const NFT_MSG_NEWRULE: u16 = 6;
    const NFTA_RULE_TABLE: u16 = 1;
    const NFTA_RULE_CHAIN: u16 = 2;
    const NFTA_RULE_EXPRESSIONS: u16 = 4;
    const NFTA_LIST_ELEM: u16 = 1;
    const NFTA_EXPR_NAME: u16 = 1;
    const NFTA_EXPR_DATA: u16 = 2;
    const NFTA_TARGET_NAME: u16 = 1;
    const NFTA_TARGET_REV: u16 = 2;
    const NFTA_TARGET_INFO: u16 = 3;
    let cstr = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    };
    let req = libc::NLM_F_REQUEST as u16;
    let unspec = libc::AF_UNSPEC as u8;
    let mut out = Msg::new(NFNL_MSG_BATCH_BEGIN, req, seq, unspec, NFNL_SUBSYS_NFTABLES).finish();
    let flags = REQ_ACK | (libc::NLM_F_CREATE | libc::NLM_F_APPEND) as u16;
    let mut rule = Msg::new(
        NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE,
        flags,
        seq.wrapping_add(1),
        family,
        0,
    );
    // struct xt_NFQ_info { __u16 queuenum; } in host order, padded to XT_ALIGN (8).
    let mut info = num.to_ne_bytes().to_vec();
    info.resize(8, 0);
    rule.attr(NFTA_RULE_TABLE, &cstr(table))
        .attr(NFTA_RULE_CHAIN, &cstr(chain))
        .nest(NFTA_RULE_EXPRESSIONS)
        .nest(NFTA_LIST_ELEM)
        .attr(NFTA_EXPR_NAME, &cstr("target"))
        .nest(NFTA_EXPR_DATA)
        .attr(NFTA_TARGET_NAME, &cstr("NFQUEUE"))
        .attr(NFTA_TARGET_REV, &0u32.to_be_bytes())
        .attr(NFTA_TARGET_INFO, &info);
    out.extend(rule.finish());
    out.extend(
        Msg::new(
            NFNL_MSG_BATCH_END,
            req,
            seq.wrapping_add(2),
            unspec,
            NFNL_SUBSYS_NFTABLES,
        )
        .finish(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(ty: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(align4(m.len()), 0);
        m
    }

    /// A packet message as the kernel sends it.
    fn packet_fixture(queue: u16, id: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Msg::new(NFNL_SUBSYS_QUEUE << 8, 0, 0, 2, queue);
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&0x0800u16.to_be_bytes());
        hdr.push(4);
        m.attr(NFQA_PACKET_HDR, &hdr)
            .attr(NFQA_MARK, &0u32.to_be_bytes())
            .attr(NFQA_IFINDEX_INDEV, &3u32.to_be_bytes())
            .attr(NFQA_IFINDEX_OUTDEV, &4u32.to_be_bytes())
            .attr(4, &[0; 16]) // NFQA_TIMESTAMP: ignored
            .attr(NFQA_PAYLOAD, payload)
            .attr(NFQA_CAP_LEN, &1500u32.to_be_bytes());
        m.finish()
    }

    #[test]
    fn config_message_layout() {
        let m = config_msg(5, 0x0107, CopyMode::Packet(0xffff));
        assert_eq!(u32_ne(&m, 0), Some(m.len() as u32));
        assert_eq!(
            u16_ne(&m, 4),
            Some(0x0302),
            "NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG"
        );
        assert_eq!(u16_ne(&m, 6), Some(REQ_ACK));
        assert_eq!(u32_ne(&m, 8), Some(5));
        assert_eq!(
            &m[16..20],
            &[0, 0, 1, 7],
            "family, version, res_id big endian"
        );
        // NFQA_CFG_CMD {BIND, pad, pf 0}
        assert_eq!(
            (u16_ne(&m, 20), u16_ne(&m, 22)),
            (Some(8), Some(NFQA_CFG_CMD))
        );
        assert_eq!(&m[24..28], &[NFQNL_CFG_CMD_BIND, 0, 0, 0]);
        // NFQA_CFG_PARAMS {be32 range, u8 mode} padded to 4
        assert_eq!(
            (u16_ne(&m, 28), u16_ne(&m, 30)),
            (Some(9), Some(NFQA_CFG_PARAMS))
        );
        assert_eq!(&m[32..37], &[0, 0, 0xff, 0xff, NFQNL_COPY_PACKET]);
        assert_eq!(m.len(), 40);
        let meta = config_msg(1, 0, CopyMode::Meta);
        assert_eq!(&meta[32..37], &[0, 0, 0, 0, NFQNL_COPY_META]);
    }

    #[test]
    fn verdict_message_layout() {
        let m = verdict_msg(9, 7, 0x0102_0304, Verdict::Accept);
        assert_eq!(m.len(), 16 + 4 + 12);
        assert_eq!(u16_ne(&m, 4), Some(0x0301));
        assert_eq!(&m[16..20], &[0, 0, 0, 7]);
        assert_eq!(
            (u16_ne(&m, 20), u16_ne(&m, 22)),
            (Some(12), Some(NFQA_VERDICT_HDR))
        );
        assert_eq!(&m[24..32], &[0, 0, 0, 1, 1, 2, 3, 4]);
        let d = verdict_msg(9, 7, 1, Verdict::Drop);
        assert_eq!(&d[24..28], &[0, 0, 0, 0]);
    }

    #[test]
    fn parses_a_packet_an_ack_and_skips_noise() {
        let mut dgram = packet_fixture(7, 42, &[0x45, 0, 0, 28]);
        dgram.extend(nlmsg(NLMSG_DONE, 0, &[0; 4]));
        dgram.extend(nlmsg(0x0a05, 0, &[0; 8])); // another subsystem: skipped
        let mut err = (-libc::ENOENT).to_ne_bytes().to_vec();
        err.extend_from_slice(&[0; 16]);
        dgram.extend(nlmsg(NLMSG_ERROR, 3, &err));
        let mut out = Vec::new();
        parse_datagram(&dgram, &mut out).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        let Item::Packet(p) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!((p.queue, p.id, p.hw_protocol, p.hook), (7, 42, 0x0800, 4));
        assert_eq!((p.mark, p.indev, p.outdev), (None, Some(3), Some(4)));
        assert_eq!(p.payload, vec![0x45, 0, 0, 28]);
        assert_eq!(p.cap_len, Some(1500));
        assert_eq!(
            out[1],
            Item::Ack {
                seq: 3,
                errno: libc::ENOENT
            }
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let good = packet_fixture(1, 1, b"x");
        // Every truncation of a valid message, and every single-byte corruption of its
        // header and first attribute, must parse or fail cleanly.
        for cut in 0..good.len() {
            let mut out = Vec::new();
            let _ = parse_datagram(&good[..cut], &mut out);
        }
        for at in 0..28 {
            for v in [0u8, 1, 3, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[at] = v;
                let mut out = Vec::new();
                let _ = parse_datagram(&bad, &mut out);
            }
        }
        // A packet header that is too short is reported.
        let mut m = Msg::new(NFNL_SUBSYS_QUEUE << 8, 0, 0, 2, 1);
        m.attr(NFQA_PACKET_HDR, &[0, 0, 0, 1]);
        let mut out = Vec::new();
        let e = parse_datagram(&m.finish(), &mut out).unwrap_err();
        assert!(e.contains("short NFQA_PACKET_HDR"), "{e}");
        // A packet without any header is reported.
        let m = Msg::new(NFNL_SUBSYS_QUEUE << 8, 0, 0, 2, 1).finish();
        assert!(parse_datagram(&m, &mut out).is_err());
        // A length field beyond the datagram.
        let mut long = good.clone();
        long[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(parse_datagram(&long, &mut out).is_err());
        // An overrun.
        assert!(parse_datagram(&nlmsg(NLMSG_OVERRUN, 0, &[]), &mut out).is_err());
    }

    #[test]
    fn nested_attributes_get_their_lengths() {
        let mut m = Msg::new(1, 0, 0, 0, 0);
        m.nest(4).nest(1).attr(1, b"ab\0").end().end();
        let b = m.finish();
        // outer nest: 4 + inner(4 + attr(4+3 -> 8)) = 16
        assert_eq!(u16_ne(&b, 20), Some(16));
        assert_eq!(u16_ne(&b, 22), Some(4 | NLA_F_NESTED));
        assert_eq!(u16_ne(&b, 24), Some(12));
        assert_eq!(u16_ne(&b, 28), Some(7));
        assert_eq!(b.len(), 36);
    }

    #[test]
    fn xt_queue_batch_layout() {
        let b = xt_queue_batch(10, libc::NFPROTO_IPV4 as u8, "t", "c", 7);
        let mut msgs = Vec::new();
        let mut rest = &b[..];
        while !rest.is_empty() {
            let len = u32_ne(rest, 0).unwrap() as usize;
            msgs.push((
                u16_ne(rest, 4).unwrap(),
                u32_ne(rest, 8).unwrap(),
                &rest[..len],
            ));
            rest = &rest[len..];
        }
        let types: Vec<(u16, u32)> = msgs.iter().map(|(t, s, _)| (*t, *s)).collect();
        assert_eq!(types, vec![(16, 10), (0x0a06, 11), (17, 12)]);
        // Batch messages carry the subsystem in res_id.
        assert_eq!(&msgs[0].2[16..20], &[0, 0, 0, 10]);
        let rule = msgs[1].2;
        assert_eq!(rule[16], libc::NFPROTO_IPV4 as u8);
        // The names and the target's info (queue 7, host order, padded to 8) are there.
        let find = |needle: &[u8]| rule.windows(needle.len()).any(|w| w == needle);
        assert!(find(b"NFQUEUE\0") && find(b"target\0") && find(b"t\0") && find(b"c\0"));
        let mut info = 7u16.to_ne_bytes().to_vec();
        info.resize(8, 0);
        assert!(find(&info));
    }
}
