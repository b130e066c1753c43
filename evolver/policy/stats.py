"""Paired statistics on per-question outcomes: exact McNemar and a paired bootstrap CI.

Both sides answered the same questions, so the test looks only at questions whose
outcome differs (the discordant pairs); an unpaired test would throw that pairing away
and need far more questions to see the same gain.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Paired:
    """Counts over the questions both sides answered."""

    n: int
    both: int  # both right
    cand_only: int  # candidate right, incumbent wrong (b)
    inc_only: int  # incumbent right, candidate wrong (c)

    @property
    def discordant(self) -> int:
        return self.cand_only + self.inc_only

    @property
    def diff(self) -> float:
        """Candidate accuracy minus incumbent accuracy on the paired questions (a fraction)."""
        return (self.cand_only - self.inc_only) / self.n if self.n else 0.0


def pair(candidate: Mapping[Hashable, bool], incumbent: Mapping[Hashable, bool]) -> Paired:
    """Count outcomes over the keys present on both sides; the others cannot be paired."""
    keys = candidate.keys() & incumbent.keys()
    both = b = c = 0
    for k in keys:
        x, y = bool(candidate[k]), bool(incumbent[k])
        both += x and y
        b += x and not y
        c += y and not x
    return Paired(len(keys), both, b, c)


@dataclass(frozen=True)
class McNemar:
    paired: Paired
    p: float


def mcnemar(candidate: Mapping[Hashable, bool], incumbent: Mapping[Hashable, bool]) -> McNemar:
    """Exact two-sided McNemar: binomial(b + c, 1/2) on the discordant pairs; p = 1 when there are none.

    Summed with exact integers, so it stays exact for thousands of discordant pairs.
    """
    pr = pair(candidate, incumbent)
    n, k = pr.discordant, min(pr.cand_only, pr.inc_only)
    if n == 0:
        return McNemar(pr, 1.0)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return McNemar(pr, min(1.0, float(Fraction(2 * tail, 2**n))))


@dataclass(frozen=True)
class BootstrapCI:
    paired: Paired
    low: float  # fractions, like `paired.diff`
    high: float
    level: float  # e.g. 0.95
    n_boot: int
    seed: int


def bootstrap_ci(candidate: Mapping[Hashable, bool], incumbent: Mapping[Hashable, bool], alpha: float = 0.05,
                 n_boot: int = 10_000, seed: int = 0) -> BootstrapCI:
    """Percentile CI (level 1 - alpha) of the paired accuracy difference, resampling questions.

    Each question's difference is +1, -1 or 0, so resampling n questions with replacement is
    exactly a multinomial draw of the three counts: the same distribution as index resampling
    at O(n_boot) cost instead of O(n_boot * n).
    """
    pr = pair(candidate, incumbent)
    if pr.n == 0:
        return BootstrapCI(pr, 0.0, 0.0, 1 - alpha, n_boot, seed)
    rng = np.random.default_rng(seed)
    probs = [pr.cand_only / pr.n, pr.inc_only / pr.n, (pr.n - pr.discordant) / pr.n]
    draws = rng.multinomial(pr.n, probs, size=n_boot)
    diffs = (draws[:, 0] - draws[:, 1]) / pr.n
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(pr, float(low), float(high), 1 - alpha, n_boot, seed)
