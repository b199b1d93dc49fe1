//! Lowercase hexadecimal, the one form this project writes hashes in (token hashes,
//! diff report digests, transparency-log hashes), and its strict reading.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Exactly 64 lowercase hex digits as 32 bytes; anything else (upper case, a sign,
/// another length) is `None`.
pub fn decode_32(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_every_other_form() {
        let b: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        let h = encode(&b);
        assert_eq!(h.len(), 64);
        assert_eq!(decode_32(&h), Some(b));
        assert_eq!(encode(&[0x00, 0xff, 0x0a]), "00ff0a");
        assert_eq!(decode_32(&h.to_uppercase()), None);
        assert_eq!(decode_32(&h[..62]), None);
        assert_eq!(decode_32(&format!("+{}", &h[1..])), None);
        assert_eq!(decode_32(&format!("{}g", &h[..63])), None);
    }
}
