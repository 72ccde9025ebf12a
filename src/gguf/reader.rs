//! Parsing and validating a GGUF header, and the memory-mapped file that owns it.
//!
//! Nothing read from the file is trusted: every count is bounded by the bytes that remain
//! before anything is allocated, and every tensor must lie inside the file.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::array::{Array, StringArray};
use super::value::{Metadata, Value, ValueType};
use crate::quant::GgmlType;

pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_DIMS: usize = 4;

/// What is wrong with a file's bytes; `at` is the byte offset where it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem} (at byte {at})")]
pub struct FormatError {
    pub at: u64,
    pub problem: String,
}

/// A GGUF file that could not be opened or is malformed, naming the file. The message
/// holds the whole story (the fields are not chained as `source`, so that `{:#}` does not
/// print the cause twice).
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not a valid GGUF file: {error}")]
    Format { path: PathBuf, error: FormatError },
}

/// One tensor's description from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// dims[0] is the contiguous one (a row has dims[0] elements).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Elements in one row (dims[0]).
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1) as usize
    }

    /// Number of rows (product of dims[1..]).
    pub fn n_rows(&self) -> usize {
        self.dims.iter().skip(1).product::<u64>() as usize
    }

    /// The shape as `[a, b, ...]`, llama.cpp style.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(u64::to_string).collect();
        format!("[{}]", dims.join(", "))
    }
}

/// Everything before the data section.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_start: u64,
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn fail<T>(&self, problem: impl Into<String>) -> Result<T, FormatError> {
        Err(FormatError {
            at: self.pos as u64,
            problem: problem.into(),
        })
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return self.fail(format!(
                "file is truncated: {what} needs {n} bytes, {} remain",
                self.remaining()
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], FormatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items that each take at least `min_item_bytes`, refused when the rest of
    /// the file could not hold that many.
    fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize, FormatError> {
        let n = self.u64(what)?;
        let fits = (self.remaining() / min_item_bytes.max(1)) as u64;
        if n > fits {
            return self.fail(format!(
                "{what} is {n}, more than the {} remaining bytes can hold",
                self.remaining()
            ));
        }
        Ok(n as usize)
    }

    /// A length-prefixed UTF-8 string, borrowed from the file.
    fn str(&mut self, what: &str) -> Result<&'a str, FormatError> {
        let len = self.u64(what)?;
        if len > self.remaining() as u64 {
            return self.fail(format!(
                "{what}: string length {len} is more than the {} remaining bytes",
                self.remaining()
            ));
        }
        let start = self.pos;
        let bytes = self.take(len as usize, what)?;
        std::str::from_utf8(bytes).map_err(|_| FormatError {
            at: start as u64,
            problem: format!("{what} is not valid UTF-8"),
        })
    }

    fn string(&mut self, what: &str) -> Result<String, FormatError> {
        self.str(what).map(str::to_string)
    }

    fn value_type(&mut self, what: &str) -> Result<ValueType, FormatError> {
        let id = self.u32(what)?;
        match ValueType::from_id(id) {
            Some(t) => Ok(t),
            None => Err(FormatError {
                at: self.pos as u64 - 4,
                problem: format!("{what}: unknown metadata value type {id}"),
            }),
        }
    }

    fn value(&mut self, ty: ValueType, what: &str) -> Result<Value, FormatError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => {
                let at = self.pos;
                let byte = self.array::<1>(what)?[0];
                Value::Bool(bool_from_byte(byte, at, what)?)
            }
            ValueType::String => Value::String(self.string(what)?),
            ValueType::Array => Value::Array(self.array_value(what)?),
        })
    }

    /// An array, decoded straight into a vector of its element type.
    fn array_value(&mut self, what: &str) -> Result<Array, FormatError> {
        let elem = self.value_type(&format!("element type of {what}"))?;
        let Some(size) = elem.fixed_size() else {
            if elem == ValueType::Array {
                return self.fail(format!("{what}: arrays of arrays are not supported"));
            }
            // Strings: each takes at least its 8-byte length.
            let n = self.count(&format!("element count of {what}"), 8)?;
            let mut strings = StringArray::with_capacity(n);
            for _ in 0..n {
                strings.push(self.str(what)?);
            }
            return Ok(Array::String(strings));
        };
        let n = self.count(&format!("element count of {what}"), size)?;
        let at = self.pos;
        let bytes = self.take(n * size, what)?;
        macro_rules! le {
            ($t:ty, $variant:ident) => {
                Array::$variant(
                    bytes
                        .chunks_exact(size)
                        .map(|c| {
                            let mut a = [0u8; std::mem::size_of::<$t>()];
                            a.copy_from_slice(c);
                            <$t>::from_le_bytes(a)
                        })
                        .collect(),
                )
            };
        }
        Ok(match elem {
            ValueType::U8 => Array::U8(bytes.to_vec()),
            ValueType::I8 => Array::I8(bytes.iter().map(|&b| b as i8).collect()),
            ValueType::U16 => le!(u16, U16),
            ValueType::I16 => le!(i16, I16),
            ValueType::U32 => le!(u32, U32),
            ValueType::I32 => le!(i32, I32),
            ValueType::F32 => le!(f32, F32),
            ValueType::U64 => le!(u64, U64),
            ValueType::I64 => le!(i64, I64),
            ValueType::F64 => le!(f64, F64),
            ValueType::Bool => Array::Bool(
                bytes
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| bool_from_byte(b, (at + i) as u64, what))
                    .collect::<Result<_, _>>()?,
            ),
            // Handled above; kept as an error rather than a panic.
            ValueType::String | ValueType::Array => {
                return self.fail(format!(
                    "{what}: {} elements have no fixed size",
                    elem.name()
                ))
            }
        })
    }
}

fn bool_from_byte(byte: u8, at: impl TryInto<u64>, what: &str) -> Result<bool, FormatError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(FormatError {
            at: at.try_into().unwrap_or(u64::MAX),
            problem: format!("{what}: bool byte is {b}, not 0 or 1"),
        }),
    }
}

/// Parses and validates the header of a GGUF file held in `bytes` (the whole file).
pub fn parse_header(bytes: &[u8]) -> Result<GgufHeader, FormatError> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c.take(4, "magic")?;
    if magic != GGUF_MAGIC {
        return Err(FormatError {
            at: 0,
            problem: format!("bad magic {magic:02x?}, expected \"GGUF\""),
        });
    }
    let version = c.u32("version")?;
    match version {
        2 | 3 => {}
        1 => return c.fail("GGUF version 1 is obsolete and not supported; convert the model again with a current llama.cpp"),
        v => return c.fail(format!("unsupported GGUF version {v} (supported: 2 and 3)")),
    }
    // A tensor info takes at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset).
    let n_tensors = c.count("tensor count", 24)?;
    // A metadata entry takes at least 8 (key len) + 4 (type) + 1 (value).
    let n_kv = c.count("metadata count", 13)?;

    let mut metadata = Metadata::new();
    // A set, not `Metadata::contains`: a crafted file with a million tiny keys must not
    // cost a quadratic scan.
    let mut keys = HashSet::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = c.string(&format!("key of metadata entry {i}"))?;
        if !keys.insert(key.clone()) {
            return c.fail(format!("metadata key `{key}` appears twice"));
        }
        let ty = c.value_type(&format!("type of `{key}`"))?;
        let value = c.value(ty, &format!("value of `{key}`"))?;
        metadata.push_new(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(v) => {
            return c.fail(format!(
                "general.alignment must be a power-of-two u32, found {} {v}",
                v.value_type().name()
            ))
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors);
    let mut by_name: HashMap<String, usize> = HashMap::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let info_at = c.pos as u64;
        let name = c.string(&format!("name of tensor {i}"))?;
        let n_dims = c.u32(&format!("n_dims of tensor `{name}`"))? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return c.fail(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            ));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for d in 0..n_dims {
            let dim = c.u64(&format!("dimension {d} of tensor `{name}`"))?;
            if dim == 0 {
                return c.fail(format!("tensor `{name}` has a zero dimension"));
            }
            dims.push(dim);
        }
        let type_id = c.u32(&format!("type of tensor `{name}`"))?;
        let ty = match GgmlType::from_id(type_id) {
            Ok(t) => t,
            Err(e) => return c.fail(format!("tensor `{name}`: {e}")),
        };
        let offset = c.u64(&format!("offset of tensor `{name}`"))?;
        let n_elems = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let Some(n_elems) = n_elems else {
            return c.fail(format!("tensor `{name}`: element count overflows"));
        };
        if dims[0] % ty.block_elems() as u64 != 0 {
            return c.fail(format!(
                "tensor `{name}`: row length {} is not a multiple of the {ty} block size {}",
                dims[0],
                ty.block_elems()
            ));
        }
        let Some(n_bytes) = ty.bytes_for(n_elems) else {
            return c.fail(format!("tensor `{name}`: byte size overflows"));
        };
        if offset % alignment != 0 {
            return c.fail(format!(
                "tensor `{name}`: data offset {offset} is not a multiple of the alignment {alignment}"
            ));
        }
        if by_name.insert(name.clone(), i).is_some() {
            return Err(FormatError {
                at: info_at,
                problem: format!("tensor name `{name}` appears twice"),
            });
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_bytes,
        });
    }

    let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
    let file_len = bytes.len() as u64;
    for t in &tensors {
        let end = data_start
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.n_bytes));
        match end {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(FormatError {
                    at: file_len,
                    problem: format!(
                        "tensor `{}` ({} bytes at data offset {}) extends past the end of the file ({file_len} bytes): the file is truncated or corrupt",
                        t.name, t.n_bytes, t.offset
                    ),
                })
            }
        }
    }

    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

/// An open, validated GGUF file; tensor data are slices of the memory map.
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    header: GgufHeader,
    index: HashMap<String, usize>,
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |error| GgufError::Io {
            path: path.clone(),
            error,
        };
        let file = File::open(&path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(io_err(std::io::Error::other("not a regular file")));
        }
        // SAFETY: the map is read-only and private to this process; a file changed by
        // another process while mapped is outside what any reader can defend against.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
        let header = parse_header(&map).map_err(|error| GgufError::Format {
            path: path.clone(),
            error,
        })?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path,
            map,
            header,
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.header.tensors[i])
    }

    /// The bytes of a tensor of this file (bounds were validated when opening).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.header.data_start + info.offset) as usize;
        &self.map[start..start + info.n_bytes as usize]
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> u64 {
        self.map.len() as u64
    }
}
