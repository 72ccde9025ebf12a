//! GGUF files: a validating zero-copy reader and a streaming writer.

mod array;
mod reader;
mod value;
mod writer;

pub use array::{Array, StringArray};
pub use reader::{
    parse_header, FormatError, GgufError, GgufFile, GgufHeader, TensorInfo, DEFAULT_ALIGNMENT,
};
pub use value::{Metadata, MetadataError, Value, ValueType};
pub use writer::{write_gguf_file, GgufWriter, TensorDesc};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::GgmlType;

    fn sample() -> (Metadata, Vec<TensorDesc>, Vec<Vec<u8>>) {
        let mut md = Metadata::new();
        md.set("general.architecture", Value::String("llama".into()));
        md.set("general.alignment", Value::U32(64));
        md.set("a.u8", Value::U8(200));
        md.set("a.i8", Value::I8(-3));
        md.set("a.u16", Value::U16(60000));
        md.set("a.i16", Value::I16(-30000));
        md.set("a.i32", Value::I32(-7));
        md.set("a.f32", Value::F32(1.5e-6));
        md.set("a.bool", Value::Bool(true));
        md.set("a.u64", Value::U64(u64::MAX));
        md.set("a.i64", Value::I64(i64::MIN));
        md.set("a.f64", Value::F64(-2.25));
        md.set("a.strings", Value::strings(["▁the", ""]));
        md.set("a.i32s", Value::Array(Array::I32(vec![1, -2])));
        md.set("a.bools", Value::Array(Array::Bool(vec![true, false])));
        md.set("a.f64s", Value::Array(Array::F64(vec![0.5])));
        md.set("a.empty", Value::Array(Array::U16(vec![])));
        let tensors = vec![
            TensorDesc::new("norm", GgmlType::F32, &[5]),
            TensorDesc::new("w", GgmlType::Q8_0, &[64, 3]),
        ];
        let data = vec![
            (0..20).map(|i| i as u8).collect(),
            (0..204).map(|i| (i * 7) as u8).collect(),
        ];
        (md, tensors, data)
    }

    fn write(md: &Metadata, tensors: &[TensorDesc], data: &[Vec<u8>]) -> Vec<u8> {
        let mut w = GgufWriter::new(Vec::new(), md, tensors).unwrap();
        for d in data {
            let (a, b) = d.split_at(d.len() / 3);
            w.write_data(a).unwrap();
            w.write_data(b).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn write_then_read_keeps_every_key_and_byte() {
        let (md, tensors, data) = sample();
        let bytes = write(&md, &tensors, &data);
        let h = parse_header(&bytes).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.alignment, 64);
        assert_eq!(h.metadata, md);
        assert_eq!(h.data_start % 64, 0);
        for ((t, desc), d) in h.tensors.iter().zip(&tensors).zip(&data) {
            assert_eq!(t.name, desc.name);
            assert_eq!(t.dims, desc.dims);
            assert_eq!(t.ty, desc.ty);
            assert_eq!(t.offset % 64, 0);
            let start = (h.data_start + t.offset) as usize;
            assert_eq!(&bytes[start..start + d.len()], &d[..]);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (md, tensors, data) = sample();
        let bytes = write(&md, &tensors, &data);
        let last_tensor_end = {
            let h = parse_header(&bytes).unwrap();
            let t = h.tensors.last().unwrap();
            (h.data_start + t.offset + t.n_bytes) as usize
        };
        for len in 0..last_tensor_end {
            assert!(parse_header(&bytes[..len]).is_err(), "length {len} parsed");
        }
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let (md, tensors, data) = sample();
        let good = write(&md, &tensors, &data);
        let problem = |bytes: &[u8]| parse_header(bytes).unwrap_err().problem;

        let mut v1 = good.clone();
        v1[4] = 1;
        assert!(problem(&v1).contains("version 1"));

        let mut huge_count = good.clone();
        huge_count[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(problem(&huge_count).contains("tensor count"));

        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(problem(&bad_magic).contains("magic"));

        let mut md2 = md.clone();
        md2.remove("general.alignment");
        let iq = vec![TensorDesc::new("w", GgmlType::Q8_0, &[32])];
        let mut bytes = write(&md2, &iq, &[vec![0; 34]]);
        let name_at = bytes.windows(9).position(|w| w == b"\x01\0\0\0\0\0\0\0w");
        let at = name_at.unwrap() + 9 + 4 + 8;
        bytes[at..at + 4].copy_from_slice(&23u32.to_le_bytes());
        assert!(problem(&bytes).contains("IQ4_XS"));

        let dup = vec![
            TensorDesc::new("w", GgmlType::F32, &[1]),
            TensorDesc::new("w", GgmlType::F32, &[1]),
        ];
        let bytes = write(&md2, &dup, &[vec![0; 4], vec![0; 4]]);
        assert!(problem(&bytes).contains("twice"));
    }
}
