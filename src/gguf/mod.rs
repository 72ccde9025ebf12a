//! GGUF files: a validating zero-copy reader and a streaming writer.
