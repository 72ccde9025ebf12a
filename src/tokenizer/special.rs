//! Splitting text on special-token occurrences before tokenizing the pieces between them.
//!
//! llama.cpp takes the special tokens longest first and, for each, splits every remaining
//! text fragment at its leftmost non-overlapping occurrences. The result is reproduced here
//! without one substring search per special token (gemma3 has thousands): all candidate
//! occurrences are found in one pass, then accepted in llama.cpp's order (token priority,
//! then position) when they overlap nothing accepted before.

use std::collections::BTreeMap;

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

const NO_RANK: u32 = u32::MAX;

/// A byte trie over the special-token texts; `rank` indexes `SpecialMatcher::tokens`.
#[derive(Debug, Default)]
struct Node {
    children: Vec<(u8, u32)>,
    rank: u32,
}

#[derive(Debug, Default)]
pub struct SpecialMatcher {
    /// In priority order: longer text first, then lower id.
    tokens: Vec<Special>,
    nodes: Vec<Node>,
    /// The root's children by byte, for the common case of no match at all.
    root: Vec<u32>,
}

impl SpecialMatcher {
    /// `candidates` are (id, text, always-split) for every control, user-defined and unknown
    /// token.
    pub fn new(mut candidates: Vec<(u32, &[u8], bool)>) -> SpecialMatcher {
        candidates.retain(|(_, text, _)| !text.is_empty());
        candidates.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        let mut m = SpecialMatcher {
            nodes: vec![Node {
                children: Vec::new(),
                rank: NO_RANK,
            }],
            ..SpecialMatcher::default()
        };
        for (id, text, always) in candidates {
            let mut node = 0usize;
            for &b in text {
                node = match m.nodes[node].children.binary_search_by_key(&b, |c| c.0) {
                    Ok(k) => m.nodes[node].children[k].1 as usize,
                    Err(k) => {
                        let new = m.nodes.len();
                        m.nodes.push(Node {
                            children: Vec::new(),
                            rank: NO_RANK,
                        });
                        m.nodes[node].children.insert(k, (b, new as u32));
                        new
                    }
                };
            }
            // Two tokens with the same text: the first in priority order wins every match.
            if m.nodes[node].rank == NO_RANK {
                m.nodes[node].rank = m.tokens.len() as u32;
                m.tokens.push(Special { id, always });
            }
        }
        m.root = vec![0; 256];
        for &(b, child) in &m.nodes[0].children {
            m.root[b as usize] = child;
        }
        m
    }

    pub fn count(&self) -> usize {
        self.tokens.len()
    }

    /// Splits `text` into fragments; with `parse_special` off only always-split tokens count.
    pub fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let bytes = text.as_bytes();
        // (rank, start, end) of every occurrence.
        let mut found: Vec<(u32, usize, usize)> = Vec::new();
        if !self.tokens.is_empty() {
            for (pos, &b) in bytes.iter().enumerate() {
                let mut node = self.root[b as usize] as usize;
                let mut end = pos + 1;
                while node != 0 {
                    let n = &self.nodes[node];
                    if n.rank != NO_RANK && (parse_special || self.tokens[n.rank as usize].always) {
                        found.push((n.rank, pos, end));
                    }
                    let Some(&next) = bytes.get(end) else { break };
                    node = match n.children.binary_search_by_key(&next, |c| c.0) {
                        Ok(k) => n.children[k].1 as usize,
                        Err(_) => 0,
                    };
                    end += 1;
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
