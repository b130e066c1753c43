"""Where benchmark rows come from: local JSONL files or (only when a manifest asks) a `datasets` hub id.

Ids, which predictions files refer to, are assigned here and nowhere else, one scheme per file:
- `ids = "auto"` (the default): the row's `id`, else its `task_id`, as a string, when every row
  has one and no two rows share one; otherwise the 1-based line number of every row (for hub
  datasets: its 1-based index in the split). Real files need this: the public ReflectEvo
  BIG-bench file repeats ids and has 144 rows without one, whose line numbers collide with other
  rows' ids. `Rows.ids` says which scheme a file got and why, and `evolver eval` prints it.
- `ids = "row"`: the row's `id`/`task_id`, else its line number; two rows with the same id are an
  error naming both lines.
- `ids = "line"`: the 1-based line number for every row (blank lines count as lines).

Rows that cannot become items (a line that is not JSON, a missing key, a gold answer that does
not parse) are dropped and reported (`Loaded.dropped`), never skipped silently; a file with no
usable row at all is an error naming the first problem.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from evolver.tasks.base import Item

IdPolicy = Literal["auto", "row", "line"]


class DataError(Exception):
    """Benchmark data that cannot be used; the message is one line naming the file (and line or key)."""


@dataclass(frozen=True)
class Record:
    """One raw row with its assigned id and where it came from (`file:line`), for error messages."""

    id: str
    where: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Dropped:
    """A row that did not become an item, and why (`reason` reads without the place)."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class Rows:
    """One split of a source: the usable records, the rows dropped on reading, and how ids were given."""

    records: list[Record]
    dropped: list[Dropped] = field(default_factory=list)
    ids: str = ""


@dataclass(frozen=True)
class Loaded:
    """Items of one split as a task built them, with every dropped row and the id scheme, for reports."""

    items: list[Item]
    dropped: list[Dropped] = field(default_factory=list)
    ids: str = ""

    def dropped_by_reason(self) -> dict[str, int]:
        return dict(Counter(d.reason for d in self.dropped).most_common())


class RowSource(Protocol):
    def records(self, split: str) -> Rows: ...


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_jsonl(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[Dropped]]:
    """(1-based line number, object) for each non-blank line, and the lines that are not JSON objects."""
    out: list[tuple[int, dict[str, Any]]] = []
    bad: list[Dropped] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{_display(path)}: not UTF-8 text") from None
    origin = _display(path)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append(Dropped(f"{origin}:{n}", f"not JSON ({err.msg} at column {err.colno})"))
            continue
        if not isinstance(obj, dict):
            bad.append(Dropped(f"{origin}:{n}", f"expected a JSON object, got {type(obj).__name__}"))
            continue
        out.append((n, obj))
    return out, bad


def _own_id(row: dict[str, Any]) -> str | None:
    for key in ("id", "task_id"):
        if row.get(key) is not None:
            return str(row[key])
    return None


def _why_lines(rows: list[tuple[int, dict[str, Any]]]) -> str | None:
    """Why own ids cannot name this file's rows ("144 rows without an id, ..."), or None when they can."""
    own = [_own_id(r) for _, r in rows]
    missing = sum(i is None for i in own)
    repeats = [i for i, c in Counter(i for i in own if i is not None).items() if c > 1]
    if not missing and not repeats:
        return None
    if missing == len(own):
        return "no row has an id"
    parts = [f"{missing} row{'s' * (missing != 1)} without an id"] if missing else []
    if repeats:
        parts.append(f"{len(repeats)} id{'s' * (len(repeats) != 1)} on more than one row (first {repeats[0]!r})")
    return " and ".join(parts)


def assign_ids(rows: list[tuple[int, dict[str, Any]]], origin: str, ids: IdPolicy,
               dropped: list[Dropped] | None = None) -> Rows:
    """Records with ids under the file's scheme (see the module docstring)."""
    why = _why_lines(rows) if ids == "auto" else None
    if ids == "line" or why is not None:
        scheme = "line numbers" + (f" ({why})" if why else "")
        return Rows([Record(str(n), f"{origin}:{n}", row) for n, row in rows], list(dropped or []), scheme)
    records: list[Record] = []
    seen: dict[str, str] = {}
    for n, row in rows:
        rid = _own_id(row) or str(n)
        where = f"{origin}:{n}"
        if rid in seen:
            raise DataError(f"{where}: id {rid!r} repeats {seen[rid]};"
                            " give rows unique ids or set ids = \"auto\" in the manifest")
        seen[rid] = where
        records.append(Record(rid, where, row))
    return Rows(records, list(dropped or []), "row ids ('id', else 'task_id', else the line number)")


def require(record: Record, *keys: str) -> None:
    for key in keys:
        if key not in record.data:
            raise DataError(f"{record.where}: missing key {key!r}")


def load_items(source: RowSource, split: str, limit: int | None, cap: int | None,
               build: Callable[[Record, str], Item]) -> Loaded:
    """Build every row of `split` into an item, drop (and report) the ones that cannot be, keep a prefix.

    Drops are counted over the whole file, so a report says what the file holds, whatever the limit.
    """
    rows = source.records(split)
    items: list[Item] = []
    dropped = list(rows.dropped)
    for record in rows.records:
        try:
            items.append(build(record, split))
        except DataError as err:
            dropped.append(Dropped(record.where, str(err).removeprefix(f"{record.where}: ")))
    dropped.sort(key=_line_order)
    if not items and dropped:
        more = f" (and {len(dropped) - 1} more unusable rows)" if len(dropped) > 1 else ""
        raise DataError(f"{dropped[0]}{more}")
    return Loaded(take(items, limit, cap), dropped, rows.ids)


def _line_order(d: Dropped) -> tuple[str, int]:
    origin, _, line = d.where.rpartition(":")
    return (origin, int(line)) if line.isdigit() else (d.where, 0)


@dataclass(frozen=True)
class JsonlSource:
    """Local JSONL files, one per split. `hint` says where to get a missing file."""

    files: dict[str, Path]
    ids: IdPolicy = "auto"
    hint: str = ""

    def records(self, split: str) -> Rows:
        path = self.files.get(split)
        if path is None:
            raise DataError(f"no {split!r} split here (splits: {', '.join(sorted(self.files)) or 'none'})")
        if not path.is_file():
            how = f": {self.hint}" if self.hint else ""
            raise DataError(f"{_display(path)} not found{how}")
        rows, bad = read_jsonl(path)
        return assign_ids(rows, _display(path), self.ids, bad)


@dataclass(frozen=True)
class HubSource:
    """A `datasets` hub dataset, loaded only when records are asked for (never at import)."""

    dataset: str
    config: str | None = None
    splits: dict[str, str] | None = None  # our split name -> the hub's split name
    revision: str | None = None
    ids: IdPolicy = "auto"

    def records(self, split: str) -> Rows:
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
class DiskSource:
    """A `datasets` folder written by `save_to_disk` (a Dataset, or a DatasetDict of splits): the hub's rows, offline."""

    path: Path
    splits: dict[str, str] | None = None  # our split name -> the folder's split name (a DatasetDict's key)
    ids: IdPolicy = "auto"

    def records(self, split: str) -> Rows:
        import datasets  # heavy; only here

        if not self.path.is_dir():
            raise DataError(f"{_display(self.path)} not found (a `datasets` save_to_disk folder)")
        try:
            ds = datasets.load_from_disk(str(self.path))
        except Exception as err:  # noqa: BLE001 - any unreadable folder becomes one readable line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise DataError(f"{_display(self.path)}: not a `datasets` save_to_disk folder ({first})") from None
        name = (self.splits or {}).get(split, split)
        if isinstance(ds, datasets.DatasetDict):
            if name not in ds:
                raise DataError(f"{_display(self.path)}: no split {name!r} (it has {', '.join(ds) or 'none'})")
            ds = ds[name]
        elif self.splits is not None and split not in self.splits:
            raise DataError(f"no {split!r} split here (splits: {', '.join(sorted(self.splits))})")
        rows = [(i, dict(r)) for i, r in enumerate(ds, start=1)]
        return assign_ids(rows, f"{_display(self.path)}[{name}]", self.ids)


@dataclass(frozen=True)
class RecordsSource:
    """Rows already in memory (tests, and callers that build data on the fly)."""

    rows: dict[str, list[dict[str, Any]]]
    ids: IdPolicy = "auto"

    def records(self, split: str) -> Rows:
        if split not in self.rows:
            raise DataError(f"no {split!r} split here (splits: {', '.join(sorted(self.rows))})")
        return assign_ids(list(enumerate(self.rows[split], start=1)), f"<{split}>", self.ids)


def take(records: list[Any], limit: int | None, cap: int | None) -> list[Any]:
    """The first min(limit, cap) entries: a deterministic prefix, so ids line up across runs."""
    bounds = [b for b in (limit, cap) if b is not None]
    return records[: min(bounds)] if bounds else records
