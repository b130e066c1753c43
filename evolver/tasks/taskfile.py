"""Reading BIG-bench `task.json` files: from a path, or as members of the downloaded sdist tarball.

The `bigbench` sdist (358 MB) holds all 1,041 task files; unpacking it takes minutes and gigabytes,
so a member is read by streaming the tarball once and copying out only the files asked for (the
task and its subtasks). The copies are kept under `$EVOLVER_CACHE/members/<tarball>-<size>-<mtime>/`,
so every later read is a plain file read; a tarball replaced in place gets a new folder.

A task whose `task.json` has no `examples` but has subtasks (`logical_deduction/` holds
`three_objects/task.json`, ...) is read as its subtasks, in name order. A file with neither is
an error naming it; so is a member the tarball does not hold.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolver.paths import cache_dir
from evolver.tasks.rows import DataError

TASK_FILE = "task.json"


@dataclass(frozen=True)
class TaskFile:
    """One BIG-bench task (or subtask) file: its name, where it came from, and its JSON."""

    name: str
    where: str  # a path, or 'tarball:member', for messages
    data: dict[str, Any]

    @property
    def examples(self) -> list[dict[str, Any]]:
        return list(self.data.get("examples") or [])


def is_archive(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz", ".tar"))


def read_tasks(path: Path, member: str | None = None) -> list[TaskFile]:
    """The task a path (or a tarball member) names: itself when it has examples, else its subtasks."""
    return read_many(path, [member] if member is not None else [])[0]


def read_many(path: Path, members: list[str]) -> list[list[TaskFile]]:
    """The tasks of several members of one tarball (one pass over it for those not cached); [] = `path` itself."""
    if not members:
        if is_archive(path):
            raise DataError(f"{path}: a tarball needs `member` (the task.json inside it) in the manifest")
        return [_from_folder(path)]
    if not is_archive(path):
        raise DataError(f"{path}: `member` is only for tarballs (.tar.gz, .tgz, .tar)")
    folder = _member_cache(path)
    wanted = [_member_path(m) for m in members]
    missing = [m for m in wanted if not (folder / m).is_file()]
    if missing:
        _extract(path, missing, folder)
    return [_from_archive(path, m, folder) for m in wanted]


def _member_path(member: str) -> str:
    m = member.strip("/")
    return m if m.endswith(".json") else f"{m}/{TASK_FILE}"


def _load(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{where}: not a JSON task file ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{where}: not a JSON task file (expected an object, got {type(data).__name__})")
    return data


def _task(name: str, where: str, data: dict[str, Any]) -> TaskFile:
    return TaskFile(str(data.get("name") or name), where, data)


def _from_folder(path: Path) -> list[TaskFile]:
    if not path.is_file():
        raise DataError(f"{path} not found")
    data = _load(path.read_bytes(), str(path))
    if data.get("examples"):
        return [_task(path.parent.name, str(path), data)]
    subs = sorted(p for p in path.parent.glob(f"*/{TASK_FILE}"))
    if not subs:
        raise DataError(f"{path}: task file without examples (and no subtask folders beside it)")
    return [_checked(_task(p.parent.name, str(p), _load(p.read_bytes(), str(p)))) for p in subs]


def _checked(task: TaskFile) -> TaskFile:
    if not task.examples:
        raise DataError(f"{task.where}: task file without examples")
    return task


def _from_archive(archive: Path, member: str, folder: Path) -> list[TaskFile]:
    main = folder / member
    where = f"{archive}:{member}"
    data = _load(main.read_bytes(), where)
    if data.get("examples"):
        return [_task(Path(member).parent.name, where, data)]
    subs = sorted(p for p in main.parent.glob(f"*/{TASK_FILE}"))
    if not subs:
        raise DataError(f"{where}: task file without examples (and no subtasks in the tarball)")
    return [_checked(_task(p.parent.name, f"{archive}:{p.relative_to(folder)}", _load(p.read_bytes(), str(p))))
            for p in subs]


def _member_cache(archive: Path) -> Path:
    if not archive.is_file():
        raise DataError(f"{archive} not found")
    st = archive.stat()
    return cache_dir() / "members" / f"{archive.name}-{st.st_size}-{st.st_mtime_ns}"


def _strip_top(name: str) -> str:
    """A member's path without the tarball's top folder ('bigbench-1.0.0/bigbench/...' -> 'bigbench/...')."""
    return name.split("/", 1)[1] if "/" in name else name


def _extract(archive: Path, members: list[str], folder: Path) -> None:
    """Stream the tarball once, copying out `members` and the task files below their folders (subtasks)."""
    belows = tuple(m.rsplit("/", 1)[0] + "/" for m in members)
    found: set[str] = set()
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                name = next((c for c in (info.name, _strip_top(info.name))
                             if c in members or (c.startswith(belows) and c.endswith(f"/{TASK_FILE}"))), None)
                src = tar.extractfile(info) if name is not None else None
                if name is None or src is None:
                    continue
                found.add(name)
                out = tmp / name
                out.parent.mkdir(parents=True, exist_ok=True)
                with src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        absent = [m for m in members if m not in found]
        if absent:
            raise DataError(f"{archive}: no member {absent[0]!r} in the tarball")
        for f in tmp.rglob("*"):  # into the cache folder, beside members read before
            if f.is_file():
                dest = folder / f.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                f.replace(dest)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{archive}: cannot read the tarball ({type(err).__name__}: {err})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
