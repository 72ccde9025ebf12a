//! Rendering a conversation with a Jinja chat template (as Hugging Face tokenizers do).
//!
//! Templates come from the GGUF's `tokenizer.chat_template`. Files without one get a built-in
//! template chosen by architecture (gemma's turn format for gemma models, ChatML otherwise);
//! callers can tell from [`ChatTemplate::origin`] and should say so to the user.

use anyhow::{anyhow, Context};
use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use crate::gguf::GgufFile;

use super::strftime::strftime_now;

const GEMMA_TEMPLATE: &str = include_str!("builtin/gemma.jinja");
const CHATML_TEMPLATE: &str = include_str!("builtin/chatml.jinja");
const TEMPLATE_NAME: &str = "chat_template";

/// One turn of a conversation. `role` is "system", "user" or "assistant".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("assistant", content)
    }
}

/// Where a template came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// The model file's own `tokenizer.chat_template`.
    File,
    /// A built-in fallback, by name ("gemma" or "chatml").
    Builtin(&'static str),
}

/// A compiled chat template with the special-token texts it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    origin: TemplateOrigin,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

/// `raise_exception(msg)`: templates use it to reject malformed conversations.
fn raise_exception(message: String) -> Result<String, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

impl ChatTemplate {
    /// Compiles a template source. `bos_token`/`eos_token` are the texts of those tokens.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> anyhow::Result<ChatTemplate> {
        ChatTemplate::compile(source, TemplateOrigin::File, bos_token, eos_token)
    }

    /// The built-in template for an architecture without a template of its own.
    pub fn builtin_for_arch(arch: &str, bos_token: &str, eos_token: &str) -> ChatTemplate {
        let (name, source) = if arch.starts_with("gemma") {
            ("gemma", GEMMA_TEMPLATE)
        } else {
            ("chatml", CHATML_TEMPLATE)
        };
        ChatTemplate::compile(source, TemplateOrigin::Builtin(name), bos_token, eos_token)
            .expect("built-in chat templates compile")
    }

    /// The file's template, or the built-in one for its architecture when it has none.
    pub fn from_gguf(file: &GgufFile) -> anyhow::Result<ChatTemplate> {
        let meta = file.metadata();
        let token_text = |key: &str| -> String {
            let id = meta.opt_u64(key).ok().flatten();
            let tokens = meta
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.as_array())
                .and_then(|a| a.strings());
            match (id, tokens) {
                (Some(id), Some(tokens)) => tokens.get(id as usize).unwrap_or_default().to_string(),
                _ => String::new(),
            }
        };
        let bos = token_text("tokenizer.ggml.bos_token_id");
        let eos = token_text("tokenizer.ggml.eos_token_id");
        match meta.opt_str("tokenizer.chat_template")? {
            Some(source) => ChatTemplate::new(source, &bos, &eos)
                .context("the model's tokenizer.chat_template does not compile"),
            None => {
                let arch = meta.opt_str("general.architecture")?.unwrap_or_default();
                Ok(ChatTemplate::builtin_for_arch(arch, &bos, &eos))
            }
        }
    }

    fn compile(
        source: &str,
        origin: TemplateOrigin,
        bos_token: &str,
        eos_token: &str,
    ) -> anyhow::Result<ChatTemplate> {
        let mut env = Environment::new();
        // Hugging Face renders chat templates with these two options on.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Python string/dict methods (`.strip()`, `.startswith()`, `.items()`, ...).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| anyhow!("chat template syntax error: {e:#}"))?;
        Ok(ChatTemplate {
            env,
            origin,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    pub fn origin(&self) -> &TemplateOrigin {
        &self.origin
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Renders the conversation; with `add_generation_prompt` the text ends where the
    /// assistant's reply should begin.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> anyhow::Result<String> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| anyhow!("chat template: {e:#}"))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| anyhow!("chat template rendering failed: {e:#}"))
    }

    /// Whether a tokenizer that adds BOS by itself should still do so for `rendered`:
    /// not when the template already wrote the BOS token's text.
    pub fn should_add_bos(&self, rendered: &str, tokenizer_adds_bos: bool) -> bool {
        tokenizer_adds_bos && (self.bos_token.is_empty() || !rendered.starts_with(&self.bos_token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_fallback_renders_turns() {
        let t = ChatTemplate::builtin_for_arch("llama", "<s>", "</s>");
        assert_eq!(t.origin(), &TemplateOrigin::Builtin("chatml"));
        let text = t
            .render(&[ChatMessage::system("S"), ChatMessage::user("Hi")], true)
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_becomes_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('bad roles') }}", "", "").unwrap();
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("bad roles"), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }

    #[test]
    fn bos_is_not_doubled() {
        let t = ChatTemplate::builtin_for_arch("gemma3", "<bos>", "<eos>");
        assert!(!t.should_add_bos("<bos><start_of_turn>", true));
        assert!(t.should_add_bos("<start_of_turn>", true));
        assert!(!t.should_add_bos("<start_of_turn>", false));
    }
}
