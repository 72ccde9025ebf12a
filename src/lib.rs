//! tandem: runs quantized GGUF language models split between a GPU and the CPU.
//!
//! The layout follows the data path: `gguf` reads and writes files, `quant` knows the
//! block formats, `tokenizer` turns text into ids, `model` defines each architecture once
//! in terms of backend operations, `cpu` (and later `gpu`) run those operations, and
//! `engine` drives prefill, decode and sampling. `cli` holds the commands.

pub mod bench;
pub mod chat;
pub mod cli;
pub mod cpu;
pub mod embedding;
pub mod engine;
pub mod gguf;
pub mod gpu;
pub mod kv;
pub mod model;
pub mod plan;
pub mod quant;
pub mod sampling;
pub mod serve;
pub mod synth;
pub mod tokenizer;
pub mod weight_types;
