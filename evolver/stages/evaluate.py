"""Stage 5, evaluate: the candidate on every held-out suite (and the incumbent, under the same settings).

The work is `evolver.evaluation.run.evaluate`: acc@t1 / acc@t2 per unit, standard and paper
protocols, keyed by everything that can change an answer. The incumbent is evaluated too when it
has no evaluation under today's settings (normally a cache hit), so the decide stage always
compares like with like.
"""

from __future__ import annotations

import json
from typing import Any

from evolver.context import StageContext, StageResult
from evolver.evaluation.run import evaluate, stored_report
from evolver.states import PointerName


def run(ctx: StageContext) -> StageResult:
    incumbent = ctx.store.pointer(PointerName.CURRENT)
    out: dict[str, Any] = {}
    for suite in ctx.cfg.config.evaluation.benchmarks:
        ev = evaluate(ctx, suite, ctx.generation)
        out[suite] = {**stored_report(ctx, ev), "rows": json.loads(ev.identity).get("rows", {})}
        if incumbent is not None and incumbent != ctx.generation:
            evaluate(ctx, suite, incumbent)
    return StageResult(out)
