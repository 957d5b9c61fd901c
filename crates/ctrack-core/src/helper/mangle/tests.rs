use super::*;

/// A plain RFC 1071 sum, independent of the crate's checksum code.
fn rfc1071(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn tcp_ok(pkt: &[u8], l4: usize, v6: bool) -> bool {
    let seg = &pkt[l4..];
    let mut ph = Vec::new();
    if v6 {
        ph.extend_from_slice(&pkt[8..40]);
        ph.extend_from_slice(&(seg.len() as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 6]);
    } else {
        ph.extend_from_slice(&pkt[12..20]);
        ph.extend_from_slice(&[0, 6]);
        ph.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    }
    ph.extend_from_slice(seg);
    rfc1071(&ph) == 0xffff
}

fn tcp(payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40021u16.to_be_bytes());
    t[2..4].copy_from_slice(&21u16.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x18;
    t.extend_from_slice(payload);
    t
}

fn v4(payload: &[u8]) -> Vec<u8> {
    let t = tcp(payload);
    let mut p = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 2, 0, 254, 10, 2, 0, 1,
    ];
    p[2..4].copy_from_slice(&((20 + t.len()) as u16).to_be_bytes());
    p.extend_from_slice(&t);
    p
}

fn v6(payload: &[u8]) -> Vec<u8> {
    let t = tcp(payload);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(t.len() as u16).to_be_bytes());
    p.extend_from_slice(&[6, 64]);
    p.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe,
    ]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&t);
    p
}

#[test]
fn mangle_grows_an_ipv4_port_command() {
    let mut p = v4(b"PORT 10,1,0,1,156,65\r\n");
    let d = mangle_tcp(&mut p, 20, 5, 15, b"10,2,0,254,156,65");
    assert_eq!(d, Some(2));
    assert_eq!(&p[40..], b"PORT 10,2,0,254,156,65\r\n");
    assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
    assert_eq!(rfc1071(&p[..20]), 0xffff, "IPv4 header checksum");
    assert!(tcp_ok(&p, 20, false), "TCP checksum over the new payload");
}

#[test]
fn mangle_shrinks_and_keeps_what_follows() {
    let mut p = v4(b"PORT 10,1,200,100,156,75\r\nNOOP\r\n");
    let d = mangle_tcp(&mut p, 20, 5, 19, b"10,2,0,254,156,75");
    assert_eq!(d, Some(-2));
    assert_eq!(&p[40..], b"PORT 10,2,0,254,156,75\r\nNOOP\r\n");
    assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
    assert_eq!(rfc1071(&p[..20]), 0xffff);
    assert!(tcp_ok(&p, 20, false));
}

#[test]
fn mangle_ipv6_eprt_and_epsv() {
    let cmd = b"EPRT |2|2001:db8:1::1|40012|\r\n";
    let mut p = v6(cmd);
    let rep = b"|2|2001:0db8:0002:0000:0000:0000:0000:00fe|40012|";
    let d = mangle_tcp(&mut p, 40, 5, cmd.len() - 7, rep);
    assert_eq!(d, Some(rep.len() as i32 - (cmd.len() as i32 - 7)));
    assert_eq!(&p[60..65], b"EPRT ");
    assert_eq!(&p[65..65 + rep.len()], rep);
    assert_eq!(&p[p.len() - 2..], b"\r\n");
    assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len() - 40);
    assert!(tcp_ok(&p, 40, true));

    let ans = b"229 Entering Extended Passive Mode (!!!50001!)\r\n";
    let mut p = v6(ans);
    let d = mangle_tcp(&mut p, 40, 36, 9, b"|||50001|");
    assert_eq!(d, Some(0));
    assert_eq!(
        &p[60..],
        b"229 Entering Extended Passive Mode (|||50001|)\r\n"
    );
    assert!(tcp_ok(&p, 40, true));
}

#[test]
fn mangle_refuses_what_it_cannot_write() {
    let mut p = v4(b"PORT 1,2,3,4,5,6\r\n");
    let before = p.clone();
    assert_eq!(
        mangle_tcp(&mut p, 20, 5, 100, b"x"),
        None,
        "match past the end"
    );
    assert_eq!(p, before);
    let big = vec![b'1'; 65_535 - p.len() + 1];
    assert_eq!(mangle_tcp(&mut p, 20, 0, 0, &big), None, "over 65535 bytes");
    assert_eq!(p, before);
    assert_eq!(
        mangle_tcp(&mut vec![0x55; 60], 20, 0, 0, b""),
        None,
        "not IP"
    );
}
