"""How much a generation trains: steps from the data size, capped; the learning rate along the lineage.

A fixed number of epochs over a data window that grows (replay) makes later generations train
for ever longer and, continuing from the parent's adapter, drift further each time: that is
what made generations 2 and 3 regress. Here the steps follow the rows (`epochs` passes) up to
`max_steps`, and the learning rate can decay with the generation's depth on its lineage
(`training.lr_decay`), so a long lineage takes smaller and smaller steps from its parent, down to a
floor (`training.lr_floor` of the configured rate): a daemon that runs for weeks must still learn in
its hundredth generation, where 0.85 to the 99th power would leave it a rate of nothing.
"""

from __future__ import annotations

import math

from evolver.config.schema import DPOConfig, SFTConfig
from evolver.training.spec import Schedule


def plan(rows: int, settings: SFTConfig | DPOConfig, depth: int = 1, lr_decay: float = 1.0,
         lr_floor: float = 0.0) -> Schedule:
    """The schedule for `rows` training rows of a generation `depth` steps below the base model."""
    per_step = settings.batch_size * settings.grad_accum
    steps = max(1, math.ceil(settings.epochs * rows / per_step))
    if settings.max_steps:
        steps = min(steps, settings.max_steps + settings.add_steps * max(depth - 1, 0))
    lr = settings.learning_rate * max(lr_decay ** max(depth - 1, 0), lr_floor)
    return Schedule(epochs=settings.epochs, max_steps=steps, learning_rate=lr)


def depth(store: object, generation: int) -> int:
    """How many generations from the base model to `generation` (generation 1 of a fresh lineage is 1)."""
    n, g = 0, generation
    seen: set[int] = set()
    while g is not None and g not in seen and g != 0:
        seen.add(g)
        n += 1
        row = store.generation(g)  # type: ignore[attr-defined]
        g = row.parent_id if row is not None else None
    return max(n, 1)
