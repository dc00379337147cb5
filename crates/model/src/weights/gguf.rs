//! A small, defensive GGUF reader (versions 2 and 3) with dequantisation to f32.
//!
//! Existing crates either panic on corrupt input or read enum tags with unchecked casts, and a
//! checkpoint loader must turn every malformed byte into an error naming the file. This reader
//! bounds-checks every read, caps every count by the bytes that remain, and checks that each
//! tensor's data lies inside the file before anything is dequantised.
//!
//! Dequantisation follows the reference formulas of ggml (and of the Python `gguf` package that
//! transformers uses): `Q8_0: q*d`, `Q4_0: (q-8)*d`, `Q4_1: q*d + m`, `Q5_0: (q-16)*d`,
//! `Q5_1: q*d + m`, with the scale `d` and minimum `m` stored as f16 per block of 32, products and
//! sums in f32 without fused multiply-add.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{HostTensor, bf16_bits_to_f32, f16_bits_to_f32};
use crate::error::{ModelError, Result};

/// The magic number at the start of every GGUF file.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_DIMS: u32 = 4;
const MAX_NESTING: usize = 4;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// `uint8`
    U8(u8),
    /// `int8`
    I8(i8),
    /// `uint16`
    U16(u16),
    /// `int16`
    I16(i16),
    /// `uint32`
    U32(u32),
    /// `int32`
    I32(i32),
    /// `float32`
    F32(f32),
    /// `bool`
    Bool(bool),
    /// `string`
    String(String),
    /// `array` of values of one type.
    Array(Vec<GgufValue>),
    /// `uint64`
    U64(u64),
    /// `int64`
    I64(i64),
    /// `float64`
    F64(f64),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v as u64),
            GgufValue::U16(v) => Some(v as u64),
            GgufValue::U32(v) => Some(v as u64),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v as f64),
            GgufValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// A ggml tensor element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
    /// 4-bit, blocks of 32 with an f16 scale.
    Q4_0,
    /// 4-bit, blocks of 32 with an f16 scale and minimum.
    Q4_1,
    /// 5-bit, blocks of 32 with an f16 scale.
    Q5_0,
    /// 5-bit, blocks of 32 with an f16 scale and minimum.
    Q5_1,
    /// 8-bit, blocks of 32 with an f16 scale.
    Q8_0,
    /// Any other type id: its size is known when listed in [`GgmlType::block_layout`], but it
    /// cannot be dequantised here.
    Other(u32),
}

impl GgmlType {
    /// Decodes a type id.
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// ggml's name for the type.
    pub fn name(self) -> String {
        match self {
            GgmlType::F32 => "F32".into(),
            GgmlType::F16 => "F16".into(),
            GgmlType::BF16 => "BF16".into(),
            GgmlType::Q4_0 => "Q4_0".into(),
            GgmlType::Q4_1 => "Q4_1".into(),
            GgmlType::Q5_0 => "Q5_0".into(),
            GgmlType::Q5_1 => "Q5_1".into(),
            GgmlType::Q8_0 => "Q8_0".into(),
            GgmlType::Other(id) => match id {
                9 => "Q8_1".into(),
                10 => "Q2_K".into(),
                11 => "Q3_K".into(),
                12 => "Q4_K".into(),
                13 => "Q5_K".into(),
                14 => "Q6_K".into(),
                15 => "Q8_K".into(),
                24 => "I8".into(),
                25 => "I16".into(),
                26 => "I32".into(),
                27 => "I64".into(),
                28 => "F64".into(),
                _ => format!("type id {id}"),
            },
        }
    }

    /// `(elements per block, bytes per block)`, or `None` for an unknown type id.
    pub fn block_layout(self) -> Option<(u64, u64)> {
        Some(match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Other(id) => match id {
                9 => (32, 36),
                10 => (256, 84),
                11 => (256, 110),
                12 => (256, 144),
                13 => (256, 176),
                14 => (256, 210),
                15 => (256, 292),
                24 => (1, 1),
                25 => (1, 2),
                26 => (1, 4),
                27 | 28 => (1, 8),
                _ => return None,
            },
        })
    }

    /// Whether [`dequantize`] supports this type.
    pub fn is_supported(self) -> bool {
        !matches!(self, GgmlType::Other(_))
    }
}

/// One tensor's entry in the GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    /// Tensor name (llama.cpp naming, e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in ggml order: fastest-varying first.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Byte offset of the data, relative to the data section.
    pub offset: u64,
    /// Byte size of the data.
    pub n_bytes: u64,
}

impl GgufTensorInfo {
    /// The shape in PyTorch order (slowest first): the reverse of `dims`.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file: metadata, tensor directory, and (mapped) data.
pub struct GgufFile {
    path: PathBuf,
    storage: Storage,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata key → value.
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor directory in file order.
    pub tensors: Vec<GgufTensorInfo>,
    index: HashMap<String, usize>,
    data_start: usize,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("n_metadata", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

/// Bounds-checked little-endian reader over the header.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!(
                "file ends at byte {} while reading {what} ({n} bytes at offset {})",
                self.buf.len(),
                self.pos
            )),
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn u8(&mut self, what: &str) -> std::result::Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> std::result::Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let len = self.u64(what)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.remaining())
            .ok_or_else(|| {
                format!(
                    "{what} at offset {} claims {len} bytes, more than the file holds",
                    self.pos
                )
            })?;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("{what} at offset {at} is not valid UTF-8"))
    }

    fn value(
        &mut self,
        ty: u32,
        what: &str,
        depth: usize,
    ) -> std::result::Result<GgufValue, String> {
        Ok(match ty {
            0 => GgufValue::U8(self.u8(what)?),
            1 => GgufValue::I8(self.u8(what)? as i8),
            2 => GgufValue::U16(self.u16(what)?),
            3 => GgufValue::I16(self.u16(what)? as i16),
            4 => GgufValue::U32(self.u32(what)?),
            5 => GgufValue::I32(self.u32(what)? as i32),
            6 => GgufValue::F32(f32::from_bits(self.u32(what)?)),
            7 => match self.u8(what)? {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(format!("{what}: boolean byte {b} is neither 0 nor 1")),
            },
            8 => GgufValue::String(self.string(what)?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(format!("{what}: arrays nested deeper than {MAX_NESTING}"));
                }
                let item_ty = self.u32(what)?;
                let n = self.u64(what)?;
                let min_size = match item_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => return Err(format!("{what}: unknown array item type {other}")),
                };
                // Cap the count by what the file can hold before allocating anything.
                if n > (self.remaining() / min_size) as u64 {
                    return Err(format!(
                        "{what}: array of {n} items at offset {} does not fit in the file",
                        self.pos
                    ));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(item_ty, what, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(what)?),
            11 => GgufValue::I64(self.u64(what)? as i64),
            12 => GgufValue::F64(f64::from_bits(self.u64(what)?)),
            other => return Err(format!("{what}: unknown metadata value type {other}")),
        })
    }
}

impl GgufFile {
    /// Memory-maps and parses a GGUF file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        // SAFETY: read-only map owned by the returned value.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        Self::parse(path.to_path_buf(), Storage::Mapped(map))
    }

    /// Parses a GGUF image held in memory (`path` is only used in messages).
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::parse(path.into(), Storage::Owned(bytes))
    }

    fn parse(path: PathBuf, storage: Storage) -> Result<Self> {
        let err = |message: String| ModelError::Gguf {
            path: path.clone(),
            message,
        };
        let buf = storage.bytes();
        let mut c = Cursor { buf, pos: 0 };
        let magic = c.take(4, "magic").map_err(err)?;
        if magic != GGUF_MAGIC {
            return Err(err(format!(
                "bad magic {magic:02x?}: not a GGUF file (expected \"GGUF\")"
            )));
        }
        let version = c.u32("version").map_err(err)?;
        if version != 2 && version != 3 {
            return Err(err(format!(
                "unsupported GGUF version {version} (negdiff reads versions 2 and 3)"
            )));
        }
        let n_tensors = c.u64("tensor count").map_err(err)?;
        let n_kv = c.u64("metadata count").map_err(err)?;
        // Each key/value pair needs at least 13 bytes and each tensor entry 24.
        if n_kv > (c.remaining() / 13) as u64 {
            return Err(err(format!(
                "header claims {n_kv} metadata entries, more than the file can hold"
            )));
        }
        if n_tensors > (c.remaining() / 24) as u64 {
            return Err(err(format!(
                "header claims {n_tensors} tensors, more than the file can hold"
            )));
        }

        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key #{i}")).map_err(err)?;
            let ty = c.u32(&format!("type of `{key}`")).map_err(err)?;
            let value = c.value(ty, &format!("value of `{key}`"), 0).map_err(err)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(err(format!("metadata key `{key}` appears twice")));
            }
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(GgufValue::U32(a)) if *a > 0 && a.is_power_of_two() => *a as u64,
            Some(other) => {
                return Err(err(format!(
                    "general.alignment must be a power-of-two u32, found {other:?}"
                )));
            }
        };

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut index = HashMap::new();
        for i in 0..n_tensors {
            let name = c.string(&format!("name of tensor #{i}")).map_err(err)?;
            let n_dims = c.u32(&format!("rank of `{name}`")).map_err(err)?;
            if n_dims > MAX_DIMS {
                return Err(err(format!(
                    "tensor `{name}` has rank {n_dims} (ggml allows at most {MAX_DIMS})"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&format!("dims of `{name}`")).map_err(err)?);
            }
            let ggml_type = GgmlType::from_id(c.u32(&format!("type of `{name}`")).map_err(err)?);
            let offset = c.u64(&format!("offset of `{name}`")).map_err(err)?;
            let n_elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| err(format!("tensor `{name}` dims {dims:?} overflow")))?;
            let (block, block_bytes) = ggml_type.block_layout().ok_or_else(|| {
                err(format!(
                    "tensor `{name}` has unknown ggml {}",
                    ggml_type.name()
                ))
            })?;
            let first = dims.first().copied().unwrap_or(1);
            if first % block != 0 {
                return Err(err(format!(
                    "tensor `{name}`: first dimension {first} is not a multiple of the {} block size {block}",
                    ggml_type.name()
                )));
            }
            let n_bytes = (n_elements / block)
                .checked_mul(block_bytes)
                .ok_or_else(|| err(format!("tensor `{name}` byte size overflows")))?;
            if index.insert(name.clone(), tensors.len()).is_some() {
                return Err(err(format!("tensor `{name}` appears twice")));
            }
            tensors.push(GgufTensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                n_bytes,
            });
        }

        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        let file_len = buf.len() as u64;
        if !tensors.is_empty() && data_start > file_len {
            return Err(err(format!(
                "data section would start at byte {data_start}, past the end of the file ({file_len} bytes)"
            )));
        }
        for t in &tensors {
            let end = data_start
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.n_bytes));
            match end {
                Some(end) if end <= file_len => {}
                _ => {
                    return Err(err(format!(
                        "data of tensor `{}` ({} bytes at data offset {}) lies past the end of the file ({file_len} bytes): truncated?",
                        t.name, t.n_bytes, t.offset
                    )));
                }
            }
        }
        let data_start = data_start as usize;
        Ok(GgufFile {
            path,
            storage,
            version,
            metadata,
            tensors,
            index,
            data_start,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// A required metadata value, as an error naming the file if absent.
    pub fn require(&self, key: &str) -> Result<&GgufValue> {
        self.metadata.get(key).ok_or_else(|| ModelError::Gguf {
            path: self.path.clone(),
            message: format!("metadata key `{key}` is missing"),
        })
    }

    /// A required unsigned integer metadata value.
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| ModelError::Gguf {
            path: self.path.clone(),
            message: format!("metadata key `{key}` should be an unsigned integer, found {v:?}"),
        })
    }

    /// A tensor's directory entry, by GGUF name.
    pub fn info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor's raw bytes.
    pub fn raw(&self, info: &GgufTensorInfo) -> &[u8] {
        // `parse` checked data_start + offset + n_bytes <= file length.
        let start = self.data_start + info.offset as usize;
        &self.storage.bytes()[start..start + info.n_bytes as usize]
    }

    /// Reads a tensor by GGUF name, dequantised to f32, in PyTorch shape order.
    pub fn tensor_f32(&self, name: &str) -> Result<HostTensor> {
        let info = self.info(name).ok_or_else(|| ModelError::MissingTensor {
            source_desc: self.path.display().to_string(),
            name: name.to_string(),
        })?;
        let data = dequantize(info.ggml_type, self.raw(info), info.n_elements() as usize).map_err(
            |dtype| ModelError::UnsupportedDtype {
                path: self.path.clone(),
                name: name.to_string(),
                dtype,
            },
        )?;
        Ok(HostTensor {
            shape: info.shape(),
            data,
        })
    }
}

/// Dequantises `n` elements of type `ty` from `bytes` (which hold exactly those elements).
///
/// Returns the type's name as the error for types it cannot decode.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> std::result::Result<Vec<f32>, String> {
    let mut out = Vec::with_capacity(n);
    let f16_at = |b: &[u8], i: usize| f16_bits_to_f32(u16::from_le_bytes([b[i], b[i + 1]]));
    match ty {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        ),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        ),
        GgmlType::Q8_0 => {
            for b in bytes.chunks_exact(34) {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| (q as i8) as f32 * d));
            }
        }
        GgmlType::Q4_0 => {
            for b in bytes.chunks_exact(18) {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| ((q & 0x0f) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in bytes.chunks_exact(20) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| (q & 0x0f) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Q5_0 => {
            for b in bytes.chunks_exact(22) {
                let d = f16_at(b, 0);
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let qs = &b[6..22];
                let lo = (0..16).map(|j| {
                    let h = ((qh >> j) & 1) << 4;
                    (((qs[j] & 0x0f) as u32 | h) as i32 - 16) as f32 * d
                });
                out.extend(lo);
                let hi = (0..16).map(|j| {
                    let h = ((qh >> (j + 16)) & 1) << 4;
                    (((qs[j] >> 4) as u32 | h) as i32 - 16) as f32 * d
                });
                out.extend(hi);
            }
        }
        GgmlType::Q5_1 => {
            for b in bytes.chunks_exact(24) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let qs = &b[8..24];
                let lo = (0..16).map(|j| {
                    let h = ((qh >> j) & 1) << 4;
                    ((qs[j] & 0x0f) as u32 | h) as f32 * d + m
                });
                out.extend(lo);
                let hi = (0..16).map(|j| {
                    let h = ((qh >> (j + 16)) & 1) << 4;
                    ((qs[j] >> 4) as u32 | h) as f32 * d + m
                });
                out.extend(hi);
            }
        }
        GgmlType::Other(_) => return Err(ty.name()),
    }
    if out.len() != n {
        return Err(format!(
            "{} (decoded {} of {n} elements)",
            ty.name(),
            out.len()
        ));
    }
    Ok(out)
}
