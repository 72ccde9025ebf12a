//! Chat support: rendering a conversation with the model's Jinja chat template, and
//! reusing the evaluated prefix of a conversation between turns.

mod prefix;
mod session;
mod strftime;
mod template;

pub use prefix::common_prefix_len;
pub use session::{generate, ChatModel, ContextTokens, StopReason};
pub use template::{ChatMessage, ChatTemplate, TemplateOrigin};
