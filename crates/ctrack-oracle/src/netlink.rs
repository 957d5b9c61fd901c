//! Netlink primitives shared by the NFLOG reader (`nflog.rs`) and the NFQUEUE client
//! (`nfqueue.rs`): header length, alignment, native-endian field reads and the
//! attribute iterator. Every read is bounds-checked: a short or corrupt message gives
//! `None` or an error, never a panic.

/// `NLA_TYPE_MASK`: an attribute's type without the nested/byte-order flag bits.
pub(crate) const NLA_TYPE_MASK: u16 = !(1 << 15 | 1 << 14);
/// `NLMSG_HDRLEN`: the netlink message header's length.
pub(crate) const NLMSG_HDRLEN: usize = 16;

/// `NLA_ALIGN` / `NLMSG_ALIGN`: round up to a multiple of 4.
pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The native-endian `u16` at `at`, if the bytes are there.
pub(crate) fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The native-endian `u32` at `at`, if the bytes are there.
pub(crate) fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Iterates over netlink attributes: (type without flag bits, data). A malformed
/// attribute ends the iteration with an error.
pub(crate) fn attrs(mut b: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), String>> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let (Some(len), Some(ty)) = (u16_ne(b, 0), u16_ne(b, 2)) else {
            return None;
        };
        let len = usize::from(len);
        if len < 4 || len > b.len() {
            b = &[];
            return Some(Err(format!("bad attribute length {len}")));
        }
        let data = &b[4..len];
        b = b.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((ty & NLA_TYPE_MASK, data)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_bounds() {
        // Two attributes: type 1 with 2 bytes (padded to 8), nested-flagged type 2 with 4.
        let mut b = Vec::new();
        b.extend_from_slice(&6u16.to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(&[0xab, 0xcd, 0, 0]);
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&(2u16 | 1 << 15).to_ne_bytes());
        b.extend_from_slice(&7u32.to_ne_bytes());
        let got: Vec<_> = attrs(&b).collect::<Result<_, _>>().expect("well formed");
        assert_eq!(
            got,
            vec![(1, &[0xab, 0xcd][..]), (2, &7u32.to_ne_bytes()[..])]
        );
        // A length past the end is an error, not a panic; truncations end quietly.
        let mut bad = b.clone();
        bad[0] = 200;
        assert!(attrs(&bad).next().is_some_and(|r| r.is_err()));
        for n in 0..b.len() {
            let _ = attrs(&b[..n]).count();
        }
        assert_eq!(u16_ne(&[1], 0), None);
        assert_eq!(u32_ne(&[0; 4], usize::MAX - 1), None);
        assert_eq!(align4(5), 8);
    }
}
