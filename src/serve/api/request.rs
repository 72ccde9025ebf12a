//! The request bodies of the OpenAI API, as far as tandem honours them. Fields tandem does
//! not know are ignored (clients send many); known fields of the wrong type are a 400.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;
use crate::sampling::SamplerParams;

/// Parses a JSON body, turning every failure into an OpenAI-style 400.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            "the request body is empty; send a JSON object",
        ));
    }
    // The path names the offending field (`messages[1].content: ...`).
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" {
            ApiError::invalid(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::invalid(format!("invalid JSON body: `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// One string or a list of them.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged, expecting = "a string or an array of strings")]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The sampling and length fields chat and text completions share. Unset fields take
/// llama-server's defaults (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05).
#[derive(Deserialize, Debug, Default, Clone)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub seed: Option<u64>,
    pub max_tokens: Option<usize>,
    /// The newer name of max_tokens in the chat API.
    pub max_completion_tokens: Option<usize>,
    pub stop: Option<OneOrMany>,
    pub n: Option<usize>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub logprobs: Option<serde_json::Value>,
    /// llama-server's extension: keep going past end-of-generation tokens (benchmarks).
    #[serde(default)]
    pub ignore_eos: bool,
}

impl Sampling {
    /// Checks ranges and builds the sampler settings; `fresh_seed` is used when the request
    /// names none.
    pub fn params(&self, fresh_seed: u64) -> Result<SamplerParams, ApiError> {
        let defaults = SamplerParams::default();
        let temp = self.temperature.unwrap_or(defaults.temp);
        if !(0.0..=2.0).contains(&temp) {
            return Err(ApiError::invalid_param(
                "temperature",
                format!("temperature must be between 0 and 2, got {temp}"),
            ));
        }
        let unit = |name: &'static str, v: Option<f32>, default: f32| match v {
            Some(x) if !(0.0..=1.0).contains(&x) => Err(ApiError::invalid_param(
                name,
                format!("{name} must be between 0 and 1, got {x}"),
            )),
            Some(x) => Ok(x),
            None => Ok(default),
        };
        let top_p = unit("top_p", self.top_p, defaults.top_p)?;
        let min_p = unit("min_p", self.min_p, defaults.min_p)?;
        let repeat_penalty = self.repeat_penalty.unwrap_or(defaults.repeat_penalty);
        if !(repeat_penalty.is_finite() && repeat_penalty > 0.0) {
            return Err(ApiError::invalid_param(
                "repeat_penalty",
                format!("repeat_penalty must be positive, got {repeat_penalty}"),
            ));
        }
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if v.is_some_and(|x| x != 0.0) {
                return Err(ApiError::invalid_param(
                    name,
                    format!("{name} is not supported; use repeat_penalty"),
                ));
            }
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid_param(
                "n",
                "only one choice per request (n = 1) is supported; send several requests",
            ));
        }
        if self
            .logprobs
            .as_ref()
            .is_some_and(|v| !v.is_null() && v != &serde_json::Value::Bool(false))
        {
            return Err(ApiError::invalid_param(
                "logprobs",
                "logprobs are not supported",
            ));
        }
        Ok(SamplerParams {
            temp,
            top_k: self.top_k.unwrap_or(defaults.top_k),
            top_p,
            min_p,
            repeat_penalty,
            seed: self.seed.unwrap_or(fresh_seed),
            ..defaults
        })
    }

    pub fn max_tokens(&self) -> Option<usize> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn stops(&self) -> Vec<String> {
        self.stop
            .clone()
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
    }
}

#[derive(Deserialize, Debug, Clone, Default)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// The content of a chat message: a string, or a list of parts of which only text is
/// understood.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged, expecting = "a string or an array of content parts")]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize, Debug, Clone)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

impl Content {
    pub fn into_text(self) -> Result<String, ApiError> {
        match self {
            Content::Text(s) => Ok(s),
            Content::Parts(parts) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(ApiError::invalid_param(
                                "messages",
                                format!(
                                    "content parts of type `{kind}` are not supported (text only)"
                                ),
                            ))
                        }
                    }
                }
                Ok(text)
            }
        }
    }
}

#[derive(Deserialize, Debug, Clone)]
pub struct Message {
    pub role: String,
    pub content: Option<Content>,
}

#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub tools: Option<Vec<serde_json::Value>>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// A text completion's prompt: text, or token ids.
#[derive(Deserialize, Debug, Clone)]
#[serde(
    untagged,
    expecting = "a string, an array of strings or an array of token ids"
)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: Prompt,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub echo: bool,
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// An embedding request's input: text(s) or token ids.
#[derive(Deserialize, Debug, Clone)]
#[serde(
    untagged,
    expecting = "a string, an array of strings, token ids or arrays of token ids"
)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Deserialize, Debug)]
pub struct EmbeddingRequest {
    pub model: Option<String>,
    pub input: EmbeddingInput,
    pub encoding_format: Option<String>,
    pub dimensions: Option<usize>,
}
