//! The vocabulary: token texts, scores, types, and the text → id map built once.

use super::hash::FastMap;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    pub fn from_gguf(v: i64) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// Byte strings stored back to back; string `i` is `bytes[ends[i-1]..ends[i]]`.
#[derive(Debug, Default)]
pub struct PieceTable {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl PieceTable {
    pub fn with_capacity(n: usize, bytes: usize) -> PieceTable {
        PieceTable {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, piece: &[u8]) {
        self.bytes.extend_from_slice(piece);
        self.ends.push(self.bytes.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.bytes[start..end])
    }
}

#[derive(Debug)]
pub struct Vocab {
    pub texts: PieceTable,
    pub scores: Vec<f32>,
    pub types: Vec<TokenType>,
    map: FastMap<Box<[u8]>, u32>,
}

impl Vocab {
    /// Builds the vocabulary; empty texts become `[EMPTY_i]` and a repeated text maps to
    /// its last id, both as llama.cpp does.
    pub fn new(tokens: &[&str], scores: Vec<f32>, types: Vec<TokenType>) -> Vocab {
        let total: usize = tokens.iter().map(|t| t.len().max(12)).sum();
        let mut texts = PieceTable::with_capacity(tokens.len(), total);
        let mut map = FastMap::default();
        map.reserve(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let owned;
            let text: &[u8] = if t.is_empty() {
                owned = format!("[EMPTY_{i}]");
                owned.as_bytes()
            } else {
                t.as_bytes()
            };
            texts.push(text);
            map.insert(Box::from(text), i as u32);
        }
        Vocab {
            texts,
            scores,
            types,
            map,
        }
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Total bytes of all texts (a capacity hint for tables of the same shape).
    pub fn texts_len_hint(&self) -> usize {
        self.texts.byte_len()
    }

    #[inline]
    pub fn lookup(&self, text: &[u8]) -> Option<u32> {
        self.map.get(text).copied()
    }

    pub fn text(&self, id: u32) -> Option<&[u8]> {
        self.texts.get(id as usize)
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }
}
