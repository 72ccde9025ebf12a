//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The real gemma3 270M Q4_K_M file. Tests that need it fail (never skip) when it is
/// missing: `scripts/fetch-model.sh` puts it in place.
pub fn gemma3_path() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-model.sh first",
        p.display()
    );
    p
}

/// A file from the shared test data (../shared/testdata next to the repository, or the
/// copy inside tests/data).
pub fn testdata(rel: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for base in [root.join("tests/data"), root.join("../shared/testdata")] {
        let p = base.join(rel);
        if p.exists() {
            return p;
        }
    }
    panic!("test data {rel} not found under tests/data or ../shared/testdata");
}
