//! The FTP helper (kernel `nf_conntrack_ftp.c`; kernel-semantics.md §12.3).
//!
//! * Only packets with ctinfo ESTABLISHED or ESTABLISHED_REPLY and a TCP payload are
//!   looked at.
//! * **Line starts.** Per direction the helper remembers up to two sequence numbers that
//!   follow a `\n`. A packet is parsed only when its sequence number is one of them, so
//!   the first payload of each direction (the banner, `USER`) is never parsed; a command
//!   must begin a segment that starts right after a line end.
//! * **Patterns** at the start of the payload, case-insensitive: `PORT` and `EPRT` from
//!   the original direction, `227 ` and `229 ` from the reply direction.
//! * **Partial match**: the payload is a prefix of a pattern, or a pattern matched but
//!   its numbers do not parse: the packet is dropped (the sender retransmits).
//! * The command's address must be the sender's (`loose` = 0): otherwise no expectation.
//! * Expectation: from the other side's address, any port, to the command sender's
//!   address and the announced port.

use super::{ExpectRequest, HelpCx, HelpOutcome, Helper, HelperDrop, HelperKind, HelperState};
use crate::status::CtInfo;
use crate::tuple::{proto, Addr, Dir, Family};

/// Per-connection FTP state: the sequence numbers after a line end, per direction
/// (kernel `nf_ct_ftp_master`, `NUM_SEQ_TO_REMEMBER` = 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FtpData {
    /// Remembered sequence numbers, by direction.
    pub seq_aft_nl: [[u32; 2]; 2],
    /// How many of them are set, by direction.
    pub num: [u8; 2],
}

impl FtpData {
    /// Whether `seq` starts a line in direction `dir`.
    pub fn starts_line(&self, dir: Dir, seq: u32) -> bool {
        let d = dir.index();
        self.seq_aft_nl[d][..usize::from(self.num[d])].contains(&seq)
    }

    /// Remember that `seq` follows a line end in `dir` (two slots; when both are used,
    /// the older one is replaced, only by a newer number).
    pub fn remember(&mut self, dir: Dir, seq: u32) {
        let d = dir.index();
        let n = usize::from(self.num[d]);
        if self.seq_aft_nl[d][..n].contains(&seq) {
            return;
        }
        if n < 2 {
            self.seq_aft_nl[d][n] = seq;
            self.num[d] += 1;
            return;
        }
        let s = self.seq_aft_nl[d];
        let oldest = if before(s[0], s[1]) { 0 } else { 1 };
        if before(s[oldest], seq) {
            self.seq_aft_nl[d][oldest] = seq;
        }
    }
}

/// TCP sequence comparison: `a` is before `b` (modulo 2³²).
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Which command form matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpType {
    /// `PORT a,b,c,d,p,q` (client, RFC 959).
    Port,
    /// `EPRT |1|addr|port|` or `|2|addr|port|` (client, RFC 2428).
    Eprt,
    /// `227 ... a,b,c,d,p,q` (server answer to PASV).
    Pasv,
    /// `229 ... (|||port|)` (server answer to EPSV).
    Epsv,
}

/// A parsed command: the address it names (the sender's for EPSV) and the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtpCommand {
    /// Form.
    pub kind: FtpType,
    /// Address announced.
    pub addr: Addr,
    /// Port announced.
    pub port: u16,
    /// Offset of the numbers in the payload (what NAT would rewrite).
    pub off: usize,
    /// Length of the numbers.
    pub len: usize,
}

/// The result of matching a payload against the patterns of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// No pattern: the packet is accepted.
    NoMatch,
    /// A pattern began but did not parse whole: the packet is dropped.
    Partial(&'static str),
    /// A command.
    Command(FtpCommand),
}

struct Pattern {
    text: &'static str,
    skip: Option<u8>,
    term: Option<u8>,
    kind: FtpType,
}

const ORIGINAL: [Pattern; 2] = [
    Pattern {
        text: "PORT",
        skip: Some(b' '),
        term: Some(b'\r'),
        kind: FtpType::Port,
    },
    Pattern {
        text: "EPRT",
        skip: Some(b' '),
        term: Some(b'\r'),
        kind: FtpType::Eprt,
    },
];

const REPLY: [Pattern; 2] = [
    Pattern {
        text: "227 ",
        skip: None,
        term: None,
        kind: FtpType::Pasv,
    },
    Pattern {
        text: "229 ",
        skip: Some(b'('),
        term: Some(b')'),
        kind: FtpType::Epsv,
    },
];

/// Match `payload` (sent in `dir` on a connection of `family` whose sender address is
/// `sender`) against the helper's patterns, as the kernel does.
pub fn parse(payload: &[u8], dir: Dir, family: Family, sender: Addr) -> Parse {
    let pats = match dir {
        Dir::Original => &ORIGINAL,
        Dir::Reply => &REPLY,
    };
    for p in pats {
        match find_pattern(payload, p, family, sender) {
            Parse::NoMatch => continue,
            other => return other,
        }
    }
    Parse::NoMatch
}

fn find_pattern(data: &[u8], p: &Pattern, family: Family, sender: Addr) -> Parse {
    let pat = p.text.as_bytes();
    let plen = pat.len();
    if data.len() <= plen {
        return if data.eq_ignore_ascii_case(&pat[..data.len()]) {
            Parse::Partial(p.text)
        } else {
            Parse::NoMatch
        };
    }
    if !data[..plen].eq_ignore_ascii_case(pat) {
        return Parse::NoMatch;
    }
    let mut i = plen;
    if let Some(skip) = p.skip {
        match data[plen..].iter().position(|&c| c == skip) {
            Some(k) => i = plen + k + 1,
            None => return Parse::Partial(p.text),
        }
    }
    let rest = data.get(i..).unwrap_or(&[]);
    let got = match p.kind {
        FtpType::Port => rfc959(rest, p.term),
        FtpType::Pasv => rfc1123(rest),
        FtpType::Eprt => eprt(rest, family),
        FtpType::Epsv => epsv(rest).map(|(port, len)| (None, port, len, 0)),
    };
    match got {
        Some((addr, port, len, lead)) if len > 0 => Parse::Command(FtpCommand {
            kind: p.kind,
            addr: addr.unwrap_or(sender),
            port,
            off: i + lead,
            len,
        }),
        _ => Parse::Partial(p.text),
    }
}

/// `size` decimal numbers separated by `sep`, ending at `term` (any character when
/// `None`). Returns the numbers and the length consumed, or `None`. Numbers wrap as the
/// kernel's `u32` arithmetic does.
fn numbers<const N: usize>(data: &[u8], sep: u8, term: Option<u8>) -> Option<([u32; N], usize)> {
    let mut a = [0u32; N];
    let mut i = 0usize;
    for (len, &c) in data.iter().enumerate() {
        if i >= N {
            return None;
        }
        if c.is_ascii_digit() {
            a[i] = a[i].wrapping_mul(10).wrapping_add(u32::from(c - b'0'));
        } else if c == sep {
            i += 1;
        } else {
            let term_ok = term.is_none_or(|t| c == t);
            return (term_ok && i == N - 1).then_some((a, len));
        }
    }
    None
}

type Got = Option<(Option<Addr>, u16, usize, usize)>;

/// `a,b,c,d,p,q` ending at `term` (PORT: `\r`; 227: anything).
fn rfc959(data: &[u8], term: Option<u8>) -> Got {
    let (a, len) = numbers::<6>(data, b',', term)?;
    let ip = (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3];
    let port = ((a[4] << 8) | a[5]) as u16;
    Some((Some(Addr::v4(ip.to_be_bytes())), port, len, 0))
}

/// 227: scan to the first digit, then `a,b,c,d,p,q` with any terminator.
fn rfc1123(data: &[u8]) -> Got {
    let first = data.iter().position(u8::is_ascii_digit)?;
    let (addr, port, len, _) = rfc959(&data[first..], None)?;
    Some((addr, port, len, first))
}

/// A port up to `delim`, starting at `start`; non-zero. Returns (port, index after the
/// delimiter).
fn port_until(data: &[u8], start: usize, delim: u8) -> Option<(u16, usize)> {
    let mut port = 0u16;
    for (i, &c) in data.iter().enumerate().skip(start) {
        if c == delim {
            return (port != 0).then_some((port, i + 1));
        } else if c.is_ascii_digit() {
            port = port.wrapping_mul(10).wrapping_add(u16::from(c - b'0'));
        } else {
            return None;
        }
    }
    None
}

fn valid_delim(d: u8) -> bool {
    !d.is_ascii_digit() && (33..=126).contains(&d)
}

/// `<d>1<d>a.b.c.d<d>port<d>` or `<d>2<d>v6<d>port<d>`; the protocol digit must match
/// the connection's family.
fn eprt(data: &[u8], family: Family) -> Got {
    if data.len() <= 3 {
        return None;
    }
    let d = data[0];
    if !valid_delim(d) || data[2] != d {
        return None;
    }
    let want = match family {
        Family::V4 => b'1',
        Family::V6 => b'2',
    };
    if data[1] != want {
        return None;
    }
    let body = &data[3..];
    let (addr, len) = match family {
        Family::V4 => {
            let (a, len) = numbers::<4>(body, b'.', Some(d))?;
            let ip = (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3];
            (Addr::v4(ip.to_be_bytes()), len)
        }
        Family::V6 => ipv6_until(body, d)?,
    };
    if len == 0 {
        return None;
    }
    let (port, end) = port_until(data, 3 + len + 1, d)?;
    Some((Some(addr), port, end, 0))
}

/// An IPv6 address in text up to `delim` (the kernel's `in6_pton` with a terminator):
/// hex groups, one `::`, an optional dotted IPv4 tail.
fn ipv6_until(data: &[u8], delim: u8) -> Option<(Addr, usize)> {
    let end = data.iter().position(|&c| c == delim)?;
    let text = &data[..end];
    if !text
        .iter()
        .all(|c| c.is_ascii_hexdigit() || *c == b':' || *c == b'.')
    {
        return None;
    }
    let s = core::str::from_utf8(text).ok()?;
    let a: std::net::Ipv6Addr = s.parse().ok()?;
    Some((Addr::v6(a.octets()), end))
}

/// 229: `<d><d><d>port<d>` after the `(`.
fn epsv(data: &[u8]) -> Option<(u16, usize)> {
    if data.len() <= 3 {
        return None;
    }
    let d = data[0];
    if !valid_delim(d) || data[1] != d || data[2] != d {
        return None;
    }
    port_until(data, 3, d)
}

/// The FTP helper.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ftp;

impl Helper for Ftp {
    fn help(&self, st: &mut HelperState, cx: &HelpCx<'_>) -> HelpOutcome {
        let mut out = HelpOutcome::default();
        if !matches!(cx.ctinfo, CtInfo::Established | CtInfo::EstablishedReply) {
            return out;
        }
        let l4 = cx.pkt.l4();
        let Some(h) = l4.get(..20) else {
            return out;
        };
        let doff = usize::from(h[12] >> 4) * 4;
        let Some(payload) = l4.get(doff..).filter(|p| !p.is_empty()) else {
            return out;
        };
        let dir = cx.ctinfo.dir();
        let seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let next = seq.wrapping_add(payload.len() as u32);
        let ends_in_nl = payload.last() == Some(&b'\n');
        let data = &mut st.ftp;
        if !data.starts_line(dir, seq) {
            if ends_in_nl {
                data.remember(dir, next);
            }
            return out;
        }
        let e = cx.entry;
        let sender = e.tuple(dir).src;
        let family = e.tuple(dir).family;
        match parse(payload, dir, family, sender) {
            Parse::Partial(pattern) => {
                out.drop = Some(HelperDrop::Partial {
                    helper: HelperKind::Ftp,
                    pattern,
                });
                return out;
            }
            Parse::NoMatch => {}
            Parse::Command(cmd) => {
                let other = e.tuple(dir.opposite());
                let mut dst = other.dst;
                let mut ok = true;
                if cmd.addr != sender {
                    if cx.loose {
                        dst = cmd.addr;
                    } else {
                        ok = false;
                    }
                }
                if ok {
                    out.expect = Some(ExpectRequest {
                        class: 0,
                        family,
                        proto: proto::TCP,
                        src: Some(other.src),
                        src_port: None,
                        dst,
                        dst_port: cmd.port,
                    });
                    out.ftp = Some(cmd);
                }
            }
        }
        if ends_in_nl {
            data.remember(dir, next);
        }
        out
    }
}

#[cfg(test)]
mod tests;
