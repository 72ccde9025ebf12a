//! `tandem tokenize`: print the token ids of a text, as llama-tokenize does.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "file"])))]
pub struct TokenizeArgs {
    /// GGUF model (a vocabulary-only file works too)
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Text to tokenize
    #[arg(short = 'p', long = "prompt")]
    pub prompt: Option<String>,
    /// File whose bytes to tokenize, exactly (a final newline is kept)
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Do not add BOS/EOS even where the model's metadata asks for them
    #[arg(long)]
    pub no_bos: bool,
    /// Treat control tokens written in the text as plain text
    #[arg(long)]
    pub no_parse_special: bool,
    /// Print only the ids, as one line `[id, id, ...]`
    #[arg(long)]
    pub ids: bool,
}

pub fn run(args: TokenizeArgs) -> anyhow::Result<()> {
    let text = match (&args.prompt, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not valid UTF-8 (first bad byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                )
            })?
        }
        (None, None) => anyhow::bail!("give the text with -p TEXT or -f FILE"),
    };
    let file = GgufFile::open(&args.model)?;
    let tok = Tokenizer::from_gguf(file.metadata())
        .with_context(|| format!("cannot build the tokenizer of {}", args.model.display()))?;
    let ids = tok.encode(&text, !args.no_bos, !args.no_parse_special);

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.ids {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "[{}]", list.join(", "))?;
    } else {
        for &id in &ids {
            writeln!(out, "{id:6} -> '{}'", printable(tok.token_piece(id)))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The piece as text, with bytes that are not part of valid UTF-8 written as `\xNN`.
pub fn printable(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        s.push_str(chunk.valid());
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02X}"));
        }
    }
    s
}
