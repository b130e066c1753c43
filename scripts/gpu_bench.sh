#!/usr/bin/env bash
# One shot on a GPU machine: set-up, the GPU tests, the main job, and the generation, training and
# memory benches; every figure lands in $OUT (default ./gpu-bench-<time>) and a summary is printed.
#
#   scripts/gpu_bench.sh [--quick] [--no-bootstrap] [--long N]
#     --quick         1 generation of the main job, 3 of the memory bench
#     --no-bootstrap  use $PYTHON (default python3) as it is, with evolver on PYTHONPATH: for a machine
#                     with no package index, whose missing packages were installed beforehand (wheels)
#     --long N        after the benches, go on with the main job's store to N generations (bench/long_run.py)
# Each step's time limit can be set (MAIN_LIMIT, BENCH_LIMIT, LONG_LIMIT seconds), and DEADLINE (epoch
# seconds) cuts every limit so that nothing runs past it; NO_MEMORY=1 is SKIP=memory_bench;
# SKIP="train_bench gpu_tests" leaves out the steps it names (a short lease measures what is still
# missing); MEM_GENS sets bench/memory.py's generations (default 10, 3 with --quick) and GEN_N
# bench/generate.py's questions per level (default 32: its one-at-a-time half takes minutes on a GPU).
#
# Set-up keeps the image's CUDA torch (scripts/bootstrap.sh; PYTHON=/path/to/python picks it).
# Nothing is fetched from a model hub: the main job evolves the embedded world. Each step has its own
# time limit, so one that hangs cannot eat the others' time; a failed step is reported and the rest run.
set -uo pipefail

QUICK=0 BOOT=1 LONG=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-bootstrap) BOOT=0 ;;
    --long) LONG="${2:?--long needs a number of generations}"; shift ;;
    *) echo "gpu_bench: unknown argument $1 (expected --quick, --no-bootstrap, --long N)" >&2; exit 2 ;;
  esac
  shift
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/gpu-bench-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
GENS=3 MEM_GENS="${MEM_GENS:-10}"
[ -n "${NO_MEMORY:-}" ] && SKIP="${SKIP:-} memory_bench"
[ "$QUICK" = 1 ] && GENS=1 MEM_GENS=3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

step() {  # step NAME LIMIT_S COMMAND...: run, time, log to $OUT/NAME.log, note the outcome
  local name="$1" limit="$2"; shift 2
  local t0=$SECONDS rc
  echo "== $name" | tee -a "$SUMMARY"
  case " ${SKIP:-} " in *" $name "*) echo "   skipped: SKIP names it" | tee -a "$SUMMARY"; return 0 ;; esac
  if [ -n "${DEADLINE:-}" ]; then  # DEADLINE (epoch seconds): no step runs past it
    local left=$((DEADLINE - $(date +%s)))
    [ "$left" -lt "$limit" ] && limit=$left
    [ "$limit" -le 10 ] && { echo "   skipped: DEADLINE reached" | tee -a "$SUMMARY"; return 0; }
  fi
  timeout --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  echo "   exit $rc after $((SECONDS - t0)) s (log: $OUT/$name.log)" | tee -a "$SUMMARY"
  return 0
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
if [ "$BOOT" = 1 ]; then
  step bootstrap 900 scripts/bootstrap.sh --dev
  PY="$ROOT/.venv/bin/python"
else
  PY="${PYTHON:-python3}"
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
EV=("$PY" -m evolver)
step env 60 "${EV[@]}" env || true
grep -q "^evolver" "$OUT/env.log" || { echo "evolver does not start: stopping (see $OUT/env.log)" | tee -a "$SUMMARY"; exit 1; }
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
  || { echo "no CUDA device visible to $PY: stopping" | tee -a "$SUMMARY"; exit 1; }

# The main job: the embedded world, GENS generations, with GPU memory sampled every 5 s.
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -l 5 > "$OUT/nvidia-smi.csv" 2>&1 &
SMI=$!
step main_job "${MAIN_LIMIT:-3600}" "${EV[@]}" --set state_dir="$OUT/state" run --generations "$GENS"
kill "$SMI" 2>/dev/null
step lineage 120 "${EV[@]}" --set state_dir="$OUT/state" lineage
for g in $(seq 1 "$GENS"); do
  "${EV[@]}" --set state_dir="$OUT/state" show "$g" > "$OUT/show-$g.txt" 2>&1 || true
done
step generate_bench "${BENCH_LIMIT:-1200}" "$PY" bench/generate.py --n "${GEN_N:-32}"
step train_bench "${BENCH_LIMIT:-1800}" "$PY" bench/train.py --rows 500
# GPU tests: device sampling noise, fp32 for small models, merge.
step gpu_tests "${BENCH_LIMIT:-600}" "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
[ "$QUICK" = 1 ] || step memory_bench 3600 "$PY" bench/memory.py --generations "$MEM_GENS"
# The same store, on to LONG generations (resumes where the main job stopped).
[ "$LONG" -gt 0 ] && step long_run "${LONG_LIMIT:-3600}" "$PY" bench/long_run.py --config "$ROOT/evolver.toml" --state "$OUT/state" --generations "$LONG"

{
  echo
  echo "GPU: $(cat "$OUT/gpu.txt")"
  echo "-- lineage (main job, $GENS generations)"; cat "$OUT/lineage.log"
  echo "-- child peaks per phase (show N)"; grep -h "peak RSS" "$OUT"/show-*.txt
  echo "-- GPU memory used (MiB) over the main job: max $(awk -F', ' '{gsub(/ MiB/,"",$2); if ($2>m) m=$2} END {print m}' "$OUT/nvidia-smi.csv"), utilisation max $(awk -F', ' '{gsub(/ %/,"",$3); if ($3>m) m=$3} END {print m}' "$OUT/nvidia-smi.csv") %"
  echo "-- bench/generate.py"; tail -n 15 "$OUT/generate_bench.log"
  echo "-- bench/train.py"; tail -n 12 "$OUT/train_bench.log"
  [ -f "$OUT/memory_bench.log" ] && { echo "-- bench/memory.py"; tail -n 16 "$OUT/memory_bench.log"; }
  [ -f "$OUT/long_run.log" ] && { echo "-- bench/long_run.py ($LONG generations)"; tail -n 60 "$OUT/long_run.log"; }
} | tee -a "$SUMMARY"
echo "all figures: $OUT"
