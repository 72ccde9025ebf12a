//! `tandem quantize`.

use clap::Args;

#[derive(Args, Debug)]
pub struct QuantizeArgs {}

pub fn run(_args: QuantizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tandem quantize` is not implemented yet")
}
