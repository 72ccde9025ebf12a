//! Splitting text on special-token occurrences before tokenizing the pieces between them.
//!
//! llama.cpp takes the special tokens longest first and, for each, splits every remaining
//! text fragment at its leftmost non-overlapping occurrences. That is done here too, but
//! only for the tokens that occur in the text at all (gemma3 has thousands of special
//! tokens): one trie walk over the text finds them first.

/// A piece of the input: text to tokenize, or a special token found in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

#[derive(Debug)]
struct Special {
    id: u32,
    text: Box<str>,
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
    pub fn new(mut candidates: Vec<(u32, &str, bool)>) -> SpecialMatcher {
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
            for &b in text.as_bytes() {
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
                m.tokens.push(Special {
                    id,
                    text: text.into(),
                    always,
                });
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
        let present = self.present(text, parse_special);
        let mut fragments = vec![Fragment::Text(text)];
        let mut next = Vec::new();
        for rank in present {
            let special = &self.tokens[rank as usize];
            next.clear();
            for &f in &fragments {
                let Fragment::Text(t) = f else {
                    next.push(f);
                    continue;
                };
                let mut at = 0;
                for (start, m) in t.match_indices(&*special.text) {
                    if start > at {
                        next.push(Fragment::Text(&t[at..start]));
                    }
                    next.push(Fragment::Token(special.id));
                    at = start + m.len();
                }
                if at < t.len() {
                    next.push(Fragment::Text(&t[at..]));
                }
            }
            std::mem::swap(&mut fragments, &mut next);
        }
        fragments
    }

    /// The ranks of the special tokens occurring in `text`, in priority order.
    fn present(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut seen = Vec::new();
        if self.tokens.is_empty() {
            return seen;
        }
        let bytes = text.as_bytes();
        for (pos, &b) in bytes.iter().enumerate() {
            let mut node = self.root[b as usize] as usize;
            let mut end = pos + 1;
            while node != 0 {
                let n = &self.nodes[node];
                if n.rank != NO_RANK
                    && (parse_special || self.tokens[n.rank as usize].always)
                    && !seen.contains(&n.rank)
                {
                    seen.push(n.rank);
                }
                let Some(&next) = bytes.get(end) else { break };
                node = match n.children.binary_search_by_key(&next, |c| c.0) {
                    Ok(k) => n.children[k].1 as usize,
                    Err(_) => 0,
                };
                end += 1;
            }
        }
        seen.sort_unstable();
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longer_tokens_take_priority_over_earlier_shorter_ones() {
        // llama.cpp splits on "abc" first, so "ca" finds no whole occurrence left.
        let m = SpecialMatcher::new(vec![(1, "ca", true), (2, "abc", true)]);
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
        let m = SpecialMatcher::new(vec![(7, "<s>", false), (8, "aa", true)]);
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
