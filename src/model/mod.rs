//! Model definitions: hyperparameters from metadata, weights bound by name, and one
//! forward pass written in backend operations for llama, qwen2, qwen3 and gemma3.

pub mod backend;
pub mod forward;
pub mod hparams;
pub mod weights;

pub use backend::{Act, ActWidths, AttnShape, Backend, SeqRun};
pub use forward::{forward, Batch, Output, Sides, StageTimes};
pub use hparams::{
    Activation, Arch, BlockFlags, BlockParams, Hparams, Pooling, RopePairing, RopeParams,
};
pub use weights::{BlockWeights, Head, ModelWeights, Split};
