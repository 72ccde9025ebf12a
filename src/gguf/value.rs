//! GGUF metadata values and the typed accessors models and tokenizers read them with.

use std::fmt;

use super::array::Array;

/// The type tag of a metadata value, as stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    pub fn id(self) -> u32 {
        match self {
            ValueType::U8 => 0,
            ValueType::I8 => 1,
            ValueType::U16 => 2,
            ValueType::I16 => 3,
            ValueType::U32 => 4,
            ValueType::I32 => 5,
            ValueType::F32 => 6,
            ValueType::Bool => 7,
            ValueType::String => 8,
            ValueType::Array => 9,
            ValueType::U64 => 10,
            ValueType::I64 => 11,
            ValueType::F64 => 12,
        }
    }

    /// Bytes of one value of a fixed-size type; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any integer value (signed ones only when non-negative) as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value as i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any numeric value as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// Short human form: arrays show their type and length, long strings are cut.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::String(s) => {
                let cut: String = s.chars().take(60).collect();
                if cut.len() < s.len() {
                    write!(f, "{cut:?}…")
                } else {
                    write!(f, "{s:?}")
                }
            }
            Value::Array(a) => write!(f, "[{} × {}]", a.len(), a.elem_type().name()),
        }
    }
}

/// A missing or mistyped metadata key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata key `{0}` is missing")]
    Missing(String),
    #[error("metadata key `{key}` should be {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
}

/// The metadata of a file, in file order, with typed accessors whose errors name the key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
}

impl Metadata {
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Sets `key`, replacing an earlier value in place (keeps file order stable).
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Appends a key the caller knows is not present yet (the reader checks with a set).
    pub(super) fn push_new(&mut self, key: String, value: Value) {
        self.entries.push((key, value));
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(at).1)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn require(&self, key: &str) -> Result<&Value, MetadataError> {
        self.get(key)
            .ok_or_else(|| MetadataError::Missing(key.to_string()))
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        conv: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, MetadataError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => conv(v).map(Some).ok_or_else(|| MetadataError::WrongType {
                key: key.to_string(),
                expected,
                found: format!("{} {}", v.value_type().name(), v),
            }),
        }
    }

    /// An unsigned integer of any width; `None` when absent, an error when mistyped.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, MetadataError> {
        self.typed(key, "a non-negative integer", Value::as_u64)
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, MetadataError> {
        Ok(self
            .opt_u64(key)?
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX)))
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, MetadataError> {
        self.typed(key, "an integer", Value::as_i64)
    }

    /// Any numeric value as f32.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>, MetadataError> {
        self.typed(key, "a number", |v| v.as_f64().map(|x| x as f32))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, MetadataError> {
        self.typed(key, "a bool", Value::as_bool)
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, MetadataError> {
        self.typed(key, "a string", Value::as_str)
    }

    pub fn usize(&self, key: &str) -> Result<usize, MetadataError> {
        self.require(key)?;
        Ok(self.opt_usize(key)?.unwrap_or_default())
    }

    pub fn u64(&self, key: &str) -> Result<u64, MetadataError> {
        self.require(key)?;
        Ok(self.opt_u64(key)?.unwrap_or_default())
    }

    pub fn f32(&self, key: &str) -> Result<f32, MetadataError> {
        self.require(key)?;
        Ok(self.opt_f32(key)?.unwrap_or_default())
    }

    pub fn bool(&self, key: &str) -> Result<bool, MetadataError> {
        self.require(key)?;
        Ok(self.opt_bool(key)?.unwrap_or_default())
    }

    pub fn str(&self, key: &str) -> Result<&str, MetadataError> {
        self.require(key)?;
        Ok(self.opt_str(key)?.unwrap_or_default())
    }

    /// An array of strings (e.g. the vocabulary); `None` when absent.
    pub fn opt_str_array(&self, key: &str) -> Result<Option<Vec<&str>>, MetadataError> {
        self.typed(key, "an array of strings", |v| {
            Some(v.as_array()?.strings()?.iter().collect())
        })
    }

    /// An array of numbers as f32; `None` when absent.
    pub fn opt_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>, MetadataError> {
        self.typed(key, "an array of numbers", |v| {
            Some(
                v.as_array()?
                    .to_f64s()?
                    .into_iter()
                    .map(|x| x as f32)
                    .collect(),
            )
        })
    }

    /// An array of integers as i64; `None` when absent.
    pub fn opt_i64_array(&self, key: &str) -> Result<Option<Vec<i64>>, MetadataError> {
        self.typed(key, "an array of integers", |v| v.as_array()?.to_i64s())
    }

    pub fn str_array(&self, key: &str) -> Result<Vec<&str>, MetadataError> {
        self.require(key)?;
        Ok(self.opt_str_array(key)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_name_the_key() {
        let mut md = Metadata::new();
        md.set("a.count", Value::U32(7));
        md.set("a.name", Value::String("x".into()));
        md.set("a.neg", Value::I32(-1));
        assert_eq!(md.usize("a.count"), Ok(7));
        assert_eq!(md.opt_f32("a.count"), Ok(Some(7.0)));
        assert_eq!(md.str("a.name"), Ok("x"));
        let missing = md.usize("a.nope").unwrap_err();
        assert!(missing.to_string().contains("a.nope"));
        let wrong = md.usize("a.name").unwrap_err();
        assert!(wrong.to_string().contains("a.name"), "{wrong}");
        assert!(md.usize("a.neg").is_err());
        md.set("a.count", Value::U64(9));
        assert_eq!(md.len(), 3);
        assert_eq!(md.usize("a.count"), Ok(9));
    }
}
