"""Log level names, apart from evolver.logs so the CLI can offer them without importing structlog."""

LEVELS = ("debug", "info", "warning", "error")
