"""Training child: `python -m evolver.training.child SPEC.json`.

Runs one phase (SFT or DPO) in its own process, so an out-of-memory kill or a CUDA error
takes down only this process; the daemon reads the result JSON (written last, atomically)
or, failing that, the exit status and stderr tail.

`EVOLVER_TRAIN_CRASH=<phase>` (or `all`) makes the child raise before training, and
`<phase>:kill` makes it SIGKILL itself as the kernel's OOM killer would: test hooks for the
failure paths, inert unless someone sets the variable.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from evolver.errors import EvolverError
from evolver.training import memory
from evolver.training.spec import TrainSpec

CRASH_ENV = "EVOLVER_TRAIN_CRASH"


class InjectedCrash(EvolverError):
    """Raised on purpose (EVOLVER_TRAIN_CRASH) to exercise the failure path."""


def run(spec: TrainSpec) -> dict:
    if spec.model.threads:
        import torch

        torch.set_num_threads(spec.model.threads)
    crash = os.environ.get(CRASH_ENV, "")
    if crash in (f"{spec.phase}:kill", "all:kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    if crash in (spec.phase, "all"):
        raise InjectedCrash(f"injected crash in gen-{spec.generation:04d} {spec.phase} ({CRASH_ENV})")
    from evolver.training.runtime import train

    if spec.phase == "sft":
        from evolver.training.sft import build_sft_trainer

        return train(spec, lambda *args: (build_sft_trainer(*args), {}))
    from evolver.training.dpo import build_dpo_trainer

    def build_dpo(*args: Any) -> tuple[Any, dict[str, Any]]:
        trainer, reference = build_dpo_trainer(*args)
        return trainer, {"reference": reference}

    return train(spec, build_dpo)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m evolver.training.child SPEC.json", file=sys.stderr)
        return 2
    faulthandler.enable()  # a crash below Python (SIGSEGV, SIGABRT from a C++ library) still names its Python stack
    memory.reset()  # the peak this child reports is its own (see training/memory.py)
    spec = TrainSpec.load(args[0])
    result = run(spec)
    from evolver.training.runtime import is_main_process, leave_ranks

    if is_main_process():
        out = Path(spec.result)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, out)
    leave_ranks()
    return 0


if __name__ == "__main__":
    sys.exit(main())
