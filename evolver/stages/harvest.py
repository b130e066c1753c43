"""Stage 2, harvest: turn a generation's reflections into content-hashed training snapshots.

D+ (reflection → correct retry), D− (→ still wrong), D± (chosen × rejected for the same failed
trial, capped per question), Dpref (pairs of successful reflections ranked by a judge), T1
(trial-1-correct answers) and R1 (correct retries as first-trial answers: what the solver learns
from its reflections). Deterministic, so re-running stores nothing new.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from evolver.backends.base import Backend
from evolver.reflection.common import adapter_for, load_task
from evolver.context import StageContext, StageResult
from evolver.states import POOL_PURPOSE
from evolver.tasks.base import first_trial_text

KINDS = ("D+", "D-", "D±", "Dpref", "T1", "R1")


def pair_row(chosen: dict[str, Any], rejected: dict[str, Any]) -> dict[str, Any]:
    """A preference pair over two reflections on the same failed trial; the prompt is the chosen one's."""
    return {"question_id": chosen["question_id"], "external_id": chosen["external_id"], "question": chosen["question"],
            "gold": chosen["gold"], "trial1": chosen["trial1"], "trial1_answer": chosen["trial1_answer"],
            "prompt": chosen["reflect_prompt"], "retry_prompt": chosen["retry_prompt"],
            "chosen": chosen["reflection"], "chosen_id": chosen["reflection_id"], "chosen_trial2": chosen["trial2"],
            "chosen_trial2_answer": chosen["trial2_answer"], "rejected": rejected["reflection"],
            "rejected_id": rejected["reflection_id"], "rejected_trial2": rejected["trial2"],
            "rejected_trial2_answer": rejected["trial2_answer"]}


def build_rows(ctx: StageContext) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[int, dict]]]:
    """All snapshot rows except Dpref, plus the (failed attempt, successful reflection rows) groups Dpref ranks."""
    store = ctx.store
    attempts = {a.id: a for a in store.attempts(ctx.generation, POOL_PURPOSE)}
    refl = [r for r in store.reflections(ctx.generation, POOL_PURPOSE) if r.next_attempt_id is not None]
    questions = store.questions({a.question_id for a in attempts.values()})
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    by_failed: dict[int, list[tuple[Any, dict]]] = defaultdict(list)
    for r in sorted(refl, key=lambda r: (r.attempt_id, r.branch)):
        a0, a1 = attempts.get(r.attempt_id), attempts.get(r.next_attempt_id)  # type: ignore[arg-type]
        if a0 is None or a1 is None:
            continue
        q = questions[a0.question_id]
        row = {"question_id": a0.question_id, "external_id": q.external_id, "attempt_id": a0.id,
               "reflection_id": r.id, "next_attempt_id": a1.id, "instruction_id": r.instruction_id,
               "question": q.text, "gold": q.gold, "trial1_prompt": a0.prompt, "trial1": a0.output,
               "trial1_answer": a0.answer, "reflect_prompt": r.prompt, "reflection": r.text,
               "retry_prompt": a1.prompt, "trial2": a1.output, "trial2_answer": a1.answer}
        out["D+" if a1.correct else "D-"].append(row)
        by_failed[a0.id].append((r, row))
    cap = ctx.cfg.config.reflection.pairs_per_question
    groups: list[tuple[int, dict]] = []
    for failed_id, rs in sorted(by_failed.items()):
        good = [(r, row) for r, row in rs if r.success]
        bad = [(r, row) for r, row in rs if not r.success]
        pairs = [(g, b) for g in good for b in bad][:cap]
        for (gr, grow), (br, brow) in pairs:
            out["D±"].append(pair_row(grow, brow))
        if len(good) >= 2:
            groups.append((failed_id, {"rows": [row for _r, row in good]}))
    for a in sorted(attempts.values(), key=lambda a: a.id):
        if a.trial == 1 and a.correct:
            out["T1"].append({"question_id": a.question_id, "attempt_id": a.id, "prompt": a.prompt,
                              "completion": a.output})
    out["R1"] = first_trial_rows(ctx, attempts.values(), out["D+"])
    return out, groups


def first_trial_rows(ctx: StageContext, attempts: Iterable[Any], dplus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """R1: each correct retry as the first-trial answer it amounts to (STaR's rationalization), once per
    question and text, so the solver learns from what its reflections corrected."""
    task = load_task(ctx.cfg, ctx.cfg.config.reflection.task)
    first = {a.question_id: a.prompt for a in attempts if a.trial == 1 and a.branch == 0}
    out, seen = [], set()
    for row in dplus:
        text = first_trial_text(task, row["trial2"])
        if (row["question_id"], text) in seen or row["question_id"] not in first:
            continue
        seen.add((row["question_id"], text))
        out.append({"question_id": row["question_id"], "attempt_id": row["next_attempt_id"],
                    "prompt": first[row["question_id"]], "completion": text})
    return out


def judge_pairs(ctx: StageContext, groups: list[tuple[int, dict]], backend: Backend) -> list[dict[str, Any]]:
    """Rank successful reflections by the model's mean log-likelihood of the correct retry they led to."""
    flat = [row for _fid, g in groups for row in g["rows"]]
    if not flat:
        return []
    scores = backend.logprob([r["retry_prompt"] for r in flat], [r["trial2"] for r in flat],
                             adapter_for(ctx.store, ctx.parent))
    lengths = [max(len(r["trial2"].split()), 1) for r in flat]
    score_of = {r["reflection_id"]: s / n for r, s, n in zip(flat, scores, lengths)}
    cap = ctx.cfg.config.reflection.pairs_per_question
    out = []
    for _fid, g in groups:
        ranked = sorted(g["rows"], key=lambda r: (-score_of[r["reflection_id"]], r["reflection_id"]))
        pairs = [(ranked[i], ranked[j]) for i in range(len(ranked)) for j in range(i + 1, len(ranked))][:cap]
        for hi, lo in pairs:
            if score_of[hi["reflection_id"]] == score_of[lo["reflection_id"]]:
                continue
            out.append({**pair_row(hi, lo), "judge": "self", "chosen_score": score_of[hi["reflection_id"]],
                        "rejected_score": score_of[lo["reflection_id"]]})
    return out


def run(ctx: StageContext) -> StageResult:
    rows, groups = build_rows(ctx)
    judged = ctx.cfg.config.reflection.judge == "self"
    if judged and groups and ctx.store.find_dataset(ctx.generation, "Dpref") is None:
        rows["Dpref"] = judge_pairs(ctx, groups, ctx.backend())
    detail: dict[str, Any] = {}
    for kind in KINDS:
        if kind == "Dpref" and not judged:
            continue
        found = ctx.store.find_dataset(ctx.generation, kind)
        if found is None:
            _id, h = ctx.store.put_dataset(ctx.generation, kind, "harvest", rows[kind])
            detail[kind] = {"rows": len(rows[kind]), "sha256": h}
        else:
            detail[kind] = {"rows": found.n_rows, "sha256": found.content_hash}
    return StageResult(detail)
