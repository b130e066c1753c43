"""What went wrong, in one line, and whether trying again can mend it.

`evolver run` has one error path: whatever escapes (a store error, a newer schema, an OS error, a
full disk, a scheduler error) becomes a `DaemonError` whose line names the root cause, not the
last thing that failed on the way out (SQLAlchemy's wrapper, a ROLLBACK after the disk filled).
"""

from __future__ import annotations

import errno
import os
import sqlite3

from evolver.errors import EvolverError
from evolver.store import SchemaTooNewError
from evolver.store.health import StoreDamaged

# Storage that no retry mends: full, read-only, not ours to write, over quota.
PERMANENT_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)
PERMANENT_SQLITE = ("disk is full", "readonly", "read-only", "malformed", "not a database")
HINTS = {
    errno.ENOSPC: "the disk is full: free space, then run again (the run resumes where it stopped)",
    errno.EDQUOT: "the disk quota is exhausted: free space, then run again (the run resumes where it stopped)",
    errno.EROFS: "the state folder is on a read-only file system; evolver run writes its store, lock and logs there",
    errno.EACCES: "the state folder is not writable by this user; evolver run writes its store, lock and logs there",
    errno.EPERM: "the state folder is not writable by this user; evolver run writes its store, lock and logs there",
}


class DaemonError(EvolverError):
    """`evolver run` could not go on; the line names the root cause (exit 1)."""


class Fatal(EvolverError):
    """A condition the daemon must not work around (a pinned adapter that fails verification)."""


def chain(err: BaseException) -> list[BaseException]:
    """The error and its causes, outermost first (each once)."""
    out: list[BaseException] = []
    cur: BaseException | None = err
    while cur is not None and all(cur is not seen for seen in out):
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def root_cause(err: BaseException) -> BaseException:
    """The error that says what happened: the first of ours, else the innermost OS or SQLite error."""
    links = chain(err)
    for e in links:
        if isinstance(e, EvolverError):
            return e
    low = [e for e in links if isinstance(e, (OSError, sqlite3.Error))]
    return low[-1] if low else err


def permanent(err: BaseException) -> bool:
    """Errors no retry can mend: full or read-only storage, a damaged store, a store from a newer evolver."""
    for e in chain(err):
        if isinstance(e, (SchemaTooNewError, StoreDamaged, Fatal)):
            return True
        if isinstance(e, OSError) and e.errno in PERMANENT_ERRNOS:
            return True
        if isinstance(e, sqlite3.Error) and any(w in str(e).lower() for w in PERMANENT_SQLITE):
            return True
    return False


def storage_error(err: BaseException) -> bool:
    """An OS or SQLite error anywhere in the chain: worth a look at the store's pages."""
    return any(isinstance(e, (OSError, sqlite3.Error)) for e in chain(err))


def describe(err: BaseException) -> str:
    """One line naming the root cause (and, for storage that will not take writes, what to do)."""
    root = root_cause(err)
    if isinstance(root, EvolverError):
        return root.line
    if isinstance(root, OSError):
        where = f"{root.filename}: " if root.filename else ""
        what = (root.strerror or os.strerror(root.errno)) if root.errno else str(root)
        hint = HINTS.get(root.errno or 0)
        return f"{where}{what}" + (f" ({hint})" if hint else "")
    text = (str(root).strip().splitlines() or [""])[0]
    line = f"{type(root).__name__}: {text}" if text else type(root).__name__
    if isinstance(root, sqlite3.Error) and "disk is full" in text.lower():
        line += f" ({HINTS[errno.ENOSPC]})"
    return line
