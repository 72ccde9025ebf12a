//! Byte-level BPE as llama.cpp does it: each pre-token's bytes are mapped to GPT-2's
//! printable stand-in characters, then adjacent symbols are merged lowest merge rank first
//! (ties: leftmost).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::hash::FastMap;
use super::pretokenize::PreTokenizer;
use super::vocab::Vocab;

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68
/// bytes take the code points 256, 257, ... in byte order.
pub fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let cp = if printable {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        table[b as usize] = char::from_u32(cp).expect("below the surrogate range");
    }
    table
}

/// Byte-level BPE state built once from the vocabulary and merges.
#[derive(Debug)]
pub struct BpeModel {
    pub pre: PreTokenizer,
    /// (left id, right id) → (rank, id of the merged text or `u32::MAX` when absent).
    merges: FastMap<(u32, u32), (u32, u32)>,
    ignore_merges: bool,
    /// The UTF-8 encoding of each byte's stand-in character.
    byte_chars: Vec<Vec<u8>>,
    /// Stand-in character → byte, for decoding; every stand-in is below U+0200.
    char_bytes: Vec<Option<u8>>,
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    id: u32,
    prev: i32,
    next: i32,
}

struct Bigram {
    rank: u32,
    left: u32,
    right: u32,
    len: u32,
    merged: u32,
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
    /// The heap pops the lowest rank first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Scratch space reused across words.
#[derive(Default)]
pub struct BpeSession {
    word: Vec<u8>,
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Bigram>,
}

impl BpeModel {
    /// `merges` are the "left right" strings of `tokenizer.ggml.merges`, in rank order.
    /// Symbols are tracked by token id, so a merge whose halves are not both vocabulary
    /// pieces is dropped, and a merged text outside the vocabulary merges no further
    /// (llama.cpp works on strings there). Vocabularies converted from Hugging Face never
    /// have such merges: its BPE refuses a merge whose result is not in the vocabulary.
    pub fn new(vocab: &Vocab, merges: &[&str], pre: PreTokenizer) -> BpeModel {
        let mut map = FastMap::default();
        map.reserve(merges.len());
        let mut joined = Vec::new();
        for (rank, m) in merges.iter().enumerate() {
            // The separator is the first space after the first character (a half may
            // itself be a lone space in some vocabularies).
            let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (left, right) = (&m[..pos], &m[pos + 1..]);
            let (Some(l), Some(r)) = (
                vocab.lookup(left.as_bytes()),
                vocab.lookup(right.as_bytes()),
            ) else {
                continue;
            };
            joined.clear();
            joined.extend_from_slice(left.as_bytes());
            joined.extend_from_slice(right.as_bytes());
            let merged = vocab.lookup(&joined).unwrap_or(NONE);
            // The first (lowest) rank of a repeated pair wins.
            map.entry((l, r)).or_insert((rank as u32, merged));
        }
        let table = byte_to_char_table();
        let byte_chars = table.iter().map(|c| c.to_string().into_bytes()).collect();
        let mut char_bytes = vec![None; 0x200];
        for (b, &c) in table.iter().enumerate() {
            char_bytes[c as usize] = Some(b as u8);
        }
        BpeModel {
            ignore_merges: pre.kind().ignore_merges(),
            pre,
            merges: map,
            byte_chars,
            char_bytes,
        }
    }

    /// The bytes a normal BPE token's text stands for.
    pub fn decode_text(&self, text: &str, out: &mut Vec<u8>) {
        for c in text.chars() {
            match self.char_bytes.get(c as usize).copied().flatten() {
                Some(b) => out.push(b),
                // Not a byte stand-in: keep the character itself.
                None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
    }

    /// Tokenizes one text fragment (no special tokens inside) and appends the ids.
    pub fn encode(&self, vocab: &Vocab, session: &mut BpeSession, text: &str, out: &mut Vec<u32>) {
        for piece in self.pre.split(text) {
            session.word.clear();
            for &b in piece.as_bytes() {
                session.word.extend_from_slice(&self.byte_chars[b as usize]);
            }
            self.encode_word(vocab, session, out);
        }
    }

    fn encode_word(&self, vocab: &Vocab, s: &mut BpeSession, out: &mut Vec<u32>) {
        let word = &s.word;
        if self.ignore_merges {
            if let Some(id) = vocab.lookup(word) {
                out.push(id);
                return;
            }
        }
        s.symbols.clear();
        s.queue.clear();
        // The word is valid UTF-8 made of stand-in characters.
        let mut offs = 0usize;
        while offs < word.len() {
            let n = match word[offs] >> 4 {
                0xC | 0xD => 2,
                0xE => 3,
                0xF => 4,
                _ => 1,
            }
            .min(word.len() - offs);
            let index = s.symbols.len() as i32;
            s.symbols.push(Symbol {
                start: offs as u32,
                len: n as u32,
                id: vocab.lookup(&word[offs..offs + n]).unwrap_or(NONE),
                prev: index - 1,
                next: if offs + n == word.len() {
                    -1
                } else {
                    index + 1
                },
            });
            offs += n;
        }
        for i in 1..s.symbols.len() {
            self.add_bigram(s, i as i32 - 1, i as i32);
        }
        while let Some(b) = s.queue.pop() {
            let (l, r) = (b.left as usize, b.right as usize);
            let (left, right) = (s.symbols[l], s.symbols[r]);
            if left.len == 0 || right.len == 0 || left.len + right.len != b.len {
                continue;
            }
            s.symbols[l].len += right.len;
            s.symbols[l].id = b.merged;
            s.symbols[r].len = 0;
            s.symbols[l].next = right.next;
            if right.next >= 0 {
                s.symbols[right.next as usize].prev = l as i32;
            }
            self.add_bigram(s, left.prev, l as i32);
            self.add_bigram(s, l as i32, right.next);
        }
        let mut i = if s.symbols.is_empty() { -1 } else { 0 };
        while i >= 0 {
            let sym = s.symbols[i as usize];
            if sym.id != NONE {
                out.push(sym.id);
            } else {
                // llama.cpp's fallback: each byte of the text as a one-byte piece, if any.
                let text = &s.word[sym.start as usize..(sym.start + sym.len) as usize];
                out.extend(
                    text.iter()
                        .filter_map(|b| vocab.lookup(std::slice::from_ref(b))),
                );
            }
            i = sym.next;
        }
    }

    fn add_bigram(&self, s: &mut BpeSession, left: i32, right: i32) {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (s.symbols[left as usize], s.symbols[right as usize]);
        if l.id == NONE || r.id == NONE {
            return;
        }
        if let Some(&(rank, merged)) = self.merges.get(&(l.id, r.id)) {
            s.queue.push(Bigram {
                rank,
                left: left as u32,
                right: right as u32,
                len: l.len + r.len,
                merged,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = byte_to_char_table();
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[b' ' as usize], 'Ġ'); // U+0120: the 33rd non-printable byte
        assert_eq!(t[b'\n' as usize], 'Ċ'); // U+010A
        assert_eq!(t[0], '\u{100}');
        assert_eq!(t[0xAD], '\u{143}');
        assert_eq!(t[0xFF], 'ÿ');
        let mut all: Vec<char> = t.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256);
    }
}
