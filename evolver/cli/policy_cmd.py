"""`evolver pin|unpin|rollback|promote|events` and `evolver policy check`: the human side of promotion.

Every command that changes what is served appends an event with its reason (actor "user"),
so `evolver events` shows who moved the pointer, when and why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from evolver.cli.common import JsonFlag, RuntimeFailure, UsageError, emit_json, loaded_config, open_reader, open_store
from evolver.states import gen_name

T = TypeVar("T")


def _with_store(ctx: typer.Context, fn: Callable[[Any], T], create: bool = False) -> T | None:
    """Run `fn(store)` on the config's store; policy refusals become runtime failures (exit 1)."""
    from evolver.policy import PolicyActionError

    cfg = loaded_config(ctx)
    store = open_store(cfg, create=create)
    if store is None:
        raise RuntimeFailure(f"{cfg.state_dir / 'evolver.db'}: no store yet (run `evolver run` first)")
    try:
        return fn(store)
    except PolicyActionError as err:
        raise RuntimeFailure(str(err)) from None
    finally:
        store.close()


def _event_row(e: Any) -> dict[str, Any]:
    return {"id": e.id, "ts": e.ts, "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts)), "kind": e.kind,
            "generation": e.generation_id, "actor": e.actor, "reason": e.reason,
            "metrics": json.loads(e.metrics_json) if e.metrics_json else None}


def _said(as_json: bool, text: str, **data: Any) -> None:
    """A pointer command's outcome: its sentence, or under --json the same facts as a document."""
    if as_json:
        emit_json({"message": text, **data})
    else:
        typer.echo(text)


def register(app: typer.Typer) -> None:
    @app.command("pin")
    def pin_cmd(ctx: typer.Context, gen: int = typer.Argument(..., min=0, help="Generation to serve."),
                reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the event)."),
                as_json: JsonFlag = False) -> None:
        """Serve generation GEN whatever the policy decides, until `evolver unpin`."""
        from evolver.policy import pin

        changed = _with_store(ctx, lambda s: pin(s, gen, reason))
        _said(as_json, f"pinned {gen_name(gen)}" + ("" if changed else " (already pinned)")
              + "; it is served until `evolver unpin`", action="pin", pinned=gen, changed=bool(changed))

    @app.command("unpin")
    def unpin_cmd(ctx: typer.Context,
                  reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the event)."),
                  as_json: JsonFlag = False) -> None:
        """Drop the pin: the promoted generation is served again and the policy resumes."""
        from evolver.policy import unpin

        def body(store: Any) -> tuple[int | None, int | None]:
            return unpin(store, reason), store.pointer("current")

        prev, cur = _with_store(ctx, body)
        _said(as_json, "nothing was pinned" if prev is None else f"unpinned {gen_name(prev)}; serving {gen_name(cur)}",
              action="unpin", unpinned=prev, current=cur)

    @app.command("rollback")
    def rollback_cmd(ctx: typer.Context,
                     to: int | None = typer.Option(None, "--to", min=0, help="Generation to return to (default: the previous current)."),
                     reason: str = typer.Option("rolled back by hand", "--reason", help="Why (recorded in the event)."),
                     as_json: JsonFlag = False) -> None:
        """Point `current` back at the previous current generation (or --to N), restoring its adapter."""
        from evolver.policy import rollback

        def body(store: Any) -> tuple[int, int, str | None]:
            frm, dst = rollback(store, to=to, reason=reason)
            g = store.generation(dst)
            return frm, dst, g.adapter_sha256 if g else None

        frm, dst, sha = _with_store(ctx, body)
        _said(as_json, f"rolled back {gen_name(frm)} -> {gen_name(dst)} (adapter {sha[:12] if sha else 'none: base model'})",
              action="rollback", **{"from": frm, "to": dst, "adapter_sha256": sha})

    @app.command("promote")
    def promote_cmd(ctx: typer.Context, gen: int = typer.Argument(..., min=0, help="Generation to make current."),
                    reason: str = typer.Option("manual promotion", "--reason", help="Why (recorded in the event)."),
                    as_json: JsonFlag = False) -> None:
        """Make generation GEN current by hand, overriding the policy (recorded as manual_promote)."""
        from evolver.policy import manual_promote

        if not reason.strip():
            raise UsageError("--reason must not be empty")
        pinned = _with_store(ctx, lambda s: manual_promote(s, gen, reason))
        note = f"; {gen_name(pinned)} stays pinned and served until `evolver unpin`" if pinned is not None else ""
        _said(as_json, f"promoted {gen_name(gen)} (manual): {reason}{note}", action="promote", promoted=gen,
              pinned=pinned, reason=reason)

    @app.command("events")
    def events_cmd(ctx: typer.Context, as_json: JsonFlag = False,
                   limit: int = typer.Option(50, "--limit", min=1, help="Show the last N events."),
                   gen: int | None = typer.Option(None, "--gen", min=0, help="Only events about this generation.")) -> None:
        """The append-only history of promotions, rejections, rollbacks and pins (oldest first)."""

        from evolver.store.watch import recent_events

        def body() -> list[dict[str, Any]]:
            cfg = loaded_config(ctx)
            store = open_reader(cfg)
            if store is None:
                return []
            try:
                return [_event_row(e) for e in reversed(recent_events(store, gen, limit))]
            finally:
                store.close()

        rows = body()
        if as_json:
            emit_json({"events": rows})
            return
        if not rows:
            typer.echo("no events yet")
        for r in rows:
            typer.echo(f"{r['time']}  {r['kind']:<14} {gen_name(r['generation']):<9} {r['actor']:<6} {r['reason']}")

    policy_app = typer.Typer(help="Check promotion policies.", no_args_is_help=True)
    app.add_typer(policy_app, name="policy")

    @policy_app.command("check")
    def check(ctx: typer.Context, file: Path | None = typer.Argument(None, help="Policy file (default: the config's [policy] file)."),
              as_json: JsonFlag = False) -> None:
        """Validate a policy file; exit 2 with one line naming the file and key on error."""
        from evolver.policy import load_policy

        def body() -> tuple[Path, Any]:
            path = file if file is not None else (lambda c: c.resolve(c.config.policy.file))(loaded_config(ctx))
            return path, load_policy(path)

        path, pol = body()
        if as_json:
            emit_json({"path": str(path), "ok": True, "policy": pol.model_dump(mode="json")})
            return
        typer.echo(f"{path}: policy {pol.name!r} is well-formed (primary {pol.primary}, margin {pol.margin:g} pts,"
                   f" alpha {pol.alpha:g}, {pol.test})")
