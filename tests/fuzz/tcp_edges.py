#!/usr/bin/env python3
"""Random TCP conversations near the window edges, for differential testing against the
live kernel: 8 connections per file (random ISNs, window scale and SACK options, lost
SYN/ACKs), then packets with valid flag combinations whose sequence and ack numbers sit
on, just inside, just outside or far from the tracked window, zero and tiny windows,
payloads of 0..3000 bytes. Deterministic for a seed.

Usage: tcp_edges.py SEED OUT.pcap   (tests/fuzz/tcp_edges_SEED.pcap are seeds 1..4)
Every packet's ct state, fate, counters and the kernel's own log line must match:
`ctrack diff tests/fuzz/tcp_edges_1.pcap`."""
import random, struct, sys
def csum(d):
    if len(d)%2: d+=b"\0"
    s=sum(struct.unpack("!%dH"%(len(d)//2),d))
    while s>>16: s=(s&0xffff)+(s>>16)
    return (~s)&0xffff
ETH=bytes.fromhex("0200000000020200000000010800")
def pkt(src,dst,sp,dp,seq,ack,flags,win,payload=b"",opts=b""):
    doff=5+len(opts)//4
    t=struct.pack("!HHIIBBHHH",sp,dp,seq&0xffffffff,ack&0xffffffff,doff<<4,flags,win,0,0)+opts+payload
    c=csum(src+dst+struct.pack("!BBH",0,6,len(t))+t)
    t=t[:16]+struct.pack("!H",c)+t[18:]
    ip=struct.pack("!BBHHHBBH4s4s",0x45,0,20+len(t),0,0x4000,64,6,0,src,dst)
    ip=ip[:10]+struct.pack("!H",csum(ip))+ip[12:]
    return ETH+ip+t
F,S,R,P,A,U=1,2,4,8,16,32
VALID=[S,S|A,R,R|A,F|A,A,A|P,F|A|P,A|U,S|U]
def main(seed,out,n=400):
    rng=random.Random(seed)
    C=bytes([10,1,0,1]);Sv=bytes([10,2,0,1])
    recs=[];t=1_700_000_000*1_000_000
    for conn in range(8):
        sp=30000+conn;dp=80
        cs=rng.getrandbits(32);ss=rng.getrandbits(32)
        ws=rng.choice([b"",b"\x01\x03\x03\x07",b"\x01\x03\x03\x0e"])
        sack=rng.choice([b"",b"\x01\x01\x04\x02"])
        opts=(ws+sack+b"\x01\x01\x01\x01")[:((len(ws)+len(sack))+3)//4*4]
        recs.append(pkt(C,Sv,sp,dp,cs,0,S,rng.choice([65535,1024,0]),opts=opts))
        if rng.random()<0.9:
            recs.append(pkt(Sv,C,dp,sp,ss,cs+1,S|A,rng.choice([65535,512,29200]),opts=opts))
        cnext=cs+1;snext=ss+1
        for i in range(n//8):
            fromc=rng.random()<0.5
            fl=rng.choice(VALID) if rng.random()<0.3 else rng.choice([A,A|P])
            size=rng.choice([0,0,1,100,1460,3000])
            if fromc:
                base=cnext; ackb=snext
            else:
                base=snext; ackb=cnext
            off=rng.choice([0,0,0,0,-1,1,-size-1,70000,-70000,rng.randint(-(1<<31),1<<31)])
            aoff=rng.choice([0,0,0,1,-1,5000,-70000,rng.randint(-(1<<31),1<<31)])
            win=rng.choice([65535,65535,0,1,300])
            seq=base+off; ack=ackb+aoff
            payload=b"x"*size if not fl&(S|R) or rng.random()<0.2 else b""
            p=pkt(C,Sv,sp,dp,seq,ack,fl,win,payload) if fromc else pkt(Sv,C,dp,sp,seq,ack,fl,win,payload)
            recs.append(p)
            if off==0 and not fl&R:
                adv=len(payload)+(1 if fl&(S|F) else 0)
                if fromc: cnext+=adv
                else: snext+=adv
    with open(out,"wb") as f:
        f.write(struct.pack("<IHHiIII",0xA1B2C3D4,2,4,0,0,65535,1))
        for i,p in enumerate(recs):
            tt=t+i*1000
            f.write(struct.pack("<IIII",tt//1_000_000,tt%1_000_000,len(p),len(p)));f.write(p)
if __name__=="__main__":
    main(int(sys.argv[1]),sys.argv[2])
