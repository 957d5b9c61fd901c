//! NFLOG over a raw `NETLINK_NETFILTER` socket (no libnetfilter_log).
//!
//! Wire format (all netlink headers in host order, nfnetlink payloads in big endian):
//! `nlmsghdr` (16 bytes: len, type, flags, seq, pid), then `nfgenmsg` (4 bytes: family,
//! version, res_id = group in big endian), then attributes (`nla_len`, `nla_type`, data
//! padded to 4). A log message has type `NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET`.
//!
//! Instances are per network namespace, so the socket must be created on a thread inside
//! the firewall namespace. Each bound group gets copy mode "packet" (a short copy, enough
//! for the barrier's sequence number) and a queue threshold of 1, so every message is
//! sent at once and messages keep the order in which the kernel logged them.

use crate::error::OracleError;
use crate::netlink::{align4, attrs, u16_ne, u32_ne, NfnlFd, RecvError, NLMSG_HDRLEN};
use std::time::{Duration, Instant};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;

/// One NFLOG message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogMsg {
    /// The NFLOG group (nfgenmsg res_id).
    pub(crate) group: u16,
    /// The netfilter hook number from NFULA_PACKET_HDR.
    pub(crate) hook: Option<u8>,
    /// NFULA_PREFIX without its NUL.
    pub(crate) prefix: String,
    /// NFULA_PAYLOAD (the first bytes from the network header on).
    pub(crate) payload: Vec<u8>,
}

/// One item of a netlink datagram that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NlItem {
    /// A log message.
    Log(LogMsg),
    /// An acknowledgement or error for request `seq` (errno 0 = success).
    Ack { seq: u32, errno: i32 },
}

fn parse_log(msg: &[u8]) -> Result<LogMsg, String> {
    let group = msg
        .get(NLMSG_HDRLEN + 2..NLMSG_HDRLEN + 4)
        .map(|g| u16::from_be_bytes([g[0], g[1]]))
        .ok_or("log message without nfgenmsg")?;
    let mut log = LogMsg {
        group,
        hook: None,
        prefix: String::new(),
        payload: Vec::new(),
    };
    for a in attrs(&msg[NLMSG_HDRLEN + 4..]) {
        let (ty, data) = a?;
        match ty {
            NFULA_PACKET_HDR => log.hook = data.get(2).copied(),
            NFULA_PREFIX => {
                let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
                log.prefix = String::from_utf8_lossy(&data[..end]).into_owned();
            }
            NFULA_PAYLOAD => log.payload = data.to_vec(),
            _ => {}
        }
    }
    Ok(log)
}

/// Parses one datagram read from the socket into `out`.
pub(crate) fn parse_datagram(mut buf: &[u8], out: &mut Vec<NlItem>) -> Result<(), String> {
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
            // NLMSG_NOOP, NLMSG_DONE (ends a batch of log messages)
            1 | 3 => {}
            // NLMSG_ERROR: an errno (negative) or 0 for an ack, then the request header
            2 => {
                let errno = u32_ne(msg, NLMSG_HDRLEN).ok_or("short NLMSG_ERROR")? as i32;
                out.push(NlItem::Ack {
                    seq,
                    errno: errno.wrapping_neg(),
                });
            }
            // NLMSG_OVERRUN
            4 => return Err("netlink overrun: log messages lost".to_owned()),
            t if t == (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET) => {
                out.push(NlItem::Log(parse_log(msg)?));
            }
            _ => {}
        }
        buf = buf.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(())
}

/// Builds an NFULNL_MSG_CONFIG request for `group` with `attrs`.
fn config_msg(seq: u32, group: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; NLMSG_HDRLEN];
    m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    m.extend_from_slice(&group.to_be_bytes());
    for (ty, data) in attrs {
        let len = 4 + data.len();
        m.extend_from_slice(&(len as u16).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(data);
        m.resize(align4(m.len()), 0);
    }
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&(NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG).to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

/// An NFLOG socket bound to some groups of one namespace.
pub(crate) struct NflogSocket {
    fd: NfnlFd,
    buf: Vec<u8>,
    seq: u32,
    /// Items received while waiting for an ack.
    items: Vec<NlItem>,
}

impl NflogSocket {
    /// Opens the socket and binds `groups` with a copy range of `copy_range` bytes. Call
    /// on a thread inside the namespace whose logs are wanted.
    pub(crate) fn open_here(groups: &[u16], copy_range: u32) -> Result<NflogSocket, OracleError> {
        let fd = NfnlFd::open(Some(8 << 20))
            .map_err(|e| OracleError::Netlink(format!("NETLINK_NETFILTER socket: {e}")))?;
        let mut s = NflogSocket {
            fd,
            buf: vec![0; 256 * 1024],
            seq: 0,
            items: Vec::new(),
        };
        let mut mode = copy_range.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        for &g in groups {
            s.request(
                g,
                &[
                    (NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]),
                    (NFULA_CFG_MODE, &mode),
                    (NFULA_CFG_QTHRESH, &1u32.to_be_bytes()),
                    (NFULA_CFG_TIMEOUT, &1u32.to_be_bytes()),
                ],
            )?;
        }
        Ok(s)
    }

    fn request(&mut self, group: u16, attrs: &[(u16, &[u8])]) -> Result<(), OracleError> {
        self.seq += 1;
        let seq = self.seq;
        let msg = config_msg(seq, group, attrs);
        self.fd
            .send(&msg)
            .map_err(|e| OracleError::Netlink(format!("sending NFLOG config: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let mut items = std::mem::take(&mut self.items);
            let got = self.recv_into(deadline, &mut items);
            let mut result = None;
            items.retain(|i| match i {
                NlItem::Ack { seq: s, errno } if *s == seq => {
                    result = Some(*errno);
                    false
                }
                _ => true,
            });
            self.items = items;
            got?;
            match result {
                Some(0) => return Ok(()),
                Some(e) => {
                    return Err(OracleError::Netlink(format!(
                        "binding NFLOG group {group}: {}",
                        std::io::Error::from_raw_os_error(e)
                    )))
                }
                None if Instant::now() >= deadline => {
                    return Err(OracleError::Netlink(format!(
                        "no answer to the NFLOG config for group {group}"
                    )))
                }
                None => {}
            }
        }
    }

    /// Waits until `deadline` for at least one datagram, then reads all queued ones into
    /// `out`. Returns whether anything was read.
    fn recv_into(&mut self, deadline: Instant, out: &mut Vec<NlItem>) -> Result<bool, OracleError> {
        self.fd
            .drain(&mut self.buf, deadline, |d| parse_datagram(d, out))
            .map_err(|e| match e {
                RecvError::Io(e) => OracleError::Netlink(format!("recv: {e}")),
                RecvError::Overrun => OracleError::Netlink(
                    "NFLOG messages lost: socket receive buffer overrun".to_owned(),
                ),
                RecvError::Parse(m) => OracleError::Netlink(m),
            })
    }

    /// Waits until `deadline` for log messages and appends them to `out`; returns
    /// whether anything arrived. Acks are dropped.
    pub(crate) fn wait(
        &mut self,
        deadline: Instant,
        out: &mut Vec<LogMsg>,
    ) -> Result<bool, OracleError> {
        let mut items = std::mem::take(&mut self.items);
        let got = self.recv_into(deadline, &mut items)?;
        let any = got || !items.is_empty();
        out.extend(items.drain(..).filter_map(|i| match i {
            NlItem::Log(l) => Some(l),
            NlItem::Ack { .. } => None,
        }));
        self.items = items;
        Ok(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

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

    /// A log message as the kernel sends it: nfgenmsg, packet header, prefix, payload.
    fn log_fixture(group: u16, prefix: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![2, 0];
        body.extend_from_slice(&group.to_be_bytes());
        body.extend(attr(NFULA_PACKET_HDR, &[0x08, 0x00, 0, 0]));
        body.extend(attr(2, &7u32.to_be_bytes())); // NFULA_MARK, ignored
        let mut p = prefix.as_bytes().to_vec();
        p.push(0);
        body.extend(attr(NFULA_PREFIX, &p));
        body.extend(attr(NFULA_PAYLOAD, payload));
        nlmsg(NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET, 0, &body)
    }

    #[test]
    fn parses_a_batch_of_logs_and_done() {
        let mut dgram = log_fixture(100, "ctko:seen", &[0x45, 0, 0, 40, 1]);
        dgram.extend(log_fixture(
            0,
            "nf_ct_proto_6: invalid tcp flag combination ",
            &[],
        ));
        dgram.extend(nlmsg(3, 0, &[0, 0, 0, 0])); // NLMSG_DONE
        let mut out = Vec::new();
        parse_datagram(&dgram, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                NlItem::Log(LogMsg {
                    group: 100,
                    hook: Some(0),
                    prefix: "ctko:seen".into(),
                    payload: vec![0x45, 0, 0, 40, 1],
                }),
                NlItem::Log(LogMsg {
                    group: 0,
                    hook: Some(0),
                    prefix: "nf_ct_proto_6: invalid tcp flag combination ".into(),
                    payload: vec![],
                }),
            ]
        );
    }

    #[test]
    fn parses_acks_and_errors() {
        let mut ack = (0i32).to_ne_bytes().to_vec();
        ack.extend(vec![0; 16]);
        let mut err = (-16i32).to_ne_bytes().to_vec(); // -EBUSY
        err.extend(vec![0; 16]);
        let mut dgram = nlmsg(2, 5, &ack);
        dgram.extend(nlmsg(2, 6, &err));
        let mut out = Vec::new();
        parse_datagram(&dgram, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                NlItem::Ack { seq: 5, errno: 0 },
                NlItem::Ack { seq: 6, errno: 16 }
            ]
        );
    }

    #[test]
    fn rejects_truncated_input() {
        let mut out = Vec::new();
        let m = log_fixture(1, "x", &[1, 2, 3]);
        assert!(parse_datagram(&m[..10], &mut out).is_err());
        assert!(parse_datagram(&m[..m.len() - 4], &mut out).is_err());
        // Attribute claiming more than the message holds.
        let mut bad = vec![2, 0, 0, 1];
        bad.extend_from_slice(&200u16.to_ne_bytes());
        bad.extend_from_slice(&NFULA_PREFIX.to_ne_bytes());
        let m = nlmsg(NFNL_SUBSYS_ULOG << 8, 0, &bad);
        assert!(parse_datagram(&m, &mut out).is_err());
        assert!(parse_datagram(&nlmsg(4, 0, &[]), &mut out).is_err());
    }

    #[test]
    fn prefix_without_nul_and_flag_bits() {
        let mut body = vec![2, 0, 0, 9];
        // Type with NLA_F_NET_BYTEORDER set must still be recognised.
        body.extend(attr(NFULA_PREFIX | 1 << 14, b"abc"));
        let m = nlmsg(NFNL_SUBSYS_ULOG << 8, 0, &body);
        let mut out = Vec::new();
        parse_datagram(&m, &mut out).unwrap();
        match &out[0] {
            NlItem::Log(l) => {
                assert_eq!(l.prefix, "abc");
                assert_eq!(l.group, 9);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_message_layout() {
        let m = config_msg(7, 0x0102, &[(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])]);
        assert_eq!(m.len(), 16 + 4 + 8);
        assert_eq!(u32_ne(&m, 0), Some(28));
        assert_eq!(u16_ne(&m, 4), Some(0x0401));
        assert_eq!(u32_ne(&m, 8), Some(7));
        assert_eq!(&m[16..20], &[0, 0, 1, 2]);
        assert_eq!(u16_ne(&m, 20), Some(5));
        assert_eq!(u16_ne(&m, 22), Some(NFULA_CFG_CMD));
        assert_eq!(m[24], NFULNL_CFG_CMD_BIND);
    }
}
