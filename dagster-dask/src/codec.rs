//! Typed values to bytes and back.
//!
//! Every object an IO manager stores is framed by a small header so that a reader can tell,
//! before it trusts a single payload byte, whether the object is ours, which format version
//! wrote it, which Rust type it holds, and that type's shape:
//!
//! ```text
//! b"DDSK" | version: u8 | type name length: u16 LE | type name (UTF-8)
//!         | shape length: u32 LE | shape (UTF-8) | bincode 2 payload
//! ```
//!
//! The payload is [bincode 2](https://docs.rs/bincode/2) over serde, standard configuration.
//! bincode is not self-describing: a type whose fields changed under the same name would
//! read another build's bytes as a wrong value. So the header carries the type's shape (its
//! serde format, traced once per type: field and variant names and types, in order), and a
//! reader whose type has another shape refuses the object, naming both. (Version 1 objects,
//! which have no shape, are still read, by type name.)
//!
//! Decoding never panics: a foreign, truncated or corrupt object, or one holding another type
//! or shape, is a [`CodecError`] that names what was expected and what was found.

use serde::Serialize;
use serde::de::DeserializeOwned;

mod shape;

/// The four bytes every stored object starts with.
pub const MAGIC: [u8; 4] = *b"DDSK";

/// The format version this build writes (it reads it and version 1, which had no shape).
pub const FORMAT_VERSION: u8 = 2;

/// The first format version, without the shape.
const FORMAT_VERSION_NO_SHAPE: u8 = 1;

/// The largest amount of memory one decoded object may claim.
///
/// bincode allocates a container before reading its elements; without a bound a corrupt
/// length prefix would ask the allocator for exabytes and abort the process.
pub const MAX_DECODED_BYTES: usize = 1 << 32;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODED_BYTES>()
}

/// Why bytes could not be turned into a value (or a value into bytes).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes do not start with [`MAGIC`]: not an object written by dagster-dask.
    #[error(
        "not a dagster-dask object: expected the header magic \"DDSK\", found {found:?} \
         (was the file written by something else?)"
    )]
    BadMagic {
        /// The first bytes found (up to four).
        found: Vec<u8>,
    },
    /// The object was written by another format version.
    #[error(
        "object has format version {found}, this build reads version {expected}: \
         re-run the upstream step with this binary"
    )]
    Version {
        /// The version this build reads.
        expected: u8,
        /// The version in the header.
        found: u8,
    },
    /// The header is cut short or its type name is not UTF-8.
    #[error("object header is corrupt: {0}")]
    Header(String),
    /// The object holds a value of the expected type name but another shape: it was written
    /// by a build of the binary in which the type's fields (or variants) were others.
    #[error(
        "object holds a `{type_name}` of another shape, written by another build of the job \
         binary: stored {stored}, this build reads {expected}; re-run the step that wrote it \
         with this binary"
    )]
    ShapeMismatch {
        /// The type.
        type_name: String,
        /// The shape in the object's header.
        stored: String,
        /// The shape of the type in this build.
        expected: String,
    },
    /// The object holds a value of another Rust type.
    #[error("object holds a `{found}`, expected a `{expected}`")]
    TypeMismatch {
        /// The type the reader asked for.
        expected: String,
        /// The type recorded in the header.
        found: String,
    },
    /// The payload does not decode as the expected type.
    #[error("payload of `{type_name}` is corrupt: {reason}")]
    Corrupt {
        /// The type being decoded.
        type_name: String,
        /// What bincode reported.
        reason: String,
    },
    /// The value could not be encoded (a serde `Serialize` impl returned an error).
    #[error("cannot encode a `{type_name}`: {reason}")]
    Encode {
        /// The type being encoded.
        type_name: String,
        /// What serde or bincode reported.
        reason: String,
    },
}

/// The type name in the header of what is stored for an optional output that was not
/// produced: a header with no payload, so that a reader tells "not produced" from "missing".
pub const NOT_PRODUCED: &str = "dagster_dask::NotProduced";

/// The object stored for an optional output that was not produced.
pub(crate) fn not_produced() -> Vec<u8> {
    header(NOT_PRODUCED, "")
}

impl CodecError {
    /// Whether the object read is the mark of an optional output that was not produced.
    pub fn is_not_produced(&self) -> bool {
        matches!(self, Self::TypeMismatch { found, .. } if found == NOT_PRODUCED)
    }
}

/// The type name recorded in headers for `T`.
///
/// This is [`std::any::type_name`], which is stable within one build of a binary: the driver
/// and the workers run the same binary, so they agree.
pub fn type_name_of<T: ?Sized>() -> &'static str {
    std::any::type_name::<T>()
}

/// Encodes `value` with its header.
pub fn encode<T: Serialize + DeserializeOwned + 'static>(value: &T) -> Result<Vec<u8>, CodecError> {
    let name = type_name_of::<T>();
    let mut out = header(name, &shape::shape_of::<T>());
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(|e| {
        CodecError::Encode {
            type_name: name.to_owned(),
            reason: e.to_string(),
        }
    })?;
    Ok(out)
}

/// Encodes `value` with its header into `out`, as it goes: a large value is never held twice
/// in memory. Returns the bytes written.
pub fn encode_into<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
    out: &mut dyn std::io::Write,
) -> Result<u64, CodecError> {
    let name = type_name_of::<T>();
    let encode_err = |reason: String| CodecError::Encode {
        type_name: name.to_owned(),
        reason,
    };
    let head = header(name, &shape::shape_of::<T>());
    out.write_all(&head)
        .map_err(|e| encode_err(e.to_string()))?;
    let mut counted = Counted { inner: out, n: 0 };
    bincode::serde::encode_into_std_write(value, &mut counted, config())
        .map_err(|e| encode_err(e.to_string()))?;
    Ok(head.len() as u64 + counted.n)
}

/// Counts what goes through it.
struct Counted<'a> {
    inner: &'a mut dyn std::io::Write,
    n: u64,
}

impl std::io::Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.n += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn header(type_name: &str, shape: &str) -> Vec<u8> {
    // Type names longer than u16::MAX are cut: the comparison on read uses the same cut.
    let name = truncate_name(type_name);
    let mut out = Vec::with_capacity(MAGIC.len() + 7 + name.len() + shape.len() + 16);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    // (a shape is a few hundred bytes: far below u32::MAX)
    out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
    out.extend_from_slice(shape.as_bytes());
    out
}

/// Refuses an object whose type, named as expected, has another shape than in this build.
/// (No shape on either side, version 1 or a type tracing cannot follow: names only.)
fn check_shape<T: DeserializeOwned + 'static>(
    type_name: &str,
    stored: &str,
) -> Result<(), CodecError> {
    let expected = shape::shape_of::<T>();
    if stored.is_empty() || expected.is_empty() || *stored == *expected {
        return Ok(());
    }
    Err(CodecError::ShapeMismatch {
        type_name: type_name.to_owned(),
        stored: stored.to_owned(),
        expected: expected.to_string(),
    })
}

fn truncate_name(name: &str) -> &str {
    if name.len() <= usize::from(u16::MAX) {
        return name;
    }
    let mut end = usize::from(u16::MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The parts of a stored object, after its header was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    /// The type name recorded in the header.
    pub type_name: &'a str,
    /// The type's shape recorded in the header (empty: not traced, or a version 1 object).
    pub shape: &'a str,
    /// The bincode payload.
    pub payload: &'a [u8],
}

/// Checks the header of `bytes` and splits it from the payload.
pub fn unframe(bytes: &[u8]) -> Result<Framed<'_>, CodecError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(CodecError::BadMagic {
            found: bytes.iter().take(MAGIC.len()).copied().collect(),
        });
    }
    let rest = &bytes[MAGIC.len()..];
    let (&version, rest) = rest
        .split_first()
        .ok_or_else(|| CodecError::Header("missing format version".to_owned()))?;
    if version != FORMAT_VERSION && version != FORMAT_VERSION_NO_SHAPE {
        return Err(CodecError::Version {
            expected: FORMAT_VERSION,
            found: version,
        });
    }
    let Some((len, rest)) = rest.split_first_chunk::<2>() else {
        return Err(CodecError::Header("missing type name length".to_owned()));
    };
    let len = usize::from(u16::from_le_bytes(*len));
    if rest.len() < len {
        return Err(CodecError::Header(format!(
            "type name is {len} bytes but only {} bytes follow",
            rest.len()
        )));
    }
    let (name, rest) = rest.split_at(len);
    let type_name = std::str::from_utf8(name)
        .map_err(|e| CodecError::Header(format!("type name is not UTF-8: {e}")))?;
    if version == FORMAT_VERSION_NO_SHAPE {
        return Ok(Framed {
            type_name,
            shape: "",
            payload: rest,
        });
    }
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return Err(CodecError::Header("missing shape length".to_owned()));
    };
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(CodecError::Header(format!(
            "shape is {len} bytes but only {} bytes follow",
            rest.len()
        )));
    }
    let (shape, payload) = rest.split_at(len);
    let shape = std::str::from_utf8(shape)
        .map_err(|e| CodecError::Header(format!("shape is not UTF-8: {e}")))?;
    Ok(Framed {
        type_name,
        shape,
        payload,
    })
}

/// Decodes a `T` from bytes written by [`encode`].
pub fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, CodecError> {
    let framed = unframe(bytes)?;
    let expected = truncate_name(type_name_of::<T>());
    if framed.type_name != expected {
        return Err(CodecError::TypeMismatch {
            expected: expected.to_owned(),
            found: framed.type_name.to_owned(),
        });
    }
    check_shape::<T>(expected, framed.shape)?;
    let corrupt = |reason: String| CodecError::Corrupt {
        type_name: expected.to_owned(),
        reason,
    };
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(framed.payload, config())
        .map_err(|e| corrupt(e.to_string()))?;
    if read != framed.payload.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the value",
            framed.payload.len() - read
        )));
    }
    Ok(value)
}

/// Decodes a `T` from a reader over bytes written by [`encode`], as they arrive: a large
/// value is never held twice (bytes and value) in memory. The checks and errors are those of
/// [`decode`].
pub fn decode_from<T: DeserializeOwned + 'static>(
    input: &mut dyn std::io::Read,
) -> Result<T, CodecError> {
    let mut head = [0_u8; MAGIC.len() + 3];
    let got = read_up_to(input, &mut head)?;
    if got < MAGIC.len() || head[..MAGIC.len()] != MAGIC {
        return Err(CodecError::BadMagic {
            found: head[..got.min(MAGIC.len())].to_vec(),
        });
    }
    if got == MAGIC.len() {
        return Err(CodecError::Header("missing format version".to_owned()));
    }
    let version = head[MAGIC.len()];
    if version != FORMAT_VERSION && version != FORMAT_VERSION_NO_SHAPE {
        return Err(CodecError::Version {
            expected: FORMAT_VERSION,
            found: version,
        });
    }
    if got < head.len() {
        return Err(CodecError::Header("missing type name length".to_owned()));
    }
    let len = usize::from(u16::from_le_bytes([
        head[MAGIC.len() + 1],
        head[MAGIC.len() + 2],
    ]));
    let mut name = vec![0_u8; len];
    let got = read_up_to(input, &mut name)?;
    if got < len {
        return Err(CodecError::Header(format!(
            "type name is {len} bytes but only {got} bytes follow"
        )));
    }
    let type_name = std::str::from_utf8(&name)
        .map_err(|e| CodecError::Header(format!("type name is not UTF-8: {e}")))?;
    let expected = truncate_name(type_name_of::<T>());
    if type_name != expected {
        return Err(CodecError::TypeMismatch {
            expected: expected.to_owned(),
            found: type_name.to_owned(),
        });
    }
    if version != FORMAT_VERSION_NO_SHAPE {
        let mut len = [0_u8; 4];
        if read_up_to(input, &mut len)? < len.len() {
            return Err(CodecError::Header("missing shape length".to_owned()));
        }
        let len = u32::from_le_bytes(len) as usize;
        // (read as it comes: a corrupt length must not allocate gigabytes up front)
        let mut shape = Vec::new();
        let got = std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut *input, len as u64),
            &mut shape,
        )
        .map_err(|e| CodecError::Header(format!("cannot read the object: {e}")))?;
        if got < len {
            return Err(CodecError::Header(format!(
                "shape is {len} bytes but only {got} bytes follow"
            )));
        }
        let shape = std::str::from_utf8(&shape)
            .map_err(|e| CodecError::Header(format!("shape is not UTF-8: {e}")))?;
        check_shape::<T>(expected, shape)?;
    }
    let corrupt = |reason: String| CodecError::Corrupt {
        type_name: expected.to_owned(),
        reason,
    };
    let value: T = bincode::serde::decode_from_std_read(&mut &mut *input, config())
        .map_err(|e| corrupt(e.to_string()))?;
    let mut rest = [0_u8; 4096];
    let trailing = read_up_to(input, &mut rest)?;
    if trailing > 0 {
        let more = std::io::copy(input, &mut std::io::sink()).unwrap_or(0);
        return Err(corrupt(format!(
            "{} trailing bytes after the value",
            trailing as u64 + more
        )));
    }
    Ok(value)
}

/// Fills `buf` as far as the input goes; returns how much it read.
fn read_up_to(input: &mut dyn std::io::Read, buf: &mut [u8]) -> Result<usize, CodecError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CodecError::Header(format!("cannot read the object: {e}"))),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i64,
        label: String,
        tags: Vec<String>,
    }

    /// `bytes` as another build wrote them: the shape text with `from` replaced by `to` (of
    /// the same length, so the header's lengths stay right).
    fn with_shape_edited(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let text = String::from_utf8_lossy(bytes).into_owned();
        let at = text.find(from).expect("the shape names it");
        let mut out = bytes.to_vec();
        out[at..at + to.len()].copy_from_slice(to.as_bytes());
        out
    }

    #[test]
    fn an_object_of_another_shape_is_refused_naming_both_shapes() {
        let bytes = encode(&vec![1_i64, 2]).unwrap();
        let other = with_shape_edited(&bytes, "I64", "I32");
        let err = decode::<Vec<i64>>(&other).unwrap_err();
        let CodecError::ShapeMismatch {
            stored, expected, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert!(stored.contains("I32") && expected.contains("I64"), "{err}");
        let err = decode_from::<Vec<i64>>(&mut other.as_slice()).unwrap_err();
        assert!(matches!(err, CodecError::ShapeMismatch { .. }), "{err}");
        assert!(
            err.to_string().contains("another build of the job binary"),
            "{err}"
        );
    }

    #[test]
    fn version_1_objects_without_a_shape_are_still_read() {
        let name = type_name_of::<Vec<i64>>();
        let mut v1 = MAGIC.to_vec();
        v1.push(1);
        v1.extend_from_slice(&(name.len() as u16).to_le_bytes());
        v1.extend_from_slice(name.as_bytes());
        bincode::serde::encode_into_std_write(vec![7_i64], &mut v1, config()).unwrap();
        assert_eq!(decode::<Vec<i64>>(&v1).unwrap(), [7]);
        assert_eq!(decode_from::<Vec<i64>>(&mut v1.as_slice()).unwrap(), [7]);
    }

    fn point() -> Point {
        Point {
            x: -3,
            label: "p".into(),
            tags: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn round_trips_with_header() {
        let bytes = encode(&point()).unwrap();
        assert_eq!(&bytes[..4], b"DDSK");
        assert_eq!(bytes[4], FORMAT_VERSION);
        assert_eq!(decode::<Point>(&bytes).unwrap(), point());
        assert_eq!(decode::<()>(&encode(&()).unwrap()).unwrap(), ());
        let framed = unframe(&bytes).unwrap();
        assert!(framed.type_name.ends_with("Point"), "{}", framed.type_name);
    }

    #[test]
    fn wrong_type_names_both_types() {
        let bytes = encode(&42_i64).unwrap();
        let err = decode::<String>(&bytes).unwrap_err();
        assert_eq!(
            err,
            CodecError::TypeMismatch {
                expected: "alloc::string::String".into(),
                found: "i64".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "object holds a `i64`, expected a `alloc::string::String`"
        );
    }

    #[test]
    fn foreign_bytes_are_bad_magic() {
        let err = decode::<i64>(b"\x80\x04\x95pickle").unwrap_err();
        assert!(matches!(err, CodecError::BadMagic { .. }), "{err}");
        assert!(err.to_string().contains("not a dagster-dask object"));
        assert!(matches!(
            decode::<i64>(b"").unwrap_err(),
            CodecError::BadMagic { .. }
        ));
    }

    #[test]
    fn other_version_is_named() {
        let mut bytes = encode(&1_u8).unwrap();
        bytes[4] = 9;
        let err = decode::<u8>(&bytes).unwrap_err();
        assert_eq!(
            err,
            CodecError::Version {
                expected: FORMAT_VERSION,
                found: 9
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode(&point()).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode::<Point>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn corrupt_payloads_never_panic() {
        let bytes = encode(&point()).unwrap();
        let start = unframe(&bytes).unwrap().payload.as_ptr() as usize - bytes.as_ptr() as usize;
        // Flip every payload byte to every interesting value, including huge length prefixes.
        for i in start..bytes.len() {
            for v in [0x00, 0x7f, 0xfb, 0xfc, 0xfd, 0xfe, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = decode::<Point>(&b);
            }
        }
        let mut huge = header(type_name_of::<Vec<u8>>(), &shape::shape_of::<Vec<u8>>());
        huge.push(0xfd); // u64 length follows
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = decode::<Vec<u8>>(&huge).unwrap_err();
        assert!(matches!(err, CodecError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn reading_from_a_stream_agrees_with_decoding_bytes() {
        let bytes = encode(&point()).unwrap();
        assert_eq!(
            decode_from::<Point>(&mut bytes.as_slice()).unwrap(),
            point()
        );
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"xyz");
        for input in (0..bytes.len())
            .map(|n| &bytes[..n])
            .chain([longer.as_slice()])
        {
            let from_slice = decode::<Point>(input).unwrap_err();
            let from_stream = decode_from::<Point>(&mut &input[..]).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&from_slice),
                std::mem::discriminant(&from_stream),
                "{from_slice} / {from_stream}"
            );
        }
        let other = encode(&7_u8).unwrap();
        assert!(matches!(
            decode_from::<Point>(&mut other.as_slice()),
            Err(CodecError::TypeMismatch { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_corrupt() {
        let mut bytes = encode(&7_u32).unwrap();
        bytes.push(0);
        let err = decode::<u32>(&bytes).unwrap_err();
        assert!(err.to_string().contains("1 trailing bytes"), "{err}");
    }
}
