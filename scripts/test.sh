#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian machine (the test model,
# Mesa's software Vulkan driver for the GPU tests), then runs the checks CI runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/fetch-model.sh
scripts/install-vulkan.sh

# Mesa's drivers complain on stderr when this is unset; a private directory quiets them.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
fi

cargo fmt --check
cargo clippy --all-targets --release -- -D warnings
cargo test --release
scripts/openai-client-check.sh
