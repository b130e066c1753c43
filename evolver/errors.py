"""One error base for everything evolver reports to a person.

Every error evolver raises on purpose is an `EvolverError`: its message is one line that names
the offending file, key, generation or id, and its class says the exit code. The CLI catches
this one type, once (`evolver.cli.app`), and prints the line (or `{error, message}` under
`--json`); nothing below the CLI prints or exits. Anything else escaping is a bug and keeps
its traceback.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class EvolverError(Exception):
    """A failure with a one-line message; `exit_code` 1 = could not do the job."""

    exit_code: ClassVar[int] = EXIT_RUNTIME
    kind: ClassVar[str] = "runtime"

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail  # longer text for logs and the store (a stderr tail), never printed as the line

    @property
    def line(self) -> str:
        text = str(self).strip().splitlines()
        return text[0] if text else type(self).__name__


class Interrupted(EvolverError):
    """Work abandoned at a safe point because a stop was requested; nothing half-done was kept.

    Raised by the daemon's stages (`evolver.context.Stopped`) and by a backend whose batch was cut
    short; the interrupted phase stays resumable, so a requested stop exits 0.
    """

    exit_code = EXIT_OK
    kind = "stopped"


class UsageError(EvolverError):
    """Bad input from the user: a flag, a file, a key or a value (exit 2)."""

    exit_code = EXIT_USAGE
    kind = "usage"
