//! `tandem run`.

use clap::Args;

#[derive(Args, Debug)]
pub struct RunArgs {}

pub fn run(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tandem run` is not implemented yet")
}
