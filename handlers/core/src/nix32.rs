//! Nix's base-32 encoding: its own alphabet (no `e o t u`) and least significant
//! digit last, as in `libutil/hash.cc`.

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

const fn build_reverse() -> [u8; 256] {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 32 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
}
const REVERSE: [u8; 256] = build_reverse();

/// Number of characters that encode `len` bytes.
pub const fn encoded_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len * 8 - 1) / 5 + 1
    }
}

/// True when `c` is a nix base-32 digit.
pub fn is_digit(c: u8) -> bool {
    REVERSE[c as usize] != 0xff
}

pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = bytes[i] >> j;
        let hi = if i + 1 < bytes.len() {
            // j can be up to 7, so shift in u16 to avoid overflow.
            ((bytes[i + 1] as u16) << (8 - j)) as u8
        } else {
            0
        };
        out.push(ALPHABET[((lo | hi) & 0x1f) as usize] as char);
    }
    out
}

/// Decodes exactly `N` bytes. Fails on a wrong length, a character outside the
/// alphabet, or a value that does not fit in `N` bytes.
pub fn decode<const N: usize>(s: &str) -> Result<[u8; N], &'static str> {
    let s = s.as_bytes();
    if s.len() != encoded_len(N) {
        return Err("wrong length");
    }
    let mut out = [0u8; N];
    for (n, &c) in s.iter().rev().enumerate() {
        let digit = REVERSE[c as usize];
        if digit == 0xff {
            return Err("character outside the nix base32 alphabet");
        }
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        out[i] |= digit << j;
        let carry = ((digit as u16) >> (8 - j)) as u8;
        if i + 1 < N {
            out[i + 1] |= carry;
        } else if carry != 0 {
            return Err("value does not fit");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_value() {
        // sha256 of "hi\n"-containing NAR from the Nix 2.8 vectors (hello).
        let hex = "10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6";
        let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
        assert_eq!(encode(&bytes), "1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h");
        assert_eq!(decode::<32>("1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h").unwrap()[..], bytes[..]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(decode::<32>("e".repeat(52).as_str()).is_err());
        assert!(decode::<32>("0".repeat(51).as_str()).is_err());
        // 52 digits carry 260 bits; a leading digit above 0..=1 overflows 256 bits.
        let mut s = "0".repeat(52);
        s.replace_range(0..1, "z");
        assert_eq!(decode::<32>(&s), Err("value does not fit"));
        s.replace_range(0..1, "1");
        assert!(decode::<32>(&s).is_ok());
    }

    proptest! {
        #[test]
        fn roundtrip32(bytes in proptest::array::uniform32(any::<u8>())) {
            let s = encode(&bytes);
            prop_assert_eq!(s.len(), 52);
            prop_assert_eq!(decode::<32>(&s).unwrap(), bytes);
        }
        #[test]
        fn roundtrip20(bytes in proptest::array::uniform20(any::<u8>())) {
            let s = encode(&bytes);
            prop_assert_eq!(s.len(), 32);
            prop_assert_eq!(decode::<20>(&s).unwrap(), bytes);
        }
    }
}
