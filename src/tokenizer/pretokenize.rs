//! Pre-tokenizers for byte-level BPE: the regex splits chosen by `tokenizer.ggml.pre`.
//!
//! Each named pre-tokenizer is a list of regexes applied in turn, the way llama.cpp does it:
//! every regex splits every piece left by the previous one into its matches and the text
//! between them, and both are kept. The patterns are the published Hugging Face
//! `pre_tokenizer` rules of each model family as llama.cpp lists them per `pre` name.

use fancy_regex::Regex;

use super::TokenizerError;

/// GPT-2's split: contractions, letter runs, digit runs, other runs, trailing whitespace.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Llama 3 (tiktoken cl100k style): case-insensitive contractions, digits in groups of 1-3.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2: as Llama 3 but every digit stands alone.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The letters DeepSeek LLM's tokenizer.json lists explicitly (Latin, Greek, Cyrillic, ...).
const DEEPSEEK_LLM_LETTERS: &str = r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\x{1F7D}ᾀ-ᾴᾶ-ᾼ\x{1FBE}ῂ-ῄῆ-ῌῐ-\x{1FD3}ῖ-\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\x{2126}ℨ\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ\x{10400}-\x{1044f}\x{104b0}-\x{104d3}\x{104d8}-\x{104fb}\x{10c80}-\x{10cb2}\x{10cc0}-\x{10cf2}\x{118a0}-\x{118df}\x{1e900}-\x{1e943}]+";

/// CJK ideographs, Samaritan..CJK, Hangul syllables: kept together as one piece.
const CJK_RUN: &str = r"[一-龥ࠀ-一가-퟿]+";

const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const PORO: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

/// Which family a `tokenizer.ggml.pre` name belongs to, and what it implies besides the split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreKind {
    Default,
    Llama3,
    Dbrx,
    DeepseekLlm,
    DeepseekCoder,
    Deepseek3,
    Falcon,
    Starcoder,
    Gpt2,
    Qwen2,
    Poro,
    Viking,
    ChatGlm4,
    Tekken,
    Gpt4o,
}

impl PreKind {
    /// Maps a `tokenizer.ggml.pre` value to its family, as llama.cpp groups the names.
    pub fn from_name(name: &str) -> Option<PreKind> {
        use PreKind::*;
        Some(match name {
            "default" => Default,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" => Llama3,
            "dbrx" | "smaug-bpe" => Dbrx,
            "deepseek-llm" => DeepseekLlm,
            "deepseek-coder" => DeepseekCoder,
            "deepseek-v3" | "hunyuan-dense" => Deepseek3,
            "falcon" => Falcon,
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone"
            | "minerva-7b" => Starcoder,
            "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling"
            | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de" | "a.x-4.0"
            | "mellum" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" | "exaone4" => Gpt2,
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "megrez" | "stablelm2" | "hunyuan" => Qwen2,
            "poro-chat" | "bloom" | "gpt3-finnish" => Poro,
            "viking" => Viking,
            "glm4" | "chatglm-bpe" => ChatGlm4,
            "tekken" => Tekken,
            "gpt-4o" | "llama4" => Gpt4o,
            _ => return None,
        })
    }

    /// The regexes applied in order.
    fn patterns(self) -> Vec<&'static str> {
        use PreKind::*;
        match self {
            Default => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
            Llama3 | Dbrx | ChatGlm4 => vec![LLAMA3],
            DeepseekLlm => vec![
                "[\r\n]",
                DEEPSEEK_LLM_LETTERS,
                r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
                r"\s+$",
                CJK_RUN,
                r"\p{N}+",
            ],
            DeepseekCoder => vec!["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK_RUN, r"\p{N}"],
            Deepseek3 => vec![
                r"\p{N}{1,3}",
                r"[一-龥぀-ゟ゠-ヿ]+",
                r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
            ],
            Falcon => vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
            Starcoder => vec![r"\p{N}", GPT2],
            Gpt2 => vec![GPT2],
            Qwen2 => vec![QWEN2],
            Poro => vec![PORO],
            Viking => vec![PORO, r"\p{N}"],
            Tekken => vec![TEKKEN],
            Gpt4o => vec![GPT4O],
        }
    }

    /// Whether BOS is added when `tokenizer.ggml.add_bos_token` is absent.
    pub fn default_add_bos(self) -> bool {
        matches!(self, PreKind::Llama3 | PreKind::Tekken)
    }

    /// Whether a whole pre-token found in the vocabulary skips the merges (Llama 3, Tekken).
    pub fn ignore_merges(self) -> bool {
        matches!(self, PreKind::Llama3 | PreKind::Tekken)
    }
}

/// A compiled pre-tokenizer.
#[derive(Debug)]
pub struct PreTokenizer {
    kind: PreKind,
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    /// The pre-tokenizer named by `tokenizer.ggml.pre`; an unknown name is an error.
    pub fn from_name(name: &str) -> Result<PreTokenizer, TokenizerError> {
        let kind = PreKind::from_name(name)
            .ok_or_else(|| TokenizerError::UnknownPreTokenizer(name.to_string()))?;
        PreTokenizer::new(kind)
    }

    pub fn new(kind: PreKind) -> Result<PreTokenizer, TokenizerError> {
        let regexes = kind
            .patterns()
            .into_iter()
            .map(|p| Regex::new(p).map_err(|e| TokenizerError::Regex(format!("{kind:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(PreTokenizer { kind, regexes })
    }

    pub fn kind(&self) -> PreKind {
        self.kind
    }

    /// Splits `text` into pre-tokens (their concatenation is `text`).
    pub fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut pieces: Vec<(usize, usize)> = vec![(0, text.len())];
        let mut next = Vec::new();
        for re in &self.regexes {
            next.clear();
            for &(start, end) in &pieces {
                split_range(re, text, start, end, &mut next);
            }
            std::mem::swap(&mut pieces, &mut next);
        }
        pieces
            .into_iter()
            .filter(|&(s, e)| e > s)
            .map(|(s, e)| &text[s..e])
            .collect()
    }
}

/// Splits `text[start..end]` into matches of `re` and the gaps between them. The regex sees
/// only that piece (so `$` and lookaheads stop at its end), as in llama.cpp.
fn split_range(re: &Regex, text: &str, start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let piece = &text[start..end];
    let mut last = 0;
    for m in re.find_iter(piece) {
        // A backtracking limit hit on pathological input leaves the rest of the piece whole
        // rather than failing the whole prompt.
        let Ok(m) = m else { break };
        if m.start() == m.end() {
            continue;
        }
        if m.start() > last {
            out.push((start + last, start + m.start()));
        }
        out.push((start + m.start(), start + m.end()));
        last = m.end();
    }
    if last < piece.len() {
        out.push((start + last, end));
    }
}
