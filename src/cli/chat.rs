//! `tandem chat`: an interactive conversation on stdin/stdout using the model's chat template.
//!
//! Each turn renders the whole conversation, reuses the KV cache for the part already
//! evaluated, streams the reply, and stops at an end-of-generation token.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::placement_args::PlacementArgs;
use crate::chat::{
    common_prefix_len, generate, ChatMessage, ChatModel, ChatTemplate, ContextTokens, StopReason,
};
use crate::engine::{Engine, EngineOptions};
use crate::gguf::GgufFile;
use crate::sampling::Sampler;

use super::sampling_args::SamplingArgs;
use crate::tokenizer::{StreamDecoder, Tokenizer};

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// Model file (GGUF)
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// System prompt
    #[arg(long)]
    pub system: Option<String>,
    /// Context size in tokens (default: the model's, at most 4096)
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Threads (default: physical cores)
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Most tokens per reply (-1 = until the model ends its turn or the context is full)
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    pub n_predict: i64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

impl ChatModel for Engine {
    fn eval(&mut self, tokens: &[u32]) -> anyhow::Result<&[f32]> {
        Engine::eval(self, tokens)
    }
    fn truncate(&mut self, n: usize) {
        Engine::truncate(self, n)
    }
    fn n_past(&self) -> usize {
        Engine::n_past(self)
    }
    fn n_ctx(&self) -> usize {
        Engine::n_ctx(self)
    }
}

/// The conversation and everything needed to render and tokenize it.
struct Conversation<'a> {
    template: &'a ChatTemplate,
    tokenizer: &'a Tokenizer,
    system: Option<String>,
    messages: Vec<ChatMessage>,
}

impl Conversation<'_> {
    fn restart(&mut self) {
        self.messages.clear();
        if let Some(system) = &self.system {
            self.messages.push(ChatMessage::system(system.clone()));
        }
    }

    /// The token ids of the whole conversation, ending with the assistant's turn opening.
    fn prompt_tokens(&self) -> anyhow::Result<Vec<u32>> {
        let text = self.template.render(&self.messages, true)?;
        let add_bos = self
            .template
            .should_add_bos(&text, self.tokenizer.add_bos());
        Ok(self.tokenizer.encode(&text, add_bos, true))
    }
}

pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let params = args.sampling.to_params()?;
    let max_tokens = usize::try_from(args.n_predict).ok();
    let file = GgufFile::open(&args.model)?;
    let template = ChatTemplate::from_gguf(&file)?;
    let mut engine = Engine::load(
        &args.model,
        EngineOptions {
            n_ctx: args.ctx_size,
            n_threads: args.threads,
            ..args.placement.apply(EngineOptions::default())
        },
    )?;
    super::placement_args::report_auto_plan(&engine);
    if let Some(placement) = engine.placement_summary() {
        eprintln!("{placement}");
    }

    // A shared handle: the streaming decoder holds the tokenizer while generation needs
    // the engine mutably.
    let tokenizer = engine.shared_tokenizer();
    let info = engine.model_info();
    eprintln!(
        "tandem chat: {} ({}), context {} tokens, {} threads, seed {}",
        info.name.as_deref().unwrap_or(&info.arch),
        info.file_type,
        engine.n_ctx(),
        engine.n_threads(),
        params.seed
    );
    if let crate::chat::TemplateOrigin::Builtin(name) = template.origin() {
        eprintln!("note: the model file has no chat template; using the built-in {name} format");
    }
    eprintln!("type a message and press Enter; Ctrl-D ends the chat");

    let mut conversation = Conversation {
        template: &template,
        tokenizer: &tokenizer,
        system: args.system.clone(),
        messages: Vec::new(),
    };
    conversation.restart();
    let mut context = ContextTokens::new();
    let mut sampler = Sampler::new(params);

    let mut stats = Stats::default();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut stdout = std::io::stdout();
    let mut line = Vec::new();
    loop {
        write!(stdout, "> ")?;
        stdout.flush()?;
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            writeln!(stdout)?;
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        conversation.messages.push(ChatMessage::user(text));
        let Some(prompt) = fit_prompt(&mut conversation, engine.n_ctx())? else {
            continue;
        };

        let cached = common_prefix_len(context.tokens(), &prompt).min(prompt.len() - 1);
        let started = Instant::now();
        let logits = context.sync(&mut engine, &prompt)?;
        stats.prompt_tokens += prompt.len() - cached;
        stats.prompt_secs += started.elapsed().as_secs_f64();

        let started = Instant::now();
        let mut decoder = StreamDecoder::new(&tokenizer, false);
        let mut reply = String::new();
        let mut write_error = None;
        let (generated, reason) = generate(
            &mut engine,
            &mut context,
            &mut sampler,
            logits,
            max_tokens,
            |t| tokenizer.is_end_of_generation(t),
            |t| {
                let piece = decoder.push(t);
                reply.push_str(&piece);
                if let Err(e) = write!(stdout, "{piece}").and_then(|_| stdout.flush()) {
                    write_error.get_or_insert(e);
                }
            },
        )?;
        let tail = decoder.finish();
        reply.push_str(&tail);
        writeln!(stdout, "{tail}")?;
        if let Some(e) = write_error {
            return Err(e.into());
        }
        stats.generated_tokens += generated.len();
        stats.generation_secs += started.elapsed().as_secs_f64();
        if reason == StopReason::ContextFull {
            eprintln!(
                "[context full: the reply was cut; the next message starts a new conversation]"
            );
        }
        conversation.messages.push(ChatMessage::assistant(reply));
    }
    stats.report();
    Ok(())
}

/// Totals over the session, reported on exit.
#[derive(Default)]
struct Stats {
    prompt_tokens: usize,
    prompt_secs: f64,
    generated_tokens: usize,
    generation_secs: f64,
}

impl Stats {
    fn report(&self) {
        let rate = |n: usize, secs: f64| n as f64 / secs.max(1e-9);
        eprintln!(
            "prompt: {} tokens evaluated in {:.2} s ({:.1} t/s); replies: {} tokens in {:.2} s ({:.1} t/s)",
            self.prompt_tokens,
            self.prompt_secs,
            rate(self.prompt_tokens, self.prompt_secs),
            self.generated_tokens,
            self.generation_secs,
            rate(self.generated_tokens, self.generation_secs),
        );
    }
}

/// Tokenizes the conversation; when it no longer fits (leaving room for a reply), starts a
/// new one from the system prompt and the last message. Returns `None` (after saying why)
/// when even that is too long.
fn fit_prompt(conversation: &mut Conversation, n_ctx: usize) -> anyhow::Result<Option<Vec<u32>>> {
    let tokens = conversation.prompt_tokens()?;
    if tokens.len() < n_ctx {
        return Ok(Some(tokens));
    }
    let last = conversation
        .messages
        .pop()
        .expect("the user's message was just added");
    conversation.restart();
    conversation.messages.push(last);
    let tokens = conversation.prompt_tokens()?;
    if tokens.len() < n_ctx {
        eprintln!("[context full: starting a new conversation]");
        return Ok(Some(tokens));
    }
    eprintln!(
        "error: that message needs {} tokens but the context holds {n_ctx}; raise -c or send a shorter one",
        tokens.len()
    );
    conversation.messages.pop();
    Ok(None)
}
