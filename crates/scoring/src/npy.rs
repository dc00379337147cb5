//! Minimal `.npy` reader and writer for 1-D float arrays (the authors' shared normal sample).
//!
//! Reads format versions 1.0, 2.0 and 3.0 with `descr` `<f8` or `<f4` (`|`/`=` byte-order
//! marks are not accepted: numpy writes `<` for little-endian floats), `shape` `(N,)`, and
//! `fortran_order` False (True is also accepted for 1-D arrays, whose layout is the same in both
//! orders). Everything else — wrong magic, big-endian or integer dtypes, other shapes, a header
//! or payload shorter or longer than declared — is a [`ScoringError::NormalSample`], never a
//! panic. The header is parsed as the small Python-literal dict numpy writes, not evaluated.

use std::path::Path;

use crate::{Result, ScoringError};

const MAGIC: &[u8] = b"\x93NUMPY";
/// Headers longer than this are not something numpy writes for a 1-D array.
const MAX_HEADER: usize = 1 << 20;

fn err(path: &Path, message: impl Into<String>) -> ScoringError {
    ScoringError::NormalSample {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a 1-D little-endian `float64` or `float32` `.npy` file as f64 values.
///
/// # Errors
///
/// [`ScoringError::NormalSample`] if the file cannot be read or is not such an array.
pub fn read_npy_f64(path: &Path) -> Result<Vec<f64>> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    parse_npy_f64(&bytes).map_err(|m| err(path, m))
}

/// Writes `values` as a 1-D `<f8` `.npy` file (format 1.0, header padded to 64 bytes as numpy
/// does).
///
/// # Errors
///
/// [`ScoringError::File`] if the file cannot be written.
pub fn write_npy_f64(path: &Path, values: &[f64]) -> Result<()> {
    let mut header = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({},), }}",
        values.len()
    );
    // magic (6) + version (2) + header length (2) + header, padded with spaces, ending in \n.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // The header is ASCII and at most ~100 bytes, far under u16::MAX.
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).map_err(|e| ScoringError::File {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    })
}

/// Parses the bytes of a `.npy` file; the error is a message without the path.
fn parse_npy_f64(bytes: &[u8]) -> std::result::Result<Vec<f64>, String> {
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let major = bytes[MAGIC.len()];
    let minor = bytes[MAGIC.len() + 1];
    let (len_bytes, utf8) = match (major, minor) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    let len_start = MAGIC.len() + 2;
    let header_start = len_start + len_bytes;
    let len_field = bytes
        .get(len_start..header_start)
        .ok_or("truncated header length")?;
    let header_len = if len_bytes == 2 {
        usize::from(u16::from_le_bytes([len_field[0], len_field[1]]))
    } else {
        let n = u32::from_le_bytes([len_field[0], len_field[1], len_field[2], len_field[3]]);
        usize::try_from(n).map_err(|_| "header length does not fit in memory")?
    };
    if header_len > MAX_HEADER {
        return Err(format!("header of {header_len} bytes is implausibly long"));
    }
    let data_start = header_start + header_len;
    let header_bytes = bytes
        .get(header_start..data_start)
        .ok_or("file ends inside the header")?;
    let header = if utf8 {
        std::str::from_utf8(header_bytes)
            .map_err(|_| "header is not UTF-8")?
            .to_owned()
    } else {
        // Versions 1 and 2 are latin-1; anything non-ASCII cannot be a valid descr anyway.
        header_bytes.iter().map(|&b| char::from(b)).collect()
    };
    let h = parse_header(&header)?;
    let item = match h.descr.as_str() {
        "<f8" => 8,
        "<f4" => 4,
        d => return Err(format!("dtype {d:?} is not little-endian float64/float32")),
    };
    let [count] = h.shape[..] else {
        return Err(format!("shape {:?} is not 1-D", h.shape));
    };
    let _ = h.fortran_order; // irrelevant for 1-D data
    let payload = &bytes[data_start..];
    let want = count
        .checked_mul(item)
        .ok_or("shape too large for memory")?;
    if payload.len() != want {
        return Err(format!(
            "payload has {} bytes, shape ({count},) of {} needs {want}",
            payload.len(),
            h.descr
        ));
    }
    Ok(if item == 8 {
        payload
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    } else {
        payload
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    })
}

/// The three keys of a `.npy` header.
#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value in the header dict.
#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses `{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }` (any key order,
/// whitespace, optional trailing commas, trailing spaces/newline).
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = p.value()?;
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            (k, v) => return Err(format!("unexpected header entry {k:?}: {v:?}")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("junk after the header dict".into());
    }
    Ok(Header {
        descr: descr.ok_or("header lacks 'descr'")?,
        fortran_order: fortran.ok_or("header lacks 'fortran_order'")?,
        shape: shape.ok_or("header lacks 'shape'")?,
    })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "malformed header: expected {:?} at byte {}",
                char::from(c),
                self.i
            ))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "malformed header: expected a string at byte {}",
                    self.i
                ));
            }
        };
        self.i += 1;
        let start = self.i;
        while let Some(&c) = self.s.get(self.i) {
            if c == quote {
                let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(out);
            }
            if c == b'\\' {
                return Err("escapes in header strings are not supported".into());
            }
            self.i += 1;
        }
        Err("malformed header: unterminated string".into())
    }

    fn value(&mut self) -> std::result::Result<Value, String> {
        match self.s.get(self.i) {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    self.ws();
                    if self.eat(b')') {
                        break;
                    }
                    dims.push(self.int()?);
                    self.ws();
                    if !self.eat(b',') {
                        self.ws();
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(Value::Tuple(dims))
            }
            _ if self.s[self.i..].starts_with(b"True") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            _ if self.s[self.i..].starts_with(b"False") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            _ => Err(format!(
                "malformed header: unexpected value at byte {}",
                self.i
            )),
        }
    }

    fn int(&mut self) -> std::result::Result<usize, String> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        // Python 2 era files may write `3L`.
        let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        self.eat(b'L');
        digits
            .parse()
            .map_err(|_| format!("malformed header: bad dimension at byte {start}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Builds a .npy with an arbitrary header (numpy-style padding) and payload.
    fn npy(version: (u8, u8), header: &str, payload: &[u8]) -> Vec<u8> {
        let len_bytes = if version.0 == 1 { 2 } else { 4 };
        let mut h = header.to_owned();
        let unpadded = 6 + 2 + len_bytes + h.len() + 1;
        h.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version.0, version.1]);
        if len_bytes == 2 {
            out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(h.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        let values = vec![0.5, -1.25, f64::MAX, 3e-300, 0.0];
        write_npy_f64(&path, &values).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 8 * values.len()) % 64, 0);
        assert_eq!(read_npy_f64(&path).unwrap(), values);
        write_npy_f64(&path, &[]).unwrap();
        assert!(read_npy_f64(&path).unwrap().is_empty());
    }

    #[test]
    fn reads_numpy_variants() {
        let f8: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f4: Vec<u8> = [1.5f32, -2.0, 0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let ok = [
            npy(
                (1, 0),
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                &f8,
            ),
            npy(
                (2, 0),
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}",
                &f8,
            ),
            npy(
                (3, 0),
                "{\"shape\": (2, ), 'fortran_order': True, 'descr': '<f8'}",
                &f8,
            ),
            npy(
                (1, 0),
                "{'descr':'<f8','fortran_order':False,'shape':(2L,)}",
                &f8,
            ),
        ];
        for b in &ok {
            assert_eq!(parse_npy_f64(b).unwrap(), vec![1.5, -2.0]);
        }
        let b = npy(
            (1, 0),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            &f4,
        );
        assert_eq!(parse_npy_f64(&b).unwrap(), vec![1.5, -2.0, 0.25]);
    }

    #[test]
    fn rejects_other_arrays() {
        let f8: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bad = [
            npy(
                (1, 0),
                "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }",
                &f8,
            ),
            npy(
                (1, 0),
                "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
                &f8,
            ),
            npy(
                (1, 0),
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }",
                &f8,
            ),
            npy(
                (1, 0),
                "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                &f8,
            ),
            npy(
                (1, 0),
                "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                &f8,
            ),
            npy(
                (1, 0),
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                &f8,
            ),
            npy((1, 0), "{'descr': '<f8', 'shape': (2,), }", &f8),
            npy(
                (1, 0),
                "{'descr': '<f8', 'fortran_order': 0, 'shape': (2,), }",
                &f8,
            ),
            npy(
                (4, 0),
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                &f8,
            ),
            npy(
                (1, 0),
                "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
                &f8,
            ),
            npy(
                (1, 0),
                "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }",
                &f8,
            ),
            b"not numpy at all".to_vec(),
            Vec::new(),
        ];
        for b in &bad {
            assert!(
                parse_npy_f64(b).is_err(),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.npy");
        match read_npy_f64(&missing) {
            Err(ScoringError::NormalSample { path, .. }) => assert_eq!(path, missing),
            other => panic!("{other:?}"),
        }
    }

    /// Truncations, byte flips and random garbage must give errors, never panics.
    #[test]
    fn fuzz_never_panics() {
        let values: Vec<f64> = (0..40).map(|i| i as f64 * 0.5).collect();
        let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let good = npy(
            (1, 0),
            "{'descr': '<f8', 'fortran_order': False, 'shape': (40,), }",
            &payload,
        );
        let good3 = npy(
            (3, 0),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (80,), }",
            &payload,
        );
        assert_eq!(parse_npy_f64(&good).unwrap(), values);
        for base in [&good, &good3] {
            for cut in 0..base.len() {
                assert!(parse_npy_f64(&base[..cut]).is_err());
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        for _ in 0..20_000 {
            let mut b = if rng.random::<bool>() {
                good.clone()
            } else {
                good3.clone()
            };
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..b.len().min(140));
                b[i] = rng.random();
            }
            let _ = parse_npy_f64(&b);
        }
        for _ in 0..5_000 {
            let len = rng.random_range(0..200);
            let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if rng.random::<bool>() && b.len() >= 8 {
                b[..6].copy_from_slice(MAGIC);
                b[6] = rng.random_range(1..4);
                b[7] = 0;
            }
            let _ = parse_npy_f64(&b);
        }
    }
}
