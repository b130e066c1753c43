"""`evolver status`: where the store and the daemon stand; works on an empty store."""

from __future__ import annotations

import typer

from evolver.cli.common import console, emit_json, loaded_config, open_store, setup_logs


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Current generation and phase, the promoted/pinned model, the last decision, the daemon."""
        from evolver.daemon.status import gather

        def body() -> dict:
            from evolver.logs import get_logger

            cfg = loaded_config(ctx)
            setup_logs(ctx, cfg)
            store = open_store(cfg, create=False)
            try:
                info = gather(store, cfg.state_dir)
                get_logger().info("status", generations=info["generations"], current=info["current"],
                                  pinned=info["pinned"], daemon_pid=info["daemon"]["pid"])
                return info
            finally:
                if store is not None:
                    store.close()

        info = body()
        if as_json:
            emit_json(info)
            return
        d = info["daemon"]
        cur = info["pinned"] if info["pinned"] is not None else info["current"]
        rows = [
            ("state", info["state_dir"]),
            ("daemon", f"running (pid {d['pid']})" if d["alive"] else "not running"),
            ("generations", str(info["generations"])),
            ("current", ("none yet" if cur is None else f"gen-{cur:04d}") + (" (pinned)" if info["pinned"] is not None else "")),
        ]
        if info["latest"]:
            lt = info["latest"]
            rows.append(("latest", f"gen-{lt['id']:04d} {lt['status']}" + (f", phase {lt['phase']}" if lt["phase"] else "")))
        if info["last_decision"]:
            ld = info["last_decision"]
            gen = "" if ld["generation"] is None else f" gen-{ld['generation']:04d}"
            rows.append(("decision", f"{ld['kind']}{gen}: {ld['reason']}"))
        out = console()
        for label, value in rows:  # reasons may hold [brackets]: print them as text, not rich markup
            out.print(f"{label:<12}{value}", markup=False, soft_wrap=True)
