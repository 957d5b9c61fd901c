//! The FTP helper's NAT half (kernel `nf_nat_ftp.c`; kernel-semantics.md §12.5): the
//! text that replaces the address and port of a command on a NATed control connection.
//!
//! The engine side (port search, payload rewrite, sequence adjustment, the
//! expectation's follow-master NAT) is in `conntrack/nat_helpers.rs`.

use super::ftp::FtpType;
use crate::format::ipv6_expanded;
use crate::tuple::{Addr, Family};

/// The replacement for the numbers of a command of form `kind` on a connection of
/// `family`, announcing `addr` and `port` (kernel `nf_nat_ftp_fmt_cmd`):
/// `a,b,c,d,p,q` for PORT and 227, `|1|a.b.c.d|port|` or `|2|v6|port|` for EPRT (the
/// IPv6 address in full, eight groups of four hex digits, as the kernel's `%pI6`),
/// `|||port|` for 229.
pub fn command_text(kind: FtpType, family: Family, addr: &Addr, port: u16) -> String {
    let a = addr.0;
    match kind {
        FtpType::Port | FtpType::Pasv => format!(
            "{},{},{},{},{},{}",
            a[0],
            a[1],
            a[2],
            a[3],
            port >> 8,
            port & 0xff
        ),
        FtpType::Eprt => match family {
            Family::V4 => format!("|1|{}.{}.{}.{}|{port}|", a[0], a[1], a[2], a[3]),
            Family::V6 => format!("|2|{}|{port}|", ipv6_expanded(&a)),
        },
        FtpType::Epsv => format!("|||{port}|"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_command() {
        let v4 = Addr::v4([10, 2, 0, 254]);
        assert_eq!(
            command_text(FtpType::Port, Family::V4, &v4, 40000),
            "10,2,0,254,156,64"
        );
        assert_eq!(
            command_text(FtpType::Pasv, Family::V4, &v4, 258),
            "10,2,0,254,1,2"
        );
        assert_eq!(
            command_text(FtpType::Eprt, Family::V4, &v4, 40000),
            "|1|10.2.0.254|40000|"
        );
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b[15] = 0xfe;
        assert_eq!(
            command_text(FtpType::Eprt, Family::V6, &Addr::v6(b), 5),
            "|2|2001:0db8:0000:0000:0000:0000:0000:00fe|5|"
        );
        assert_eq!(
            command_text(FtpType::Epsv, Family::V6, &Addr::v6(b), 65535),
            "|||65535|"
        );
    }
}
