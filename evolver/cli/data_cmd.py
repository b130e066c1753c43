"""`evolver export` and `evolver import`: training snapshots in ReflectEvo's public format."""

from __future__ import annotations

from pathlib import Path

import typer

from evolver.cli.common import JsonFlag, UsageError, console, emit_json, loaded_config, open_store


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        ctx: typer.Context,
        generation: int | None = typer.Option(None, "--generation", "-g", help="Generation to export (default: imported seed data)."),
        fmt: str = typer.Option("reflectevo", "--format", help="reflectevo (JSONL) or hf (datasets save_to_disk)."),
        out: Path = typer.Option(..., "--out", help="Output directory."),
        as_json: JsonFlag = False,
    ) -> None:
        """Write D+, D± and Dpref of a generation with the field names of the ReflectEvo release."""
        from evolver.reflection.interchange import export_snapshots

        def body() -> dict:
            if fmt not in ("reflectevo", "hf"):
                raise UsageError(f"--format: expected reflectevo or hf, got {fmt!r}")
            cfg = loaded_config(ctx)
            with open_store(cfg) as store:
                if generation is not None and store.generation(generation) is None:
                    raise UsageError(f"generation {generation} does not exist")
                return export_snapshots(store, generation, out, fmt)

        written = body()
        if as_json:
            emit_json({"generation": generation, "format": fmt, "written": {k: str(p) for k, p in written.items()}})
            return
        for kind, path in written.items():
            console().print(f"{kind}: {path}")
        if not written:
            console().print("nothing to export (no D+/D±/Dpref snapshots)")

    @app.command("import")
    def import_(
        ctx: typer.Context,
        path: Path = typer.Argument(..., help="JSONL file in ReflectEvo's D+, D+- or Dpref format."),
        fmt: str = typer.Option("reflectevo", "--format", help="Input format (reflectevo)."),
        kind: str | None = typer.Option(None, "--kind", help="D+, D± or Dpref (default: from the fields and file name)."),
        on_error: str = typer.Option("abort", "--on-error", help="abort: import nothing if any row is bad; skip: skip bad rows."),
        as_json: JsonFlag = False,
    ) -> None:
        """Load public ReflectEvo data into the store as seed data, with its source recorded."""
        from evolver.reflection.interchange import InterchangeError, import_file

        def body():  # noqa: ANN202
            if fmt != "reflectevo":
                raise UsageError(f"--format: expected reflectevo, got {fmt!r}")
            if on_error not in ("abort", "skip"):
                raise UsageError(f"--on-error: expected abort or skip, got {on_error!r}")
            cfg = loaded_config(ctx)
            with open_store(cfg) as store:
                try:
                    return import_file(store, path, kind, on_error)
                except InterchangeError as err:
                    raise UsageError(str(err)) from None

        rep = body()
        data = {"path": str(rep.path), "kind": rep.kind, "imported": rep.imported, "skipped": len(rep.problems),
                "problems": rep.problems, "dataset_id": rep.dataset_id, "sha256": rep.sha256}
        if as_json:
            emit_json(data)
            return
        for p in rep.problems:
            console().print(f"skipped {p}")
        console().print(f"imported {rep.imported} {rep.kind} rows from {rep.path} (dataset {rep.dataset_id}, "
                        f"sha256 {rep.sha256[:12] if rep.sha256 else '-'})")
