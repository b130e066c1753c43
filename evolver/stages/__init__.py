"""The stages of a generation, one module each, in the order data flows through them.

    generate -> harvest -> sft -> dpo -> evaluate -> decide

Each module offers `run(ctx: StageContext) -> StageResult`: it reads its inputs from the store,
writes its outputs to it idempotently, and raises when it cannot finish. Stages do not call one
another and do not record their own phase rows: the cycle (evolver.daemon.cycle) does that,
with retries and skips, for every stage alike. Any stage can be run by hand with a context.
"""

from __future__ import annotations

from collections.abc import Callable

from evolver.context import StageContext, StageResult
from evolver.stages import decide, dpo, evaluate, generate, harvest, sft
from evolver.states import Stage

StageRun = Callable[[StageContext], StageResult]

RUNNERS: dict[Stage, StageRun] = {
    Stage.GENERATE: generate.run,
    Stage.HARVEST: harvest.run,
    Stage.SFT: sft.run,
    Stage.DPO: dpo.run,
    Stage.EVALUATE: evaluate.run,
    Stage.DECIDE: decide.run,
}

__all__ = ["RUNNERS", "StageContext", "StageResult", "StageRun"]
