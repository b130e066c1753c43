"""`evolver serve`: the current generation (promoted or pinned) behind an OpenAI-compatible API.

Binds to loopback unless told otherwise: the API has no authentication.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys

import typer

from evolver.cli.common import JsonFlag, RuntimeFailure, UsageError, emit_json, get_globals, loaded_config, open_store, setup_logs


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default; the API has no auth)."),
        port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0 = any free one; the URL is printed)."),
        max_batch: int = typer.Option(0, "--max-batch", min=0, help="Requests per batch (0 = generation.batch_size)."),
        as_json: JsonFlag = False,
    ) -> None:
        """Serve generations over HTTP: /v1/models, /v1/completions, /v1/chat/completions ('current' by default;
        "stream": true for server-sent events). With --json the listening URL is one JSON line on stdout."""

        def prepare() -> tuple[object, socket.socket, object, object]:
            from evolver.backends.transformers_backend import TransformersBackend
            from evolver.models import ModelLoadError, resolve_base
            from evolver.serve.app import create_app

            cfg = loaded_config(ctx)
            setup_logs(ctx, cfg)
            if not cfg.state_dir.is_dir():
                raise RuntimeFailure(f"no state folder at {cfg.state_dir}; run `evolver init` first")
            store = open_store(cfg)  # before the first generation: an empty store, and 'current' is the base
            sock = _listen(host, port)
            base = resolve_base(cfg.config.model, cfg.root, cfg.state_dir)
            try:
                backend = TransformersBackend(base, cfg.config.model, batch_size=cfg.config.generation.batch_size)
            except ModelLoadError as err:
                sock.close()
                store.close()
                raise RuntimeFailure(str(err)) from None
            app_ = create_app(store, backend, base, max_batch=max_batch or cfg.config.generation.batch_size)
            return app_, sock, store, backend

        app_, sock, store, backend = prepare()
        import uvicorn

        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if not ipaddress.ip_address(bound_host).is_loopback:
            sys.stderr.write(f"evolver: warning: listening on {bound_host}, beyond this machine; the API has no authentication\n")
        url = f"http://{shown}:{bound_port}/v1"
        if as_json:
            emit_json({"url": url, "host": bound_host, "port": bound_port}, compact=True)
            sys.stdout.flush()
        else:
            print(f"evolver: serving on {url} (model 'current' follows the store's pointers)", flush=True)
        level = get_globals(ctx).log_level
        server = uvicorn.Server(uvicorn.Config(app_, log_level=level, access_log=level in ("debug", "info")))
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler it found:
        # make that one note it (a flag, nothing more), so a requested stop exits 0.
        received: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, _frame: received.append(signum))
        try:
            server.run(sockets=[sock])
        finally:
            backend.close()  # type: ignore[attr-defined]
            store.close()  # type: ignore[attr-defined]


def _listen(host: str, port: int) -> socket.socket:
    """Bind before loading the model, so a taken port fails in a second with one line."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise UsageError(f"--host: expected an IP address (127.0.0.1, ::1, 0.0.0.0), got {host!r}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise RuntimeFailure(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
