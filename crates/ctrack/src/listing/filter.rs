//! Which flows a conntrack(8) command line selects: the kernel's dump filter (family,
//! mark, status), then conntrack-tools' `nfct_filter` (NAT, mark, labels, networks) and
//! libnetfilter_conntrack's `nfct_cmp(template, ct, NFCT_CMP_ALL | NFCT_CMP_MASK)`.

use super::args::opt;
use super::flow::{Flow, MsgType};
use ctrack_core::tuple::{proto, Addr, Family};

/// An address and a netmask (`--mask-src`, CIDR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    /// The network (address & mask).
    pub network: Addr,
    /// The mask.
    pub mask: Addr,
}

impl Net {
    /// `addr & mask`.
    pub fn new(addr: Addr, mask: Addr) -> Net {
        let mut n = [0u8; 16];
        for (i, b) in n.iter_mut().enumerate() {
            *b = addr.0[i] & mask.0[i];
        }
        Net {
            network: Addr(n),
            mask,
        }
    }

    /// Whether `a` is inside.
    pub fn contains(&self, a: &Addr, fam: Family) -> bool {
        let len = if fam == Family::V4 { 4 } else { 16 };
        (0..len).all(|i| a.0[i] & self.mask.0[i] == self.network.0[i])
    }
}

/// A `-n` / `-g` / `-j` argument: the IPv4 address and the port, when given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatSpec {
    /// The IPv4 address (conntrack 1.4.7 compares only IPv4 NAT addresses).
    pub addr_v4: Option<[u8; 4]>,
    /// The port.
    pub port: Option<u16>,
}

/// The template conntrack builds from its options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Option bits (`CT_OPT_*`).
    pub options: u32,
    /// The command's family (`-f`, or the family of the addresses given).
    pub family: Option<Family>,
    /// `ATTR_ORIG_L3PROTO` (set by -s, -d, -n, -g).
    pub orig_l3: Option<Family>,
    /// `ATTR_REPL_L3PROTO` (set by -r, -q).
    pub repl_l3: Option<Family>,
    /// `-s` (exact; moved to `src_net` when a mask applies).
    pub orig_src: Option<Addr>,
    /// `-d`.
    pub orig_dst: Option<Addr>,
    /// `-r`.
    pub repl_src: Option<Addr>,
    /// `-q`.
    pub repl_dst: Option<Addr>,
    /// `--mask-src` or the CIDR of `-s`, before it is applied.
    pub src_mask: Option<Addr>,
    /// `--mask-dst` or the CIDR of `-d`, before it is applied.
    pub dst_mask: Option<Addr>,
    /// The source network.
    pub src_net: Option<Net>,
    /// The destination network.
    pub dst_net: Option<Net>,
    /// `ATTR_ORIG_L4PROTO` (`-p` and the protocol options).
    pub l4proto: Option<u8>,
    /// `ATTR_REPL_L4PROTO` (reply port options).
    pub repl_l4proto: Option<u8>,
    /// `--sport`.
    pub orig_sport: Option<u16>,
    /// `--dport`.
    pub orig_dport: Option<u16>,
    /// `--reply-port-src`.
    pub repl_sport: Option<u16>,
    /// `--reply-port-dst`.
    pub repl_dport: Option<u16>,
    /// `--icmp-type`.
    pub icmp_type: Option<u8>,
    /// `--icmp-code`.
    pub icmp_code: Option<u8>,
    /// `--icmp-id`.
    pub icmp_id: Option<u16>,
    /// TCP `--state` (kernel number).
    pub tcp_state: Option<u8>,
    /// SCTP `--state`.
    pub sctp_state: Option<u8>,
    /// DCCP `--state`.
    pub dccp_state: Option<u8>,
    /// `-u`: the bits that must all be set (`ATTR_STATUS`).
    pub status: Option<u32>,
    /// `-u` as the kernel dump filter: (value, mask).
    pub kernel_status: Option<(u32, u32)>,
    /// `-m` as the kernel dump filter: (value, mask).
    pub kernel_mark: Option<(u32, u32)>,
    /// `-m` as conntrack's own check: (value, mask).
    pub user_mark: Option<(u32, u32)>,
    /// `-w`.
    pub zone: Option<u16>,
    /// `--orig-zone`.
    pub orig_zone: Option<u16>,
    /// `--reply-zone`.
    pub repl_zone: Option<u16>,
    /// `-n` (or `-j`).
    pub src_nat: Option<NatSpec>,
    /// `-g` (or `-j`).
    pub dst_nat: Option<NatSpec>,
    /// `-j ADDR` in 1.4.7 also writes into the template's original source, so any
    /// comparison filter next to it matches nothing.
    pub any_nat_garbles_src: bool,
    /// `-l`: every bit must be set.
    pub labels: Option<u128>,
}

/// `__cmp` in strict mode: a template attribute the flow lacks fails.
fn strict<T: PartialEq>(tmpl: Option<T>, ct: Option<T>) -> bool {
    match (tmpl, ct) {
        (Some(t), Some(c)) => t == c,
        (Some(_), None) => false,
        _ => true,
    }
}

impl Filter {
    /// Whether the flow is printed.
    pub fn matches(&self, f: &Flow) -> bool {
        if f.msg == MsgType::Dump && !self.kernel_matches(f) {
            return false;
        }
        if f.msg != MsgType::Dump {
            if let Some(fam) = self.family {
                if fam != f.family() {
                    return false;
                }
            }
        }
        self.nat_matches(f)
            && self.mark_matches(f)
            && self.labels_match(f)
            && self.network_matches(f)
            && (self.options & opt::COMPARISON == 0 || self.cmp(f))
    }

    /// The kernel's dump filter (`ctnetlink_filter_match`): family, mark, status.
    fn kernel_matches(&self, f: &Flow) -> bool {
        if let Some(fam) = self.family {
            if fam != f.family() {
                return false;
            }
        }
        if let Some((v, m)) = self.kernel_mark {
            if f.mark.unwrap_or(0) & m != v {
                return false;
            }
        }
        if let Some((v, m)) = self.kernel_status {
            if f.status.unwrap_or(0) & m != v {
                return false;
            }
        }
        true
    }

    /// `filter_mark`.
    fn mark_matches(&self, f: &Flow) -> bool {
        if self.options & opt::MARK == 0 {
            return true;
        }
        match (self.user_mark, f.mark) {
            (Some((v, m)), Some(mark)) => mark & m == v,
            _ => false,
        }
    }

    /// `filter_label`.
    fn labels_match(&self, f: &Flow) -> bool {
        match (self.labels, f.labels) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(want), Some(have)) => want & have == want,
        }
    }

    /// `filter_network`.
    fn network_matches(&self, f: &Flow) -> bool {
        for (net, addr) in [(self.src_net, &f.orig.src), (self.dst_net, &f.orig.dst)] {
            if let Some(n) = net {
                if Some(f.family()) != self.family || !n.contains(addr, f.family()) {
                    return false;
                }
            }
        }
        true
    }

    /// `filter_nat`.
    fn nat_matches(&self, f: &Flow) -> bool {
        let any = self.options & opt::ANY_NAT != 0;
        let want_src = self.options & opt::SRC_NAT != 0 || any;
        let want_dst = self.options & opt::DST_NAT != 0 || any;
        let check = |spec: Option<NatSpec>, is_nat: bool, is_pat: bool, ip: [u8; 4], port: u16| {
            let spec = spec.unwrap_or_default();
            let mut has = false;
            if let Some(a) = spec.addr_v4 {
                has = is_nat && a == ip;
            }
            if let Some(p) = spec.port {
                let ret = is_pat && p == port;
                if spec.addr_v4.is_some() && has && !ret {
                    has = false;
                }
                if spec.addr_v4.is_none() && ret {
                    has = true;
                }
            }
            if spec.addr_v4.is_none() && spec.port.is_none() && (is_nat || is_pat) {
                has = true;
            }
            has
        };
        let has_src = want_src
            && check(
                self.src_nat,
                f.is_snat(),
                f.is_spat(),
                f.reply.dst.v4_octets(),
                f.reply.dst_u,
            );
        let has_dst = want_dst
            && check(
                self.dst_nat,
                f.is_dnat(),
                f.is_dpat(),
                f.reply.src.v4_octets(),
                f.reply.src_u,
            );
        if any {
            has_src || has_dst
        } else if want_src && want_dst {
            has_src && has_dst
        } else if want_src {
            has_src
        } else if want_dst {
            has_dst
        } else {
            true
        }
    }

    /// `nfct_cmp(template, ct, NFCT_CMP_ALL | NFCT_CMP_MASK)`.
    fn cmp(&self, f: &Flow) -> bool {
        // cmp_meta
        if let Some(s) = self.status {
            match f.status {
                Some(c) if c & s == s => {}
                _ => return false,
            }
        }
        if !strict(self.tcp_state, f.tcp_state) || !strict(self.sctp_state, f.sctp_state) {
            return false;
        }
        if self.dccp_state.is_some() {
            // DCCP is tracked as generic on the target kernel: no protoinfo.
            return false;
        }
        if let Some(z) = self.zone {
            if f.zone.unwrap_or(0) != z {
                return false;
            }
        }
        // __cmp_orig
        if !strict(self.orig_l3, Some(f.family())) {
            return false;
        }
        if let Some(p) = self.l4proto {
            if !self.l4_matches(p, f, false) {
                return false;
            }
        }
        if self.any_nat_garbles_src {
            return false;
        }
        let fam = f.family();
        for (t, c) in [(self.orig_src, f.orig.src), (self.orig_dst, f.orig.dst)] {
            if let Some(a) = t {
                if self.orig_l3 != Some(fam) || a != c {
                    return false;
                }
            }
        }
        if let Some(z) = self.orig_zone {
            if f.orig_zone.unwrap_or(0) != z {
                return false;
            }
        }
        // cmp_repl
        if !strict(self.repl_l3, Some(fam)) {
            return false;
        }
        if let Some(p) = self.repl_l4proto {
            if !self.l4_matches(p, f, true) {
                return false;
            }
        }
        for (t, c) in [(self.repl_src, f.reply.src), (self.repl_dst, f.reply.dst)] {
            if let Some(a) = t {
                if self.repl_l3 != Some(fam) || a != c {
                    return false;
                }
            }
        }
        if let Some(z) = self.repl_zone {
            if f.reply_zone.unwrap_or(0) != z {
                return false;
            }
        }
        true
    }

    /// `cmp_orig_l4proto` / `cmp_repl_l4proto`.
    fn l4_matches(&self, p: u8, f: &Flow, reply: bool) -> bool {
        if p != f.proto() {
            return false;
        }
        match p {
            proto::ICMP | proto::ICMPV6 => {
                let icmp = f.has_icmp();
                strict(self.icmp_id, icmp.then_some(f.orig.src_u))
                    && strict(self.icmp_code, icmp.then_some(f.orig.icmp_code()))
                    && strict(self.icmp_type, icmp.then_some(f.orig.icmp_type()))
            }
            proto::TCP | proto::UDP | proto::UDPLITE | proto::DCCP | proto::SCTP => {
                let ports = f.has_ports();
                let (t, s, d) = if reply {
                    (&f.reply, self.repl_sport, self.repl_dport)
                } else {
                    (&f.orig, self.orig_sport, self.orig_dport)
                };
                strict(s, ports.then_some(t.src_u)) && strict(d, ports.then_some(t.dst_u))
            }
            _ => true,
        }
    }
}
