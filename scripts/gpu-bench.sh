#!/usr/bin/env bash
# Every GPU measurement in one run, sized to fit 10 minutes on a lent GPU machine:
# the adapters, a synthetic 7B Q4_K_M model, then `tandem bench` on the CPU and with
# every block on the GPU (pp512, tg128), with the per-kernel GPU profile. The report
# (Markdown, with the adapter named) goes to $REPORT, and into docs/perf.md with --append.
#
# Environment: TANDEM (the binary; default target/release/tandem, built when missing),
# PRESET (default 7b), TYPE (Q4_K_M), MODEL (an existing model instead of a synthetic
# one), P (512), N (128), REPS (2), NGL (0,all), WORK (where the model is written;
# default /tmp/tandem-gpu-bench), REPORT (default $OUT/gpu-bench.md when $OUT is set,
# else target/gpu-bench.md). On lavapipe, e.g. PRESET=1b P=16 N=8 REPS=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

append=false
case "${1:-}" in
    --append) append=true ;;
    "") ;;
    *) echo "usage: $0 [--append]" >&2; exit 2 ;;
esac

TANDEM="${TANDEM:-target/release/tandem}"
if [ ! -x "$TANDEM" ]; then
    cargo build --release --bin tandem
    TANDEM=target/release/tandem
fi
PRESET="${PRESET:-7b}"
TYPE="${TYPE:-Q4_K_M}"
P="${P:-512}"
N="${N:-128}"
REPS="${REPS:-2}"
NGL="${NGL:-0,all}"
WORK="${WORK:-/tmp/tandem-gpu-bench}"
if [ -n "${OUT:-}" ]; then
    REPORT="${REPORT:-$OUT/gpu-bench.md}"
else
    REPORT="${REPORT:-target/gpu-bench.md}"
fi
mkdir -p "$WORK" "$(dirname "$REPORT")"
# Mesa's drivers complain on stderr when this is unset.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
fi

MODEL="${MODEL:-$WORK/synth-$PRESET-$TYPE.gguf}"
if [ ! -f "$MODEL" ]; then
    started=$SECONDS
    "$TANDEM" synth --arch llama --preset "$PRESET" --type "$TYPE" --block-pool \
        --vocab tests/data/tokenizer/ggml-vocab-llama-spm.gguf -o "$MODEL"
    echo "synthesized $MODEL in $((SECONDS - started)) s" >&2
fi

# The adapter the bench picks: the first listed, "[0] NAME (default)".
adapter="$("$TANDEM" devices 2>&1 | sed -n '/^ *\[0\]/{s/^ *\[0\] *//; s/ (default)$//; p}' | head -n 1)"
{
    echo "## GPU run ($(date -u +%Y-%m-%d), ${adapter:-adapter unknown})"
    echo
    echo "Host: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) threads."
    echo "Command: \`scripts/gpu-bench.sh\` (tandem $(git rev-parse --short HEAD 2>/dev/null || echo '?'))."
    echo
    echo '```'
    "$TANDEM" devices 2>&1
    echo '```'
    echo
    "$TANDEM" bench -m "$MODEL" --gpu-layers "$NGL" -p "$P" -n "$N" -r "$REPS" --gpu-profile 2>&1
} | tee "$REPORT"

if $append; then
    { echo; cat "$REPORT"; } >> docs/perf.md
    echo "appended to docs/perf.md" >&2
fi
echo "report: $REPORT" >&2
