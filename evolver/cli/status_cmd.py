"""`evolver status`: where the store and the daemon stand; works on an empty store.

A read command: it writes nothing, not even a log line (and so skips the logging set-up, a tenth
of its start-up time).
"""

from __future__ import annotations

import typer

from evolver.cli.common import JsonFlag, console, emit_json, loaded_config, open_reader


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
        """Current generation and phase, the promoted/pinned model, the last decision, the daemon."""
        from evolver.daemon.lock import holder
        from evolver.store.watch import status_summary
        from evolver.views.status import status_view

        cfg = loaded_config(ctx)
        store = open_reader(cfg)
        try:
            info = status_summary(store, cfg.state_dir, holder(cfg.state_dir))
        finally:
            if store is not None:
                store.close()
        if as_json:
            emit_json(info)
            return
        console().print(status_view(info), soft_wrap=True)  # reasons may hold [brackets]: a Text, never markup
