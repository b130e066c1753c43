"""Promotion policy files (`policies/*.toml`): what a candidate must show to replace the incumbent.

All thresholds are in accuracy *points* (0-100), because that is how people read and
write them ("one point better"); metrics themselves are fractions in [0, 1].
Unknown keys are errors, so a typo never silently loosens a policy, and files are validated
strictly, as `evolver.toml` is: "1.0" or `true` where a number belongs is an error, not a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evolver.config import ConfigError
from evolver.config.load import format_validation_error, read_toml


# Metrics with per-question outcomes, which the paired test needs (evolver.evaluation.run.outcomes).
PairedMetric = Literal["acc@t1", "acc@t2"]
PAIRED_METRICS: tuple[str, ...] = get_args(PairedMetric)


class PolicyFileError(ConfigError):
    """A policy file that cannot be used; one line naming the file and the key (exit 2 at the CLI)."""


class Policy(BaseModel):
    """The rules `decide` and `should_rollback` apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("default", min_length=1, description="Shown in events and `evolver status`.")
    description: str = Field("", description="Free text for people reading the file.")
    primary: PairedMetric | list[PairedMetric] = Field(
        "acc@t2", description="Metric, or metrics, a candidate must improve: a significant gain of at least `margin` in"
        " any of them promotes (the paired test split over them too, Bonferroni).")
    benchmarks: list[str] = Field(
        default_factory=list, description="Benchmarks considered; empty = every benchmark both sides were evaluated on."
    )
    margin: float = Field(1.0, ge=0.0, le=100.0, description="Minimum observed improvement of `primary`, in points.")
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Significance level (split across benchmarks, Bonferroni).")
    test: Literal["mcnemar", "bootstrap"] = Field(
        "mcnemar", description="Paired test: exact McNemar, or a paired bootstrap CI of the difference."
    )
    n_boot: int = Field(10_000, ge=100, le=1_000_000, description="Bootstrap resamples (test = 'bootstrap').")
    seed: int = Field(0, ge=0, description="Bootstrap seed, so a decision can be reproduced.")
    max_regression: float = Field(2.0, ge=0.0, le=100.0, description="Points any benchmark/metric may drop (acc@t1 excepted).")
    t1_max_drop: float = Field(1.0, ge=0.0, le=100.0, description="Points acc@t1 may drop on any benchmark.")
    tolerance: float = Field(
        2.0, ge=0.0, le=100.0, description="Rollback when re-evaluation falls this many points below promotion time."
    )
    confirm: int = Field(
        0, ge=0, le=1_000_000,
        description="Held-out questions per suite level for a second, larger look when the first shows a gain of at "
        "least `margin` that is not yet significant; it widens only the levels in question (such a gain, or a drop "
        "`confirm_drop` allows). 0 = one look. With a second look each look tests at alpha/2.")
    confirm_drop: float = Field(
        1.0, ge=1.0, le=10.0,
        description="A first look whose gain is at least `margin` and whose every drop is within this multiple of its "
        "limit (max_regression, t1_max_drop) gets the second look too, and the limits then apply to its larger sample; "
        "1 = a drop beyond its limit on the first look rejects at once.")
    first_generation: Literal["base", "promote"] = Field(
        "base",
        description="'base': generation 0 (the base model) is current from the start and must be beaten; "
        "'promote': with nothing current, the first evaluated generation is promoted untested.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ValueError(f"benchmarks lists a suite twice: {self.benchmarks}")
        if isinstance(self.primary, list) and (not self.primary or len(set(self.primary)) != len(self.primary)):
            raise ValueError(f"primary: expected one or more distinct metrics, got {self.primary}")
        return self

    @property
    def primaries(self) -> tuple[str, ...]:
        """The primary metrics, first the one events and views quote."""
        return tuple(self.primary) if isinstance(self.primary, list) else (self.primary,)


def parse_policy(data: dict, source: str = "<policy>") -> Policy:
    """Validate parsed TOML strictly (no coercion of strings or booleans into numbers); one line on error."""
    try:
        return Policy.model_validate(data, strict=True)
    except ValidationError as err:
        raise PolicyFileError(format_validation_error(source, err)) from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy TOML; every problem is one line naming the file and key."""
    p = Path(path).expanduser()
    return parse_policy(read_toml(p, "policy", PolicyFileError), str(p))
