#!/usr/bin/env bash
# One shot on a GPU machine: set-up, the GPU tests, the main job, and the generation, training and
# memory benches; every figure lands in $OUT (default ./gpu-bench-<time>) and a summary is printed.
#
#   scripts/gpu_bench.sh [--quick]      # --quick: 1 generation of the main job, 3 of the memory bench
#
# Set-up keeps the image's CUDA torch (scripts/bootstrap.sh; PYTHON=/path/to/python picks it).
# Nothing is fetched from a model hub: the main job evolves the embedded world. Each step has its own
# time limit, so one that hangs cannot eat the others' time; a failed step is reported and the rest run.
set -uo pipefail

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/gpu-bench-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
GENS=3 MEM_GENS=10
[ "$QUICK" = 1 ] && GENS=1 MEM_GENS=3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

step() {  # step NAME LIMIT_S COMMAND...: run, time, log to $OUT/NAME.log, note the outcome
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS rc
  echo "== $name" | tee -a "$SUMMARY"
  timeout --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  echo "   exit $rc after $((SECONDS - t0)) s (log: $OUT/$name.log)" | tee -a "$SUMMARY"
  return 0
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
step bootstrap 900 scripts/bootstrap.sh --dev
PY="$ROOT/.venv/bin/python"
EV="$ROOT/.venv/bin/evolver"
step env 60 "$EV" env
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
  || { echo "no CUDA device visible to $PY: stopping" | tee -a "$SUMMARY"; exit 1; }

# GPU tests: device sampling noise, fp32 for small models, merge.
step gpu_tests 600 "$PY" -m pytest -q -m gpu tests/test_gpu.py
# The main job: the embedded world, GENS generations, with GPU memory sampled every 5 s.
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -l 5 > "$OUT/nvidia-smi.csv" 2>&1 &
SMI=$!
step main_job 3600 "$EV" --set state_dir="$OUT/state" run --generations "$GENS"
kill "$SMI" 2>/dev/null
step lineage 120 "$EV" --set state_dir="$OUT/state" lineage
for g in $(seq 1 "$GENS"); do
  "$EV" --set state_dir="$OUT/state" show "$g" > "$OUT/show-$g.txt" 2>&1 || true
done
step generate_bench 1200 "$PY" bench/generate.py --n 256
step train_bench 1800 "$PY" bench/train.py --rows 500
step memory_bench 3600 "$PY" bench/memory.py --generations "$MEM_GENS"

{
  echo
  echo "GPU: $(cat "$OUT/gpu.txt")"
  echo "-- lineage (main job, $GENS generations)"; cat "$OUT/lineage.log"
  echo "-- child peaks per phase (show N)"; grep -h "peak RSS" "$OUT"/show-*.txt
  echo "-- GPU memory used (MiB) over the main job: max $(awk -F', ' '{gsub(/ MiB/,"",$2); if ($2>m) m=$2} END {print m}' "$OUT/nvidia-smi.csv"), utilisation max $(awk -F', ' '{gsub(/ %/,"",$3); if ($3>m) m=$3} END {print m}' "$OUT/nvidia-smi.csv") %"
  echo "-- bench/generate.py"; tail -n 15 "$OUT/generate_bench.log"
  echo "-- bench/train.py"; tail -n 12 "$OUT/train_bench.log"
  echo "-- bench/memory.py"; tail -n 16 "$OUT/memory_bench.log"
} | tee -a "$SUMMARY"
echo "all figures: $OUT"
