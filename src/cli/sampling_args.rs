//! The sampling flags `tandem run` and `tandem chat` share.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;

use crate::sampling::SamplerParams;

/// Sampling flags, with llama.cpp's names and defaults.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature (0 = greedy)
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Top-k sampling (0 = off)
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (nucleus) sampling (1.0 = off)
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p sampling (0.0 = off)
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalty for repeated tokens (1.0 = off)
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty considers (0 = off)
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed (default: from the clock)
    #[arg(short = 's', long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// Checks ranges and builds the sampler settings.
    pub fn to_params(&self) -> anyhow::Result<SamplerParams> {
        anyhow::ensure!(
            self.temp.is_finite(),
            "--temp must be a number, got {}",
            self.temp
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.top_p),
            "--top-p must be between 0 and 1, got {}",
            self.top_p
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.min_p),
            "--min-p must be between 0 and 1, got {}",
            self.min_p
        );
        anyhow::ensure!(
            self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0,
            "--repeat-penalty must be positive, got {}",
            self.repeat_penalty
        );
        let seed = self.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Ok(SamplerParams {
            temp: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed,
        })
    }
}
