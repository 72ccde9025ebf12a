//! Tokenizers built from GGUF metadata, matching llama.cpp token for token.
//!
//! Two kinds, chosen by `tokenizer.ggml.model`: `llama` (SentencePiece-style merging by piece
//! score, module `spm`) and `gpt2` (byte-level BPE, module `bpe`, after a pre-tokenizer split
//! chosen by `tokenizer.ggml.pre`, module [`pretokenize`]). Special tokens in the input are
//! split out first (module `special`). Decoding renders each token as llama.cpp's
//! `token_to_piece` does; [`StreamDecoder`] does it incrementally for generation.

mod bpe;
mod hash;
pub mod pretokenize;
mod special;
mod spm;
mod stream;
mod vocab;

use std::cell::RefCell;

use crate::gguf::{Metadata, MetadataError};

pub use bpe::byte_to_char_table;
pub use pretokenize::{PreKind, PreTokenizer};
pub use special::Fragment;
pub use stream::StreamDecoder;
pub use vocab::TokenType;

use bpe::{BpeModel, BpeSession};
use special::SpecialMatcher;
use spm::SpmSession;
use vocab::{PieceTable, Vocab};

/// Why a tokenizer could not be built from a file's metadata.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("unsupported tokenizer model `{0}` (tokenizer.ggml.model); supported: llama, gpt2")]
    UnsupportedModel(String),
    #[error("unknown BPE pre-tokenizer `{0}` (tokenizer.ggml.pre)")]
    UnknownPreTokenizer(String),
    #[error("`{key}` has {found} entries but tokenizer.ggml.tokens has {expected}")]
    LengthMismatch {
        key: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("the vocabulary (tokenizer.ggml.tokens) is empty")]
    EmptyVocabulary,
    #[error("the vocabulary has {0} tokens, more than 32-bit ids can address")]
    TooManyTokens(usize),
    #[error("pre-tokenizer regex failed to compile: {0}")]
    Regex(String),
}

/// The word-splitting and merging half of a tokenizer.
#[derive(Debug)]
enum Model {
    Spm {
        byte_tokens: Box<[Option<u32>; 256]>,
    },
    Bpe(BpeModel),
}

/// Texts llama.cpp treats as end-of-generation (and forces to control type) when present.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

/// Texts llama.cpp recognises as the end-of-turn token when no `eot_token_id` is given.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// A tokenizer: text ↔ token ids, byte-exact with llama.cpp for the same GGUF file.
#[derive(Debug)]
pub struct Tokenizer {
    model: Model,
    vocab: Vocab,
    /// What each token decodes to when special tokens are shown (llama.cpp's piece cache).
    pieces: PieceTable,
    specials: SpecialMatcher,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    unk: Option<u32>,
    eog: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
}

thread_local! {
    static SPM_SCRATCH: RefCell<SpmSession> = RefCell::new(SpmSession::default());
    static BPE_SCRATCH: RefCell<BpeSession> = RefCell::new(BpeSession::default());
}

impl Tokenizer {
    /// Builds the tokenizer described by a file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(md: &Metadata) -> Result<Tokenizer, TokenizerError> {
        let model_name = md.str("tokenizer.ggml.model")?;
        let is_spm = match model_name {
            "llama" => true,
            "gpt2" => false,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let tokens = md.str_array("tokenizer.ggml.tokens")?;
        let n = tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocabulary);
        }
        if u32::try_from(n).is_err() || n == u32::MAX as usize {
            return Err(TokenizerError::TooManyTokens(n));
        }
        let check_len = |key: &'static str, found: usize| {
            if found == n {
                Ok(())
            } else {
                Err(TokenizerError::LengthMismatch {
                    key,
                    found,
                    expected: n,
                })
            }
        };
        let scores = match md.opt_f32_array("tokenizer.ggml.scores")? {
            Some(s) => {
                check_len("tokenizer.ggml.scores", s.len())?;
                s
            }
            None => vec![0.0; n],
        };
        let mut types: Vec<TokenType> = match md.opt_i64_array("tokenizer.ggml.token_type")? {
            Some(t) => {
                check_len("tokenizer.ggml.token_type", t.len())?;
                t.into_iter().map(TokenType::from_gguf).collect()
            }
            None => vec![TokenType::Normal; n],
        };

        // Per-kind defaults, as llama.cpp sets them before reading the optional keys.
        let pre = if is_spm {
            None
        } else {
            // Missing or empty: llama.cpp's default split (it warns); any other unknown
            // name is an error rather than a silent fallback.
            let name = match md.opt_str("tokenizer.ggml.pre")? {
                None | Some("") => "default",
                Some(name) => name,
            };
            Some(PreTokenizer::from_name(name)?)
        };
        let (mut bos, mut eos, mut unk) = if is_spm {
            (Some(1), Some(2), Some(0))
        } else {
            (Some(11), Some(11), None)
        };
        if pre.as_ref().map(|p| p.kind()) == Some(PreKind::ChatGlm4) {
            bos = None;
        }
        let mut add_bos = match &pre {
            None => true,
            Some(p) => p.kind().default_add_bos(),
        };
        let mut add_eos = false;
        let add_space_prefix = md
            .opt_bool("tokenizer.ggml.add_space_prefix")?
            .unwrap_or(is_spm);

        let special_id = |key: &str, default: Option<u32>| -> Result<Option<u32>, TokenizerError> {
            Ok(match md.opt_u64(key)? {
                // An out-of-range id keeps the default, as llama.cpp does (with a warning).
                Some(id) if (id as usize) < n => Some(id as u32),
                _ => default,
            })
        };
        bos = special_id("tokenizer.ggml.bos_token_id", bos)?;
        eos = special_id("tokenizer.ggml.eos_token_id", eos)?;
        unk = special_id("tokenizer.ggml.unknown_token_id", unk)?;
        let mut eot = special_id("tokenizer.ggml.eot_token_id", None)?;
        let mut eom = special_id("tokenizer.ggml.eom_token_id", None)?;
        let valid = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        bos = valid(bos);
        eos = valid(eos);
        unk = valid(unk);
        if let Some(v) = md.opt_bool("tokenizer.ggml.add_bos_token")? {
            add_bos = v;
        }
        if let Some(v) = md.opt_bool("tokenizer.ggml.add_eos_token")? {
            add_eos = v;
        }

        let vocab = Vocab::new(&tokens, scores, Vec::new());
        drop(tokens);

        // End-of-turn detection and the end-of-generation set; those texts become control.
        if eot.is_none() {
            eot = EOT_TEXTS.iter().find_map(|t| vocab.lookup(t.as_bytes()));
        }
        if eom.is_none() {
            eom = vocab.lookup(b"<|eom_id|>");
        }
        let mut force_control = |id: u32| types[id as usize] = TokenType::Control;
        if let Some(id) = eot {
            if EOT_TEXTS
                .iter()
                .any(|t| vocab.text(id) == Some(t.as_bytes()))
            {
                force_control(id);
            }
        }
        if let Some(id) = eom {
            if vocab.text(id) == Some(b"<|eom_id|>".as_slice()) {
                force_control(id);
            }
        }
        let mut eog: Vec<u32> = Vec::new();
        for t in EOG_TEXTS {
            if let Some(id) = vocab.lookup(t.as_bytes()) {
                eog.push(id);
                force_control(id);
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());
        eog.sort_unstable();
        eog.dedup();
        let mut vocab = vocab;
        vocab.types = types;

        let model = match pre {
            None => {
                let mut byte_tokens = Box::new([None; 256]);
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    *slot = vocab
                        .lookup(format!("<0x{b:02X}>").as_bytes())
                        .or_else(|| vocab.lookup(&[b as u8]))
                        .or(unk);
                }
                Model::Spm { byte_tokens }
            }
            Some(pre) => {
                let merges = md.str_array("tokenizer.ggml.merges")?;
                Model::Bpe(BpeModel::new(&vocab, &merges, pre))
            }
        };

        let mut specials = Vec::new();
        for id in 0..n as u32 {
            let ty = vocab.types[id as usize];
            if matches!(
                ty,
                TokenType::Control | TokenType::UserDefined | TokenType::Unknown
            ) {
                // Vocabulary texts come from GGUF strings, which are valid UTF-8.
                let text = vocab.text(id).unwrap_or_default();
                let text = std::str::from_utf8(text).unwrap_or_default();
                specials.push((id, text, ty == TokenType::UserDefined));
            }
        }
        let specials = SpecialMatcher::new(specials);

        let mut pieces = PieceTable::with_capacity(n, vocab.texts_len_hint());
        let mut scratch = Vec::new();
        for id in 0..n as u32 {
            scratch.clear();
            render_piece(&model, &vocab, id, &mut scratch);
            pieces.push(&scratch);
        }

        Ok(Tokenizer {
            model,
            vocab,
            pieces,
            specials,
            bos,
            eos,
            eot,
            unk,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
        })
    }

    /// Token ids of `text`. `add_bos`: add BOS/EOS as the model's metadata says (llama.cpp's
    /// `add_special`); `parse_special`: control tokens written in the text become single
    /// tokens (user-defined tokens always do).
    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos && self.add_bos {
            out.extend(self.bos);
        }
        let fragments = if text.is_empty() {
            Vec::new()
        } else {
            self.specials.partition(text, parse_special)
        };
        match &self.model {
            Model::Spm { byte_tokens } => SPM_SCRATCH.with(|s| {
                let mut session = s.borrow_mut();
                let mut buf = Vec::new();
                let mut prev_special = true;
                for f in fragments {
                    match f {
                        Fragment::Text(t) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.extend_from_slice("\u{2581}".as_bytes());
                            }
                            escape_spaces(t, &mut buf);
                            session.encode(&self.vocab, byte_tokens, &buf, &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }),
            Model::Bpe(bpe) => BPE_SCRATCH.with(|s| {
                let mut session = s.borrow_mut();
                for f in fragments {
                    match f {
                        Fragment::Text(t) => bpe.encode(&self.vocab, &mut session, t, &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }),
        }
        if add_bos && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// The bytes of `ids`, as llama.cpp's detokenizer gives them (control tokens hidden, the
    /// space-prefix space of the first token removed). Unknown ids decode to nothing.
    pub fn decode(&self, ids: &[u32]) -> Vec<u8> {
        self.decode_with(ids, false)
    }

    /// As [`Tokenizer::decode`]; `special` renders control and unknown tokens as their text.
    pub fn decode_with(&self, ids: &[u32], special: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut strip_space = self.add_space_prefix;
        for &id in ids {
            let mut p = self.piece(id, special);
            if strip_space {
                if let Some(rest) = p.strip_prefix(b" ") {
                    p = rest;
                }
                strip_space = false;
            }
            out.extend_from_slice(p);
        }
        out
    }

    /// What one token decodes to (llama.cpp's `token_to_piece` without lstrip): control
    /// and unknown tokens give their text only with `special`; unused tokens give nothing.
    pub fn piece(&self, id: u32, special: bool) -> &[u8] {
        if !special
            && matches!(
                self.vocab.token_type(id),
                Some(TokenType::Control | TokenType::Unknown)
            )
        {
            return &[];
        }
        self.pieces.get(id as usize).unwrap_or_default()
    }

    /// The decoded bytes of a token with special tokens shown, for display.
    pub fn token_piece(&self, id: u32) -> &[u8] {
        self.piece(id, true)
    }

    /// The token's text exactly as stored in the vocabulary (e.g. `▁the`, `<0x0A>`, `Ġthe`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab
            .text(id)
            .and_then(|t| std::str::from_utf8(t).ok())
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.vocab.token_type(id)
    }

    /// The id of the token whose vocabulary text is exactly `piece`.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.vocab.lookup(piece.as_bytes())
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }

    /// Whether `encode(.., add_bos = true, ..)` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    pub fn add_eos(&self) -> bool {
        self.add_eos && self.eos.is_some()
    }

    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// True for EOS, EOT, EOM and the control tokens llama.cpp treats as ending generation.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// The end-of-generation ids, sorted.
    pub fn end_of_generation_ids(&self) -> &[u32] {
        &self.eog
    }

    /// `spm` or `bpe`, with the pre-tokenizer family for BPE.
    pub fn kind_name(&self) -> String {
        match &self.model {
            Model::Spm { .. } => "spm".to_string(),
            Model::Bpe(b) => format!("bpe ({:?})", b.pre.kind()),
        }
    }

    /// The fragments `text` is split into around special tokens (exposed for tests).
    pub fn split_special<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        self.specials.partition(text, parse_special)
    }

    pub fn n_special_tokens(&self) -> usize {
        self.specials.count()
    }
}

/// SentencePiece writes spaces as U+2581.
fn escape_spaces(text: &str, out: &mut Vec<u8>) {
    let mut rest = text.as_bytes();
    while let Some(p) = rest.iter().position(|&b| b == b' ') {
        out.extend_from_slice(&rest[..p]);
        out.extend_from_slice("\u{2581}".as_bytes());
        rest = &rest[p + 1..];
    }
    out.extend_from_slice(rest);
}

/// llama.cpp's `token_to_piece(special = true)` for one token, appended to `out`.
fn render_piece(model: &Model, vocab: &Vocab, id: u32, out: &mut Vec<u8>) {
    let text = vocab.text(id).unwrap_or_default();
    let ty = vocab.token_type(id).unwrap_or(TokenType::Undefined);
    match ty {
        TokenType::Control | TokenType::Unknown | TokenType::UserDefined => {
            out.extend_from_slice(text)
        }
        TokenType::Normal => match model {
            Model::Spm { .. } => unescape_spaces(text, out),
            // Vocabulary texts come from GGUF strings, which are valid UTF-8.
            Model::Bpe(bpe) => bpe.decode_text(std::str::from_utf8(text).unwrap_or_default(), out),
        },
        TokenType::Byte => {
            if let (Model::Spm { .. }, Some(b)) = (model, parse_byte_token(text)) {
                out.push(b);
            }
        }
        TokenType::Unused | TokenType::Undefined => {}
    }
}

/// U+2581 back to spaces.
fn unescape_spaces(text: &[u8], out: &mut Vec<u8>) {
    const MARK: &[u8] = "\u{2581}".as_bytes();
    let mut rest = text;
    while let Some(p) = rest.windows(MARK.len()).position(|w| w == MARK) {
        out.extend_from_slice(&rest[..p]);
        out.push(b' ');
        rest = &rest[p + MARK.len()..];
    }
    out.extend_from_slice(rest);
}

/// The byte of a `<0xNN>` token.
fn parse_byte_token(text: &[u8]) -> Option<u8> {
    let hex = text.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Tokenizer>();
    }

    #[test]
    fn spaces_escape_and_unescape() {
        let mut out = Vec::new();
        escape_spaces(" a  b ", &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "\u{2581}a\u{2581}\u{2581}b\u{2581}"
        );
        let mut back = Vec::new();
        unescape_spaces(&out, &mut back);
        assert_eq!(back, b" a  b ");
    }

    #[test]
    fn byte_token_texts() {
        assert_eq!(parse_byte_token(b"<0x0A>"), Some(10));
        assert_eq!(parse_byte_token(b"<0xff>"), Some(255));
        assert_eq!(parse_byte_token(b"<0x1G>"), None);
        assert_eq!(parse_byte_token(b"0x0A"), None);
    }
}
