#!/usr/bin/env python3
"""Mutated packets of every protocol, for differential testing against the live kernel:
frames taken from the scenario library (tests/scenarios/pcap, except the table-full and
NAT ones), 1-3 random byte changes each (mostly in the L4 part), sometimes cut short,
the IPv4 header checksum usually fixed so the packet reaches conntrack. Deterministic
for a seed. Usage: mutate.py SEED OUT.pcap   (tests/fuzz/mutated_SEED.pcap are seeds 1, 2)
`ctrack diff tests/fuzz/mutated_1.pcap` must agree packet for packet, reasons included."""
import struct, random, sys, glob, os
def csum(d):
    if len(d)%2: d+=b"\0"
    s=sum(struct.unpack("!%dH"%(len(d)//2),d))
    while s>>16: s=(s&0xffff)+(s>>16)
    return (~s)&0xffff
def read(p):
    d=open(p,'rb').read(); off=24; out=[]
    while off+16<=len(d):
        _,_,incl,_=struct.unpack("<IIII",d[off:off+16]); out.append(d[off+16:off+16+incl]); off+=16+incl
    return out
seed=int(sys.argv[1]); rng=random.Random(seed)
frames=[]
for p in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scenarios', 'pcap', '*.pcap'))):
    if 'table_full' in p or 'nat_' in p: continue
    frames+=read(p)
out=[]
for i in range(600):
    f=bytearray(rng.choice(frames))
    if len(f)<34: continue
    et=f[12:14]
    l3=14
    n=rng.randint(1,3)
    for _ in range(n):
        k=rng.random()
        if k<0.7 and len(f)>l3+20:
            j=rng.randrange(l3+ (20 if et==b'\x08\x00' else 40), len(f)) if len(f)>l3+40 else rng.randrange(l3,len(f))
            f[j]=rng.randrange(256)
        elif k<0.85:
            j=rng.randrange(l3,len(f)); f[j]^=1<<rng.randrange(8)
        else:
            f=f[:rng.randrange(l3+20,len(f)+1)]
    if et==b'\x08\x00' and len(f)>=l3+20 and rng.random()<0.8:
        ihl=(f[l3]&15)*4
        if 20<=ihl<=len(f)-l3:
            f[l3+10:l3+12]=b'\0\0'; f[l3+10:l3+12]=struct.pack('!H',csum(bytes(f[l3:l3+ihl])))
    out.append(bytes(f))
with open(sys.argv[2],'wb') as fo:
    fo.write(struct.pack("<IHHiIII",0xA1B2C3D4,2,4,0,0,65535,1))
    t=1_700_000_000*1_000_000
    for i,p in enumerate(out):
        tt=t+i*1000; fo.write(struct.pack("<IIII",tt//1_000_000,tt%1_000_000,len(p),len(p))); fo.write(p)
