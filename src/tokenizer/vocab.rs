//! The vocabulary: token texts, scores, types, and the text → id map built once.

use std::hash::Hasher;

use super::hash::PieceHasher;

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
    index: TextIndex,
}

impl Vocab {
    /// Builds the vocabulary; empty texts become `[EMPTY_i]` and a repeated text maps to
    /// its last id, both as llama.cpp does.
    pub fn new(tokens: &[&str], scores: Vec<f32>, types: Vec<TokenType>) -> Vocab {
        let total: usize = tokens.iter().map(|t| t.len().max(12)).sum();
        let mut texts = PieceTable::with_capacity(tokens.len(), total);
        for (i, t) in tokens.iter().enumerate() {
            if t.is_empty() {
                texts.push(format!("[EMPTY_{i}]").as_bytes());
            } else {
                texts.push(t.as_bytes());
            }
        }
        let index = TextIndex::new(&texts);
        Vocab {
            texts,
            scores,
            types,
            index,
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
        self.index.find(&self.texts, text)
    }

    pub fn text(&self, id: u32) -> Option<&[u8]> {
        self.texts.get(id as usize)
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = PieceHasher::default();
    h.write(bytes);
    h.finish()
}

/// Text → id, as an open-addressing table of ids whose keys live in the [`PieceTable`]:
/// no per-token allocation, and the high hash bits stored beside each id skip most text
/// comparisons on a probe.
#[derive(Debug)]
struct TextIndex {
    /// `(hash >> 32) << 32 | id`, or `EMPTY`.
    slots: Vec<u64>,
    mask: usize,
}

const EMPTY: u64 = u64::MAX;

impl TextIndex {
    fn new(texts: &PieceTable) -> TextIndex {
        let size = (texts.len() * 2).next_power_of_two().max(16);
        let mut index = TextIndex {
            slots: vec![EMPTY; size],
            mask: size - 1,
        };
        for id in 0..texts.len() {
            let text = texts.get(id).unwrap_or_default();
            let h = hash_bytes(text);
            let tag = h & !0xFFFF_FFFF;
            let mut i = h as usize & index.mask;
            loop {
                let slot = index.slots[i];
                if slot == EMPTY {
                    index.slots[i] = tag | id as u64;
                    break;
                }
                // A repeated text: the later id replaces the earlier one.
                if slot & !0xFFFF_FFFF == tag && texts.get(slot as u32 as usize) == Some(text) {
                    index.slots[i] = tag | id as u64;
                    break;
                }
                i = (i + 1) & index.mask;
            }
        }
        index
    }

    #[inline]
    fn find(&self, texts: &PieceTable, text: &[u8]) -> Option<u32> {
        let h = hash_bytes(text);
        let tag = h & !0xFFFF_FFFF;
        let mut i = h as usize & self.mask;
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return None;
            }
            if slot & !0xFFFF_FFFF == tag {
                let id = slot as u32;
                if texts.get(id as usize) == Some(text) {
                    return Some(id);
                }
            }
            i = (i + 1) & self.mask;
        }
    }
}
