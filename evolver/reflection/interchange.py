"""Export and import training snapshots in the public ReflectEvo format (and HF datasets).

The field names are those of the ReflectEvo release (`example_D+.jsonl`, `example_D+-.jsonl`,
`example_Dpref.jsonl`). Import is all-or-nothing: every malformed row is reported with file,
line and reason, then either skipped (`on_error="skip"`) or the whole file refused.
Fields we do not know are kept and written back, so export(import(f)) reproduces f.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evolver.store import Store

# ReflectEvo field -> our snapshot key
DPLUS_FIELDS = {
    "id": "external_id", "question": "question", "answer": "gold",
    "first_trial_reasoning": "trial1", "first_trial_answer": "trial1_answer",
    "second_trial_reasoning": "trial2", "second_trial_answer": "trial2_answer",
    "reflections": "reflection", "reason_prompt": "reason_prompt", "reflect_prompt": "reflect_prompt",
}
PAIR_FIELDS = {
    "id": "external_id", "question": "question", "answer": "gold",
    "first_trial_reasoning": "trial1", "first_trial_answer": "trial1_answer",
    "second_trial_reasoning_chosen": "chosen_trial2", "second_trial_answer_chosen": "chosen_trial2_answer",
    "reflection_chosen": "chosen",
    "second_trial_reasoning_rejected": "rejected_trial2", "second_trial_answer_rejected": "rejected_trial2_answer",
    "reflection_rejected": "rejected", "reason_prompt": "retry_prompt", "reflection_prompt": "prompt",
}
FIELDS = {"D+": DPLUS_FIELDS, "D±": PAIR_FIELDS, "Dpref": PAIR_FIELDS}
REQUIRED = {"D+": ("question", "reflections", "second_trial_reasoning"),
            "D±": ("question", "reflection_chosen", "reflection_rejected"),
            "Dpref": ("question", "reflection_chosen", "reflection_rejected")}
FILE_NAMES = {"D+": "D+.jsonl", "D±": "D+-.jsonl", "Dpref": "Dpref.jsonl"}


class InterchangeError(Exception):
    """An import refused as a whole; the message lists the first problems (file:line: reason)."""


@dataclass
class ImportReport:
    path: Path
    kind: str
    imported: int = 0
    problems: list[str] = field(default_factory=list)
    dataset_id: int | None = None
    sha256: str | None = None


def to_reflectevo(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """One snapshot row in ReflectEvo's field names."""
    out: dict[str, Any] = {}
    for theirs, ours in FIELDS[kind].items():
        if ours == "reason_prompt":
            out[theirs] = row.get("reason_prompt") or [row.get("trial1_prompt", ""), row.get("retry_prompt", "")]
        elif ours in row:
            out[theirs] = row[ours]
    out.update(row.get("_extra", {}))
    return out


def from_reflectevo(kind: str, rec: dict[str, Any]) -> dict[str, Any]:
    """One ReflectEvo record as a snapshot row (unknown fields kept under `_extra`)."""
    mapping = FIELDS[kind]
    row: dict[str, Any] = {ours: rec[theirs] for theirs, ours in mapping.items() if theirs in rec}
    extra = {k: v for k, v in rec.items() if k not in mapping}
    if extra:
        row["_extra"] = extra
    if kind == "D+":
        rp = rec.get("reason_prompt")
        if isinstance(rp, list) and len(rp) == 2:
            row["trial1_prompt"], row["retry_prompt"] = rp
        row.setdefault("reflect_prompt", "")
    return row


def guess_kind(path: Path, first: dict[str, Any]) -> str:
    if "reflection_chosen" in first:
        return "Dpref" if "pref" in path.name.lower() else "D±"
    return "D+"


def read_rows(path: Path, kind: str | None) -> tuple[str, list[dict[str, Any]], list[str]]:
    """Parse a JSONL file; returns (kind, good rows, problems as 'file:line: reason')."""
    if not path.is_file():
        raise InterchangeError(f"{path}: file not found")
    records: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{path}:{n}: invalid JSON ({err.msg})")
            continue
        if not isinstance(rec, dict):
            problems.append(f"{path}:{n}: expected an object, got {type(rec).__name__}")
            continue
        records.append((n, rec))
    if not records:
        raise InterchangeError(f"{path}: no records" + (f" ({problems[0]})" if problems else ""))
    kind = kind or guess_kind(path, records[0][1])
    if kind not in FIELDS:
        raise InterchangeError(f"{path}: unknown kind {kind!r} (expected D+, D± or Dpref)")
    rows = []
    for n, rec in records:
        missing = [f for f in REQUIRED[kind] if f not in rec]
        bad = [f for f in REQUIRED[kind] if f in rec and not isinstance(rec[f], str)]
        if missing:
            problems.append(f"{path}:{n}: missing field {missing[0]!r} for {kind}")
        elif bad:
            problems.append(f"{path}:{n}: field {bad[0]!r} must be a string")
        else:
            rows.append(from_reflectevo(kind, rec))
    return kind, rows, problems


def import_file(store: Store, path: str | Path, kind: str | None = None, on_error: str = "abort") -> ImportReport:
    """Load a ReflectEvo JSONL file into the store as a seed snapshot (no generation), atomically."""
    p = Path(path)
    kind, rows, problems = read_rows(p, kind)
    report = ImportReport(p, kind, problems=problems)
    if problems and on_error == "abort":
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InterchangeError(f"{problems[0]}{more}; nothing imported (use --on-error skip to skip bad rows)")
    report.dataset_id, report.sha256 = store.put_dataset(None, kind, f"import:{p.resolve()}", rows)
    report.imported = len(rows)
    return report


def export_snapshots(store: Store, generation: int | None, out_dir: str | Path, fmt: str = "reflectevo",
                     dataset_ids: list[int] | None = None) -> dict[str, Path]:
    """Write a generation's D+, D± and Dpref snapshots (or the given ones) to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [d for d in store.datasets(generation) if d.kind in FIELDS
              and (dataset_ids is None or d.id in dataset_ids)
              and (generation is not None or d.generation_id is None)]
    written: dict[str, Path] = {}
    for d in chosen:
        rows = [to_reflectevo(d.kind, r) for r in store.dataset_rows(d.id)]
        if fmt == "reflectevo":
            target = out / FILE_NAMES[d.kind]
            with target.open("w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        elif fmt == "hf":
            from datasets import Dataset

            target = out / FILE_NAMES[d.kind].replace(".jsonl", "").replace("+-", "pm")
            Dataset.from_list([{k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()}
                               for r in rows]).save_to_disk(str(target))
        else:
            raise ValueError(f"unknown export format {fmt!r} (expected reflectevo or hf)")
        written[d.kind] = target
    return written
