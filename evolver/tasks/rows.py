"""Where benchmark rows come from: local JSONL files or (only when a manifest asks) a `datasets` hub id.

Ids, which predictions files refer to, are assigned here and nowhere else:
- `ids = "row"` (the default): the row's `id`, else its `task_id`, as a string; a row with neither
  gets its 1-based line number in the file (for hub datasets: its 1-based index in the split).
- `ids = "line"`: the 1-based line number for every row (blank lines count as lines).
Two rows with the same id are an error naming both lines; a file that mixes rows with and
without ids can collide that way, and `ids = "line"` in the manifest is the way out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

IdPolicy = Literal["row", "line"]


class DataError(Exception):
    """Benchmark data that cannot be used; the message is one line naming the file (and line or key)."""


@dataclass(frozen=True)
class Record:
    """One raw row with its assigned id and where it came from (`file:line`), for error messages."""

    id: str
    where: str
    data: dict[str, Any]


class RowSource(Protocol):
    def records(self, split: str) -> list[Record]: ...


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for each non-blank line; a bad line is a DataError naming it."""
    out: list[tuple[int, dict[str, Any]]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{_display(path)}: not UTF-8 text") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{_display(path)}:{n}: not JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{_display(path)}:{n}: expected a JSON object, got {type(obj).__name__}")
        out.append((n, obj))
    return out


def assign_ids(rows: list[tuple[int, dict[str, Any]]], origin: str, ids: IdPolicy) -> list[Record]:
    records: list[Record] = []
    seen: dict[str, str] = {}
    for n, row in rows:
        if ids == "row" and row.get("id") is not None:
            rid = str(row["id"])
        elif ids == "row" and row.get("task_id") is not None:
            rid = str(row["task_id"])
        else:
            rid = str(n)
        where = f"{origin}:{n}"
        if rid in seen:
            raise DataError(f"{where}: id {rid!r} repeats {seen[rid]}; give rows unique ids or set ids = \"line\" in the manifest")
        seen[rid] = where
        records.append(Record(rid, where, row))
    return records


def require(record: Record, *keys: str) -> None:
    for key in keys:
        if key not in record.data:
            raise DataError(f"{record.where}: missing key {key!r}")


@dataclass(frozen=True)
class JsonlSource:
    """Local JSONL files, one per split. `hint` says where to get a missing file."""

    files: dict[str, Path]
    ids: IdPolicy = "row"
    hint: str = ""

    def records(self, split: str) -> list[Record]:
        path = self.files.get(split)
        if path is None:
            raise DataError(f"no {split!r} split here (splits: {', '.join(sorted(self.files)) or 'none'})")
        if not path.is_file():
            how = f": {self.hint}" if self.hint else ""
            raise DataError(f"{_display(path)} not found{how}")
        return assign_ids(read_jsonl(path), _display(path), self.ids)


@dataclass(frozen=True)
class HubSource:
    """A `datasets` hub dataset, loaded only when records are asked for (never at import)."""

    dataset: str
    config: str | None = None
    splits: dict[str, str] | None = None  # our split name -> the hub's split name
    revision: str | None = None
    ids: IdPolicy = "row"

    def records(self, split: str) -> list[Record]:
        import datasets  # heavy; only here

        hub_split = (self.splits or {}).get(split, split)
        try:
            ds = datasets.load_dataset(self.dataset, self.config, split=hub_split, revision=self.revision)
        except Exception as err:  # noqa: BLE001 - any failure to fetch becomes one readable line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise DataError(f"datasets {self.dataset!r} split {hub_split!r}: {first}") from None
        rows = [(i, dict(r)) for i, r in enumerate(ds, start=1)]
        return assign_ids(rows, f"{self.dataset}[{hub_split}]", self.ids)


@dataclass(frozen=True)
class RecordsSource:
    """Rows already in memory (tests, and callers that build data on the fly)."""

    rows: dict[str, list[dict[str, Any]]]
    ids: IdPolicy = "row"

    def records(self, split: str) -> list[Record]:
        if split not in self.rows:
            raise DataError(f"no {split!r} split here (splits: {', '.join(sorted(self.rows))})")
        return assign_ids(list(enumerate(self.rows[split], start=1)), f"<{split}>", self.ids)


def take(records: list[Record], limit: int | None, cap: int | None) -> list[Record]:
    """The first min(limit, cap) records: a deterministic prefix, so ids line up across runs."""
    bounds = [b for b in (limit, cap) if b is not None]
    return records[: min(bounds)] if bounds else records
