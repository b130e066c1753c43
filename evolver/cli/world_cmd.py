"""`evolver world`: the embedded world's model: rebuild it from scratch, or describe the shipped one."""

from __future__ import annotations

from pathlib import Path

import typer

from evolver.cli.common import JsonFlag, RuntimeFailure, console, emit_json


def console_stderr():  # noqa: ANN201 - a rich Console
    """Under --json the training log goes to stderr, so stdout holds the document alone."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def register(app: typer.Typer) -> None:
    world = typer.Typer(help="The embedded world: its task family and generation-0 model.", no_args_is_help=True)
    app.add_typer(world, name="world")

    @world.command("pretrain")
    def pretrain_cmd(
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: the shipped model's folder)."),
        seed: int = typer.Option(0, "--seed", help="Seed of corpus, tokenizer and training."),
        steps: int | None = typer.Option(None, "--steps", help="Optimizer steps per cycle (default: as shipped)."),
        threads: int = typer.Option(2, "--threads", help="torch CPU threads (the shipped weights used 2)."),
        resume: Path | None = typer.Option(None, "--resume", help="Folder saved after --cycles-done cycles of this config."),
        cycles_done: int = typer.Option(1, "--cycles-done", help="Cycles the --resume folder has finished."),
        as_json: JsonFlag = False,
    ) -> None:
        """Pretrain the world model from scratch (3 x 800 steps, about 26 min on 2 cores); same seed,
        steps and threads reproduce the shipped weights."""
        from dataclasses import replace

        from evolver.world import base_model_path
        from evolver.world.pretrain import PretrainConfig, pretrain

        cfg = replace(PretrainConfig(), seed=seed, threads=threads, **({"steps": steps} if steps else {}))
        target = out or base_model_path()
        out_console = console() if not as_json else console_stderr()
        meta = pretrain(target, cfg, log=out_console.print,
                        resume=None if resume is None else (resume, cycles_done))
        if as_json:
            emit_json({"path": str(target), **meta})
            return
        out_console.print(f"saved {target} ({meta['parameters'] / 1e6:.2f} M parameters, {meta['seconds']} s, "
                          f"weights sha256 {meta['weights_sha256'][:12]})")

    @world.command("info")
    def info_cmd(as_json: JsonFlag = False) -> None:
        """Where the shipped model lives, its size and how it was trained (meta.json)."""
        import json

        from evolver.world import base_model_path

        def body() -> dict:
            folder = base_model_path()
            meta_file = folder / "meta.json"
            if not meta_file.is_file():
                raise RuntimeFailure(f"{meta_file}: missing; run `evolver world pretrain`")
            meta = json.loads(meta_file.read_text())
            size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
            return {"path": str(folder), "bytes": size, **meta}

        info = body()
        if as_json:
            emit_json(info)
            return
        out = console()
        out.print(f"path        {info['path']} ({info['bytes'] / 1e6:.1f} MB)")
        out.print(f"parameters  {info['parameters'] / 1e6:.2f} M")
        out.print(f"corpus      {info['corpus']['documents']} documents, {info['corpus']['tokens']} tokens")
        out.print(f"training    seed {info['seed']}, {info['config']['steps']} steps, {info['seconds']} s, "
                  f"final loss {info['metrics']['final_loss']:.4f}")
        if "eval" in info:
            ev = info["eval"]
            out.print(f"held-out    acc@t1 {ev['acc@t1']:.3f}  acc@t2 {ev['acc@t2']:.3f}  parse {ev['parse@t1']:.3f}")
        out.print(f"weights     sha256 {info['weights_sha256']}")
