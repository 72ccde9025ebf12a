//! Stop strings in streamed text: text that might be the start of a stop string is held
//! back until the next piece shows whether it is, so a client never sees part of a stop.

#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What one piece of text gives: the text that is safe to send, and whether a stop
/// string ended the generation (the stop and what follows it are dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub text: String,
    pub stopped: bool,
}

impl StopMatcher {
    /// Empty stop strings are ignored.
    pub fn new(stops: Vec<String>) -> StopMatcher {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    pub fn push(&mut self, piece: &str) -> Checked {
        self.held.push_str(piece);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            self.held.truncate(at);
            return Checked {
                text: std::mem::take(&mut self.held),
                stopped: true,
            };
        }
        let keep = self.partial_stop_len();
        let text = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        Checked {
            text,
            stopped: false,
        }
    }

    /// The held-back text, when generation ends for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest end of the held text that begins some stop string.
    fn partial_stop_len(&self) -> usize {
        let held = &self.held;
        self.stops
            .iter()
            .flat_map(|stop| {
                (1..stop.len().min(held.len() + 1))
                    .filter(|&n| stop.is_char_boundary(n))
                    .filter(|&n| held.ends_with(&stop[..n]))
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let c = m.push(p);
            out += &c.text;
            if c.stopped {
                return (out, true);
            }
        }
        out += &m.finish();
        (out, false)
    }

    #[test]
    fn stop_split_across_pieces_is_never_sent() {
        let mut m = StopMatcher::new(vec!["</end>".into()]);
        assert_eq!(m.push("ab</e").text, "ab");
        let c = m.push("nd>tail");
        assert_eq!(
            c,
            Checked {
                text: String::new(),
                stopped: true
            }
        );
    }

    #[test]
    fn false_starts_are_released() {
        assert_eq!(run(&["STOP"], &["a S", "T", "x"]), ("a STx".into(), false));
        assert_eq!(run(&["STOP"], &["a ST"]), ("a ST".into(), false));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["yy", "x"], &["ab", "cxyy"]), ("abc".into(), true));
        assert_eq!(run(&["", "é!"], &["caf", "é", "!"]), ("caf".into(), true));
    }
}
