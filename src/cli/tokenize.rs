//! `tandem tokenize`.

use clap::Args;

#[derive(Args, Debug)]
pub struct TokenizeArgs {}

pub fn run(_args: TokenizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tandem tokenize` is not implemented yet")
}
