#!/usr/bin/env python3
"""Deterministic generator of the conntrack parity scenario library.

Run from the repository root:

    python3 tests/scenarios/gen.py           # (re)write pcap/*.pcap, scenarios.json, README.md
    python3 tests/scenarios/gen.py --check   # regenerate in a temp dir, compare with the tree

Every output byte is a function of this file alone: fixed timestamps, sequence
numbers, IP IDs, tags and payloads; no randomness and no clock.  The pcap files
are written by hand (classic pcap, LINKTYPE_ETHERNET, microsecond timestamps)
so the output does not depend on scapy's writer; scapy only builds the packets
and computes the checksums.

Each scenario is one function decorated with @scenario.  It adds packets with
`s.add(side, packet, expect, note)` (or through the small TCP helper), where
`side` is "c" (injected on the client side) or "s" (server side) and `expect`
is the nft ct state the live kernel is expected to give that packet:
new / established / related / invalid / untracked, None when the packet never
gets a conntrack (dropped by the IP layer before netfilter, held by defrag,
dropped because the table is full), or a list of acceptable values when the
kernel is not deterministic (table full).  The per-packet expectations are
written into scenarios.json twice: as prose in "description" and as the list
"expect" (one item per pcap record).
"""

import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile

from scapy.all import (  # noqa: E402  (scapy prints nothing at import in 2.5+)
    GRE,
    ICMP,
    IP,
    TCP,
    UDP,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLDMultAddrRec,
    ICMPv6MLReport,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    ICMPv6Unknown,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    Raw,
    RouterAlert,
    SCTP,
    SCTPChunkAbort,
    SCTPChunkCookieAck,
    SCTPChunkCookieEcho,
    SCTPChunkData,
    SCTPChunkInit,
    SCTPChunkInitAck,
    SCTPChunkParamStateCookie,
    SCTPChunkSACK,
    SCTPChunkShutdown,
    SCTPChunkShutdownAck,
    SCTPChunkShutdownComplete,
)

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------
# Address plan, MACs, time
# --------------------------------------------------------------------------
C4, S4 = "10.1.0.1", "10.2.0.1"            # client / server hosts (IPv4)
R_C4, R_S4 = "10.1.0.254", "10.2.0.254"    # routers on the client / server side
C6, S6 = "2001:db8:1::1", "2001:db8:2::1"
R_C6, R_S6 = "2001:db8:1::fe", "2001:db8:2::fe"
LL_C6 = "fe80::1"                          # link-local address of the client
MCAST4, MCAST6, BCAST4, MARTIAN4 = "239.1.1.1", "ff05::1", "255.255.255.255", "127.0.0.1"

MAC_C, MAC_S = "02:00:00:00:00:01", "02:00:00:00:00:02"
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD

T0_US = 1_700_000_000 * 1_000_000          # 2023-11-14 22:13:20 UTC, every pcap starts here
GAP = 0.001                                # default gap between packets (seconds)
MAX_GAP = 2.9                              # the harness caps gaps at 3 s

NEW, EST, REL, INV, UNT = "new", "established", "related", "invalid", "untracked"
NOCT = None                                # no conntrack at all (no ct state)
M32 = 0xFFFFFFFF


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def payload(n, seed=0):
    """n deterministic payload bytes."""
    return bytes((i * 7 + seed * 13 + 3) & 0xFF for i in range(n))


# --------------------------------------------------------------------------
# Scenario container and registry
# --------------------------------------------------------------------------
class Scenario:
    def __init__(self, name, title, summary, tags, sysctls, global_sysctls):
        self.name = name
        self.title = title
        self.summary = summary
        self.tags = tags
        self.sysctls = sysctls or {}
        self.global_sysctls = global_sysctls or {}
        self.records = []          # (t_us, frame bytes)
        self.expect = []           # one per record
        self.lines = []            # per-packet prose
        self.t_us = T0_US
        self.next_ip_id = 0x1000

    def add(self, side, pkt, expect, note="", gap=GAP, mangle=None, what=None):
        """Append one packet.

        side:   "c" client side, "s" server side.
        pkt:    a scapy IP/IPv6 packet, or raw L3 bytes (then `what` is required).
        expect: expected ct state (see module doc).
        mangle: optional function bytes -> bytes applied to the built L3 packet
                (bad checksums, malformed headers).
        Returns the packet object (with its IP ID filled in) so that ICMP errors
        can quote exactly what was sent.
        """
        assert side in ("c", "s")
        assert 0 <= gap <= MAX_GAP
        if self.records:
            self.t_us += int(round(gap * 1_000_000))
        if isinstance(pkt, (bytes, bytearray)):
            l3 = bytes(pkt)
            assert what is not None
        else:
            if isinstance(pkt, IP) and "id" not in pkt.fields:
                pkt.id = self.next_ip_id
                self.next_ip_id += 1
            l3 = bytes(pkt)
            if what is None:
                what = brief(pkt)
        if mangle is not None:
            l3 = mangle(l3)
        etype = ETH_IPV6 if isinstance(pkt, IPv6) or (l3[0] >> 4) == 6 else ETH_IPV4
        src, dst = (MAC_C, MAC_S) if side == "c" else (MAC_S, MAC_C)
        frame = mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", etype) + l3
        self.records.append((self.t_us, frame))
        self.expect.append(expect)
        n = len(self.records)
        line = "#%d [%s] %s: %s" % (n, side, what, fmt_expect(expect))
        if note:
            line += " (" + note + ")"
        self.lines.append(line + ".")
        return pkt

    def duration(self):
        return (self.records[-1][0] - self.records[0][0]) / 1e6

    def description(self):
        return "%s %s Expected per packet: %s" % (self.title, self.summary, " ".join(self.lines))


def fmt_expect(e):
    if isinstance(e, list):
        return " or ".join(fmt_expect(x) for x in e)
    return "null (no conntrack)" if e is None else e


SCENARIOS = []


def scenario(title, tags, summary="", sysctls=None, global_sysctls=None):
    """Register the decorated function as a scenario named after it."""

    def deco(fn):
        SCENARIOS.append((fn.__name__, title, summary, tags, sysctls, global_sysctls, fn))
        return fn

    return deco


# --------------------------------------------------------------------------
# Packet description (for the prose in scenarios.json)
# --------------------------------------------------------------------------
ICMP4_NAMES = {0: "echo-reply", 3: "dest-unreach", 4: "source-quench", 5: "redirect",
               8: "echo-request", 9: "router-advert", 10: "router-solicit", 11: "time-exceeded",
               12: "param-problem", 13: "timestamp", 14: "timestamp-reply", 15: "info-request",
               16: "info-reply", 17: "mask-request", 18: "mask-reply"}
ICMP6_NAMES = {1: "dest-unreach", 2: "packet-too-big", 3: "time-exceeded", 128: "echo-request",
               129: "echo-reply", 130: "mld-query", 131: "mld-report", 133: "router-solicit",
               134: "router-advert", 135: "neighbour-solicit", 136: "neighbour-advert",
               139: "node-info-query", 140: "node-info-reply", 143: "mldv2-report"}
SCTP_NAMES = {0: "DATA", 1: "INIT", 2: "INIT_ACK", 3: "SACK", 4: "HEARTBEAT", 5: "HEARTBEAT_ACK",
              6: "ABORT", 7: "SHUTDOWN", 8: "SHUTDOWN_ACK", 9: "ERROR", 10: "COOKIE_ECHO",
              11: "COOKIE_ACK", 14: "SHUTDOWN_COMPLETE"}
L4_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 136: "udplite", 47: "gre"}


def ep(addr, port):
    """addr:port, with IPv6 addresses in brackets."""
    return ("[%s]:%d" if is6(str(addr)) else "%s:%d") % (addr, port)


def inner_desc(b):
    """Short description of a quoted (possibly truncated) packet inside an ICMP error."""
    if len(b) >= 20 and b[0] >> 4 == 4:
        hl = (b[0] & 15) * 4
        src, dst, proto = ".".join(map(str, b[12:16])), ".".join(map(str, b[16:20])), b[9]
    elif len(b) >= 40 and b[0] >> 4 == 6:
        hl = 40
        src, dst, proto = str(IPv6(b[:40]).src), str(IPv6(b[:40]).dst), b[6]
    else:
        return "%d bytes" % len(b)
    l4 = b[hl:]
    name = L4_NAMES.get(proto, "proto %d" % proto)
    if proto in (6, 17, 132, 136) and len(l4) >= 4:
        sp, dp = struct.unpack("!HH", l4[:4])
        return "%s > %s %s, %d L4 bytes" % (ep(src, sp), ep(dst, dp), name.upper(), len(l4))
    return "%s > %s %s, %d L4 bytes" % (src, dst, name.upper(), len(l4))


def tcp_flag_str(f):
    s = str(f)
    return s if s else "none"


def brief(p):
    """One-line description of a built scapy L3 packet."""
    extra = ""
    if isinstance(p, IP):
        src, dst = p.src, p.dst
        if p.frag or (int(p.flags) & 1):
            return "%s > %s IPv4 fragment id=0x%x offset=%d%s proto=%d (%d bytes)" % (
                src, dst, p.id, p.frag * 8, " MF" if int(p.flags) & 1 else "", p.proto,
                len(bytes(p.payload)))
        if p.ttl != 64:
            extra = " ttl=%d" % p.ttl
        l4 = p.payload
    else:
        src, dst = p.src, p.dst
        if p.hlim != 64:
            extra = " hlim=%d" % p.hlim
        l4 = p.payload
        while isinstance(l4, (IPv6ExtHdrHopByHop, IPv6ExtHdrFragment)):
            if isinstance(l4, IPv6ExtHdrFragment):
                return "%s > %s IPv6 fragment id=0x%x offset=%d%s nh=%d (%d bytes)" % (
                    src, dst, l4.id, l4.offset * 8, " M" if l4.m else "", l4.nh,
                    len(bytes(l4.payload)))
            extra += " +hop-by-hop"
            l4 = l4.payload
    if isinstance(l4, TCP):
        n = len(bytes(l4.payload))
        s = "%s > %s TCP [%s] seq=%d ack=%d win=%d" % (
            ep(src, l4.sport), ep(dst, l4.dport), tcp_flag_str(l4.flags), l4.seq, l4.ack, l4.window)
        if n:
            s += " len=%d" % n
        opts = [o[0] for o in l4.options if o[0] not in ("NOP", "EOL")]
        if opts:
            s += " opts=" + ",".join(
                "%s%s" % (o[0], "=" + str(o[1]) if o[0] in ("WScale", "SAck") else "")
                for o in l4.options if o[0] not in ("NOP", "EOL"))
        return s + extra
    if isinstance(l4, UDP):
        return "%s > %s UDP len=%d%s" % (ep(src, l4.sport), ep(dst, l4.dport),
                                          len(bytes(l4.payload)), extra)
    if isinstance(l4, ICMP):
        name = ICMP4_NAMES.get(l4.type, "type %d" % l4.type)
        s = "%s > %s ICMP %s (%d/%d)" % (src, dst, name, l4.type, l4.code)
        if l4.type in (3, 4, 5, 11, 12):
            s += " quoting [%s]" % inner_desc(bytes(l4.payload))
        elif l4.type in (0, 8, 13, 14, 15, 16, 17, 18):
            s += " id=0x%x seq=%d" % (l4.id, l4.seq)
        return s + extra
    if p.__class__ is IPv6 and hasattr(l4, "type") and l4.__class__.__module__.endswith("inet6"):
        t = l4.type
        name = ICMP6_NAMES.get(t, "type %d" % t)
        code = l4.code if any(f.name == "code" for f in l4.fields_desc) else 0
        s = "%s > %s ICMPv6 %s (%d/%d)" % (src, dst, name, t, code)
        if t < 128:
            s += " quoting [%s]" % inner_desc(bytes(l4.payload))
        elif t in (128, 129):
            s += " id=0x%x seq=%d" % (l4.id, l4.seq)
        return s + extra
    if isinstance(l4, SCTP):
        chunks = []
        c = l4.payload
        while c is not None and c.__class__.__name__.startswith("SCTPChunk"):
            chunks.append(SCTP_NAMES.get(c.type, str(c.type)))
            c = c.payload if c.payload else None
        return "%s > %s SCTP vtag=0x%08x %s%s" % (ep(src, l4.sport), ep(dst, l4.dport), l4.tag,
                                                 "+".join(chunks), extra)
    if isinstance(l4, GRE):
        s = "%s > %s GRE v%d proto=0x%04x" % (src, dst, l4.version, l4.proto)
        if l4.key_present:
            s += " key=0x%x" % l4.key
        return s + extra
    proto = p.proto if isinstance(p, IP) else p.nh
    return "%s > %s proto %d (%d bytes)%s" % (src, dst, proto, len(bytes(l4)), extra)


# --------------------------------------------------------------------------
# Packet builders
# --------------------------------------------------------------------------
def is6(addr):
    return ":" in addr


def ip(src, dst, ttl=64, **kw):
    """IPv4 or IPv6 header, chosen by the address family."""
    if is6(src):
        return IPv6(src=src, dst=dst, hlim=ttl, **kw)
    return IP(src=src, dst=dst, ttl=ttl, **kw)


def dns(client_port, text, response):
    """A minimal DNS query (or NXDOMAIN answer) for <text>.example.com, id = client port."""
    label = bytes(ch if chr(ch).isalnum() else ord("-") for ch in text)[:63]
    qname = b"".join(bytes([len(x)]) + x for x in (label, b"example", b"com")) + b"\0"
    hdr = struct.pack("!HHHHHH", client_port, 0x8183 if response else 0x0100, 1, 0, 0, 0)
    return hdr + qname + struct.pack("!HH", 1, 1)


def udp(src, dst, sport, dport, data=None, ttl=64, chksum=None, ulen=None):
    """UDP datagram; the payload of port-53 datagrams is wrapped into a small DNS message."""
    if data is None:
        data = b"udp %d>%d" % (sport, dport)
    if dport == 53:
        data = dns(sport, data, False)
    elif sport == 53:
        data = dns(dport, data, True)
    u = UDP(sport=sport, dport=dport)
    if chksum is not None:
        u.chksum = chksum
    if ulen is not None:
        u.len = ulen
    return ip(src, dst, ttl) / u / Raw(data)


def icmp(src, dst, type, id=0, seq=0, code=0, data=b""):
    """ICMP query (echo, timestamp, info, mask) or any non-error type."""
    ic = ICMP(type=type, code=code)
    if type in (0, 8, 13, 14, 15, 16, 17, 18):
        ic.id, ic.seq = id, seq
    if type in (13, 14):                    # scapy's default timestamps depend on the clock
        later = 36000005 if type == 14 else 0   # ms since midnight UTC: 10:00:00.005
        ic.ts_ori, ic.ts_rx, ic.ts_tx = 36000000, later, later
    if type in (17, 18):
        ic.addr_mask = "255.255.0.0" if type == 18 else "0.0.0.0"
    p = IP(src=src, dst=dst) / ic
    if data:
        p = p / Raw(data)
    return p


def icmp_err(src, dst, quoted, type=3, code=3, quote=None, mtu=0):
    """ICMPv4 error quoting `quoted` (a packet already sent, or bytes), cut to `quote` bytes."""
    q = bytes(quoted)
    if quote is not None:
        q = q[:quote]
    ic = ICMP(type=type, code=code)
    if type == 3 and code == 4:
        ic.nexthopmtu = mtu
    return IP(src=src, dst=dst) / ic / Raw(q)


def icmp6_err(src, dst, quoted, type=1, code=4, mtu=1280, quote=None):
    q = bytes(quoted)
    if quote is not None:
        q = q[:quote]
    if type == 1:
        ic = ICMPv6DestUnreach(code=code)
    elif type == 2:
        ic = ICMPv6PacketTooBig(mtu=mtu)
    elif type == 3:
        ic = ICMPv6TimeExceeded(code=code)
    else:
        raise ValueError(type)
    return IPv6(src=src, dst=dst) / ic / Raw(q)


def echo6(src, dst, reply=False, id=0, seq=0, data=b"ping6"):
    cls = ICMPv6EchoReply if reply else ICMPv6EchoRequest
    return IPv6(src=src, dst=dst) / cls(id=id, seq=seq, data=data)


def raw_proto(src, dst, proto, data):
    """A packet of an arbitrary L4 protocol number."""
    if is6(src):
        return IPv6(src=src, dst=dst, nh=proto) / Raw(data)
    return IP(src=src, dst=dst, proto=proto) / Raw(data)


def inet_csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def pseudo_header(src, dst, proto, length):
    if is6(src):
        import socket
        return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + struct.pack("!IxxxB", length, proto))
    a = bytes(int(x) for x in src.split("."))
    b = bytes(int(x) for x in dst.split("."))
    return a + b + struct.pack("!xBH", proto, length)


def udplite_pkt(src, dst, sport, dport, data, cscov=0, pseudo_proto=17, chksum=None):
    """UDP-Lite (protocol 136) built by hand.

    cscov is the checksum-coverage field (0 = whole packet).  The checksum is
    computed over the covered bytes plus a pseudo-header carrying `pseudo_proto`
    and the full UDP-Lite length: 136 is what RFC 3828 says, 17 is what the
    kernel's conntrack verifies (kernel-semantics.md section 8).
    """
    length = 8 + len(data)
    hdr = struct.pack("!HHHH", sport, dport, cscov, 0)
    if chksum is None:
        cov = length if cscov == 0 else min(cscov, length)
        chksum = inet_csum(pseudo_header(src, dst, pseudo_proto, length) + (hdr + data)[:cov])
        if chksum == 0:
            chksum = 0xFFFF
    hdr = struct.pack("!HHHH", sport, dport, cscov, chksum)
    return raw_proto(src, dst, 136, hdr + data)


def sctp(src, dst, sport, dport, vtag, *chunks):
    p = ip(src, dst) / SCTP(sport=sport, dport=dport, tag=vtag)
    for ch in chunks:
        p = p / ch
    return p


def gre1(src, dst, call_id, proto=0x880B, data=b"\xff\x03\x00\x21pptp-data"):
    """GRE version 1 (enhanced GRE as used by PPTP): K bit set, payload length, call ID."""
    hdr = struct.pack("!HHHH", 0x2001, proto, len(data), call_id)
    return IP(src=src, dst=dst, proto=47) / Raw(hdr + data)


# ---- mangling (applied to built L3 bytes) ---------------------------------
def _l4_offset(b):
    if b[0] >> 4 == 4:
        return (b[0] & 15) * 4, b[9]
    return 40, b[6]          # no extension headers in the packets we mangle


CSUM_OFFSET = {6: 16, 17: 6, 1: 2, 58: 2, 136: 6}


def bad_l4_csum(b):
    """Flip bits of the L4 checksum (never producing 0 or an equivalent value)."""
    off, proto = _l4_offset(b)
    b = bytearray(b)
    if proto == 132:                      # SCTP CRC32c, 4 bytes at offset 8
        b[off + 8] ^= 0x5A
        return bytes(b)
    o = off + CSUM_OFFSET[proto]
    c = struct.unpack("!H", b[o:o + 2])[0]
    bad = c ^ 0x00FF
    if bad in (0, 0xFFFF):
        bad = c ^ 0x0F0F
    b[o:o + 2] = struct.pack("!H", bad)
    return bytes(b)


def bad_ip_csum(b):
    b = bytearray(b)
    b[10] ^= 0x5A
    return bytes(b)


def set_ip_field(offset, fmt, value, fix_csum=True):
    """Overwrite an IPv4 header field, then recompute the header checksum."""

    def f(b):
        b = bytearray(b)
        struct.pack_into(fmt, b, offset, value)
        if fix_csum:
            hl = max((b[0] & 15) * 4, 20)
            b[10:12] = b"\0\0"
            b[10:12] = struct.pack("!H", inet_csum(bytes(b[:hl])))
        return bytes(b)

    return f


# --------------------------------------------------------------------------
# TCP helper: keeps both sides' next sequence numbers
# --------------------------------------------------------------------------
FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


def flagval(s):
    return sum(FLAG_BITS[ch] for ch in s)


def seq_after(a, b):
    d = (a - b) & M32
    return 0 < d < 0x80000000


class Tcp:
    """One TCP connection between a client ("c") and a server ("s").

    `c(flags, expect, note, ...)` / `s(...)` build and add one segment.  The
    segment's seq defaults to the sender's next sequence number, ack (when the
    A flag is set) to the peer's.  The next sequence number advances by the
    payload length plus SYN/FIN unless the packet is expected INVALID or
    advance=False is given.
    """

    def __init__(self, scn, cport=40000, sport=80, cisn=1_000_000, sisn=2_000_000, v6=False,
                 caddr=None, saddr=None, cwin=64240, swin=64240, copts=None, sopts=None):
        self.scn = scn
        self.addr = {"c": caddr or (C6 if v6 else C4), "s": saddr or (S6 if v6 else S4)}
        self.port = {"c": cport, "s": sport}
        self.nxt = {"c": cisn & M32, "s": sisn & M32}
        self.win = {"c": cwin, "s": swin}
        mss = [("MSS", 1440 if v6 else 1460)]
        self.synopts = {"c": mss if copts is None else copts, "s": mss if sopts is None else sopts}

    def build(self, side, flags, data=b"", seq=None, ack=None, win=None, options=None, ttl=64):
        o = "s" if side == "c" else "c"
        f = flagval(flags)
        if seq is None:
            seq = self.nxt[side]
        if ack is None:
            ack = self.nxt[o] if f & 0x10 else 0
        if win is None:
            win = self.win[side]
        if options is None:
            options = self.synopts[side] if f & 0x02 else []
        t = TCP(sport=self.port[side], dport=self.port[o], seq=seq & M32, ack=ack & M32, flags=f,
                window=win, options=options)
        p = ip(self.addr[side], self.addr[o], ttl) / t
        if data:
            p = p / Raw(data)
        return p, seq, f

    def send(self, side, flags, expect, note="", data=b"", advance=None, gap=GAP, mangle=None,
             **kw):
        p, seq, f = self.build(side, flags, data, **kw)
        if advance is None:
            advance = expect != INV
        if advance:
            end = (seq + len(data) + (1 if f & 0x02 else 0) + (1 if f & 0x01 else 0)) & M32
            if seq_after(end, self.nxt[side]):
                self.nxt[side] = end
        return self.scn.add(side, p, expect, note, gap=gap, mangle=mangle)

    def c(self, flags, expect, note="", **kw):
        return self.send("c", flags, expect, note, **kw)

    def s(self, flags, expect, note="", **kw):
        return self.send("s", flags, expect, note, **kw)

    def handshake(self, assured_note="ESTABLISHED, 432000 s, +ASSURED"):
        self.c("S", NEW, "SYN_SENT, 120 s")
        self.s("SA", EST, "SYN_RECV, 60 s, +SEEN_REPLY")
        self.c("A", EST, assured_note)


# ==========================================================================
# TCP scenarios
# ==========================================================================
def _handshake_fin_close(s, v6):
    t = Tcp(s, v6=v6)
    t.handshake()
    t.c("PA", EST, "DATA_UNACK on the client: UNACK timeout 300 s", data=payload(100))
    t.s("A", EST, "all data acked: 432000 s")
    t.s("PA", EST, "server data unacked: 300 s", data=payload(200, 1))
    t.c("A", EST, "432000 s")
    t.c("FA", EST, "FIN_WAIT, 120 s, client gets CLOSE_INIT")
    t.s("A", EST, "CLOSE_WAIT, 60 s")
    t.s("FA", EST, "LAST_ACK, 30 s")
    t.c("A", EST, "TIME_WAIT, 120 s")


@scenario("TCP handshake, data both ways, active close by the client down to TIME_WAIT.",
          ["tcp", "ipv4", "handshake", "close"],
          "The textbook trace of kernel-semantics.md 15a. Final entry: TIME_WAIT, ~120 s, ASSURED.")
def tcp_handshake_fin_close(s):
    _handshake_fin_close(s, False)


@scenario("IPv6 variant of tcp_handshake_fin_close.", ["tcp", "ipv6", "handshake", "close"],
          "Same packets over IPv6. Final entry: TIME_WAIT, ~120 s, ASSURED.")
def tcp_handshake_fin_close_v6(s):
    _handshake_fin_close(s, True)


@scenario("RST closes an established, assured connection.", ["tcp", "ipv4", "rst", "close"],
          "The client's RST carries exactly the seq the server last acked (section 7.5 case 2c), so "
          "the state goes to CLOSE with the 10 s CLOSE timeout; a late server ACK in CLOSE keeps "
          "CLOSE. The entry stays in the table (it had a reply) until it times out.")
def tcp_rst_close(s):
    t = Tcp(s, cport=40001)
    t.handshake()
    t.c("PA", EST, "300 s (unacked data)", data=payload(100))
    t.s("PA", EST, "server data, 300 s", data=payload(50, 1))
    t.c("A", EST, "everything acked: 432000 s")
    t.c("RA", EST, "seq == server's max ack: CLOSE, 10 s")
    t.s("A", EST, "ack in CLOSE stays CLOSE, 10 s")


def _rst_answers_syn(s, v6):
    t = Tcp(s, cport=40002, v6=v6)
    t.c("S", NEW, "SYN_SENT, 120 s")
    t.s("RA", EST, "connection refused: RST/ACK with seq 0 and ack = ISN+1; state CLOSE, and "
        "since no reply was seen before, the entry is deleted at once", seq=0, win=0)
    t.c("S", NEW, "the same SYN again creates a fresh entry: SYN_SENT, 120 s (an entry still "
        "in CLOSE would have ignored it: established)", seq=1_000_000)


@scenario("RST answering a SYN deletes the unreplied entry.", ["tcp", "ipv4", "rst"],
          "Connection refused. After the RST the table is empty; the retried SYN is NEW again.")
def tcp_rst_answers_syn(s):
    _rst_answers_syn(s, False)


@scenario("IPv6 variant of tcp_rst_answers_syn.", ["tcp", "ipv6", "rst"],
          "Connection refused over IPv6; the retried SYN is NEW again.")
def tcp_rst_answers_syn_v6(s):
    _rst_answers_syn(s, True)


@scenario("SYN retransmits do not refresh the SYN_SENT timeout.", ["tcp", "ipv4", "timing"],
          "Three identical SYNs at 0 s, +1 s, +3 s (Linux's retransmit schedule). The entry was "
          "created by the first one and is never refreshed: at the end it shows ~117 s, not 119 s. "
          "Duration 3 s.")
def tcp_syn_retransmit(s):
    t = Tcp(s, cport=40003)
    t.c("S", NEW, "SYN_SENT, 120 s")
    t.c("S", NEW, "retransmit: still SYN_SENT, timeout not refreshed", gap=1.0)
    t.c("S", NEW, "retransmit: still SYN_SENT, ~117 s left", gap=2.0)


@scenario("Simultaneous open: both sides send a SYN (SYN_SENT2).", ["tcp", "ipv4", "handshake"],
          "Client SYN, server SYN without ACK (reply SYN in SYN_SENT -> SYN_SENT2, sets "
          "SIMULTANEOUS_OPEN), client SYN/ACK (SYN_SENT2 -> SYN_RECV), server ACK (reply ACK in "
          "SYN_RECV with SIMULTANEOUS_OPEN -> ESTABLISHED, ASSURED).")
def tcp_simultaneous_open(s):
    t = Tcp(s, cport=40004, sport=40005)
    t.c("S", NEW, "SYN_SENT, 120 s")
    t.s("S", EST, "reply SYN: SYN_SENT2, 120 s, +SEEN_REPLY")
    t.c("SA", EST, "SYN/ACK repeating the client's ISN: SYN_RECV, 60 s", seq=t.nxt["c"] - 1)
    t.s("A", EST, "SIMULTANEOUS_OPEN: ESTABLISHED, 432000 s, +ASSURED")
    t.c("PA", EST, "data: ESTABLISHED, 300 s (unacked)", data=payload(64))
    t.s("A", EST, "432000 s")


@scenario("Reopen from TIME_WAIT: a new SYN with the same ports after a full close.",
          ["tcp", "ipv4", "close", "reuse"],
          "After the FIN close the entry is in TIME_WAIT and the client has CLOSE_INIT, so a SYN "
          "from the client deletes the old entry and is looked up again: a fresh entry, ctstate new "
          "(section 7.5, result SYN_SENT).")
def tcp_reopen_time_wait(s):
    t = Tcp(s, cport=40006)
    t.handshake()
    t.c("PA", EST, "300 s", data=payload(100))
    t.s("A", EST, "432000 s")
    t.c("FA", EST, "FIN_WAIT, 120 s")
    t.s("FA", EST, "LAST_ACK, 30 s")
    t.c("A", EST, "TIME_WAIT, 120 s")
    t.nxt["c"] = 1_500_000
    t.nxt["s"] = 2_500_000
    t.c("S", NEW, "new ISN, same ports: old entry killed, fresh entry SYN_SENT, 120 s")
    t.s("SA", EST, "SYN_RECV, 60 s")
    t.c("A", EST, "ESTABLISHED, 432000 s, +ASSURED")


@scenario("A SYN with a new ISN while in SYN_SENT re-initialises the window data.",
          ["tcp", "ipv4", "handshake", "window"],
          "The second SYN's end is after the recorded one, so the sender's window data is "
          "re-initialised (section 7.6 Re-init); the SYN/ACK acks the new ISN and is in window.")
def tcp_new_isn_syn_sent(s):
    t = Tcp(s, cport=40007, cisn=1000)
    t.c("S", NEW, "SYN_SENT, 120 s")
    t.nxt["c"] = 900_000
    t.c("S", NEW, "new ISN: still SYN_SENT, window data re-initialised, no refresh")
    t.s("SA", EST, "acks the new ISN + 1: SYN_RECV, 60 s")
    t.c("A", EST, "ESTABLISHED, 432000 s, +ASSURED")


def _flags_name(mask):
    order = "FSRPAUEC"
    return "".join(ch for ch in order if mask & FLAG_BITS[ch])


VALID_TCP_FLAGS = {flagval(x) for x in ("S", "SU", "SA", "R", "RA", "FA", "FAU", "A", "AU")}


def tcp_flags_valid(mask):
    return (mask & ~(FLAG_BITS["E"] | FLAG_BITS["C"] | FLAG_BITS["P"])) in VALID_TCP_FLAGS


@scenario("Every FIN/SYN/RST/ACK/URG combination (plus PSH/ECE/CWR variants) as the first packet of "
          "a flow.", ["tcp", "ipv4", "flags", "invalid"],
          "One flow per combination (client ports 41000+). ECE, CWR and PSH are ignored by the flag "
          "check. Valid combinations are SYN, SYN+URG, SYN+ACK, RST, RST+ACK, FIN+ACK, FIN+ACK+URG, "
          "ACK, ACK+URG (section 7.2); of these only SYN(+URG) -> SYN_SENT and ACK(+URG) -> pickup "
          "ESTABLISHED (tcp_loose=1) can create an entry, the others are 'invalid new'. Everything "
          "else is 'invalid tcp flag combination'. No entry is created by an invalid packet.")
def tcp_first_packet_flags(s):
    masks = []
    base = "FSRAU"
    for i in range(32):
        masks.append(sum(FLAG_BITS[base[b]] for b in range(5) if i >> b & 1))
    masks += [flagval(x) for x in ("SP", "SE", "SEC", "PA", "FPU", "P", "E", "C", "FSRPAUEC")]
    for n, m in enumerate(masks):
        name = _flags_name(m) or "none"
        core = m & ~(FLAG_BITS["E"] | FLAG_BITS["C"] | FLAG_BITS["P"])
        if not tcp_flags_valid(m):
            exp, note = INV, "%s: invalid tcp flag combination" % name
        elif core & FLAG_BITS["R"] or core & FLAG_BITS["F"] or core == flagval("SA"):
            exp, note = INV, "%s: valid flags but cannot start a connection (invalid new)" % name
        elif core & FLAG_BITS["S"]:
            exp, note = NEW, "%s: SYN_SENT, 120 s" % name
        else:
            exp, note = NEW, "%s: mid-stream pickup, ESTABLISHED capped at 300 s" % name
        t = Tcp(s, cport=41000 + n, cisn=10_000_000 + n * 1000)
        ack = 20_000_000 if m & FLAG_BITS["A"] else 0
        opts = [("MSS", 1460)] if m & FLAG_BITS["S"] else []
        t.c(_flags_name(m), exp, note, ack=ack, options=opts)


INVALID_CORE_FLAGS = [m for m in (
    sum(FLAG_BITS["FSRAU"[b]] for b in range(5) if i >> b & 1) for i in range(32))
    if m not in VALID_TCP_FLAGS]


@scenario("Every invalid flag combination in the middle of an established connection.",
          ["tcp", "ipv4", "flags", "invalid"],
          "All 23 invalid FIN/SYN/RST/ACK/URG combinations from the client with in-window seq/ack, "
          "then five from the server. tcp_error rejects them before the state machine, so each is "
          "invalid and nothing changes: the connection is still ESTABLISHED and assured at the end.")
def tcp_invalid_flags_midstream(s):
    t = Tcp(s, cport=40008)
    t.handshake()
    for m in INVALID_CORE_FLAGS:
        t.c(_flags_name(m), INV, "invalid tcp flag combination, state unchanged")
    for name in ("", "SF", "FPU", "SAU", "RAU"):
        t.s(name, INV, "invalid tcp flag combination, state unchanged")
    t.c("PA", EST, "still ESTABLISHED: 300 s (unacked)", data=payload(10))
    t.s("A", EST, "432000 s")


def _seq_over(s, v6):
    t = Tcp(s, cport=40009, v6=v6)
    t.handshake()
    t.c("PA", INV, "seq = next + 200000, beyond the server's window: SEQ is over upper bound",
        data=payload(100), seq=t.nxt["c"] + 200_000)
    t.c("PA", EST, "in-window data still accepted: 300 s", data=payload(100))
    t.s("A", EST, "432000 s")


@scenario("Data with SEQ beyond the receiver's window is INVALID.", ["tcp", "ipv4", "window", "invalid"],
          "Window check I (section 7.6) fails; the entry is untouched and later in-window data passes.")
def tcp_seq_over_upper_bound(s):
    _seq_over(s, False)


@scenario("IPv6 variant of tcp_seq_over_upper_bound.", ["tcp", "ipv6", "window", "invalid"],
          "Window check I fails over IPv6.")
def tcp_seq_over_upper_bound_v6(s):
    _seq_over(s, True)


@scenario("An ACK for data never sent is INVALID (ACK over upper bound).",
          ["tcp", "ipv4", "window", "invalid"],
          "Window check III: the ack number lies 100000 bytes past anything the server sent.")
def tcp_ack_over_upper_bound(s):
    t = Tcp(s, cport=40010)
    t.handshake()
    t.s("PA", EST, "server data, 300 s", data=payload(100))
    t.c("A", INV, "ack = server next + 100000: ACK is over upper bound", ack=t.nxt["s"] + 100_000)
    t.c("A", EST, "correct ACK: 432000 s")


@scenario("Old data retransmitted below the window is ignored, not invalid.",
          ["tcp", "ipv4", "window", "ignore"],
          "The server advertises a 1000-byte window; the client sends four 500-byte segments, each "
          "acked. Re-sending the first segment fails window check II (end <= td_end - "
          "receiver td_maxwin - 1): 'SEQ is under lower bound', IGNORE, so the packet keeps its ct "
          "(established), no state change and no refresh. The connection stays ESTABLISHED.")
def tcp_old_data_below_window(s):
    t = Tcp(s, cport=40011, swin=1000)
    t.handshake()
    first = t.nxt["c"]
    for i in range(4):
        t.c("PA", EST, "segment %d, 300 s (unacked)" % (i + 1), data=payload(500, i))
        t.s("A", EST, "acked: 432000 s")
    t.c("PA", EST, "retransmission of segment 1, far below the window: ignored, no refresh",
        data=payload(500, 0), seq=first)
    t.s("A", EST, "duplicate ACK, 432000 s")
    t.c("PA", EST, "new data, 300 s", data=payload(100, 9))
    t.s("A", EST, "432000 s")


# Linux's SYN option layout without timestamps: mss, nop, nop, sackOK, nop, wscale
WS_OPTS = [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]


@scenario("Window scaling (wscale 7) and SACK.", ["tcp", "ipv4", "window", "sack"],
          "Both SYNs carry MSS, SACK_PERM and wscale 7; later windows are scaled (502 << 7). The "
          "client sends three 1000-byte segments, the server acks the first and SACKs the third, "
          "the client retransmits the second, the server acks everything. All in window.")
def tcp_wscale_sack(s):
    t = Tcp(s, cport=40012, cwin=64240, swin=65160, copts=WS_OPTS, sopts=WS_OPTS)
    t.c("S", NEW, "SYN_SENT, 120 s, wscale 7, SACK_PERM")
    t.s("SA", EST, "SYN_RECV, 60 s, both sides scale by 7")
    t.win = {"c": 502, "s": 509}
    t.c("A", EST, "ESTABLISHED, 432000 s, +ASSURED")
    a = t.nxt["c"]
    for i in range(3):
        t.c("PA", EST, "segment %d, 300 s" % (i + 1), data=payload(1000, i))
    t.s("A", EST, "acks segment 1, SACK block covers segment 3: 300 s (data still unacked)",
        ack=a + 1000, options=[("NOP", None), ("NOP", None), ("SAck", ((a + 2000) & M32,
                                                                       (a + 3000) & M32))])
    t.c("PA", EST, "retransmission of segment 2, in window, 300 s", data=payload(1000, 1),
        seq=a + 1000)
    t.s("A", EST, "acks all: 432000 s")


@scenario("A SACK block beyond the data sent is INVALID (ACK over upper bound).",
          ["tcp", "ipv4", "window", "sack", "invalid"],
          "With SACK_PERM, window check III uses the highest SACK right edge: one 4000 bytes past "
          "the client's data makes the ACK invalid although its ack number is fine.")
def tcp_sack_over_upper_bound(s):
    t = Tcp(s, cport=40013, copts=WS_OPTS, sopts=WS_OPTS)
    t.c("S", NEW, "SYN_SENT, 120 s")
    t.s("SA", EST, "SYN_RECV, 60 s")
    t.win = {"c": 502, "s": 502}
    t.c("A", EST, "ESTABLISHED, 432000 s, +ASSURED")
    a = t.nxt["c"]
    t.c("PA", EST, "300 s", data=payload(1000))
    t.s("A", INV, "ack ok but SACK right edge = next + 4000: ACK is over upper bound", ack=a,
        options=[("NOP", None), ("NOP", None), ("SAck", ((a + 1000) & M32, (a + 5000) & M32))])
    t.s("A", EST, "plain ACK of everything: 432000 s")


@scenario("Sequence numbers wrap around 2^32.", ["tcp", "ipv4", "window", "wrap"],
          "Client ISN 0xFFFFFC00 and server ISN 0xFFFFFF00; data in both directions crosses 2^32. "
          "All comparisons are modulo 2^32, so every packet is in window; FIN close to TIME_WAIT.")
def tcp_seq_wraparound(s):
    t = Tcp(s, cport=40014, cisn=0xFFFFFC00, sisn=0xFFFFFF00)
    t.handshake()
    t.c("PA", EST, "300 s", data=payload(1000))
    t.c("PA", EST, "crosses 2^32, 300 s", data=payload(1000, 1))
    t.s("A", EST, "ack number wrapped, 432000 s")
    t.s("PA", EST, "server data crosses 2^32, 300 s", data=payload(600, 2))
    t.c("A", EST, "432000 s")
    t.c("FA", EST, "FIN_WAIT, 120 s")
    t.s("FA", EST, "LAST_ACK, 30 s")
    t.c("A", EST, "TIME_WAIT, 120 s")


@scenario("Duplicate ACKs: the same ACK four times sets the RETRANS timeout (300 s).",
          ["tcp", "ipv4", "retrans", "timeout"],
          "An ACK-class packet identical to the previous one (direction, seq, ack, end, window) "
          "increments the retrans counter; at nf_conntrack_tcp_max_retrans=3 repeats the timeout "
          "becomes T[RETRANS]=300 s instead of 432000 s (section 7.6/7.7).")
def tcp_retrans_dup_acks(s):
    t = Tcp(s, cport=40015)
    t.handshake()
    t.c("PA", EST, "300 s (unacked)", data=payload(100))
    t.s("A", EST, "acks the data: 432000 s, retrans 0")
    t.s("A", EST, "identical: retrans 1, 432000 s")
    t.s("A", EST, "identical: retrans 2, 432000 s")
    t.s("A", EST, "identical: retrans 3 >= max_retrans: RETRANS timeout 300 s")


@scenario("Retransmitted data: the RETRANS rule wins over UNACK.", ["tcp", "ipv4", "retrans", "timeout"],
          "nf_conntrack_tcp_timeout_max_retrans=250 makes RETRANS distinguishable from UNACK "
          "(300 s). The client sends the same unacked segment four times: 300 s (UNACK) three "
          "times, then 250 s (retrans 3, rule 1 of section 7.7). The server's ACK resets the "
          "counter: 432000 s.",
          sysctls={"nf_conntrack_tcp_timeout_max_retrans": "250"})
def tcp_retrans_data(s):
    t = Tcp(s, cport=40016)
    t.handshake()
    seq = t.nxt["c"]
    t.c("PA", EST, "unacked: UNACK 300 s", data=payload(200))
    t.c("PA", EST, "retransmission, retrans 1: 300 s", data=payload(200), seq=seq)
    t.c("PA", EST, "retransmission, retrans 2: 300 s", data=payload(200), seq=seq)
    t.c("PA", EST, "retransmission, retrans 3: RETRANS 250 s", data=payload(200), seq=seq)
    t.s("A", EST, "acked, counter reset: 432000 s")


@scenario("Zero window: a receiver advertising window 0 lowers the timeout to RETRANS.",
          ["tcp", "ipv4", "window", "timeout"],
          "last_win == 0 selects T[RETRANS] (300 s) while the state stays ESTABLISHED. A zero-window "
          "probe (seq = next - 1, no data) from the client carries a non-zero window, which brings "
          "back 432000 s; the next zero-window ACK lowers it again; the window update restores it.")
def tcp_zero_window(s):
    t = Tcp(s, cport=40017)
    t.handshake()
    t.c("PA", EST, "300 s (unacked)", data=payload(500))
    t.s("A", EST, "acks the data with window 0: RETRANS 300 s", win=0)
    t.c("A", EST, "zero-window probe (seq = next - 1), window 64240: 432000 s",
        seq=t.nxt["c"] - 1)
    t.s("A", EST, "still window 0: 300 s", win=0)
    t.s("A", EST, "window update 64240: 432000 s")
    t.c("PA", EST, "300 s (unacked)", data=payload(100, 1))
    t.s("A", EST, "432000 s")


def _pickup(s, v6=False):
    t = Tcp(s, cport=40018, v6=v6, cisn=30_000_000, sisn=40_000_000, cwin=502, swin=510)
    t.c("A", NEW, "pickup: ESTABLISHED, capped at 300 s, both directions liberal")
    t.s("A", EST, "+SEEN_REPLY, still 300 s (no reply seen before this packet)")
    t.c("PA", EST, "+ASSURED; data unacked: 300 s", data=payload(100))
    t.s("A", EST, "432000 s")


@scenario("Mid-stream pickup with nf_conntrack_tcp_loose=1 (default).", ["tcp", "ipv4", "pickup"],
          "A connection whose handshake was not seen. The first ACK creates an ESTABLISHED entry "
          "(300 s cap, BE_LIBERAL both ways); the reply sets SEEN_REPLY; the next packet sets "
          "ASSURED.")
def tcp_pickup_loose(s):
    _pickup(s)


@scenario("Mid-stream pickup with nf_conntrack_tcp_loose=0: everything INVALID.",
          ["tcp", "ipv4", "pickup", "invalid"],
          "Same packets as tcp_pickup_loose with loose=0: an ACK cannot create an entry, so all four "
          "are invalid and the table stays empty. A normal handshake on other ports still works.",
          sysctls={"nf_conntrack_tcp_loose": "0"})
def tcp_pickup_noloose(s):
    t = Tcp(s, cport=40018, cisn=30_000_000, sisn=40_000_000, cwin=502, swin=510)
    t.c("A", INV, "ACK cannot start a connection with loose=0")
    t.s("A", INV, "no entry: also a first packet, invalid")
    t.c("PA", INV, "invalid", data=payload(100))
    t.s("A", INV, "invalid")
    u = Tcp(s, cport=40019)
    u.handshake()


@scenario("IPv6 variant of tcp_pickup_loose.", ["tcp", "ipv6", "pickup"],
          "Mid-stream pickup over IPv6.")
def tcp_pickup_loose_v6(s):
    _pickup(s, v6=True)


@scenario("SYN/ACK as the first packet is INVALID.", ["tcp", "ipv4", "invalid"],
          "A SYN/ACK whose SYN was never seen (sent by the client-side host 10.1.0.1 from port 80, "
          "so the flow's first packet comes from the client side) cannot create an entry. The "
          "following ACK from the same host is a mid-stream pickup (loose=1) and creates one.")
def tcp_synack_first(s):
    t = Tcp(s, cport=80, sport=40020, cisn=7_000_000, sisn=8_000_000)
    t.c("SA", INV, "SYN/ACK cannot start a connection (invalid new)", ack=8_000_001,
        advance=True)
    t.c("SA", INV, "retransmitted SYN/ACK: still invalid", ack=8_000_001, seq=7_000_000)
    t.nxt["s"] = 8_000_001
    t.c("A", NEW, "pickup: ESTABLISHED, 300 s")
    t.s("A", EST, "+SEEN_REPLY, 300 s")


@scenario("RST with an in-window but inexact seq on an ESTABLISHED+ASSURED connection "
          "(challenge ACK).", ["tcp", "ipv4", "rst", "challenge-ack"],
          "Section 7.5 case 2e: the RST's seq is 1000 past the server's max ack, inside the window, "
          "so the state stays ESTABLISHED (RFC 5961: the peer answers with a challenge ACK) but, "
          "on the 6.18 kernel, the timeout drops to T[CLOSE]=10 s (section 7.9). The RST also "
          "advances the client's td_end. The server's challenge ACK is accepted (timeout back to "
          "300 s: DATA_UNACK from the RST), then the client's exact RST (seq == max ack, case 2c) "
          "moves to CLOSE.")
def tcp_rst_inexact_challenge_ack(s):
    t = Tcp(s, cport=40021)
    t.handshake()
    t.c("PA", EST, "300 s", data=payload(100))
    t.s("PA", EST, "acks + server data, 300 s", data=payload(100, 1))
    t.c("A", EST, "432000 s")
    t.s("A", EST, "last packet from the server, 432000 s")
    exact = t.nxt["c"]
    t.c("R", EST, "inexact RST (seq = max ack + 1000): stays ESTABLISHED, timeout 10 s",
        seq=exact + 1000, advance=False)
    t.s("A", EST, "challenge ACK: ESTABLISHED, 300 s (the RST set DATA_UNACK)")
    t.c("R", EST, "exact RST: CLOSE, 10 s", seq=exact)


@scenario("RST whose seq is below the peer's max ack is INVALID.", ["tcp", "ipv4", "rst", "invalid"],
          "Section 7.5 case 2b (tcp_ignore_invalid_rst=0): an RST with an already acked seq is "
          "'invalid rst'; the exact RST afterwards closes the connection.")
def tcp_rst_invalid_old_seq(s):
    t = Tcp(s, cport=40022)
    t.handshake()
    old = t.nxt["c"]
    t.c("PA", EST, "300 s", data=payload(100))
    t.s("A", EST, "acks it: 432000 s")
    t.c("R", INV, "seq before the server's max ack: invalid rst", seq=old)
    t.c("R", EST, "exact seq: CLOSE, 10 s")


@scenario("Unacknowledged data keeps the UNACK timeout (300 s) until it is acked.",
          ["tcp", "ipv4", "timeout"],
          "Two client segments (300 s each); a partial ACK leaves DATA_UNACK set (300 s); the full "
          "ACK clears it (432000 s).")
def tcp_data_unacked(s):
    t = Tcp(s, cport=40023)
    t.handshake()
    a = t.nxt["c"]
    t.c("PA", EST, "UNACK 300 s", data=payload(300))
    t.c("PA", EST, "UNACK 300 s", data=payload(300, 1))
    t.s("A", EST, "partial ack (first segment): still 300 s", ack=a + 300)
    t.s("A", EST, "full ack: 432000 s")


@scenario("FIN/ACK while in SYN_SENT is INVALID in both directions.", ["tcp", "ipv4", "invalid"],
          "The fin row of the state table gives IV from SYN_SENT in both directions; the handshake "
          "then completes normally.")
def tcp_fin_in_syn_sent(s):
    t = Tcp(s, cport=40024)
    t.c("S", NEW, "SYN_SENT, 120 s")
    t.c("FA", INV, "FIN in SYN_SENT (original): invalid", ack=2_000_001)
    t.s("FA", INV, "FIN in SYN_SENT (reply): invalid", seq=2_000_000)
    t.s("SA", EST, "SYN_RECV, 60 s")
    t.c("A", EST, "ESTABLISHED, 432000 s, +ASSURED")


@scenario("Port reuse while the firewall still has an ESTABLISHED entry: SYN ignored, challenge ACK, "
          "RST, fresh SYN.", ["tcp", "ipv4", "ignore", "reuse", "rst"],
          "A new SYN in ESTABLISHED is ignored (established, no change). The server answers with a "
          "challenge ACK; the client's RST (seq = that ack, exact) moves to CLOSE; the next SYN "
          "finds CLOSE with the last in-window packet an RST in the same direction, so the old "
          "entry is deleted and the SYN creates a fresh entry (new).")
def tcp_syn_in_established(s):
    t = Tcp(s, cport=40025)
    t.handshake()
    t.c("PA", EST, "300 s", data=payload(100))
    t.s("A", EST, "432000 s")
    old_c = t.nxt["c"]
    t.c("S", EST, "SYN with a new ISN in ESTABLISHED: ignored, no state change",
        seq=7_000_000, advance=False)
    t.s("A", EST, "challenge ACK (current seq/ack): ESTABLISHED")
    t.c("R", EST, "RST seq = the challenge ACK's ack (exact): CLOSE, 10 s", seq=old_c)
    t.nxt["c"] = 7_000_000
    t.nxt["s"] = 9_000_000
    t.c("S", NEW, "SYN again: old entry deleted, fresh entry SYN_SENT, 120 s")
    t.s("SA", EST, "SYN_RECV, 60 s")
    t.c("A", EST, "ESTABLISHED, 432000 s, +ASSURED")


@scenario("nf_conntrack_tcp_be_liberal=1 accepts out-of-window packets.",
          ["tcp", "ipv4", "window", "liberal"],
          "The same out-of-window SEQ and ACK as tcp_seq_over_upper_bound / tcp_ack_over_upper_bound "
          "are accepted (established) with be_liberal.",
          sysctls={"nf_conntrack_tcp_be_liberal": "1"})
def tcp_be_liberal(s):
    t = Tcp(s, cport=40026)
    t.handshake()
    t.c("PA", EST, "seq 200000 past the window: accepted (liberal)", data=payload(100),
        seq=t.nxt["c"] + 200_000, advance=False)
    t.c("A", EST, "ack 100000 past the server's data: accepted (liberal)",
        ack=t.nxt["s"] + 100_000)
    t.c("PA", EST, "normal data", data=payload(100, 1))
    t.s("A", EST, "server ACK")


def _tcp_bad_csum(s, checked):
    """Each corrupted segment is followed by its good twin (same seq/ack, correct checksum)."""
    t = Tcp(s, cport=40027)
    bad = dict(mangle=bad_l4_csum, advance=False)
    if checked:
        t.c("S", INV, "bad checksum: invalid, no entry", **bad)
        t.c("S", NEW, "good twin: SYN_SENT, 120 s")
        t.s("SA", INV, "bad checksum: invalid", **bad)
        t.s("SA", EST, "good twin: SYN_RECV, 60 s")
        t.c("A", INV, "bad checksum: invalid", **bad)
        t.c("A", EST, "good twin: ESTABLISHED, 432000 s, +ASSURED")
    else:
        t.c("S", NEW, "not verified: SYN_SENT, 120 s", **bad)
        t.c("S", NEW, "good twin = SYN retransmit: SYN_SENT, no refresh")
        t.s("SA", EST, "not verified: SYN_RECV, 60 s", **bad)
        t.s("SA", EST, "good twin = SYN/ACK retransmit in SYN_RECV: ignored")
        t.c("A", EST, "not verified: ESTABLISHED, 432000 s, +ASSURED", **bad)
        t.c("A", EST, "good twin: ESTABLISHED")


@scenario("TCP bad checksums with nf_conntrack_checksum=1: INVALID.", ["tcp", "ipv4", "checksum"],
          "Checksums are verified at PREROUTING; each corrupted packet is invalid and changes "
          "nothing, its good twin is tracked normally.",
          sysctls={"nf_conntrack_checksum": "1"})
def tcp_bad_checksum_checked(s):
    _tcp_bad_csum(s, True)


@scenario("TCP bad checksums with nf_conntrack_checksum=0: tracked.", ["tcp", "ipv4", "checksum"],
          "The same corrupted packets are not verified and are tracked like good ones.",
          sysctls={"nf_conntrack_checksum": "0"})
def tcp_bad_checksum_unchecked(s):
    _tcp_bad_csum(s, False)


# ==========================================================================
# UDP scenarios
# ==========================================================================
@scenario("One-way UDP: the entry stays UNREPLIED.", ["udp", "ipv4"],
          "Three datagrams from the client, no answer: all new, one entry, 30 s, [UNREPLIED].")
def udp_oneway(s):
    for i in range(3):
        s.add("c", udp(C4, S4, 5000, 53, b"query %d" % i), NEW, "UNREPLIED, 30 s")


def _udp_rr(s, c, sv):
    s.add("c", udp(c, sv, 5001, 53, b"query 1"), NEW, "30 s, [UNREPLIED]")
    s.add("s", udp(sv, c, 53, 5001, b"answer 1"), EST, "+SEEN_REPLY, 30 s")
    s.add("c", udp(c, sv, 5001, 53, b"query 2"), EST, "within 2 s of creation: 30 s, not ASSURED")
    s.add("s", udp(sv, c, 53, 5001, b"answer 2"), EST, "30 s, not ASSURED")


@scenario("UDP request/reply within 2 s: replied but not ASSURED.", ["udp", "ipv4"],
          "Query/answer twice within a few ms: 30 s timeout, never ASSURED (the 2 s stream rule "
          "is not met).")
def udp_request_reply(s):
    _udp_rr(s, C4, S4)


@scenario("IPv6 variant of udp_request_reply.", ["udp", "ipv6"], "Same over IPv6.")
def udp_request_reply_v6(s):
    _udp_rr(s, C6, S6)


@scenario("UDP flows for zones per direction: the same tuple twice, replies, other flows.",
          ["udp", "ipv4", "zones"],
          "A query and its answer, the same query again (65 bytes long, 5 more), a second flow "
          "answered twice, two more client flows. Without rules every later packet of a flow "
          "finds its entry; tests/rulesets/zones_per_direction.nft puts the longer copy in "
          "another original-direction zone, so it becomes a new flow that clashes with the "
          "first one's reply tuple (default zone in both) and is dropped at confirm.")
def zone_overlap_udp(s):
    s.add("c", udp(C4, S4, 5300, 53, b"q1"), NEW, "30 s, [UNREPLIED]")
    s.add("s", udp(S4, C4, 53, 5300, b"a1"), EST, "+SEEN_REPLY")
    s.add("c", udp(C4, S4, 5300, 53, b"q1 copy"), EST, "same flow")
    s.add("c", udp(C4, S4, 5301, 54, b"q2"), NEW, "30 s, [UNREPLIED]")
    s.add("s", udp(S4, C4, 54, 5301, b"a2"), EST, "+SEEN_REPLY")
    s.add("c", udp(C4, S4, 5301, 54, b"q2 again"), EST, "")
    s.add("c", udp(C4, S4, 5302, 55, b"q3"), NEW, "30 s, [UNREPLIED]")
    s.add("c", udp(C4, S4, 5303, 56, b"q4"), NEW, "30 s, [UNREPLIED]")
    s.add("s", udp(S4, C4, 54, 5301, b"a2 again"), EST, "")


@scenario("UDP stream: a packet more than 2 s after creation, with a reply seen, sets ASSURED.",
          ["udp", "ipv4", "timing", "assured"],
          "Request, reply, 2.5 s gap, another request: 120 s (udp_timeout_stream) and ASSURED. "
          "Duration 2.5 s.")
def udp_stream_assured(s):
    s.add("c", udp(C4, S4, 5002, 5002, b"stream 1"), NEW, "30 s, [UNREPLIED]")
    s.add("s", udp(S4, C4, 5002, 5002, b"stream 2"), EST, "+SEEN_REPLY, 30 s")
    s.add("c", udp(C4, S4, 5002, 5002, b"stream 3"), EST, "> 2 s after creation: 120 s, +ASSURED",
          gap=2.5)
    s.add("s", udp(S4, C4, 5002, 5002, b"stream 4"), EST, "120 s")


@scenario("UDP first reply after 2 s: the reply gives 30 s, the next packet ASSURED.",
          ["udp", "ipv4", "timing", "assured"],
          "SEEN_REPLY is set only after the tracker ran on the first reply, so that reply itself "
          "refreshes with 30 s even though it is late; the following packet gets 120 s and "
          "ASSURED. Duration 2.5 s.")
def udp_late_reply_assured(s):
    s.add("c", udp(C4, S4, 5003, 53, b"slow query"), NEW, "30 s, [UNREPLIED]")
    s.add("s", udp(S4, C4, 53, 5003, b"slow answer"), EST, "first reply at 2.5 s: 30 s, +SEEN_REPLY",
          gap=2.5)
    s.add("c", udp(C4, S4, 5003, 53, b"next query"), EST, "120 s, +ASSURED")


@scenario("UDP expiry and re-creation (nf_conntrack_udp_timeout=2).", ["udp", "ipv4", "timing", "expiry"],
          "Request and reply set a 2 s timeout; after a 2.5 s gap the entry has expired, so the "
          "next request creates a fresh entry (new). Duration 2.5 s.",
          sysctls={"nf_conntrack_udp_timeout": "2"})
def udp_expiry_recreate(s):
    s.add("c", udp(C4, S4, 5004, 53, b"query 1"), NEW, "2 s")
    s.add("s", udp(S4, C4, 53, 5004, b"answer 1"), EST, "2 s, +SEEN_REPLY")
    s.add("c", udp(C4, S4, 5004, 53, b"query 2"), NEW, "old entry expired: fresh entry, 2 s",
          gap=2.5)
    s.add("s", udp(S4, C4, 53, 5004, b"answer 2"), EST, "2 s")


def _udp_bad_csum(s, checked):
    if checked:
        s.add("c", udp(C4, S4, 5005, 53, b"query"), INV, "bad checksum: invalid, no entry",
              mangle=bad_l4_csum)
        s.add("c", udp(C4, S4, 5005, 53, b"query"), NEW, "good twin: 30 s")
        s.add("s", udp(S4, C4, 53, 5005, b"answer"), INV, "bad checksum: invalid",
              mangle=bad_l4_csum)
        s.add("s", udp(S4, C4, 53, 5005, b"answer"), EST, "good twin: +SEEN_REPLY")
    else:
        s.add("c", udp(C4, S4, 5005, 53, b"query"), NEW, "not verified: 30 s", mangle=bad_l4_csum)
        s.add("c", udp(C4, S4, 5005, 53, b"query"), NEW, "same entry, still unreplied")
        s.add("s", udp(S4, C4, 53, 5005, b"answer"), EST, "not verified: +SEEN_REPLY",
              mangle=bad_l4_csum)
        s.add("s", udp(S4, C4, 53, 5005, b"answer"), EST, "30 s")


@scenario("UDP bad checksum with nf_conntrack_checksum=1: INVALID.", ["udp", "ipv4", "checksum"],
          "Corrupted datagrams are invalid (no entry is created by the first one); their good twins "
          "are tracked.", sysctls={"nf_conntrack_checksum": "1"})
def udp_bad_checksum_checked(s):
    _udp_bad_csum(s, True)


@scenario("UDP bad checksum with nf_conntrack_checksum=0: tracked.", ["udp", "ipv4", "checksum"],
          "The same corrupted datagrams are tracked.", sysctls={"nf_conntrack_checksum": "0"})
def udp_bad_checksum_unchecked(s):
    _udp_bad_csum(s, False)


def _udp_zero(s, c, sv):
    s.add("c", udp(c, sv, 5006, 9999, b"no checksum", chksum=0), NEW, "checksum 0 is not checked: 30 s")
    s.add("s", udp(sv, c, 9999, 5006, b"no checksum back", chksum=0), EST, "+SEEN_REPLY")


@scenario("UDP checksum 0 (no checksum) is tracked over IPv4.", ["udp", "ipv4", "checksum"],
          "A zero UDP checksum means 'none' and is not verified.",
          sysctls={"nf_conntrack_checksum": "1"})
def udp_checksum_zero(s):
    _udp_zero(s, C4, S4)


@scenario("UDP checksum 0 over IPv6 is tracked too.", ["udp", "ipv6", "checksum"],
          "IPv6 forbids a zero UDP checksum, but conntrack skips the check for 0 in both families "
          "(kernel-parity-notes.md) and the forward path does not look at it.",
          sysctls={"nf_conntrack_checksum": "1"})
def udp_checksum_zero_v6(s):
    _udp_zero(s, C6, S6)


@scenario("UDP length field larger than the packet, or below 8: INVALID.", ["udp", "ipv4", "invalid"],
          "udp_error: length field > L4 bytes or < 8 is 'truncated/malformed packet'. One flow per "
          "case, then a correct datagram on a third port.")
def udp_length_invalid(s):
    real = len(bytes(udp(C4, S4, 5007, 53, b"length says 10 more")[UDP]))
    s.add("c", udp(C4, S4, 5007, 53, b"length says 10 more", ulen=real + 10), INV,
          "UDP length %d > %d bytes present" % (real + 10, real))
    s.add("c", udp(C4, S4, 5008, 53, b"length says 4", ulen=4), INV, "UDP length 4 < 8")
    s.add("c", udp(C4, S4, 5009, 53, b"correct"), NEW, "30 s")


@scenario("UDP header shorter than the 4 port bytes: INVALID (tuple cannot be built).",
          ["udp", "ipv4", "invalid", "malformed"],
          "An IPv4 packet with protocol 17 and only 3 bytes of L4 header: the tuple needs the "
          "ports, so conntrack counts invalid (kernel-semantics-2.md 4.2). The harness cannot read "
          "ports from it; the frame's source MAC marks it as client side.")
def udp_truncated_header(s):
    s.add("c", IP(src=C4, dst=S4, proto=17) / Raw(b"\x13\x88\x00"), INV,
          "3-byte UDP header", what="10.1.0.1 > 10.2.0.1 UDP with a 3-byte header")
    s.add("c", udp(C4, S4, 5010, 53, b"correct"), NEW, "30 s")


# ==========================================================================
# ICMP scenarios
# ==========================================================================
@scenario("ICMP echo request/reply.", ["icmp", "ipv4"],
          "One entry per (addresses, id); every packet refreshes 30 s; never ASSURED. A second "
          "identifier makes a second entry.")
def icmp_echo(s):
    s.add("c", icmp(C4, S4, 8, 0x1234, 1, data=b"ping"), NEW, "30 s")
    s.add("s", icmp(S4, C4, 0, 0x1234, 1, data=b"ping"), EST, "+SEEN_REPLY, 30 s")
    s.add("c", icmp(C4, S4, 8, 0x1234, 2, data=b"ping"), EST, "same id: same entry")
    s.add("s", icmp(S4, C4, 0, 0x1234, 2, data=b"ping"), EST, "30 s, never ASSURED")
    s.add("c", icmp(C4, S4, 8, 0x1235, 1, data=b"ping"), NEW, "another id: another entry")


@scenario("ICMP timestamp (13/14), information (15/16) and address mask (17/18) queries.",
          ["icmp", "ipv4"],
          "Each request type may create an entry; its reply type matches the reply tuple.")
def icmp_query_types(s):
    for req, rep, ident in ((13, 14, 0x2001), (15, 16, 0x2002), (17, 18, 0x2003)):
        s.add("c", icmp(C4, S4, req, ident, 1), NEW, "type %d creates an entry (reply type %d), 30 s"
              % (req, rep))
        s.add("s", icmp(S4, C4, rep, ident, 1), EST, "reply, +SEEN_REPLY")


@scenario("Unsolicited ICMP replies are INVALID.", ["icmp", "ipv4", "invalid"],
          "Echo reply, timestamp reply, info reply and mask reply cannot create an entry.")
def icmp_unsolicited_replies(s):
    for t, ident in ((0, 0x3001), (14, 0x3002), (16, 0x3003), (18, 0x3004)):
        s.add("c", icmp(C4, S4, t, ident, 1), INV, "type %d as first packet: invalid" % t)


@scenario("ICMP types that cannot be tracked: 9, 10, 1 (invalid) and 42, 19 (error path).",
          ["icmp", "ipv4", "invalid"],
          "Types 9 (router advertisement), 10 (router solicitation) and 1 (unassigned) are not "
          "errors and have no reply type: the tuple cannot be inverted, counter invalid+1. Types "
          "above 18 (42 extended echo, 19) are rejected by the error path: counter error+1. All "
          "get ct state invalid.")
def icmp_bad_types(s):
    s.add("c", icmp(C4, S4, 9), INV, "not invertible: invalid++")
    s.add("c", icmp(C4, S4, 10), INV, "not invertible: invalid++")
    s.add("c", icmp(C4, S4, 1), INV, "not invertible: invalid++")
    s.add("c", icmp(C4, S4, 42), INV, "type > 18: error++")
    s.add("c", icmp(C4, S4, 19), INV, "type > 18: error++")


@scenario("ICMP echo with a bad checksum is rejected by the error path.",
          ["icmp", "ipv4", "checksum"],
          "With nf_conntrack_checksum=1 the ICMP checksum is verified in icmp_error: "
          "'bad hw icmp checksum', error+1, invalid. The good twin creates the entry.",
          sysctls={"nf_conntrack_checksum": "1"})
def icmp_bad_checksum(s):
    s.add("c", icmp(C4, S4, 8, 0x4001, 1, data=b"ping"), INV, "bad checksum: error++",
          mangle=bad_l4_csum)
    s.add("c", icmp(C4, S4, 8, 0x4001, 1, data=b"ping"), NEW, "30 s")
    s.add("s", icmp(S4, C4, 0, 0x4001, 1, data=b"ping"), EST, "+SEEN_REPLY")


@scenario("ICMP errors quoting an original-direction UDP packet are RELATED (reply direction).",
          ["icmp", "ipv4", "related", "udp"],
          "Errors sent towards the client about its datagram: port unreachable from the server, "
          "time exceeded and host unreachable from a router (10.2.0.254). Each is related (ctinfo "
          "RELATED_REPLY, ct direction reply) and changes nothing: the UDP entry stays [UNREPLIED] "
          "at 30 s and the client's next datagram is still new. After a real reply the same error is "
          "still related.")
def icmp_error_related_reply(s):
    q = s.add("c", udp(C4, S4, 5300, 53, b"query"), NEW, "UDP entry, 30 s, [UNREPLIED]")
    s.add("s", icmp_err(S4, C4, q, 3, 3), REL, "port unreachable quoting the whole datagram: "
          "RELATED_REPLY, no state change")
    s.add("s", icmp_err(R_S4, C4, q, 11, 0, quote=28), REL, "time exceeded from a router, "
          "IP header + 8 bytes quoted")
    s.add("c", udp(C4, S4, 5300, 53, b"query"), NEW, "still unreplied: new")
    s.add("s", udp(S4, C4, 53, 5300, b"answer"), EST, "+SEEN_REPLY")
    s.add("s", icmp_err(R_S4, C4, q, 3, 1, quote=28), REL, "host unreachable: RELATED_REPLY")


@scenario("ICMP error quoting a reply-direction packet is RELATED (original direction).",
          ["icmp", "ipv4", "related", "udp"],
          "The client (and a client-side router 10.1.0.254) report a port unreachable / time "
          "exceeded about the server's datagram. The inverted inner tuple matches the ORIGINAL "
          "tuple: ctinfo RELATED, ct direction original. Sent from the client side.")
def icmp_error_related_orig(s):
    s.add("c", udp(C4, S4, 5400, 53, b"query"), NEW, "30 s")
    r = s.add("s", udp(S4, C4, 53, 5400, b"answer"), EST, "+SEEN_REPLY")
    s.add("c", icmp_err(C4, S4, r, 3, 3), REL, "port unreachable from the client: RELATED")
    s.add("c", icmp_err(R_C4, S4, r, 11, 0, quote=28), REL, "time exceeded from a client-side "
          "router: RELATED")


@scenario("ICMP fragmentation-needed quoting a TCP segment is RELATED.",
          ["icmp", "ipv4", "related", "tcp", "pmtu"],
          "A router on the server side reports MTU 1000 for the client's 1200-byte DF segment "
          "(IP header + 8 bytes quoted, enough for the ports). Related, no change to the TCP "
          "entry; the smaller retransmission is established.")
def icmp_error_tcp_frag_needed(s):
    t = Tcp(s, cport=40030)
    t.handshake()
    seq = t.nxt["c"]
    big, _, _ = t.build("c", "PA", payload(1200))
    big.flags = "DF"
    t.nxt["c"] = seq + 1200
    q = s.add("c", big, EST, "1200-byte DF segment: 300 s (unacked)")
    s.add("s", icmp_err(R_S4, C4, q, 3, 4, quote=28, mtu=1000), REL,
          "fragmentation needed, MTU 1000: RELATED_REPLY")
    t.c("PA", EST, "first 900 bytes again, in window", data=payload(900), seq=seq)
    t.s("A", EST, "acks 900 bytes; 300 bytes remain unacked: 300 s", ack=seq + 900)


@scenario("ICMP error matching no entry: error counter, INVALID.", ["icmp", "ipv4", "invalid"],
          "Errors quoting a UDP datagram and a TCP SYN that were never seen: no match, error+1, "
          "no ct. Once the UDP flow exists the same error is related.")
def icmp_error_unmatched(s):
    ghost = udp(C4, S4, 5500, 53, b"never sent")
    ghost.id = 0x0BAD
    ghost_syn = IP(src=C4, dst=S4, id=0x0BAE) / TCP(sport=40031, dport=80, flags="S", seq=5,
                                                     window=64240)
    s.add("s", icmp_err(R_S4, C4, ghost, 3, 1, quote=28), INV, "no matching UDP entry: error++")
    s.add("s", icmp_err(S4, C4, ghost_syn, 3, 3, quote=28), INV, "no matching TCP entry: error++")
    q = s.add("c", udp(C4, S4, 5500, 53, b"now sent"), NEW, "30 s")
    s.add("s", icmp_err(R_S4, C4, q, 3, 1, quote=28), REL, "now it matches: RELATED_REPLY")


@scenario("ICMP errors with a truncated quoted L4 header.", ["icmp", "ipv4", "related", "malformed"],
          "The inner tuple needs only the 4 port bytes: 8 and 4 quoted bytes are related; 2 bytes "
          "or none cannot give a tuple: error+1, invalid.")
def icmp_error_truncated_inner(s):
    q = s.add("c", udp(C4, S4, 5600, 53, b"query"), NEW, "30 s")
    s.add("s", icmp_err(R_S4, C4, q, 3, 1, quote=28), REL, "8 L4 bytes quoted: related")
    s.add("s", icmp_err(R_S4, C4, q, 3, 1, quote=24), REL, "4 L4 bytes (ports only): related")
    s.add("s", icmp_err(R_S4, C4, q, 3, 1, quote=22), INV, "2 L4 bytes: no tuple, error++")
    s.add("s", icmp_err(R_S4, C4, q, 3, 1, quote=20), INV, "inner IP header only: error++")


@scenario("ICMP error whose outer destination is not the quoted packet's source: INVALID.",
          ["icmp", "ipv4", "invalid"],
          "The inner packet matches the entry, but the error is addressed to 10.1.0.99 instead of "
          "the quoted source 10.1.0.1: 'outer daddr != inner', error+1, invalid. The correctly "
          "addressed error is related.")
def icmp_error_outer_mismatch(s):
    q = s.add("c", udp(C4, S4, 5700, 53, b"query"), NEW, "30 s")
    s.add("s", icmp_err(R_S4, "10.1.0.99", q, 3, 1, quote=28), INV,
          "outer dst 10.1.0.99 != 10.1.0.1: error++")
    s.add("s", icmp_err(R_S4, C4, q, 3, 1, quote=28), REL, "outer dst matches: related")


# ==========================================================================
# ICMPv6 scenarios
# ==========================================================================
@scenario("ICMPv6 echo request/reply.", ["icmpv6", "ipv6"],
          "Like ICMP echo: one entry per id, 30 s, never ASSURED.")
def icmpv6_echo(s):
    s.add("c", echo6(C6, S6, False, 0x5001, 1), NEW, "30 s")
    s.add("s", echo6(S6, C6, True, 0x5001, 1), EST, "+SEEN_REPLY")
    s.add("c", echo6(C6, S6, False, 0x5001, 2), EST, "30 s")
    s.add("s", echo6(S6, C6, True, 0x5001, 2), EST, "30 s")


@scenario("ICMPv6 errors related to a UDP flow.", ["icmpv6", "ipv6", "related", "udp"],
          "Destination unreachable (port) from the server, packet too big (MTU 1280) and time "
          "exceeded from a server-side router, all quoting the client's datagram: related (reply "
          "direction); the UDP entry stays [UNREPLIED].")
def icmpv6_error_related(s):
    q = s.add("c", udp(C6, S6, 5800, 53, b"query"), NEW, "30 s, [UNREPLIED]")
    s.add("s", icmp6_err(S6, C6, q, 1, 4), REL, "port unreachable: RELATED_REPLY")
    s.add("s", icmp6_err(R_S6, C6, q, 2, mtu=1280), REL, "packet too big: RELATED_REPLY")
    s.add("s", icmp6_err(R_S6, C6, q, 3, 0), REL, "time exceeded: RELATED_REPLY")
    s.add("c", udp(C6, S6, 5800, 53, b"query"), NEW, "still unreplied")


@scenario("ICMPv6 error matching no entry: error counter, INVALID.", ["icmpv6", "ipv6", "invalid"],
          "Destination unreachable quoting a datagram that was never seen.")
def icmpv6_error_unmatched(s):
    ghost = udp(C6, S6, 5801, 53, b"never sent")
    s.add("s", icmp6_err(R_S6, C6, ghost, 1, 3), INV, "no match: error++")


@scenario("ICMPv6 neighbour discovery and MLD are UNTRACKED.", ["icmpv6", "ipv6", "untracked", "nd"],
          "Types 130-136, 143 (and 151, 152) get ct state untracked with no entry and no counter. "
          "Sent from fe80::1 with hop limit 255 (ND) or 1 with a router-alert hop-by-hop option "
          "(MLD), as real hosts do.")
def icmpv6_nd_mld_untracked(s):
    snm = "ff02::1:ff00:1"
    s.add("c", IPv6(src=LL_C6, dst=snm, hlim=255) / ICMPv6ND_NS(tgt=S6)
          / ICMPv6NDOptSrcLLAddr(lladdr=MAC_C), UNT, "neighbour solicitation (135)")
    s.add("c", IPv6(src=LL_C6, dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=LL_C6, R=0, S=0, O=1)
          / ICMPv6NDOptDstLLAddr(lladdr=MAC_C), UNT, "neighbour advertisement (136)")
    s.add("c", IPv6(src=LL_C6, dst="ff02::2", hlim=255) / ICMPv6ND_RS()
          / ICMPv6NDOptSrcLLAddr(lladdr=MAC_C), UNT, "router solicitation (133)")
    s.add("c", IPv6(src=LL_C6, dst="ff02::1", hlim=255) / ICMPv6ND_RA(chlim=64, routerlifetime=0)
          / ICMPv6NDOptSrcLLAddr(lladdr=MAC_C), UNT, "router advertisement (134)")
    s.add("c", IPv6(src=LL_C6, dst=snm, hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
          / ICMPv6MLReport(mladdr=snm), UNT, "MLDv1 report (131)")
    s.add("c", IPv6(src=LL_C6, dst="ff02::16", hlim=1)
          / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
          / ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(rtype=4, dst=snm)]), UNT,
          "MLDv2 report (143)")


@scenario("Unsolicited ICMPv6 replies and unknown informational types.",
          ["icmpv6", "ipv6", "invalid"],
          "An echo reply (129) and a node information reply (140) cannot create an entry; type 200 "
          "has no reply type: all invalid. A node information query (139) may create one: new.")
def icmpv6_unsolicited_and_unknown(s):
    s.add("c", echo6(C6, S6, True, 0x6001, 1), INV, "echo reply first: invalid")
    s.add("c", IPv6(src=C6, dst=S6) / ICMPv6Unknown(type=140, code=0, msgbody=bytes(12)), INV,
          "node information reply first: invalid")
    s.add("c", IPv6(src=C6, dst=S6) / ICMPv6Unknown(type=200, code=0, msgbody=b"\x12\x34" + bytes(6)),
          INV, "not invertible: invalid")
    s.add("c", IPv6(src=C6, dst=S6) / ICMPv6Unknown(
        type=139, code=0, msgbody=b"\x00\x02\x00\x00" + b"nonce-01" + bytes(16)), NEW,
        "node information query (node name, IPv6 subject ::): new, 30 s")


# ==========================================================================
# IP layer
# ==========================================================================
@scenario("Bad IPv4 header checksum: dropped before netfilter.", ["ip", "ipv4", "checksum"],
          "ip_rcv drops it before PREROUTING: no ct state at all (null), no counter. The good twin "
          "is new.")
def ipv4_bad_header_checksum(s):
    s.add("c", udp(C4, S4, 5900, 53, b"query"), NOCT, "dropped by ip_rcv", mangle=bad_ip_csum)
    s.add("c", udp(C4, S4, 5900, 53, b"query"), NEW, "30 s")
    t = Tcp(s, cport=40032)
    t.c("S", NOCT, "SYN with a bad IP checksum: dropped by ip_rcv", mangle=bad_ip_csum,
        advance=False)
    t.c("S", NEW, "SYN_SENT, 120 s")


@scenario("Malformed IPv4 headers dropped before netfilter.", ["ip", "ipv4", "malformed"],
          "tot_len larger than the packet, tot_len smaller than the header, and ihl 4 are dropped "
          "by ip_rcv (kernel-semantics-2.md 4.1): null. The final good datagram is new.")
def ipv4_malformed_headers(s):
    good = udp(C4, S4, 5901, 53, b"query")
    s.add("c", udp(C4, S4, 5901, 53, b"query"), NOCT, "tot_len 200 > bytes present",
          mangle=set_ip_field(2, "!H", 200))
    s.add("c", udp(C4, S4, 5901, 53, b"query"), NOCT, "tot_len 16 < header length",
          mangle=set_ip_field(2, "!H", 16))
    s.add("c", udp(C4, S4, 5901, 53, b"query"), NOCT, "ihl 4 (< 5)",
          mangle=set_ip_field(0, "!B", 0x44))
    s.add("c", good, NEW, "30 s")


@scenario("IPv6 next header 59 (no next header): INVALID.", ["ip", "ipv6", "invalid"],
          "No transport header can be found: invalid+1, no ct, the packet is still forwarded.")
def ipv6_no_next_header(s):
    s.add("c", IPv6(src=C6, dst=S6, nh=59), INV, "empty payload",
          what="2001:db8:1::1 > 2001:db8:2::1 IPv6 nh=59, no payload")
    s.add("c", IPv6(src=C6, dst=S6, nh=59) / Raw(bytes(8)), INV, "8 bytes after the header",
          what="2001:db8:1::1 > 2001:db8:2::1 IPv6 nh=59, 8 trailing bytes")


# ==========================================================================
# Fragments
# ==========================================================================
FRAG_DATA = payload(1992, 5)      # UDP datagram = 8 + 1992 = 2000 bytes


def _frag4(s, order):
    full = bytes(IP(src=C4, dst=S4) / UDP(sport=6000, dport=6001) / Raw(FRAG_DATA))[20:]
    pieces = [(0, full[0:800], True), (800, full[800:1600], True), (1600, full[1600:], False)]
    for n, i in enumerate(order):
        off, data, mf = pieces[i]
        last = n == len(order) - 1
        s.add("c", IP(src=C4, dst=S4, id=0x4242, proto=17, frag=off // 8, flags="MF" if mf else 0)
              / Raw(data), NEW if last else NOCT,
              "completes the datagram: reassembled, UDP entry 30 s" if last else
              "held by defrag: no ct state")
    s.add("s", udp(S4, C4, 6001, 6000, b"reply"), EST, "unfragmented reply, +SEEN_REPLY")


@scenario("IPv4 UDP datagram in 3 fragments, in order.", ["frag", "ipv4", "udp"],
          "Defrag (-400) holds the first two fragments; the one that completes the datagram gets "
          "the ct state of the whole 2020-byte datagram.")
def frag4_udp_in_order(s):
    _frag4(s, [0, 1, 2])


@scenario("IPv4 UDP datagram in 3 fragments, out of order (last, first, middle).",
          ["frag", "ipv4", "udp"], "Completed by the middle fragment, which arrives last.")
def frag4_udp_out_of_order(s):
    _frag4(s, [2, 0, 1])


def _frag6(s, order):
    full = bytes(IPv6(src=C6, dst=S6) / UDP(sport=6000, dport=6001) / Raw(FRAG_DATA))[40:]
    pieces = [(0, full[0:800], 1), (800, full[800:1600], 1), (1600, full[1600:], 0)]
    for n, i in enumerate(order):
        off, data, m = pieces[i]
        last = n == len(order) - 1
        s.add("c", IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(nh=17, offset=off // 8, m=m,
                                                            id=0x12345678) / Raw(data),
              NEW if last else NOCT,
              "completes the datagram: reassembled, UDP entry 30 s" if last else
              "held by defrag: no ct state")
    s.add("s", udp(S6, C6, 6001, 6000, b"reply"), EST, "unfragmented reply, +SEEN_REPLY")


@scenario("IPv6 UDP datagram in 3 fragments, in order.", ["frag", "ipv6", "udp"],
          "nf_conntrack_reasm holds the first two; the completing one gets the state.")
def frag6_udp_in_order(s):
    _frag6(s, [0, 1, 2])


@scenario("IPv6 UDP datagram in 3 fragments, out of order (middle, last, first).",
          ["frag", "ipv6", "udp"], "Completed by the first fragment, which arrives last.")
def frag6_udp_out_of_order(s):
    _frag6(s, [1, 2, 0])


# ==========================================================================
# Router behaviour: tracked but never confirmed
# ==========================================================================
@scenario("TTL 1: tracked (new) but dropped by ip_forward before confirm.", ["router", "ipv4", "ttl"],
          "The TTL-1 datagram gets ct state new but leaves no entry, so the server's datagram on "
          "the same ports is new again (a reverse entry, confirmed), and the client's next "
          "datagram matches that entry's reply tuple: established. A TTL-2 flow on other ports is "
          "forwarded and confirmed normally.")
def route_ttl1(s):
    s.add("c", udp(C4, S4, 6100, 53, b"ttl 1", ttl=1), NEW, "time exceeded at the firewall: "
          "never confirmed")
    s.add("s", udp(S4, C4, 53, 6100, b"from server"), NEW, "no entry: a new reverse entry, confirmed")
    s.add("c", udp(C4, S4, 6100, 53, b"ttl 64"), EST, "matches the reverse entry's reply tuple")
    s.add("c", udp(C4, S4, 6101, 53, b"ttl 2", ttl=2), NEW, "forwarded, confirmed")
    s.add("s", udp(S4, C4, 53, 6101, b"reply"), EST, "+SEEN_REPLY")


@scenario("IPv4 multicast destination 239.1.1.1: new, never confirmed.", ["router", "ipv4", "multicast"],
          "No listener and no multicast routing: the route lookup drops it after conntrack. Both "
          "datagrams are new and the table stays empty.")
def route_multicast_v4(s):
    s.add("c", udp(C4, MCAST4, 6200, 6200, b"mcast 1"), NEW, "never confirmed")
    s.add("c", udp(C4, MCAST4, 6200, 6200, b"mcast 2"), NEW, "still no entry: new")


@scenario("Limited broadcast 255.255.255.255: new, confirmed at INPUT.",
          ["router", "ipv4", "broadcast"],
          "Delivered locally to the firewall, so the entry is confirmed in LOCAL_IN: one "
          "[UNREPLIED] entry, both datagrams new.")
def route_broadcast_v4(s):
    s.add("c", udp(C4, BCAST4, 6300, 9999, b"bcast 1"), NEW, "confirmed at INPUT, 30 s")
    s.add("c", udp(C4, BCAST4, 6300, 9999, b"bcast 2"), NEW, "same entry, still unreplied")


@scenario("Martian source 127.0.0.1: new, never confirmed.", ["router", "ipv4", "martian"],
          "The route lookup rejects a loopback source arriving on a veth after conntrack ran: new, "
          "no entry.")
def route_martian_src(s):
    s.add("c", udp(MARTIAN4, S4, 6400, 53, b"martian 1"), NEW, "never confirmed")
    s.add("c", udp(MARTIAN4, S4, 6400, 53, b"martian 2"), NEW, "still no entry")


@scenario("IPv6 link-local source to a global destination: new, never confirmed.",
          ["router", "ipv6", "link-local"],
          "ip6_forward refuses to forward a link-local source; the server's answer to fe80::1 "
          "(link-local destination) is not forwarded either: both new, no entry. A flow from the "
          "global client address works normally.")
def route_linklocal_src_v6(s):
    s.add("c", udp(LL_C6, S6, 6500, 53, b"from link-local"), NEW, "never confirmed")
    s.add("s", udp(S6, LL_C6, 53, 6500, b"to link-local"), NEW, "no entry; itself never confirmed")
    s.add("c", udp(C6, S6, 6501, 53, b"from global"), NEW, "confirmed, 30 s")
    s.add("s", udp(S6, C6, 53, 6501, b"answer"), EST, "+SEEN_REPLY")


@scenario("IPv6 multicast destination ff05::1: new, never confirmed.", ["router", "ipv6", "multicast"],
          "Site-local multicast the firewall has not joined and does not route.")
def route_multicast_v6(s):
    s.add("c", udp(C6, MCAST6, 6600, 6600, b"mcast6 1"), NEW, "never confirmed")
    s.add("c", udp(C6, MCAST6, 6600, 6600, b"mcast6 2"), NEW, "still no entry")


# ==========================================================================
# GRE, SCTP, UDP-Lite, generic
# ==========================================================================
def _gre0(src, dst, key=None, seq=0):
    g = GRE(proto=0x0800)
    if key is not None:
        g.key_present = 1
        g.key = key
    inner = IP(src="10.1.1.1", dst="10.2.1.1", id=0x100 + seq) / ICMP(type=8, id=7, seq=seq)
    return IP(src=src, dst=dst) / g / inner


@scenario("GRE version 0 in both directions.", ["gre", "ipv4"],
          "Keys are zero in the tuple (one entry per address pair). 30 s until a packet after "
          "SEEN_REPLY, then 180 s (stream) and ASSURED.")
def gre_v0(s):
    s.add("c", _gre0(C4, S4, seq=1), NEW, "timeout=30, [UNREPLIED]")
    s.add("s", _gre0(S4, C4, seq=1), EST, "+SEEN_REPLY, 30 s")
    s.add("c", _gre0(C4, S4, seq=2), EST, "180 s, +ASSURED")
    s.add("s", _gre0(S4, C4, seq=2), EST, "180 s")


@scenario("GRE version 0 with different keys each way share one entry.", ["gre", "ipv4"],
          "Version 0 keys never enter the tuple on this kernel: key 0x1234 one way and 0xabcd "
          "back form one replied entry.")
def gre_v0_keys(s):
    s.add("c", _gre0(C4, S4, key=0x1234, seq=1), NEW, "srckey=0x0 dstkey=0x0")
    s.add("s", _gre0(S4, C4, key=0xABCD, seq=1), EST, "same entry, +SEEN_REPLY")
    s.add("c", _gre0(C4, S4, key=0x1234, seq=2), EST, "180 s, +ASSURED")


@scenario("GRE version 1 (PPTP) without the helper.", ["gre", "ipv4", "pptp"],
          "Version 1 with a protocol other than PPP (0x880B) fails the tuple: invalid. A PPTP "
          "packet with call ID 0x102 creates srckey=0x0 dstkey=0x102; the server's packet with its "
          "own call ID 0x4567 does not match that reply tuple and creates a second entry (new). "
          "Call ID 0 both ways pairs up.")
def gre_v1_pptp(s):
    s.add("c", gre1(C4, S4, 0x0102, proto=0x0800, data=b"not ppp"), INV,
          "version 1 non-PPP: tuple fails", what="10.1.0.1 > 10.2.0.1 GRE v1 proto=0x0800 call=0x102")
    s.add("c", gre1(C4, S4, 0x0102), NEW, "srckey=0x0 dstkey=0x102",
          what="10.1.0.1 > 10.2.0.1 GRE v1 PPP call=0x102")
    s.add("s", gre1(S4, C4, 0x4567), NEW, "tuple srckey=0x0 dstkey=0x4567: a second entry",
          what="10.2.0.1 > 10.1.0.1 GRE v1 PPP call=0x4567")
    s.add("c", gre1(C4, S4, 0x0102), NEW, "first entry, still unreplied",
          what="10.1.0.1 > 10.2.0.1 GRE v1 PPP call=0x102")
    s.add("c", gre1(C4, S4, 0x0000), NEW, "call ID 0: a third entry",
          what="10.1.0.1 > 10.2.0.1 GRE v1 PPP call=0x0")
    s.add("s", gre1(S4, C4, 0x0000), EST, "matches the call-0 entry's reply tuple",
          what="10.2.0.1 > 10.1.0.1 GRE v1 PPP call=0x0")


TAG_C, TAG_S = 0x1A2B3C4D, 0x5E6F7A8B          # initiate tags of client and server
TSN_C, TSN_S = 1000, 5000
COOKIE = b"state-cookie-0123456789abcdefABCD"   # 32 bytes


def _sctp_setup(s, cport):
    cs = (C4, S4, cport, 5001)
    sc = (S4, C4, 5001, cport)
    s.add("c", sctp(*cs, 0, SCTPChunkInit(flags=0, init_tag=TAG_C, a_rwnd=106496, n_out_streams=10,
                                          n_in_streams=65535, init_tsn=TSN_C)),
          NEW, "CLOSED, 10 s; vtag[REPLY] = client tag")
    s.add("s", sctp(*sc, TAG_C, SCTPChunkInitAck(
        flags=0, init_tag=TAG_S, a_rwnd=106496, n_out_streams=10, n_in_streams=10, init_tsn=TSN_S,
        params=[SCTPChunkParamStateCookie(cookie=COOKIE)])),
        EST, "COOKIE_WAIT, 3 s, +SEEN_REPLY; vtag[ORIG] = server tag")
    s.add("c", sctp(*cs, TAG_S, SCTPChunkCookieEcho(flags=0, cookie=COOKIE)), EST,
          "COOKIE_ECHOED, 3 s")
    s.add("s", sctp(*sc, TAG_C, SCTPChunkCookieAck(flags=0)), EST, "ESTABLISHED, 210 s, +ASSURED")
    return cs, sc


def _data(tsn, text):
    return SCTPChunkData(reserved=0, beginning=1, ending=1, tsn=tsn, stream_id=0, stream_seq=0,
                         proto_id=0, data=text)


def _sack(tsn):
    return SCTPChunkSACK(flags=0, cumul_tsn_ack=tsn, a_rwnd=106496, n_gap_ack=0, n_dup_tsn=0)


@scenario("SCTP association: setup, data, graceful shutdown.", ["sctp", "ipv4"],
          "INIT (vtag 0, initiate tag 0x1A2B3C4D), INIT_ACK (initiate tag 0x5E6F7A8B, state "
          "cookie), COOKIE_ECHO, COOKIE_ACK, DATA/SACK both ways, SHUTDOWN, SHUTDOWN_ACK, "
          "SHUTDOWN_COMPLETE. Client->server packets carry the server's tag and vice versa "
          "(kernel-semantics-2.md 1.5); CRC32c correct. Final entry CLOSED, 10 s, ASSURED.")
def sctp_association(s):
    cs, sc = _sctp_setup(s, 5000)
    s.add("c", sctp(*cs, TAG_S, _data(TSN_C, b"hello from client")), EST, "210 s")
    s.add("s", sctp(*sc, TAG_C, _sack(TSN_C)), EST, "210 s")
    s.add("s", sctp(*sc, TAG_C, _data(TSN_S, b"hello from server")), EST, "210 s")
    s.add("c", sctp(*cs, TAG_S, _sack(TSN_S)), EST, "210 s")
    s.add("c", sctp(*cs, TAG_S, SCTPChunkShutdown(flags=0, cumul_tsn_ack=TSN_S)), EST,
          "SHUTDOWN_SENT, 3 s")
    s.add("s", sctp(*sc, TAG_C, SCTPChunkShutdownAck(flags=0)), EST, "SHUTDOWN_ACK_SENT, 3 s")
    s.add("c", sctp(*cs, TAG_S, SCTPChunkShutdownComplete(reserved=0)), EST,
          "T bit clear, vtag = vtag[ORIG]: CLOSED, 10 s")


@scenario("SCTP packets the tracker rejects.", ["sctp", "ipv4", "invalid", "checksum"],
          "On an established association: DATA with a wrong verification tag ('verification tag "
          "check failed') and DATA with a bad CRC32c (nf_conntrack_checksum=1) are invalid, correct "
          "DATA passes. As first packets (own ports each): ABORT (out of the blue), DATA, INIT with "
          "a non-zero common vtag, COOKIE_ECHO+DATA and INIT+DATA (INIT must be alone) are invalid.",
          sysctls={"nf_conntrack_checksum": "1"})
def sctp_invalid(s):
    cs, sc = _sctp_setup(s, 5010)
    s.add("c", sctp(*cs, 0xDEADBEEF, _data(TSN_C, b"wrong tag")), INV, "vtag mismatch")
    s.add("c", sctp(*cs, TAG_S, _data(TSN_C, b"bad crc")), INV, "bad CRC32c", mangle=bad_l4_csum)
    s.add("c", sctp(*cs, TAG_S, _data(TSN_C, b"good")), EST, "210 s")
    s.add("c", sctp(C4, S4, 5011, 5001, TAG_S, SCTPChunkAbort(reserved=0, TCB=0)), INV,
          "ABORT as first packet")
    s.add("c", sctp(C4, S4, 5012, 5001, 0x1234, _data(1, b"no association")), INV,
          "DATA as first packet")
    s.add("c", sctp(C4, S4, 5013, 5001, 0x1234, SCTPChunkInit(
        flags=0, init_tag=TAG_C, a_rwnd=106496, n_out_streams=10, n_in_streams=10,
        init_tsn=TSN_C)), INV, "INIT with common vtag != 0")
    s.add("c", sctp(C4, S4, 5014, 5001, 0, SCTPChunkCookieEcho(flags=0, cookie=COOKIE),
                    _data(1, b"bundled")), INV, "COOKIE_ECHO+DATA as first packet: DATA cannot "
          "change state from NONE")
    s.add("c", sctp(C4, S4, 5015, 5001, 0, SCTPChunkInit(
        flags=0, init_tag=TAG_C, a_rwnd=106496, n_out_streams=10, n_in_streams=10,
        init_tsn=TSN_C), _data(1, b"bundled")), INV, "INIT bundled with DATA: do_basic_checks fails")


def _udplite_flows(s, checked):
    d = b"udplite payload!"
    if checked:
        s.add("c", udplite_pkt(C4, S4, 7000, 7000, d, pseudo_proto=136), INV,
              "RFC 3828 checksum (pseudo-header protocol 136): the kernel verifies with 17, bad "
              "checksum", what="10.1.0.1:7000 > 10.2.0.1:7000 UDP-Lite cov=0 csum(pseudo 136)")
    else:
        s.add("c", udplite_pkt(C4, S4, 7000, 7000, d, pseudo_proto=136), NEW,
              "not verified: 30 s", what="10.1.0.1:7000 > 10.2.0.1:7000 UDP-Lite cov=0 "
              "csum(pseudo 136)")
        s.add("s", udplite_pkt(S4, C4, 7000, 7000, d, pseudo_proto=136), EST, "+SEEN_REPLY, 30 s",
              what="10.2.0.1:7000 > 10.1.0.1:7000 UDP-Lite cov=0 csum(pseudo 136)")
    s.add("c", udplite_pkt(C4, S4, 7001, 7001, d), NEW, "30 s",
          what="10.1.0.1:7001 > 10.2.0.1:7001 UDP-Lite cov=0 csum(pseudo 17)")
    s.add("s", udplite_pkt(S4, C4, 7001, 7001, d), EST, "+SEEN_REPLY, 30 s",
          what="10.2.0.1:7001 > 10.1.0.1:7001 UDP-Lite cov=0 csum(pseudo 17)")
    s.add("c", udplite_pkt(C4, S4, 7001, 7001, d, cscov=8), EST,
          "reply seen: 120 s and ASSURED at once (no 2 s rule)",
          what="10.1.0.1:7001 > 10.2.0.1:7001 UDP-Lite cov=8 csum(pseudo 17)")
    s.add("c", udplite_pkt(C4, S4, 7002, 7002, d, chksum=0), INV, "checksum 0: 'checksum missing'",
          what="10.1.0.1:7002 > 10.2.0.1:7002 UDP-Lite csum=0")
    s.add("c", udplite_pkt(C4, S4, 7003, 7003, d, cscov=4), INV, "coverage 4 < 8",
          what="10.1.0.1:7003 > 10.2.0.1:7003 UDP-Lite cov=4")
    s.add("c", udplite_pkt(C4, S4, 7004, 7004, d, cscov=100), INV, "coverage 100 > length 24",
          what="10.1.0.1:7004 > 10.2.0.1:7004 UDP-Lite cov=100")


@scenario("UDP-Lite (protocol 136) and the kernel's pseudo-header quirk.", ["udplite", "ipv4", "checksum"],
          "With nf_conntrack_checksum=1 conntrack verifies UDP-Lite checksums with pseudo-header "
          "protocol 17 (kernel-semantics.md 8): a standards-correct packet (pseudo-protocol 136) "
          "is invalid, packets checksummed with 17 are tracked. Checksum 0 and bad coverage are "
          "always invalid.", sysctls={"nf_conntrack_checksum": "1"})
def udplite(s):
    _udplite_flows(s, True)


@scenario("UDP-Lite with nf_conntrack_checksum=0.", ["udplite", "ipv4", "checksum"],
          "The standards-correct packets (pseudo-protocol 136) are tracked now; checksum 0 and bad "
          "coverage stay invalid (checked before the sysctl).",
          sysctls={"nf_conntrack_checksum": "0"})
def udplite_checksum_off(s):
    _udplite_flows(s, False)


@scenario("Unknown L4 protocol 253 in both directions (generic tracker).", ["generic", "ipv4", "ipv6"],
          "One entry per (addresses, protocol), 600 s, never ASSURED; an IPv6 pair makes a second "
          "entry.")
def generic_proto253(s):
    s.add("c", raw_proto(C4, S4, 253, payload(32)), NEW, "600 s, [UNREPLIED]")
    s.add("s", raw_proto(S4, C4, 253, payload(32, 1)), EST, "+SEEN_REPLY, 600 s")
    s.add("c", raw_proto(C4, S4, 253, payload(32, 2)), EST, "600 s, never ASSURED")
    s.add("c", raw_proto(C6, S6, 253, payload(32)), NEW, "IPv6 entry, 600 s")
    s.add("s", raw_proto(S6, C6, 253, payload(32, 1)), EST, "+SEEN_REPLY")


@scenario("DCCP (protocol 33) is generic on the 6.18 kernel.", ["generic", "ipv4", "dccp"],
          "The DCCP tracker no longer exists: 'unknown 33', 600 s, no ports in the tuple, so two "
          "different port pairs share one entry.")
def generic_proto33(s):
    def dccp(src, dst, sp, dp, typ):
        # DCCP-Request (type 0): generic header with X=1 (16 bytes) + service code.
        # DCCP-Response (type 1): + acknowledgement subheader (8 bytes) + service code.
        # Checksum over the whole packet (CsCov 0) with a TCP-style pseudo-header.
        rest = (b"" if typ == 0 else struct.pack("!HHI", 0, 0, 1)) + struct.pack("!I", 42)
        doff = (16 + len(rest)) // 4
        seqno = 1 if typ == 0 else 1001

        def hdr(csum):
            return struct.pack("!HHBBHBBHI", sp, dp, doff, 0, csum, (typ << 1) | 1, 0, 0,
                               seqno) + rest
        body = hdr(0)
        return raw_proto(src, dst, 33, hdr(inet_csum(pseudo_header(src, dst, 33, len(body))
                                                     + body)))
    s.add("c", dccp(C4, S4, 7100, 7101, 0), NEW, "600 s", what="10.1.0.1:7100 > 10.2.0.1:7101 DCCP "
          "Request (proto 33)")
    s.add("s", dccp(S4, C4, 7101, 7100, 1), EST, "+SEEN_REPLY", what="10.2.0.1:7101 > "
          "10.1.0.1:7100 DCCP Response (proto 33)")
    s.add("c", dccp(C4, S4, 7200, 7201, 0), EST, "other ports, same generic entry",
          what="10.1.0.1:7200 > 10.2.0.1:7201 DCCP Request (proto 33)")


# ==========================================================================
# Table full
# ==========================================================================
@scenario("Table full (nf_conntrack_max=8): 12 one-way UDP flows, default bucket count.",
          ["table", "ipv4", "udp", "early-drop"],
          "Invariants to check: the netns entry count never exceeds 8; each of flows 9-12 is "
          "either dropped (ct state null, drop+1, 'table full, dropping packet') or admitted after "
          "evicting an unassured entry in its 8-bucket window (new, early_drop+1). With the "
          "default 262144 buckets a victim is very unlikely, so drops are expected. The GC worker "
          "may evict unassured entries later (early-drop mode at >= 95 % full); do not compare "
          "which entries remain.",
          global_sysctls={"nf_conntrack_max": "8"})
def table_full_udp_unassured(s):
    for i in range(12):
        exp = NEW if i < 8 else [NOCT, NEW]
        s.add("c", udp(C4, S4, 42000 + i, 9000, b"flow %d" % i), exp,
              "entry %d of 8" % (i + 1) if i < 8 else "table full: dropped (null) unless early "
              "drop found an unassured victim (new)")


@scenario("Table full with only ASSURED entries: new flows are dropped, deterministically.",
          ["table", "ipv4", "udp", "assured", "timing"],
          "Eight UDP flows are made ASSURED (request, reply, 2.5 s gap, another request: > 2 s "
          "stream rule). ASSURED entries are never early-dropped, so the four new flows that follow "
          "are all dropped: ct state null, drop+4, early_drop+0, count stays 8. Traffic on the "
          "existing flows is unaffected. Duration 2.5 s.",
          global_sysctls={"nf_conntrack_max": "8"})
def table_full_udp_assured(s):
    for i in range(8):
        s.add("c", udp(C4, S4, 43000 + i, 9000, b"req %d" % i), NEW, "entry %d of 8" % (i + 1))
        s.add("s", udp(S4, C4, 9000, 43000 + i, b"rep %d" % i), EST, "+SEEN_REPLY")
    for i in range(8):
        s.add("c", udp(C4, S4, 43000 + i, 9000, b"again %d" % i), EST, "120 s, +ASSURED",
              gap=2.5 if i == 0 else GAP)
    for i in range(4):
        s.add("c", udp(C4, S4, 43100 + i, 9000, b"new %d" % i), NOCT,
              "table full, no unassured victim: dropped")
    s.add("s", udp(S4, C4, 9000, 43000, b"still works"), EST, "existing flow unaffected")


@scenario("Table full with a small hash (nf_conntrack_buckets=512): unassured victims may be "
          "early-dropped.", ["table", "ipv4", "udp", "early-drop"],
          "Same as table_full_udp_unassured with 24 flows and 512 buckets, so the 8-bucket early-"
          "drop window covers 1/64 of the table and unassured UDP entries are sometimes evicted. "
          "Which flows are admitted depends on the per-netns hash seed: compare invariants only "
          "(count <= 8 after every packet; for each of flows 9-24 either null with drop+1 or new "
          "with early_drop >= 1; drop + number of admitted flows 9-24 == 16).",
          global_sysctls={"nf_conntrack_max": "8", "nf_conntrack_buckets": "512"})
def table_full_small_buckets(s):
    for i in range(24):
        exp = NEW if i < 8 else [NOCT, NEW]
        s.add("c", udp(C4, S4, 44000 + i, 9000, b"flow %d" % i), exp,
              "entry %d of 8" % (i + 1) if i < 8 else "dropped, or admitted by early drop")


# ==========================================================================
# NAT scenarios (issue 7): the server side sees the translated addresses
# ==========================================================================
NAT4 = R_S4                                # the router's server-side address (masquerade)
NAT6 = R_S6
VIP4 = "10.96.0.10"                        # a Kubernetes-style service address (DNAT)
POOL_PICK = {"10.1.0.1": "10.2.0.101", "10.1.0.2": "10.2.0.103"}  # jhash2 pick of the pool


class NatTcp(Tcp):
    """A TCP connection through NAT: `ends` gives, per side, (src, dst, sport, dport) as
    the packets of that side look on their own wire."""

    def __init__(self, scn, cend, send_, **kw):
        Tcp.__init__(self, scn, **kw)
        self.ends = {"c": cend, "s": send_}

    def build(self, side, flags, data=b"", seq=None, ack=None, win=None, options=None, ttl=64):
        o = "s" if side == "c" else "c"
        f = flagval(flags)
        if seq is None:
            seq = self.nxt[side]
        if ack is None:
            ack = self.nxt[o] if f & 0x10 else 0
        if win is None:
            win = self.win[side]
        if options is None:
            options = self.synopts[side] if f & 0x02 else []
        src, dst, sport, dport = self.ends[side]
        t = TCP(sport=sport, dport=dport, seq=seq & M32, ack=ack & M32, flags=f, window=win,
                options=options)
        p = ip(src, dst, ttl) / t
        if data:
            p = p / Raw(data)
        return p, seq, f


def _nat_tcp_session(s, c, sv, nat, cport, sport=80, nat_port=None):
    t = NatTcp(s, (c, sv, cport, sport), (sv, nat, sport, nat_port or cport), cport=cport,
               sport=sport, v6=is6(c))
    t.handshake()
    t.c("PA", EST, "data", data=payload(60))
    t.s("PA", EST, "answer to the translated address", data=payload(80, 1))
    t.c("FA", EST, "FIN_WAIT")
    t.s("FA", EST, "LAST_ACK")
    t.c("A", EST, "TIME_WAIT")
    return t


@scenario("NAT: masquerade of a client network (TCP, UDP, ICMP echo, UDP over IPv6).",
          ["nat", "tcp", "udp", "icmp", "ipv4", "ipv6"],
          "For masquerade.nft with --addr server=10.2.0.254 --addr server=2001:db8:2::fe. Every "
          "flow from 10.1.0.1 leaves as 10.2.0.254 with its port kept (identity is free); the "
          "server answers the router's address and the reply is un-NATed to the client.")
def nat_masquerade(s):
    _nat_tcp_session(s, C4, S4, NAT4, 40000)
    s.add("c", udp(C4, S4, 5001, 53, b"query"), NEW, "masqueraded to 10.2.0.254:5001")
    s.add("s", udp(S4, NAT4, 53, 5001, b"answer"), EST, "un-NATed to 10.1.0.1:5001")
    s.add("c", icmp(C4, S4, 8, id=0x4242, seq=1), NEW, "echo, id kept")
    s.add("s", icmp(S4, NAT4, 0, id=0x4242, seq=1), EST, "echo reply to the router")
    s.add("c", udp(C6, S6, 5002, 53, b"query6"), NEW, "masqueraded to 2001:db8:2::fe")
    s.add("s", udp(S6, NAT6, 53, 5002, b"answer6"), EST, "un-NATed")


@scenario("NAT: SNAT to a 4-address pool with a port range 20000-20099.",
          ["nat", "tcp", "ipv4"],
          "For snat_pool.nft. A source port inside the range is kept; the address is the "
          "kernel's jhash2 pick over the pool (deterministic: 10.1.0.1 -> 10.2.0.101, "
          "10.1.0.2 -> 10.2.0.103). A source port outside the range gets a random port of the "
          "range: only its original-direction packets are in the capture.")
def nat_snat_pool(s):
    _nat_tcp_session(s, C4, S4, POOL_PICK[C4], 20050)
    t = NatTcp(s, ("10.1.0.2", S4, 20051, 80), (S4, POOL_PICK["10.1.0.2"], 80, 20051),
               cport=20051)
    t.handshake()
    s.add("c", TCP_SYN(C4, S4, 40000, 80), NEW, "port outside the range: random pick")
    s.add("c", TCP_SYN(C4, S4, 40000, 80), NEW, "retransmitted SYN: same entry")
    s.add("c", udp(C4, S4, 20060, 53, b"query"), NEW, "UDP, port kept")
    s.add("s", udp(S4, POOL_PICK[C4], 53, 20060, b"answer"), EST, "un-NATed")


def TCP_SYN(src, dst, sport, dport, seq=3_000_000):
    return ip(src, dst) / TCP(sport=sport, dport=dport, seq=seq, flags="S", window=64240,
                              options=[("MSS", 1460)])


@scenario("NAT: DNAT port forward to a server (Docker -p 8080:80).",
          ["nat", "tcp", "ipv4"],
          "For dnat_port_forward.nft: the client connects to the router's client-side address "
          "10.1.0.254:8080, the router forwards to 10.2.0.1:80; the server's answers are "
          "un-DNATed. A UDP datagram to another port is not forwarded by the rule.")
def nat_dnat_port_forward(s):
    t = NatTcp(s, (C4, R_C4, 40000, 8080), (S4, C4, 80, 40000), cport=40000)
    t.handshake()
    t.c("PA", EST, "data", data=payload(60))
    t.s("PA", EST, "answer", data=payload(80, 1))
    t.c("FA", EST, "FIN_WAIT")
    t.s("FA", EST, "LAST_ACK")
    t.c("A", EST, "TIME_WAIT")
    s.add("c", udp(C4, S4, 5003, 53, b"query"), NEW, "not forwarded by the rule: plain")
    s.add("s", udp(S4, C4, 53, 5003, b"answer"), EST, "")


@scenario("NAT: redirect to a local port.", ["nat", "tcp", "udp", "ipv4"],
          "For redirect.nft: TCP to port 80 and UDP to port 53 are redirected to the router's "
          "client-side address 10.1.0.254 (ports 8080 and 5353) and delivered locally; the "
          "router's own answers are dropped in raw output (the capture has none).")
def nat_redirect(s):
    s.add("c", TCP_SYN(C4, S4, 40010, 80), NEW, "redirected to 10.1.0.254:8080")
    s.add("c", TCP_SYN(C4, S4, 40010, 80), NEW, "retransmitted")
    s.add("c", udp(C4, S4, 5004, 53, b"query"), NEW, "redirected to 10.1.0.254:5353")
    s.add("c", udp(C4, S4, 5004, 53, b"query again"), NEW, "same entry")
    s.add("c", TCP_SYN(C4, S4, 40011, 443), NEW, "port 443: forwarded, not redirected")


@scenario("NAT: SNAT where the original port is taken (remap).",
          ["nat", "tcp", "udp", "ipv4"],
          "For snat_port_taken.nft (snat to 10.2.0.254). 10.1.0.1 uses ports 40000, 5001, 700 "
          "and 500 first and keeps them; 10.1.0.2 then uses the same ports to the same server: "
          "its source port is taken and is remapped at random inside the class of the original "
          "port ([1024,65535], [600,1023], [1,511]); only original-direction packets of the "
          "remapped flows are in the capture.")
def nat_snat_port_taken(s):
    t = NatTcp(s, (C4, S4, 40000, 80), (S4, NAT4, 80, 40000), cport=40000)
    t.handshake()
    s.add("c", TCP_SYN("10.1.0.2", S4, 40000, 80), NEW, "port taken: remapped")
    s.add("c", TCP_SYN("10.1.0.2", S4, 40000, 80), NEW, "retransmitted: same remapped entry")
    s.add("c", udp(C4, S4, 5001, 53, b"query"), NEW, "identity")
    s.add("s", udp(S4, NAT4, 53, 5001, b"answer"), EST, "un-NATed")
    s.add("c", udp("10.1.0.2", S4, 5001, 53, b"query"), NEW, "remapped in [1024,65535]")
    s.add("c", TCP_SYN(C4, S4, 700, 80), NEW, "identity")
    s.add("c", TCP_SYN("10.1.0.2", S4, 700, 80), NEW, "remapped in [600,1023]")
    s.add("c", udp(C4, S4, 500, 500, b"ike"), NEW, "identity")
    s.add("c", udp("10.1.0.2", S4, 500, 500, b"ike"), NEW, "remapped in [1,511]")


@scenario("NAT: masquerade with ct state invalid drop.", ["nat", "tcp", "ipv4", "invalid"],
          "For masquerade_invalid_drop.nft. Invalid segments of a masqueraded connection are "
          "dropped (not forwarded) and change nothing; the connection then closes normally.")
def nat_masquerade_invalid(s):
    t = NatTcp(s, (C4, S4, 40020, 80), (S4, NAT4, 80, 40020), cport=40020)
    t.handshake()
    t.c("PA", EST, "data", data=payload(60))
    t.s("A", INV, "SEQ over the upper bound: dropped", seq=t.nxt["s"] + 1_000_000_000)
    t.c("SFA", INV, "invalid flags: dropped")
    t.s("PA", EST, "answer", data=payload(80, 1))
    t.c("FA", EST, "FIN_WAIT")
    t.s("FA", EST, "LAST_ACK")
    t.c("A", EST, "TIME_WAIT")


@scenario("NAT: ICMP errors through masquerade.", ["nat", "icmp", "udp", "tcp", "ipv4", "related"],
          "For masquerade.nft. Errors sent to the router's address about masqueraded packets "
          "are RELATED; the embedded packet and the outer destination are un-NATed to the "
          "client. An error from the client about the server's (un-NATed) answer is RELATED in "
          "the original direction and is masqueraded.")
def nat_icmp_errors(s):
    s.add("c", udp(C4, S4, 5010, 53, b"query"), NEW, "masqueraded")
    q = udp(NAT4, S4, 5010, 53, b"query")
    q.id = s.next_ip_id - 1
    s.add("s", icmp_err(S4, NAT4, q, 3, 3), REL, "port unreachable about the NAT'd datagram")
    s.add("c", TCP_SYN(C4, S4, 40030, 80), NEW, "masqueraded")
    sq = TCP_SYN(NAT4, S4, 40030, 80)
    sq.id = s.next_ip_id - 1
    s.add("s", icmp_err("10.2.0.99", NAT4, sq, 11, 0, quote=28), REL,
          "time exceeded from a router on the way")
    s.add("c", udp(C4, S4, 5011, 53, b"query"), NEW, "masqueraded")
    r = s.add("s", udp(S4, NAT4, 53, 5011, b"answer"), EST, "un-NATed")
    r2 = udp(S4, C4, 53, 5011, b"answer")
    r2.id = r.id
    r2.ttl = 63
    s.add("c", icmp_err(C4, S4, r2, 3, 3), REL, "port unreachable from the client: masqueraded")


@scenario("NAT: two DNS queries from one socket through DNAT (A and AAAA).",
          ["nat", "udp", "ipv4", "dns"],
          "For dnat_dns.nft: the client sends the A and AAAA queries of one lookup from one "
          "socket to the service address 10.96.0.10:53, DNATed to 10.2.0.1:53; both answers "
          "come back un-DNATed. The second query finds the first's entry.")
def nat_dns_race(s):
    s.add("c", udp(C4, VIP4, 5353, 53, b"a"), NEW, "DNAT to 10.2.0.1")
    s.add("c", udp(C4, VIP4, 5353, 53, b"aaaa"), NEW, "same entry", gap=0.0001)
    s.add("s", udp(S4, C4, 53, 5353, b"a"), EST, "un-DNATed")
    s.add("s", udp(S4, C4, 53, 5353, b"aaaa"), EST, "")
    s.add("c", udp("10.1.0.2", VIP4, 5353, 53, b"a"), NEW, "another client")
    s.add("c", udp("10.1.0.2", VIP4, 5353, 53, b"aaaa"), NEW, "", gap=0.0001)
    s.add("s", udp(S4, "10.1.0.2", 53, 5353, b"aaaa"), EST, "answers in the other order")
    s.add("s", udp(S4, "10.1.0.2", 53, 5353, b"a"), EST, "")


# ==========================================================================
# FTP and TFTP through NAT (issue 8)
# ==========================================================================
class NatFtpTcp(NatTcp):
    """An FTP control connection through NAT whose commands the router rewrites.

    `off[x]` is what the router has added so far to side x's sequence numbers: side x's
    own packets keep its own numbers (they are captured on its wire, before the
    router), and the other side acknowledges x's data as it arrived, rewritten.
    """

    def __init__(self, scn, cend, send_, **kw):
        NatTcp.__init__(self, scn, cend, send_, **kw)
        self.off = {"c": 0, "s": 0}

    def build(self, side, flags, data=b"", seq=None, ack=None, **kw):
        o = "s" if side == "c" else "c"
        if ack is None and flagval(flags) & 0x10:
            ack = self.nxt[o] + self.off[o]
        return NatTcp.build(self, side, flags, data, seq=seq, ack=ack, **kw)

    def line(self, side, text, grow=0, note="", expect=EST):
        """Send one command or answer line; the router changes its length by `grow`."""
        r = self.send(side, "PA", expect, note, data=text)
        self.off[side] += grow
        return r

    def login(self):
        self.handshake()
        self.line("s", b"220 ctrack FTP ready\r\n", note="banner: never parsed")
        self.line("c", b"USER anonymous\r\n", note="first client line: never parsed")
        self.line("s", b"331 Password required\r\n")
        self.line("c", b"PASS guest\r\n")
        self.line("s", b"230 Logged in\r\n")

    def close(self):
        self.line("c", b"QUIT\r\n")
        self.line("s", b"221 Goodbye\r\n")
        self.c("FA", EST, "FIN_WAIT")
        self.s("FA", EST, "LAST_ACK")
        self.c("A", EST, "TIME_WAIT")


def _ftp_data(s, cend, send_, first, note, n=120, seed=2):
    """A data connection through NAT, opened by side `first`, carrying n bytes from the
    server side."""
    t = NatTcp(s, cend, send_, cport=cend[2], sport=cend[3], cisn=5_000_000, sisn=6_000_000,
               v6=is6(cend[0]))
    o = "c" if first == "s" else "s"
    t.send(first, "S", REL, note)
    t.send(o, "SA", EST, "")
    t.send(first, "A", EST, "")
    t.s("PA", EST, "file data", data=payload(n, seed))
    t.c("A", EST, "")
    t.s("FA", EST, "")
    t.c("FA", EST, "")
    t.s("A", EST, "")
    return t


@scenario("NAT: active and passive FTP through masquerade; PORT/EPRT rewritten with a length "
          "change (growth and shrink), sequence numbers adjusted.",
          ["nat", "ftp", "helper", "tcp", "ipv4", "ipv6"],
          "For ftp_snat.nft (--addr server=10.2.0.254 --addr server=2001:db8:2::fe). Each "
          "side's packets are as on its own wire: the server sees the router's address and "
          "acknowledges the rewritten lengths. 10.1.0.1: PORT 10,1,0,1,... becomes "
          "10,2,0,254,... (+2 bytes, twice), the data connections come to 10.2.0.254 and are "
          "DNATed back to the client (follow master); a 227 answer is rewritten to the same "
          "text. 10.1.200.100: PORT 10,1,200,100,... becomes 10,2,0,254,... (-2 bytes). "
          "IPv6: EPRT |2|2001:db8:1::1|...| becomes |2|2001:0db8:0002:...:00fe|...| (+26), then "
          "EPSV.")
def ftp_nat_snat(s):
    ctl = NatFtpTcp(s, (C4, S4, 40021, 21), (S4, NAT4, 21, 40021), cport=40021, sport=21)
    ctl.login()
    ctl.line("c", b"PORT 10,1,0,1,156,65\r\n", grow=2,
             note="rewritten to PORT 10,2,0,254,156,65: expect 10.2.0.1 -> 10.2.0.254:40001")
    ctl.line("s", b"200 PORT command successful\r\n", note="acks the rewritten length")
    ctl.line("c", b"RETR a.txt\r\n", note="seq shifted by 2 on the server wire")
    ctl.line("s", b"150 Opening data connection\r\n")
    _ftp_data(s, (C4, S4, 40001, 20), (S4, NAT4, 20, 40001), "s",
              "data connection to 10.2.0.254:40001: RELATED, DNATed to 10.1.0.1:40001")
    ctl.line("s", b"226 Transfer complete\r\n")
    ctl.line("c", b"PORT 10,1,0,1,156,66\r\n", grow=2,
             note="second rewrite: offset 4 after it, 2 before")
    ctl.line("s", b"200 PORT command successful\r\n")
    ctl.line("c", b"LIST\r\n")
    ctl.line("s", b"150 Here comes the listing\r\n")
    _ftp_data(s, (C4, S4, 40002, 20), (S4, NAT4, 20, 40002), "s",
              "second data connection, RELATED", n=60, seed=3)
    ctl.line("s", b"226 Directory send OK\r\n")
    ctl.line("c", b"PASV\r\n")
    ctl.line("s", b"227 Entering Passive Mode (10,2,0,1,195,80).\r\n",
             note="rewritten to the same text: expect 10.1.0.1 -> 10.2.0.1:50000")
    ctl.line("c", b"STOR b.txt\r\n")
    _ftp_data(s, (C4, S4, 40003, 50000), (S4, NAT4, 50000, 40003), "c",
              "passive data connection: RELATED, masqueraded (follow master)", n=40, seed=4)
    ctl.line("s", b"226 Transfer complete\r\n")
    ctl.close()

    c2 = "10.1.200.100"
    ctl = NatFtpTcp(s, (c2, S4, 40022, 21), (S4, NAT4, 21, 40022), cport=40022, sport=21,
                    cisn=1_500_000, sisn=2_500_000)
    ctl.login()
    ctl.line("c", b"PORT 10,1,200,100,156,75\r\n", grow=-2,
             note="rewritten to PORT 10,2,0,254,156,75: 2 bytes shorter")
    ctl.line("s", b"200 PORT command successful\r\n")
    ctl.line("c", b"RETR c.txt\r\n")
    _ftp_data(s, (c2, S4, 40011, 20), (S4, NAT4, 20, 40011), "s",
              "data connection to 10.2.0.254:40011: RELATED", n=30, seed=5)
    ctl.line("s", b"226 Transfer complete\r\n")
    ctl.line("c", b"PORT 10,1,200,100,156,76\r\n", grow=-2,
             note="rewritten again (-4 in all); its expectation stays listed")
    ctl.line("s", b"200 PORT command successful\r\n")
    ctl.close()

    ctl = NatFtpTcp(s, (C6, S6, 40023, 21), (S6, NAT6, 21, 40023), cport=40023, sport=21,
                    v6=True, cisn=1_700_000, sisn=2_700_000)
    ctl.login()
    ctl.line("c", b"EPRT |2|2001:db8:1::1|40012|\r\n", grow=26,
             note="rewritten with the router's address in full: 26 bytes longer")
    ctl.line("s", b"200 EPRT command successful\r\n")
    ctl.line("c", b"RETR d.txt\r\n")
    _ftp_data(s, (C6, S6, 40012, 20), (S6, NAT6, 20, 40012), "s",
              "IPv6 data connection to the router: RELATED, DNATed to the client", n=50, seed=6)
    ctl.line("s", b"226 Transfer complete\r\n")
    ctl.line("c", b"EPSV\r\n")
    ctl.line("s", b"229 Entering Extended Passive Mode (|||50001|)\r\n",
             note="rewritten to |||50001|: same length")
    ctl.line("c", b"LIST\r\n")
    _ftp_data(s, (C6, S6, 40013, 50001), (S6, NAT6, 50001, 40013), "c",
              "passive IPv6 data connection: RELATED", n=20, seed=7)
    ctl.line("c", b"EPRT |2|2001:db8:1::1|40014|\r\n", grow=26,
             note="rewritten again; its expectation stays listed")
    ctl.line("s", b"200 EPRT command successful\r\n")
    ctl.close()


@scenario("NAT: FTP to a server behind a DNAT port forward; 227 rewritten to the public "
          "address (+2 bytes), active PORT kept, and one client also masqueraded (both "
          "directions rewritten).",
          ["nat", "ftp", "helper", "tcp", "ipv4"],
          "For ftp_dnat.nft (--addr client=10.1.0.254 --addr server=10.2.0.254): "
          "10.1.0.254:21 is forwarded to 10.2.0.1:21. 10.1.0.1: the server's 227 "
          "(10,2,0,1,...) becomes 10,1,0,254,... twice (reply direction +2, +4), the client "
          "connects to 10.1.0.254 and is DNATed to the server; its PORT is rewritten to the "
          "same text and the server's data connection is SNATed to 10.1.0.254 (follow "
          "master). 10.1.0.2 is also masqueraded: PORT grows by 2 and 227 by 2 in one "
          "connection.")
def ftp_nat_dnat(s):
    ctl = NatFtpTcp(s, (C4, R_C4, 40031, 21), (S4, C4, 21, 40031), cport=40031, sport=21)
    ctl.login()
    ctl.line("c", b"PASV\r\n")
    ctl.line("s", b"227 Entering Passive Mode (10,2,0,1,195,81).\r\n", grow=2,
             note="rewritten to (10,1,0,254,195,81): expect 10.1.0.1 -> 10.1.0.254:50001")
    ctl.line("c", b"RETR a.txt\r\n", note="acks the rewritten length")
    ctl.line("s", b"150 Opening data connection\r\n", note="seq shifted by 2 on the client wire")
    _ftp_data(s, (C4, R_C4, 40032, 50001), (S4, C4, 50001, 40032), "c",
              "data connection to 10.1.0.254:50001: RELATED, DNATed to 10.2.0.1 (follow master)")
    ctl.line("s", b"226 Transfer complete\r\n")
    ctl.line("c", b"PASV\r\n")
    ctl.line("s", b"227 Entering Passive Mode (10,2,0,1,195,82).\r\n", grow=2,
             note="second rewrite in the reply direction")
    ctl.line("c", b"LIST\r\n")
    _ftp_data(s, (C4, R_C4, 40033, 50002), (S4, C4, 50002, 40033), "c",
              "second passive data connection", n=30, seed=3)
    ctl.line("s", b"226 Directory send OK\r\n")
    ctl.line("c", b"PORT 10,1,0,1,156,70\r\n",
             note="rewritten to the same text: expect 10.2.0.1 -> 10.1.0.1:40006")
    ctl.line("s", b"200 PORT command successful\r\n")
    ctl.line("c", b"RETR b.txt\r\n")
    _ftp_data(s, (C4, R_C4, 40006, 20), (S4, C4, 20, 40006), "s",
              "active data connection: RELATED, SNATed to 10.1.0.254 (follow master)", n=40,
              seed=4)
    ctl.line("s", b"226 Transfer complete\r\n")
    ctl.close()

    c2 = "10.1.0.2"
    ctl = NatFtpTcp(s, (c2, R_C4, 40041, 21), (S4, NAT4, 21, 40041), cport=40041, sport=21,
                    cisn=1_500_000, sisn=2_500_000)
    ctl.login()
    ctl.line("c", b"PORT 10,1,0,2,156,80\r\n", grow=2,
             note="rewritten to PORT 10,2,0,254,156,80")
    ctl.line("s", b"200 PORT command successful\r\n")
    ctl.line("c", b"PASV\r\n")
    ctl.line("s", b"227 Entering Passive Mode (10,2,0,1,195,83).\r\n", grow=2,
             note="rewritten to (10,1,0,254,195,83): offsets in both directions")
    ctl.line("c", b"RETR c.txt\r\n")
    _ftp_data(s, (c2, R_C4, 40042, 50003), (S4, NAT4, 50003, 40042), "c",
              "passive data connection: DNATed to the server and masqueraded", n=30, seed=5)
    ctl.line("s", b"226 Transfer complete\r\n")
    ctl.line("c", b"PASV\r\n")
    ctl.line("s", b"227 Entering Passive Mode (10,2,0,1,195,84).\r\n", grow=2,
             note="rewritten; its expectation stays listed")
    ctl.close()


@scenario("NAT: TFTP read and write requests through masquerade.",
          ["nat", "tftp", "helper", "udp", "ipv4"],
          "For tftp_snat.nft (--addr server=10.2.0.254): the request leaves as 10.2.0.254 with "
          "its port kept; the server answers the router's address from a new port: RELATED, "
          "DNATed back to the client's port (follow master).")
def tftp_nat_snat(s):
    s.add("c", udp(C4, S4, 50069, 69, b"\x00\x01a.txt\x00octet\x00"), NEW,
          "RRQ, masqueraded: expect 10.2.0.1 -> 10.2.0.254:50069")
    s.add("s", udp(S4, NAT4, 3445, 50069, b"\x00\x03\x00\x01" + payload(512)), REL,
          "DATA 1 from a new port: RELATED")
    s.add("c", udp(C4, S4, 50069, 3445, b"\x00\x04\x00\x01"), EST, "ACK 1")
    s.add("s", udp(S4, NAT4, 3445, 50069, b"\x00\x03\x00\x02" + payload(10, 1)), EST, "DATA 2")
    s.add("c", udp(C4, S4, 50069, 3445, b"\x00\x04\x00\x02"), EST, "ACK 2")
    s.add("c", udp("10.1.0.2", S4, 50070, 69, b"\x00\x02b.txt\x00octet\x00"), NEW, "WRQ")
    s.add("s", udp(S4, NAT4, 2087, 50070, b"\x00\x04\x00\x00"), REL, "ACK 0 from a new port")
    s.add("c", udp("10.1.0.2", S4, 50070, 2087, b"\x00\x03\x00\x01" + payload(20, 2)), EST,
          "DATA 1")
    s.add("c", udp(C4, S4, 50071, 69, b"\x00\x01c.txt\x00octet\x00"), NEW,
          "RRQ never answered: its expectation stays listed")


# ==========================================================================
# PPTP (the pptp helper; GRE version 1 keyed by call IDs through the keymap)
# ==========================================================================
PPTP_COOKIE = 0x1A2B3C4D


def pptp(kind, body, ptype=1, cookie=PPTP_COOKIE):
    """One PPTP control message: length, packet type, magic cookie, type, reserved, body."""
    return struct.pack("!HHIHH", 12 + len(body), ptype, cookie, kind, 0) + body


def pptp_sccrq():
    return pptp(1, struct.pack("!HHIIHH", 0x0100, 0, 1, 1, 0, 1) + b"pns".ljust(64, b"\0")
                + b"ctrack".ljust(64, b"\0"))


def pptp_sccrp(result=1):
    return pptp(2, struct.pack("!HBBIIHH", 0x0100, result, 0, 1, 1, 1, 1)
                + b"pac".ljust(64, b"\0") + b"ctrack".ljust(64, b"\0"))


def pptp_ocrq(call_id, serial=1):
    return pptp(7, struct.pack("!HHIIIIHHHH", call_id, serial, 300, 100_000_000, 3, 3, 64, 0,
                               0, 0) + bytes(128))


def pptp_ocrp(call_id, peer, result=1):
    return pptp(8, struct.pack("!HHBBHIHHI", call_id, peer, result, 0, 0, 100_000_000, 64, 0, 0))


def pptp_icrq(call_id, serial=1):
    return pptp(9, struct.pack("!HHIIHH", call_id, serial, 1, 0, 0, 0) + bytes(192))


def pptp_icrp(call_id, peer, result=1):
    return pptp(10, struct.pack("!HHBBHHH", call_id, peer, result, 0, 64, 0, 0))


def pptp_iccn(peer):
    return pptp(11, struct.pack("!HHIHHI", peer, 0, 100_000_000, 64, 0, 1))


def pptp_ccrq(call_id):
    return pptp(12, struct.pack("!HH", call_id, 0))


def pptp_cdn(call_id):
    return pptp(13, struct.pack("!HBBHH", call_id, 1, 0, 0, 0) + bytes(128))


def pptp_sli(peer):
    return pptp(15, struct.pack("!HHII", peer, 0, 0xFFFFFFFF, 0xFFFFFFFF))


class PptpTcp(Tcp):
    def msg(self, side, data, note="", expect=EST):
        return self.send(side, "PA", expect, note, data=data)


@scenario("PPTP outgoing calls: the GRE of a call is RELATED through the keymap; a second "
          "call on the same control connection, a disconnect, a call left pending.",
          ["pptp", "helper", "gre", "tcp", "ipv4"],
          "For pptp_helper.nft (forward policy drop: GRE passes only as RELATED or "
          "ESTABLISHED). Call IDs: PNS 0x4001, PAC 0x8002.")
def pptp_outgoing_call(s):
    t = PptpTcp(s, cport=40723, sport=1723)
    t.handshake()
    t.msg("c", pptp_sccrq(), "Start-Control-Connection-Request: session requested")
    t.msg("s", pptp_sccrp(), "Start-Control-Connection-Reply, result 1: session confirmed")
    t.msg("c", pptp_ocrq(0x4001), "Outgoing-Call-Request, call ID 0x4001")
    t.msg("s", pptp_ocrp(0x8002, 0x9999), "Outgoing-Call-Reply for another peer call ID: ignored")
    t.msg("s", pptp_ocrp(0x8002, 0x4001)[:-1], "Outgoing-Call-Reply one byte short: ignored")
    t.msg("s", pptp(8, pptp_ocrp(0x8002, 0x4001)[12:], ptype=2), "a management message: ignored")
    t.msg("s", pptp(8, pptp_ocrp(0x8002, 0x4001)[12:], cookie=0x1A2B3C4E), "bad magic cookie")
    s.add("c", gre1(C4, S4, 0x8002), NEW, "GRE before the call is up: no expectation, dropped")
    t.msg("s", pptp_ocrp(0x8002, 0x4001),
          "Outgoing-Call-Reply connected: two GRE expectations, keymap filled")
    s.add("c", gre1(C4, S4, 0x8002), REL, "srckey 0x4001 from the keymap: RELATED")
    s.add("s", gre1(S4, C4, 0x4001), EST, "PAC -> PNS: the reply direction")
    s.add("c", gre1(C4, S4, 0x8002, data=b"\xff\x03\x00\x21more"), EST, "ASSURED")
    t.msg("c", pptp_sli(0x8002), "Set-Link-Info")
    t.msg("c", pptp_ocrq(0x4002, 2), "a second Outgoing-Call-Request, call ID 0x4002")
    t.msg("s", pptp_ocrp(0x8003, 0x4002),
          "its reply: expectations added, then withdrawn (the keymap slots are taken)")
    s.add("s", gre1(S4, C4, 0x4002), NEW, "second call's GRE: not expected, dropped")
    t.msg("c", pptp_ccrq(0x4002), "Call-Clear-Request")
    t.msg("s", pptp_cdn(0x8003),
          "Call-Disconnect-Notify: keymap entries removed; no entry or expectation has the "
          "second call's keys, so the first call's GRE entry stays")
    s.add("c", gre1(C4, S4, 0x8002), NEW, "srckey 0 now: a new flow, dropped")
    s.add("s", gre1(S4, C4, 0x4001), NEW, "likewise")
    t.msg("c", pptp_ocrq(0x4003, 3), "third call, call ID 0x4003")
    t.msg("s", pptp_ocrp(0x8004, 0x4003), "connected: its two expectations stay listed")


@scenario("PPTP incoming call: the PAC's GRE comes first (RELATED, original direction from "
          "the server); the control connection closes and is reopened, which kills the "
          "master and with it the call's GRE entry.",
          ["pptp", "helper", "gre", "tcp", "ipv4"],
          "For pptp_helper.nft. Call IDs: PAC 0x7001, PNS 0x3001.")
def pptp_incoming_call(s):
    t = PptpTcp(s, cport=40724, sport=1723, cisn=3_000_000, sisn=4_000_000)
    t.handshake()
    t.msg("c", pptp_sccrq(), "Start-Control-Connection-Request")
    t.msg("s", pptp_sccrp(), "Start-Control-Connection-Reply, result 1")
    t.msg("s", pptp_icrq(0x7001), "Incoming-Call-Request, PAC call ID 0x7001")
    t.msg("c", pptp_icrp(0x3001, 0x7001), "Incoming-Call-Reply accept, PNS call ID 0x3001")
    t.msg("s", pptp_iccn(0x3001), "Incoming-Call-Connected: two GRE expectations")
    s.add("s", gre1(S4, C4, 0x3001), REL, "PAC -> PNS first: RELATED, original direction")
    s.add("c", gre1(C4, S4, 0x7001), EST, "PNS -> PAC: reply direction")
    s.add("s", gre1(S4, C4, 0x3001, data=b"\xff\x03\x00\x21more"), EST, "ASSURED")
    t.msg("c", pptp(3, struct.pack("!BBH", 1, 0, 0)), "Stop-Control-Connection-Request")
    t.msg("s", pptp(4, struct.pack("!BBH", 1, 0, 0)), "Stop-Control-Connection-Reply")
    t.c("FA", EST, "FIN_WAIT")
    t.s("FA", EST, "LAST_ACK")
    t.c("A", EST, "TIME_WAIT")
    t.nxt["c"] = 3_500_000
    t.c("S", NEW, "reopen from TIME_WAIT: the old master is killed, and its GRE entry with it")
    t.s("SA", EST, "new control connection")


# ==========================================================================
# Output
# ==========================================================================
def pcap_bytes(records):
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for t_us, frame in records:
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame),
                               len(frame)))
        out.append(frame)
    return b"".join(out)


README_HEAD = """\
# Parity scenario library

Generated by `gen.py` — do not edit `pcap/`, `scenarios.json` or this file by hand;
change `gen.py` and regenerate.

```
python3 tests/scenarios/gen.py           # rewrite pcap/*.pcap, scenarios.json, README.md
python3 tests/scenarios/gen.py --check   # regenerate in a temp dir and compare (exit 1 on drift)
```

Needs Python 3 and scapy (`pip install scapy`; built with scapy 2.8). The output is
byte-for-byte reproducible: fixed timestamps, sequence numbers, IP IDs, tags and
payloads, no randomness, no clock. The pcap files are written by hand: classic pcap,
LINKTYPE_ETHERNET, microsecond timestamps, every file starting at 1700000000.000000.

## What a scenario is

One pcap per scenario plus one object in `scenarios.json`:

| key | meaning |
|---|---|
| `name`, `file` | scenario name, `pcap/<name>.pcap` |
| `description` | what it exercises, then the expected kernel ct state of every packet (`#n [side] packet: state (notes)`) |
| `sysctls` | per-netns names under /proc/sys/net/netfilter/ to set in the firewall netns |
| `global_sysctls` | init-netns-only names (nf_conntrack_max, nf_conntrack_buckets, nf_conntrack_expect_max) |
| `tags` | protocol, family and topic tags |
| `expect` | machine-readable form of the per-packet expectation, one item per pcap record: `"new"`, `"established"`, `"related"`, `"invalid"`, `"untracked"`, `null` (no conntrack: dropped before netfilter, held by defrag, or dropped because the table is full), or a list of acceptable values where the kernel is not deterministic |

The expectations come from kernel-semantics.md / kernel-semantics-2.md (6.18.44
behaviour); the kernel-parity harness is the judge. Notes in parentheses give the
state and timeout the entry should have after the packet.

## Address plan and sides

| | client side | server side |
|---|---|---|
| IPv4 hosts | 10.1.0.0/16 (10.1.0.1) | 10.2.0.0/16 (10.2.0.1) |
| IPv4 routers (ICMP errors) | 10.1.0.254 | 10.2.0.254 |
| IPv6 hosts | 2001:db8:1::/64 (2001:db8:1::1) | 2001:db8:2::/64 (2001:db8:2::1) |
| IPv6 routers | 2001:db8:1::fe | 2001:db8:2::fe |
| source MAC of the frame | 02:00:00:00:00:01 | 02:00:00:00:00:02 |

Special addresses, only where a scenario is about them: 127.0.0.1 (martian source),
239.1.1.1 and ff05::1 (multicast), 255.255.255.255 (broadcast), fe80::1 (link-local
client), ff02::* (ND/MLD destinations), 10.1.0.99 (wrong ICMP outer destination),
10.1.1.1 / 10.2.1.1 (inside GRE).

Every flow's first packet comes from the client side, original-direction packets are
injected on the client side and reply-direction ones on the server side; an ICMP error
is injected on the side opposite to the sender of the packet it quotes. The generator
follows that rule and also makes each frame's source MAC (and, except for the
special addresses above, its source address) name the side it is injected from, so
the flow rule, `--client-net 10.1.0.0/16` and the MAC give the same split.
TTL / hop limit is 64 unless the scenario is about it. All checksums are correct
unless the scenario is about a bad one.

## Timing

The kernel harness replays in real time, honouring capture timestamps with each gap
capped at 3 s. Therefore:

* the default gap between packets is 1 ms; most scenarios last well under 50 ms;
* only scenarios that need time to pass use larger gaps, never more than 2.9 s for
  one gap, and keep the total under ~10 s;
* timeouts are shortened with per-netns sysctls instead of waiting (e.g.
  `nf_conntrack_udp_timeout=2` then a 2.5 s gap to see expiry and re-creation);
* UDP's 2-second stream rule needs a real gap > 2 s: 2.5 s is used.

Timeouts count down during the replay; compare remaining times with a tolerance.

## Scenarios

| name | duration | packets | what |
|---|---|---|---|
"""


def generate(outdir):
    """Build every scenario and write the outputs into outdir. Returns the list of files."""
    pdir = os.path.join(outdir, "pcap")
    os.makedirs(pdir, exist_ok=True)
    index, rows, written = [], [], []
    names = set()
    for name, title, summary, tags, sysctls, gsysctls, fn in SCENARIOS:
        assert name not in names, name
        names.add(name)
        scn = Scenario(name, title, summary, tags, sysctls, gsysctls)
        fn(scn)
        assert scn.records, name
        assert scn.duration() < 10.0, name
        path = os.path.join(pdir, name + ".pcap")
        with open(path, "wb") as f:
            f.write(pcap_bytes(scn.records))
        written.append(path)
        index.append({
            "name": name,
            "file": "pcap/%s.pcap" % name,
            "description": scn.description(),
            "sysctls": scn.sysctls,
            "global_sysctls": scn.global_sysctls,
            "tags": tags,
            "expect": scn.expect,
        })
        rows.append("| `%s` | %.3f s | %d | %s |" % (name, scn.duration(), len(scn.records),
                                                       title.replace("|", "/")))
    for stale in sorted(os.listdir(pdir)):
        if stale.endswith(".pcap") and stale[:-5] not in names:
            os.remove(os.path.join(pdir, stale))
    jpath = os.path.join(outdir, "scenarios.json")
    with open(jpath, "w", encoding="ascii") as f:
        json.dump(index, f, indent=2, ensure_ascii=True)
        f.write("\n")
    written.append(jpath)
    rpath = os.path.join(outdir, "README.md")
    with open(rpath, "w", encoding="utf-8") as f:
        f.write(README_HEAD + "\n".join(rows) + "\n\n%d scenarios.\n" % len(rows))
    written.append(rpath)
    return written


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv):
    if len(argv) > 1 and argv[1] == "--check":
        tmp = tempfile.mkdtemp(prefix="ctrack-scenarios-")
        try:
            files = generate(tmp)
            bad = 0
            for p in files:
                rel = os.path.relpath(p, tmp)
                mine = os.path.join(HERE, rel)
                if not os.path.exists(mine) or sha256(mine) != sha256(p):
                    print("differs: %s" % rel)
                    bad += 1
            extra = set(os.listdir(os.path.join(HERE, "pcap"))) - set(os.listdir(os.path.join(tmp, "pcap")))
            for e in sorted(extra):
                print("stale: pcap/%s" % e)
                bad += 1
            print("%d files checked, %d differ" % (len(files), bad))
            return 1 if bad else 0
        finally:
            shutil.rmtree(tmp)
    files = generate(HERE)
    print("wrote %d scenarios (%d files) under %s" % (len(SCENARIOS), len(files), HERE))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
