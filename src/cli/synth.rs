//! `tandem synth`.

use clap::Args;

#[derive(Args, Debug)]
pub struct SynthArgs {}

pub fn run(_args: SynthArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tandem synth` is not implemented yet")
}
