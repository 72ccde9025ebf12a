//! Splitting text on special-token occurrences before tokenizing the pieces between them.
//!
//! llama.cpp takes the special tokens longest first and, for each, splits every remaining
//! text fragment at its leftmost non-overlapping occurrences. The result is reproduced here
//! without one substring search per special token (gemma3 has thousands): all candidate
//! occurrences are found in one pass, then accepted in llama.cpp's order (token priority,
//! then position) when they overlap nothing accepted before.

use std::collections::BTreeMap;

use super::hash::FastMap;

/// A piece of the input: text to tokenize, or a special token found in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

#[derive(Debug)]
struct Special {
    id: u32,
    /// User-defined tokens are split out even when special parsing is off.
    always: bool,
}

#[derive(Debug, Default)]
pub struct SpecialMatcher {
    /// In priority order: longer text first, then lower id.
    tokens: Vec<Special>,
    /// Text → index into `tokens`.
    by_text: FastMap<Box<[u8]>, u32>,
    /// For each first byte, the distinct text lengths of the special tokens starting with it
    /// (all tokens, and the always-split ones).
    lengths_all: Vec<Vec<u32>>,
    lengths_always: Vec<Vec<u32>>,
}

impl SpecialMatcher {
    /// `candidates` are (id, text, always-split) for every control, user-defined and unknown
    /// token.
    pub fn new(mut candidates: Vec<(u32, &[u8], bool)>) -> SpecialMatcher {
        candidates.retain(|(_, text, _)| !text.is_empty());
        candidates.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        let mut m = SpecialMatcher {
            lengths_all: vec![Vec::new(); 256],
            lengths_always: vec![Vec::new(); 256],
            ..SpecialMatcher::default()
        };
        for (id, text, always) in candidates {
            // Two tokens with the same text: the first in priority order wins every match.
            if m.by_text.contains_key(text) {
                continue;
            }
            let rank = m.tokens.len() as u32;
            m.tokens.push(Special { id, always });
            m.by_text.insert(text.into(), rank);
            let first = text[0] as usize;
            let len = text.len() as u32;
            if !m.lengths_all[first].contains(&len) {
                m.lengths_all[first].push(len);
            }
            if always && !m.lengths_always[first].contains(&len) {
                m.lengths_always[first].push(len);
            }
        }
        m
    }

    pub fn count(&self) -> usize {
        self.tokens.len()
    }

    /// Splits `text` into fragments; with `parse_special` off only always-split tokens count.
    pub fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let bytes = text.as_bytes();
        let lengths = if parse_special {
            &self.lengths_all
        } else {
            &self.lengths_always
        };
        // (rank, start, end) of every occurrence.
        let mut found: Vec<(u32, usize, usize)> = Vec::new();
        for (pos, &b) in bytes.iter().enumerate() {
            for &len in &lengths[b as usize] {
                let end = pos + len as usize;
                if end > bytes.len() {
                    continue;
                }
                if let Some(&rank) = self.by_text.get(&bytes[pos..end]) {
                    if parse_special || self.tokens[rank as usize].always {
                        found.push((rank, pos, end));
                    }
                }
            }
        }
        if found.is_empty() {
            return vec![Fragment::Text(text)];
        }
        found.sort_unstable();
        // start → (end, rank) of accepted occurrences.
        let mut accepted: BTreeMap<usize, (usize, u32)> = BTreeMap::new();
        for (rank, start, end) in found {
            let before = accepted.range(..=start).next_back();
            if before.is_some_and(|(_, &(e, _))| e > start) {
                continue;
            }
            let after = accepted.range(start..).next();
            if after.is_some_and(|(&s, _)| s < end) {
                continue;
            }
            accepted.insert(start, (end, rank));
        }
        let mut out = Vec::with_capacity(accepted.len() * 2 + 1);
        let mut at = 0;
        for (start, (end, rank)) in accepted {
            if start > at {
                // Occurrences of valid UTF-8 texts start and end on character boundaries.
                out.push(Fragment::Text(&text[at..start]));
            }
            out.push(Fragment::Token(self.tokens[rank as usize].id));
            at = end;
        }
        if at < text.len() {
            out.push(Fragment::Text(&text[at..]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longer_tokens_take_priority_over_earlier_shorter_ones() {
        // llama.cpp splits on "abc" first, so "ca" finds no whole occurrence left.
        let m = SpecialMatcher::new(vec![(1, b"ca", true), (2, b"abc", true)]);
        assert_eq!(
            m.partition("cabc", true),
            vec![Fragment::Text("c"), Fragment::Token(2)]
        );
        assert_eq!(
            m.partition("xcay", true),
            vec![Fragment::Text("x"), Fragment::Token(1), Fragment::Text("y")]
        );
    }

    #[test]
    fn repeated_and_adjacent_occurrences() {
        let m = SpecialMatcher::new(vec![(7, b"<s>", false), (8, b"aa", true)]);
        assert_eq!(
            m.partition("<s><s>x", true),
            vec![Fragment::Token(7), Fragment::Token(7), Fragment::Text("x")]
        );
        assert_eq!(m.partition("<s>", false), vec![Fragment::Text("<s>")]);
        // Non-overlapping, leftmost first: "aaa" is [aa][a].
        assert_eq!(
            m.partition("aaa", false),
            vec![Fragment::Token(8), Fragment::Text("a")]
        );
    }
}
