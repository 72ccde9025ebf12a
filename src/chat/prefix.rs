//! Prefix reuse between chat turns: the KV cache keeps what was evaluated; a new turn's
//! rendering only needs its tokens past the longest common prefix evaluated.

/// Length of the longest common prefix of two token sequences.
pub fn common_prefix_len(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lengths() {
        assert_eq!(common_prefix_len(&[], &[1, 2]), 0);
        assert_eq!(common_prefix_len(&[1, 2, 3], &[1, 2, 3]), 3);
        assert_eq!(common_prefix_len(&[1, 2, 3], &[1, 2]), 2);
        assert_eq!(common_prefix_len(&[1, 9, 3], &[1, 2, 3]), 1);
    }
}
