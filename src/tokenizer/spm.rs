//! SentencePiece-style merging as llama.cpp does it: start from UTF-8 characters and
//! repeatedly merge the adjacent pair whose concatenation is a vocabulary piece with the
//! highest score (ties: leftmost); what ends up outside the vocabulary becomes byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;

#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
}

struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    len: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// The heap pops the highest score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Scratch space reused across fragments.
#[derive(Default)]
pub struct SpmSession {
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Bigram>,
}

/// Byte length of the UTF-8 sequence starting with `lead` (1 for stray bytes).
#[inline]
fn utf8_len(lead: u8) -> usize {
    match lead >> 4 {
        0xC | 0xD => 2,
        0xE => 3,
        0xF => 4,
        _ => 1,
    }
}

impl SpmSession {
    /// Tokenizes `text` (spaces already replaced by U+2581) and appends the ids to `out`.
    /// `byte_token` maps a byte to its `<0xNN>` token.
    pub fn encode(
        &mut self,
        vocab: &Vocab,
        byte_token: &[Option<u32>; 256],
        text: &[u8],
        out: &mut Vec<u32>,
    ) {
        self.symbols.clear();
        self.queue.clear();
        let mut offs = 0usize;
        while offs < text.len() {
            let n = utf8_len(text[offs]).min(text.len() - offs);
            let index = self.symbols.len() as i32;
            offs += n;
            self.symbols.push(Symbol {
                start: (offs - n) as u32,
                len: n as u32,
                prev: index - 1,
                next: if offs == text.len() { -1 } else { index + 1 },
            });
        }
        for i in 1..self.symbols.len() {
            self.try_add_bigram(vocab, text, i as i32 - 1, i as i32);
        }
        while let Some(b) = self.queue.pop() {
            let (l, r) = (b.left as usize, b.right as usize);
            let (left, right) = (self.symbols[l], self.symbols[r]);
            // Stale: one side was merged into something else since this pair was queued.
            if left.len == 0 || right.len == 0 || left.len + right.len != b.len {
                continue;
            }
            self.symbols[l].len += right.len;
            self.symbols[r].len = 0;
            self.symbols[l].next = right.next;
            if right.next >= 0 {
                self.symbols[right.next as usize].prev = l as i32;
            }
            self.try_add_bigram(vocab, text, left.prev, l as i32);
            self.try_add_bigram(vocab, text, l as i32, right.next);
        }
        let mut i = if self.symbols.is_empty() { -1 } else { 0 };
        while i >= 0 {
            let s = self.symbols[i as usize];
            let piece = &text[s.start as usize..(s.start + s.len) as usize];
            match vocab.lookup(piece) {
                Some(id) => out.push(id),
                None => out.extend(piece.iter().filter_map(|&b| byte_token[b as usize])),
            }
            i = s.next;
        }
    }

    fn try_add_bigram(&mut self, vocab: &Vocab, text: &[u8], left: i32, right: i32) {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (self.symbols[left as usize], self.symbols[right as usize]);
        // Adjacent symbols are contiguous in `text`.
        let len = l.len + r.len;
        let merged = &text[l.start as usize..(l.start + len) as usize];
        if let Some(id) = vocab.lookup(merged) {
            self.queue.push(Bigram {
                score: vocab.scores.get(id as usize).copied().unwrap_or(0.0),
                left: left as u32,
                right: right as u32,
                len,
            });
        }
    }
}
