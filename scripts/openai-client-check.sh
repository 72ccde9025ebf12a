#!/usr/bin/env bash
# Runs scripts/openai-client-check.py (the official `openai` Python client against
# `tandem serve`) in a private virtual environment under target/, installing Python's venv
# module and the client from PyPI when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    echo "openai-client-check: installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq python3 python3-venv >/dev/null
fi
venv=target/openai-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import openai" >/dev/null 2>&1; then
    "$venv/bin/pip" install -q openai
fi
cargo build --release --bin tandem
"$venv/bin/python" scripts/openai-client-check.py --tandem target/release/tandem
