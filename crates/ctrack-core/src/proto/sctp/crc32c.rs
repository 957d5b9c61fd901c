//! CRC32c (Castagnoli), the SCTP checksum (RFC 4960 §6.8 and Appendix B; RFC 3309).
//!
//! Reflected polynomial 0x82F63B78, initial value all ones, final complement: the same
//! CRC as iSCSI (RFC 3720 Appendix B.4, whose test vectors the tests use). SCTP
//! computes it over the whole SCTP packet with the 4-byte checksum field set to zero and
//! stores the result **little-endian** on the wire (kernel: `sctp_compute_cksum` returns
//! `cpu_to_le32(crc)`), so the transmitted bytes `aa 36 91 8a` mean the value 0x8A9136AA.
//!
//! One byte per step through a 256-entry table built at compile time: SCTP packets are
//! checked only at PRE_ROUTING with `nf_conntrack_checksum=1`, and this is plenty there.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// `TABLE[i]` = CRC register after shifting the byte `i` through eight reflected steps.
const TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Feed `data` into a running (not yet complemented) CRC register.
fn update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8);
    }
    crc
}

/// CRC32c of `data` (initial value all ones, final complement).
#[cfg(test)]
pub(super) fn crc32c(data: &[u8]) -> u32 {
    !update(!0, data)
}

/// The checksum an SCTP packet `l4` (common header and chunks) should carry: the CRC32c
/// over the packet with bytes 8..12 (the checksum field) taken as zero. Compare it with
/// the field read little-endian. A slice shorter than the common header is summed as if
/// zero-padded up to 12 bytes (callers check the length first).
pub(crate) fn sctp_checksum(l4: &[u8]) -> u32 {
    let head = l4.get(..8).unwrap_or(l4);
    let tail = l4.get(12..).unwrap_or(&[]);
    let crc = update(!0, head);
    let crc = update(crc, &[0u8; 4]);
    !update(crc, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sctp_crc32c_check_value() {
        // The standard "check" value of CRC-32C (CRC catalogue: CRC-32/ISCSI).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn sctp_crc32c_rfc3720_vectors() {
        // RFC 3720 Appendix B.4: the CRC bytes as transmitted (little-endian).
        let zeros = [0u8; 32];
        assert_eq!(crc32c(&zeros).to_le_bytes(), [0xaa, 0x36, 0x91, 0x8a]);
        let ones = [0xffu8; 32];
        assert_eq!(crc32c(&ones).to_le_bytes(), [0x43, 0xab, 0xa8, 0x62]);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc).to_le_bytes(), [0x4e, 0x79, 0xdd, 0x46]);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&dec).to_le_bytes(), [0x5c, 0xdb, 0x3f, 0x11]);
    }

    #[test]
    fn sctp_checksum_ignores_the_checksum_field() {
        let mut pkt = [0u8; 16];
        pkt[12] = 0x0b;
        pkt[15] = 0x04;
        let a = sctp_checksum(&pkt);
        pkt[8..12].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(sctp_checksum(&pkt), a);
        let mut zeroed = pkt;
        zeroed[8..12].fill(0);
        assert_eq!(crc32c(&zeroed), a);
    }
}
