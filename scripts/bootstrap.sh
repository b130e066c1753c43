#!/usr/bin/env bash
# Set up .venv for evolver: `scripts/bootstrap.sh` (run) or `scripts/bootstrap.sh --dev` (run + tests).
#
# - Uses the machine's python3 (>= 3.11; $PYTHON overrides the choice): a plain interpreter, a
#   virtual environment (a GPU image's /opt/torch/.venv/bin/python) or a conda environment.
# - torch: a torch that python already imports (>= $MIN_TORCH; CUDA or not) is kept, never reinstalled:
#   the venv sees that python's packages (--system-site-packages, plus a .pth file naming its
#   site-packages, since a venv made from a venv sees only the base interpreter's); otherwise
#   torch==$TORCH_VERSION is installed (the CPU wheel where the package index offers one).
# - Then evolver itself, editable, with a constraints file pinning torch to the installed version,
#   so no dependency can upgrade it into gigabytes of CUDA packages.
# - Idempotent: a stamp records what was installed; a second run with nothing changed takes a second.
set -euo pipefail

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bootstrap: unknown argument $arg (expected --dev)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
VENV="$ROOT/.venv"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
MIN_TORCH="2.4"  # pyproject.toml's torch>=2.4 (a test checks they agree)

say() { echo "bootstrap: $*" >&2; }

pick_python() {
  local c
  for c in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}

# -- 1. the venv -----------------------------------------------------------------------------------
# Exit 0 when python $1 imports a torch evolver can use (any build: CUDA, ROCm, CPU).
usable_torch() {
  "$1" - "$MIN_TORCH" <<'PY' >/dev/null 2>&1
import sys
import torch
want = tuple(int(x) for x in sys.argv[1].split("."))
have = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:len(want)])
sys.exit(0 if have >= want else 1)
PY
}

# Make the venv see every site-packages directory on python $1's path: the base interpreter's come
# with --system-site-packages, but when $1 is itself a venv (or has a user site) its own would not.
# site.addsitedir also runs their .pth files (editable installs, namespace packages).
link_parent_site() {
  local purelib
  purelib="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  "$1" - > "$purelib/_evolver_parent_site.pth" <<'PY'
import os
import sys
for p in sys.path:
    if p and os.path.isdir(p) and os.path.basename(p) in ("site-packages", "dist-packages"):
        print(f"import site; site.addsitedir({os.path.abspath(p)!r})")
PY
}

if [ ! -x "$VENV/bin/python" ]; then
  PY="$(pick_python)" || { say "need python >= 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }
  say "creating .venv with $PY $("$PY" -c 'import platform; print(platform.python_version())')"
  if usable_torch "$PY"; then
    say "keeping the torch $PY already imports: $("$PY" -c 'import torch; print(torch.__version__, "from", torch.__file__)')"
    # With pip of its own the venv would also get ensurepip's setuptools (3.11), which shadows the
    # parent's and makes pip fetch a newer one for torch; the parent's pip serves the venv as well.
    WITHOUT_PIP=""
    "$PY" -m pip --version >/dev/null 2>&1 && WITHOUT_PIP="--without-pip"
    "$PY" -m venv --system-site-packages $WITHOUT_PIP "$VENV"
    link_parent_site "$PY"
  else
    "$PY" -m venv "$VENV"
  fi
fi
VPY="$VENV/bin/python"
# -- 2. the stamp: skip everything when nothing changed -------------------------------------------
fingerprint() {
  {
    "$VPY" -c 'import sys; print(sys.version)'
    cat pyproject.toml "$SELF"
    echo "dev=$1 torch=$TORCH_VERSION"
  } | sha256sum | cut -d' ' -f1
}
stamp_ok() {  # $1 = 0|1 (dev); a dev stamp also covers a plain run
  local want f
  for want in "$1" 1; do
    f="$VENV/.bootstrap-$( [ "$want" = 1 ] && echo dev || echo run )"
    if [ -f "$f" ] && [ "$(cat "$f")" = "$(fingerprint "$want")" ] && [ -x "$VENV/bin/evolver" ]; then
      return 0
    fi
  done
  return 1
}
if stamp_ok "$DEV"; then
  exit 0
fi

# pip, minus the warning this machine's pip config prints for each package its local index lacks.
pip_install() {
  "$VPY" -m pip --disable-pip-version-check install -q "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
  return "${PIPESTATUS[0]}"
}

# -- 3. torch ----------------------------------------------------------------------------------------
torch_version() { "$VPY" -c 'import torch; print(torch.__version__)' 2>/dev/null || true; }
have="$(torch_version)"
if [ -n "$have" ] && usable_torch "$VPY"; then
  say "torch $have kept ($("$VPY" -c 'import torch; print("CUDA " + torch.version.cuda if torch.version.cuda else "no CUDA")'))"
else
  say "installing torch==$TORCH_VERSION"
  pip_install "torch==$TORCH_VERSION"
  have="$(torch_version)"
fi
[ -n "$have" ] || { say "torch did not install"; exit 1; }

# -- 4. evolver (editable) with torch pinned ------------------------------------------------------
CONSTRAINTS="$VENV/constraints.txt"
echo "torch==$have" > "$CONSTRAINTS"
TARGET="."
[ "$DEV" = 1 ] && TARGET=".[dev]"
say "installing evolver${TARGET#.} (editable; torch pinned to $have)"
pip_install -c "$CONSTRAINTS" -e "$TARGET"

after="$(torch_version)"
[ "$after" = "$have" ] || { say "torch changed from $have to $after: refusing"; exit 1; }
"$VENV/bin/evolver" --help >/dev/null
fingerprint "$DEV" > "$VENV/.bootstrap-$( [ "$DEV" = 1 ] && echo dev || echo run )"
say "ready: $VENV (torch $have)"
