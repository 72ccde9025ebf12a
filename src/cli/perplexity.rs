//! `tandem perplexity`.

use clap::Args;

#[derive(Args, Debug)]
pub struct PerplexityArgs {}

pub fn run(_args: PerplexityArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tandem perplexity` is not implemented yet")
}
