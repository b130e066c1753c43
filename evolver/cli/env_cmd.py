"""`evolver env`: the versions a bug report needs (what each generation also records)."""

from __future__ import annotations

import typer

from evolver.cli.common import JsonFlag, console, emit_json


def register(app: typer.Typer) -> None:
    @app.command("env")
    def env(as_json: JsonFlag = False) -> None:
        """Platform, Python, torch and CUDA, transformers, trl, peft, vllm and evolver versions, for bug reports."""
        from evolver.provenance import environment

        info = environment()
        if as_json:
            emit_json({"env": info})
            return
        out = console()
        for key, value in info.items():
            shown = ", ".join(value) or "none" if isinstance(value, list) else ("-" if value is None else value)
            out.print(f"{key:<16}{shown}", soft_wrap=True)
