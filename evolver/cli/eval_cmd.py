"""`evolver eval`: evaluate a generation's model, or score saved outputs without one.

`--generation N` runs (or reads from the store) the generation's evaluation; on a folder where the
daemon never ran, `--generation 0` first creates the store and generation 0 exactly as the daemon
would, so the base model's scores are there before the first `evolver run` (which then finds them
cached). `--predictions FILE.jsonl` (lines `{"id": ..., "output": ...}`) scores with the suite's own
scorer, loading no model; that path lives in `score_predictions_file` so the two stay apart.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from evolver.cli.common import JsonFlag, RuntimeFailure, UsageError, console, emit_json, loaded_config, setup_logs
from evolver.states import BASE_GENERATION, GenStatus, gen_name

SHOW_IDS = 10


@dataclass
class EvalOutcome:
    suite: str
    format: str
    manifest: str
    predictions: str
    split: str
    beyond_limit: int
    report: Any  # evolver.evaluation.predictions.PredictionReport
    ids: str = ""  # how the suite's items got their ids (what predictions must carry)
    dropped: dict[str, int] = field(default_factory=dict)  # rows of the data file that are not items: reason -> count

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "format": self.format, "manifest": self.manifest, "predictions": self.predictions,
                "split": self.split, "beyond_limit": self.beyond_limit, "ids": self.ids, "dropped_rows": self.dropped,
                **self.report.to_dict()}


def suite_dirs(config_root: Path) -> list[Path]:
    """Where suite names are looked up: the config folder's evals/."""
    return [config_root / "evals"]


def score_predictions_file(benchmark: str, predictions: Path, search_dirs: list[Path], limit: int | None = None,
                           split: str | None = None, workers: int = 1) -> EvalOutcome:
    """Load the suite, read the predictions, score them. Raises UsageError with one line on bad input."""
    from evolver.evaluation.predictions import read_predictions, score_predictions
    from evolver.tasks.rows import DataError
    from evolver.tasks.sandbox import SandboxError
    from evolver.tasks.suites import SuiteError, find_suite

    if not predictions.is_file():
        raise UsageError(f"{predictions}: predictions file not found")
    try:
        suite = find_suite(benchmark, search_dirs)
        task = suite.task()
        use_split = split or suite.manifest.split
        data = suite.load(use_split)
    except (SuiteError, DataError) as err:
        raise UsageError(str(err)) from None
    loaded = data.items
    items = loaded[:limit] if limit is not None else loaded
    beyond = {item.id for item in loaded[len(items):]}
    rows, malformed = read_predictions(predictions)
    kept = [r for r in rows if r.id not in beyond]
    try:
        scored = score_predictions(task, items, kept, workers=workers, malformed=malformed)
    except SandboxError as err:
        raise RuntimeFailure(str(err)) from None
    return EvalOutcome(suite.name, suite.manifest.format or suite.manifest.task or "", str(suite.path), str(predictions),
                       use_split, len(rows) - len(kept), scored, data.ids, data.dropped_by_reason())


def _ids(ids: list[str]) -> str:
    more = f" (+{len(ids) - SHOW_IDS} more)" if len(ids) > SHOW_IDS else ""
    return ", ".join(ids[:SHOW_IDS]) + more


def render(outcome: EvalOutcome, show_wrong: int = 0):  # noqa: ANN201 - a rich renderable
    """The summary table (and, with `show_wrong`, the first wrong rows) as one Rich renderable."""
    from rich.console import Group
    from rich.table import Table

    r = outcome.report
    table = Table(title=f"{outcome.suite} ({outcome.format}, split {outcome.split})", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value")
    table.add_row("predictions", outcome.predictions)
    table.add_row("items", str(r.items))
    if outcome.ids:
        table.add_row("item ids", outcome.ids)
    if outcome.dropped:
        table.add_row(f"dropped rows ({sum(outcome.dropped.values())})",
                      ", ".join(f"{reason}: {n}" for reason, n in outcome.dropped.items()))
    table.add_row("scored", str(r.n))
    table.add_row("correct", str(r.correct))
    table.add_row("accuracy", f"{r.accuracy:.2%}")
    if r.n != r.items:
        table.add_row("accuracy (missing = wrong)", f"{r.accuracy_all:.2%}")
    table.add_row("parse rate", f"{r.parse_rate:.2%}")
    for key, value in r.scores.items():
        table.add_row(f"mean {key}", f"{value:.4f}")
    table.add_row("reasons", ", ".join(f"{k} {v}" for k, v in r.reasons.items()) or "-")
    for label, ids in (("missing ids", r.missing_ids), ("unknown ids", r.unknown_ids), ("duplicate ids", r.duplicate_ids)):
        if ids:
            table.add_row(f"{label} ({len(ids)})", _ids(ids))
    if outcome.beyond_limit:
        table.add_row("beyond --limit", f"{outcome.beyond_limit} predictions not scored")
    if r.malformed:
        table.add_row("malformed lines", f"{len(r.malformed)} (listed on stderr)")
    parts: list[Any] = [table]
    wrong = [row for row in r.rows if not row.correct][:show_wrong]
    if wrong:
        rows = Table(title=f"first {len(wrong)} wrong")
        for col in ("id", "answer", "reason", "feedback"):
            rows.add_column(col, overflow="fold")
        for row in wrong:
            rows.add_row(row.id, (row.answer or "")[:80], row.reason[:80], row.feedback[:160])
        parts.append(rows)
    return Group(*parts)


def evaluate_generation(ctx: typer.Context, generation: int, benchmark: str | None,
                        progress: Any = None) -> dict[str, Any]:
    """Run (or read from the store) a generation's evaluation on one or every configured suite.

    Generation 0 is the base model: on a fresh folder its row (and the store) is created here as the
    daemon creates it, so `evolver run` later finds the evaluation cached."""
    from evolver.backends.holder import BackendHolder
    from evolver.context import StageContext, no_progress
    from evolver.daemon.cycle import create_generation
    from evolver.evaluation.run import evaluate, stored_report
    from evolver.preflight import check_references
    from evolver.store import Store

    cfg = loaded_config(ctx)
    db = cfg.state_dir / "evolver.db"
    if not db.exists() and generation != BASE_GENERATION:
        raise UsageError(f"{db}: no store yet, so no generation {generation} (`evolver eval --generation 0`"
                         " evaluates the base model; `evolver run` evolves)")
    if not db.exists():
        problems = check_references(cfg)
        if problems:  # as `evolver run` would: nothing is written for a config that cannot run
            from evolver.config import ConfigError

            raise ConfigError("\n".join(problems))
    with Store.open(db) as store, BackendHolder(cfg) as backends:
        g = store.generation(generation)
        if g is None and generation == BASE_GENERATION:
            create_generation(cfg, store, BASE_GENERATION, None, GenStatus.BASE)
            g = store.generation(generation)
        if g is None:
            raise UsageError(f"generation {generation} does not exist")
        if g.status in (GenStatus.FAILED, GenStatus.RUNNING) and not store.eval_results(generation):
            raise RuntimeFailure(f"{gen_name(generation)} is {g.status}; it has no model to evaluate")
        suites = [benchmark] if benchmark else cfg.config.evaluation.benchmarks
        sctx = StageContext(cfg, store, generation, g.parent_id, backends, progress=progress or no_progress)
        return {suite: stored_report(sctx, evaluate(sctx, suite, generation)) for suite in suites}


def render_generation(generation: int, results: dict[str, Any]):  # noqa: ANN201
    from rich.table import Table

    t = Table(title=gen_name(generation))
    for col in ("benchmark", "protocol", "acc@t1", "acc@t2", "parse rate"):
        t.add_column(col, justify="left" if col in ("benchmark", "protocol") else "right")
    for units in results.values():
        for unit, protos in units.items():
            for proto, m in protos.items():
                fmt = lambda k: f"{100 * m[k]:.1f}" if k in m else "-"  # noqa: E731
                t.add_row(unit, proto, fmt("acc@t1"), fmt("acc@t2"), fmt("parse_rate"))
    return t


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_(
        ctx: typer.Context,
        benchmark: str | None = typer.Option(None, "--benchmark", "-b", help="Suite name (a folder under the config's evals/) or a path to a suite folder or manifest; with --generation, default: evaluation.benchmarks."),
        generation: int | None = typer.Option(None, "--generation", "-g", help="Evaluate this generation's model (cached in the store: a re-run is free)."),
        predictions: Path | None = typer.Option(None, "--predictions", "-p", help=(
            "JSONL of {\"id\": ..., \"output\": ...} to score. \"id\" is the suite's item id: under the default"
            " ids = \"auto\" the rows' own id (else task_id) when every row has a distinct one, otherwise the row's"
            " 1-based line number in the data file (BIG-bench and MATH: line numbers); the report says which.")),
        limit: int | None = typer.Option(None, "--limit", min=1, help="Score only the suite's first N items."),
        split: str | None = typer.Option(None, "--split", help="Split to score (default: the manifest's)."),
        workers: int = typer.Option(1, "--workers", min=1, max=64, help="Items scored at once (code runs in parallel sandboxes)."),
        show_wrong: int = typer.Option(0, "--show-wrong", min=0, help="Also list the first N wrong rows."),
        as_json: JsonFlag = False,
    ) -> None:
        """Evaluate a generation (acc@t1, acc@t2, paper protocol), or score saved predictions without a model.

        Unreadable prediction lines are listed on stderr as FILE:LINE: reason. Exit 1 when nothing could be scored.
        """
        if predictions is None and generation is None:
            raise UsageError("give --generation N to evaluate a model, or --predictions FILE.jsonl to score saved outputs")
        if predictions is not None and generation is not None:
            raise UsageError("--generation and --predictions exclude each other")
        if generation is not None:
            from rich.console import Console

            from evolver.cli.progress import run_progress

            setup_logs(ctx, loaded_config(ctx))
            with run_progress(Console(stderr=True, highlight=False)) as progress:
                results = evaluate_generation(ctx, generation, benchmark, progress)
            if as_json:
                emit_json({"generation": generation, "results": results})
            else:
                console().print(render_generation(generation, results))
            return
        if benchmark is None:
            raise UsageError("--predictions needs --benchmark")

        def body() -> EvalOutcome:
            cfg = loaded_config(ctx)
            return score_predictions_file(benchmark, predictions, suite_dirs(cfg.root), limit, split, workers)

        outcome = body()
        for line in outcome.report.malformed:
            sys.stderr.write(f"evolver: warning: {line}\n")
        if as_json:
            emit_json(outcome.to_dict())
        else:
            console().print(render(outcome, show_wrong))
        if outcome.report.n == 0:
            raise typer.Exit(1)
