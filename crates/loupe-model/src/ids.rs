//! Trace and span identifiers: fixed-size byte arrays, written as lower-case hex.

use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier has the wrong number of bytes.
    #[error("expected {expected} bytes ({} hex characters), got {got} bytes", expected * 2)]
    Length { expected: usize, got: usize },
    /// The identifier has the wrong number of hex characters.
    #[error("expected {expected} hex characters, got {got}")]
    HexLength { expected: usize, got: usize },
    /// A character is not a hex digit.
    #[error("invalid hex character {ch:?} at position {pos}")]
    NotHex { ch: char, pos: usize },
    /// All bytes are zero, which OTLP defines as an invalid id.
    #[error("an all-zero id is invalid")]
    Zero,
}

fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], IdError> {
    let s = s.trim();
    if s.len() != N * 2 {
        return Err(IdError::HexLength {
            expected: N * 2,
            got: s.chars().count(),
        });
    }
    let mut out = [0u8; N];
    let bytes = s.as_bytes();
    for (i, slot) in out.iter_mut().enumerate() {
        let hi = hex_val(bytes[2 * i], s, 2 * i)?;
        let lo = hex_val(bytes[2 * i + 1], s, 2 * i + 1)?;
        *slot = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_val(b: u8, s: &str, pos: usize) -> Result<u8, IdError> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(IdError::NotHex {
            ch: s.get(pos..).and_then(|t| t.chars().next()).unwrap_or('?'),
            pos,
        }),
    }
}

fn write_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = DIGITS[(b >> 4) as usize];
        buf[2 * i + 1] = DIGITS[(b & 0xf) as usize];
    }
    // The buffer only ever holds ASCII hex digits.
    f.write_str(std::str::from_utf8(&buf[..bytes.len() * 2]).map_err(|_| fmt::Error)?)
}

macro_rules! id_type {
    ($name:ident, $n:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            /// Number of bytes in this identifier.
            pub const LEN: usize = $n;

            /// Parses lower- or upper-case hex of exactly the right length.
            pub fn from_hex(s: &str) -> Result<Self, IdError> {
                parse_hex::<$n>(s).map(Self)
            }

            /// Takes raw bytes, refusing a wrong length.
            pub fn from_slice(b: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; $n] = b.try_into().map_err(|_| IdError::Length {
                    expected: $n,
                    got: b.len(),
                })?;
                Ok(Self(arr))
            }

            /// Whether every byte is zero (invalid in OTLP).
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|b| *b == 0)
            }

            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                self.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::from_hex(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(TraceId, 16, "A 16-byte trace id (32 hex characters).");
id_type!(SpanId, 8, "An 8-byte span id (16 hex characters).");

impl SpanId {
    /// The id as a signed 64-bit integer (big-endian), the compact form stores index.
    pub fn to_i64(self) -> i64 {
        i64::from_be_bytes(self.0)
    }

    /// The inverse of [`SpanId::to_i64`].
    pub fn from_i64(v: i64) -> Self {
        Self(v.to_be_bytes())
    }
}

/// 32 random hex digits (std's per-process random hash keys, mixed with a counter and the time).
pub fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(32);
    for half in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(half);
        h.write_i64(crate::now_ms());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A new assessment id, `a-` and 32 hex digits as MLflow's are: the first 12 the time in
/// milliseconds, the rest random. Ids made later sort later, so a store's index by id takes
/// them at its end instead of at a random page each (docs/performance.md, "Assessments").
pub fn new_assessment_id() -> String {
    let ms = crate::now_ms().clamp(0, 0xffff_ffff_ffff);
    format!("a-{ms:012x}{}", &random_hex()[..20])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_case() {
        let id = TraceId::from_hex("5B8EFFF798038103D269B633813FC60C").unwrap();
        assert_eq!(id.to_hex(), "5b8efff798038103d269b633813fc60c");
        let s = SpanId::from_hex("eee19b7ec3c1b174").unwrap();
        assert_eq!(SpanId::from_i64(s.to_i64()), s);
    }

    #[test]
    fn precise_errors() {
        assert_eq!(
            TraceId::from_hex("abc").unwrap_err().to_string(),
            "expected 32 hex characters, got 3"
        );
        let e = SpanId::from_hex("eee19b7ec3c1b17z").unwrap_err();
        assert_eq!(e, IdError::NotHex { ch: 'z', pos: 15 });
        let e = SpanId::from_hex("ée19b7ec3c1b174").unwrap_err();
        assert!(matches!(e, IdError::NotHex { pos: 0, .. }), "{e:?}");
        assert_eq!(
            SpanId::from_slice(&[1, 2, 3]).unwrap_err().to_string(),
            "expected 8 bytes (16 hex characters), got 3 bytes"
        );
        assert!(TraceId([0; 16]).is_zero());
    }

    #[test]
    fn assessment_ids_made_later_sort_later() {
        let first = new_assessment_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_assessment_id();
        assert!(first < second, "{first} then {second}");
        for id in [&first, &second] {
            assert_eq!(id.len(), 34, "{id}");
            assert!(id.starts_with("a-"));
            assert!(id[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        assert_ne!(
            new_assessment_id(),
            new_assessment_id(),
            "random in the same millisecond"
        );
    }
}
