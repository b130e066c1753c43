"""`evolver status`: where the store and the daemon stand; works on an empty store."""

from __future__ import annotations

import typer

from evolver.cli.common import JsonFlag, console, emit_json, loaded_config, open_reader, setup_logs


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
        """Current generation and phase, the promoted/pinned model, the last decision, the daemon."""
        from evolver.daemon.lock import holder
        from evolver.logs import get_logger
        from evolver.store.watch import status_summary
        from evolver.views.status import status_view

        cfg = loaded_config(ctx)
        setup_logs(ctx, cfg)
        store = open_reader(cfg)
        try:
            info = status_summary(store, cfg.state_dir, holder(cfg.state_dir))
        finally:
            if store is not None:
                store.close()
        get_logger().info("status", generations=info["generations"], current=info["current"],
                          pinned=info["pinned"], daemon_pid=info["daemon"]["pid"])
        if as_json:
            emit_json(info)
            return
        console().print(status_view(info), soft_wrap=True)  # reasons may hold [brackets]: a Text, never markup
