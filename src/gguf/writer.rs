//! Writing GGUF files: the header first, then tensor data streamed in declared order, so
//! that writing a 70B model never holds more than the piece being written.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::array::Array;
use super::reader::{DEFAULT_ALIGNMENT, GGUF_MAGIC};
use super::value::{Metadata, Value};
use crate::quant::GgmlType;

/// A tensor to be written: its data follow later through [`GgufWriter::write_data`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDesc {
    pub name: String,
    pub ty: GgmlType,
    pub dims: Vec<u64>,
}

impl TensorDesc {
    pub fn new(name: impl Into<String>, ty: GgmlType, dims: &[u64]) -> TensorDesc {
        TensorDesc {
            name: name.into(),
            ty,
            dims: dims.to_vec(),
        }
    }

    /// Bytes of this tensor's data; panics on shapes that are not whole blocks (a caller bug).
    pub fn n_bytes(&self) -> u64 {
        self.ty
            .bytes_for(self.dims.iter().product())
            .unwrap_or_else(|| panic!("tensor {} is not a whole number of blocks", self.name))
    }
}

/// Streams tensor data after the header, padding each tensor to the alignment.
pub struct GgufWriter<W: Write> {
    out: W,
    sizes: Vec<(String, u64)>,
    current: usize,
    written_in_current: u64,
    alignment: u64,
}

fn write_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn write_value(out: &mut impl Write, v: &Value) -> io::Result<()> {
    match v {
        Value::U8(x) => out.write_all(&[*x]),
        Value::I8(x) => out.write_all(&x.to_le_bytes()),
        Value::U16(x) => out.write_all(&x.to_le_bytes()),
        Value::I16(x) => out.write_all(&x.to_le_bytes()),
        Value::U32(x) => out.write_all(&x.to_le_bytes()),
        Value::I32(x) => out.write_all(&x.to_le_bytes()),
        Value::F32(x) => out.write_all(&x.to_le_bytes()),
        Value::Bool(x) => out.write_all(&[u8::from(*x)]),
        Value::String(s) => write_str(out, s),
        Value::U64(x) => out.write_all(&x.to_le_bytes()),
        Value::I64(x) => out.write_all(&x.to_le_bytes()),
        Value::F64(x) => out.write_all(&x.to_le_bytes()),
        Value::Array(array) => {
            out.write_all(&array.elem_type().id().to_le_bytes())?;
            out.write_all(&(array.len() as u64).to_le_bytes())?;
            write_array(out, array)
        }
    }
}

fn write_array(out: &mut impl Write, array: &Array) -> io::Result<()> {
    macro_rules! each_le {
        ($v:expr) => {
            $v.iter().try_for_each(|x| out.write_all(&x.to_le_bytes()))
        };
    }
    match array {
        Array::U8(v) => out.write_all(v),
        Array::I8(v) => each_le!(v),
        Array::U16(v) => each_le!(v),
        Array::I16(v) => each_le!(v),
        Array::U32(v) => each_le!(v),
        Array::I32(v) => each_le!(v),
        Array::F32(v) => each_le!(v),
        Array::U64(v) => each_le!(v),
        Array::I64(v) => each_le!(v),
        Array::F64(v) => each_le!(v),
        Array::Bool(v) => v.iter().try_for_each(|&b| out.write_all(&[u8::from(b)])),
        Array::String(v) => v.iter().try_for_each(|s| write_str(out, s)),
    }
}

fn pad(out: &mut impl Write, written: u64, alignment: u64) -> io::Result<u64> {
    let padding = written.div_ceil(alignment) * alignment - written;
    out.write_all(&vec![0u8; padding as usize])?;
    Ok(padding)
}

impl<W: Write> GgufWriter<W> {
    /// Writes the header (GGUF version 3) for `tensors` and returns a writer waiting for
    /// their data. The alignment is `general.alignment` when set, else 32.
    pub fn new(mut out: W, metadata: &Metadata, tensors: &[TensorDesc]) -> io::Result<Self> {
        let alignment = match metadata.get("general.alignment") {
            Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "general.alignment must be a power-of-two u32",
                ))
            }
            None => DEFAULT_ALIGNMENT,
        };
        let mut header = Vec::new();
        header.extend_from_slice(GGUF_MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata.iter() {
            write_str(&mut header, key)?;
            header.extend_from_slice(&value.value_type().id().to_le_bytes());
            write_value(&mut header, value)?;
        }
        let mut offset = 0u64;
        let mut sizes = Vec::with_capacity(tensors.len());
        for t in tensors {
            write_str(&mut header, &t.name)?;
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.ty.id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            let n = t.n_bytes();
            sizes.push((t.name.clone(), n));
            offset = (offset + n).div_ceil(alignment) * alignment;
        }
        out.write_all(&header)?;
        pad(&mut out, header.len() as u64, alignment)?;
        Ok(GgufWriter {
            out,
            sizes,
            current: 0,
            written_in_current: 0,
            alignment,
        })
    }

    /// Appends bytes to the tensors' data, in declared order; a call may cover part of a
    /// tensor or run across several.
    pub fn write_data(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let Some((_, size)) = self.sizes.get(self.current) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "more tensor data than the declared tensors hold",
                ));
            };
            let take = (size - self.written_in_current).min(bytes.len() as u64) as usize;
            self.out.write_all(&bytes[..take])?;
            bytes = &bytes[take..];
            self.written_in_current += take as u64;
            if self.written_in_current == *size {
                pad(&mut self.out, *size, self.alignment)?;
                self.current += 1;
                self.written_in_current = 0;
            }
        }
        Ok(())
    }

    /// Checks that every declared tensor got its data and flushes.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some((name, _)) = self.sizes.get(self.current) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tensor {name} did not get all its data"),
            ));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A path next to `out` for writing before the final rename.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    out.with_file_name(name)
}

/// Writes a GGUF file through a temporary sibling renamed into place only once complete,
/// so an interrupted or failed write never leaves a truncated model under the final name.
/// `write_data` streams the tensors' data in declared order.
pub fn write_gguf_file(
    out_path: &Path,
    metadata: &Metadata,
    tensors: &[TensorDesc],
    write_data: impl FnOnce(&mut GgufWriter<BufWriter<File>>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = partial_path(out_path);
    let result = (|| -> anyhow::Result<()> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut writer =
            GgufWriter::new(BufWriter::with_capacity(1 << 20, file), metadata, tensors)?;
        write_data(&mut writer)?;
        let mut out = writer.finish()?;
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, out_path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), out_path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", out_path.display()))
}
