#!/usr/bin/env python3
"""Write a SYN-flood capture: N_SYN SYNs from random sources (10.128.0.0/9, random ports)
to 10.2.0.1:80, spread over DURATION seconds, while N_FLOWS established connections
(10.1.x.y -> 10.2.0.1:443) exchange a data segment and its ACK every second.

Deterministic (fixed seed). Usage: gen_synflood.py OUT.pcap [N_SYN] [N_FLOWS] [DURATION]
Replay it with: ctrack replay --sysctl nf_conntrack_max=65536 --stats OUT.pcap
"""
import random
import struct
import sys

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF

ETH = bytes.fromhex("020000000002" "020000000001" "0800")

def tcp_pkt(src, dst, sport, dport, seq, ack, flags, payload=b"", win=65535):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, win, 0, 0) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    c = csum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ETH + ip + tcp

SYN, ACK, PSH = 0x02, 0x10, 0x08

def main():
    out = sys.argv[1]
    n_syn = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    n_flows = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    duration = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    rng = random.Random(42)
    server = bytes([10, 2, 0, 1])
    t0 = 1_700_000_000 * 1_000_000
    events = []  # (time_us, order, frame)
    flows = []
    for i in range(n_flows):
        c = bytes([10, 1, i >> 8, i & 0xFF])
        port = 20000 + i
        cseq, sseq = rng.getrandbits(32), rng.getrandbits(32)
        t = t0 + i * 100
        events.append((t, 0, tcp_pkt(c, server, port, 443, cseq, 0, SYN)))
        events.append((t + 10, 0, tcp_pkt(server, c, 443, port, sseq, (cseq + 1) & 0xFFFFFFFF, SYN | ACK)))
        events.append((t + 20, 0, tcp_pkt(c, server, port, 443, (cseq + 1) & 0xFFFFFFFF, (sseq + 1) & 0xFFFFFFFF, ACK)))
        flows.append([c, port, (cseq + 1) & 0xFFFFFFFF, (sseq + 1) & 0xFFFFFFFF])
    for sec in range(1, duration + 1):
        for i, f in enumerate(flows):
            c, port, cs, ss = f
            t = t0 + sec * 1_000_000 + i * 500
            data = b"x" * 100
            events.append((t, 1, tcp_pkt(c, server, port, 443, cs, ss, ACK | PSH, data)))
            cs = (cs + len(data)) & 0xFFFFFFFF
            events.append((t + 50, 1, tcp_pkt(server, c, 443, port, ss, cs, ACK)))
            f[2] = cs
    step = duration * 1_000_000 / n_syn
    for k in range(n_syn):
        src = bytes([10, 128 | rng.getrandbits(7), rng.getrandbits(8), rng.getrandbits(8)])
        t = t0 + 1_000_000 + int(k * step)
        events.append((t, 2, tcp_pkt(src, server, 1024 + rng.getrandbits(15), 80, rng.getrandbits(32), 0, SYN)))
    events.sort(key=lambda e: (e[0], e[1]))
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, _, frame in events:
            f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame)))
            f.write(frame)

if __name__ == "__main__":
    main()
