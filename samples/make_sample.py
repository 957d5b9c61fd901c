#!/usr/bin/env python3
"""Build samples/sample.pcap, the bundled demo capture, from scenario pcaps that
tests/scenarios/gen.py generated: a TCP connection from handshake to TIME_WAIT, a
UDP query and answer, an ICMP echo, an ICMP error related to a UDP flow, an invalid TCP
packet and a multicast packet that is never confirmed. Each piece is shifted to follow
the previous one by 10 ms. Deterministic: re-running gives the same bytes."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SCEN = os.path.join(HERE, "..", "tests", "scenarios", "pcap")
PARTS = [
    "tcp_handshake_fin_close.pcap",
    "udp_request_reply.pcap",
    "icmp_echo.pcap",
    "icmp_error_related_reply.pcap",
    "tcp_seq_over_upper_bound.pcap",
    "route_multicast_v4.pcap",
]


def records(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic == 0xA1B2C3D4, path
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        yield sec * 1_000_000 + usec, orig, data[off + 16:off + 16 + incl]
        off += 16 + incl


def main():
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t_next = None
    for name in PARTS:
        recs = list(records(os.path.join(SCEN, name)))
        base = recs[0][0]
        if t_next is None:
            t_next = base
        for ts, orig, frame in recs:
            t = t_next + (ts - base)
            out += struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), orig)
            out += frame
        t_next = t + 10_000
    with open(os.path.join(HERE, "sample.pcap"), "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
