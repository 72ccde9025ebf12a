//! Metadata arrays, stored as one vector of their element type.
//!
//! A vocabulary of 262,144 strings is the largest array a model carries. Keeping each
//! array typed (and all strings of an array in one buffer) makes the memory a header
//! takes about the size of its bytes in the file, whatever a crafted file claims.

use super::value::{Value, ValueType};

/// Strings packed into one buffer, with the end offset of each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StringArray {
    text: String,
    ends: Vec<usize>,
}

impl StringArray {
    pub fn with_capacity(n: usize) -> StringArray {
        StringArray {
            text: String::new(),
            ends: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.text[start..end])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }
}

impl<S: AsRef<str>> FromIterator<S> for StringArray {
    fn from_iter<I: IntoIterator<Item = S>>(items: I) -> StringArray {
        let mut out = StringArray::default();
        for s in items {
            out.push(s.as_ref());
        }
        out
    }
}

/// An array value. Arrays of arrays are not supported (llama.cpp refuses them too).
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(StringArray),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

/// Applies `$body` to the vector of whichever numeric variant `$array` is.
macro_rules! with_numbers {
    ($array:expr, $v:ident => $body:expr, else $other:expr) => {
        match $array {
            Array::U8($v) => $body,
            Array::I8($v) => $body,
            Array::U16($v) => $body,
            Array::I16($v) => $body,
            Array::U32($v) => $body,
            Array::I32($v) => $body,
            Array::F32($v) => $body,
            Array::U64($v) => $body,
            Array::I64($v) => $body,
            Array::F64($v) => $body,
            Array::Bool(_) | Array::String(_) => $other,
        }
    };
}

impl Array {
    pub fn elem_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            other => with_numbers!(other, v => v.len(), else 0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a standalone value.
    pub fn get(&self, i: usize) -> Option<Value> {
        Some(match self {
            Array::U8(v) => Value::U8(*v.get(i)?),
            Array::I8(v) => Value::I8(*v.get(i)?),
            Array::U16(v) => Value::U16(*v.get(i)?),
            Array::I16(v) => Value::I16(*v.get(i)?),
            Array::U32(v) => Value::U32(*v.get(i)?),
            Array::I32(v) => Value::I32(*v.get(i)?),
            Array::F32(v) => Value::F32(*v.get(i)?),
            Array::Bool(v) => Value::Bool(*v.get(i)?),
            Array::String(v) => Value::String(v.get(i)?.to_string()),
            Array::U64(v) => Value::U64(*v.get(i)?),
            Array::I64(v) => Value::I64(*v.get(i)?),
            Array::F64(v) => Value::F64(*v.get(i)?),
        })
    }

    /// The strings, when this is an array of strings.
    pub fn strings(&self) -> Option<&StringArray> {
        match self {
            Array::String(s) => Some(s),
            _ => None,
        }
    }

    /// Every element as f64, when this is an array of numbers.
    pub fn to_f64s(&self) -> Option<Vec<f64>> {
        match self {
            Array::F64(v) => Some(v.clone()),
            Array::U64(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Array::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Array::F32(v) => Some(v.iter().map(|&x| x.into()).collect()),
            other => Some(other.to_i64s()?.into_iter().map(|x| x as f64).collect()),
        }
    }

    /// Every element as i64, when this is an array of integers that fit.
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        match self {
            Array::U8(v) => Some(v.iter().map(|&x| x.into()).collect()),
            Array::I8(v) => Some(v.iter().map(|&x| x.into()).collect()),
            Array::U16(v) => Some(v.iter().map(|&x| x.into()).collect()),
            Array::I16(v) => Some(v.iter().map(|&x| x.into()).collect()),
            Array::U32(v) => Some(v.iter().map(|&x| x.into()).collect()),
            Array::I32(v) => Some(v.iter().map(|&x| x.into()).collect()),
            Array::I64(v) => Some(v.clone()),
            Array::U64(v) => v.iter().map(|&x| i64::try_from(x).ok()).collect(),
            Array::F32(_) | Array::F64(_) | Array::Bool(_) | Array::String(_) => None,
        }
    }
}

impl Value {
    /// An array of strings.
    pub fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Array(Array::String(items.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_pack_and_index() {
        let a: StringArray = ["▁the", "", "x"].into_iter().collect();
        assert_eq!(a.len(), 3);
        assert_eq!(a.get(0), Some("▁the"));
        assert_eq!(a.get(1), Some(""));
        assert_eq!(a.get(2), Some("x"));
        assert_eq!(a.get(3), None);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec!["▁the", "", "x"]);
    }

    #[test]
    fn numbers_convert() {
        let a = Array::I32(vec![-1, 2]);
        assert_eq!(a.to_f64s(), Some(vec![-1.0, 2.0]));
        assert_eq!(a.to_i64s(), Some(vec![-1, 2]));
        assert_eq!(Array::U64(vec![u64::MAX]).to_i64s(), None);
        assert_eq!(Array::String(StringArray::default()).to_f64s(), None);
        assert_eq!(a.get(1), Some(Value::I32(2)));
    }
}
