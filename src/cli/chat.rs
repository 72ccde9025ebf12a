//! `tandem chat`.

use clap::Args;

#[derive(Args, Debug)]
pub struct ChatArgs {}

pub fn run(_args: ChatArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tandem chat` is not implemented yet")
}
