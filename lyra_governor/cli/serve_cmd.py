"""`lyra-governor serve`: the forensic status, Prometheus metrics and health endpoints."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer

from lyra_governor.cli.common import console, settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: server.host, 127.0.0.1)."),
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535, help="Port (default: server.port, 8091; 0 = any free port)."
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Permit a non-loopback bind; requests from other machines then need LYRA_SERVER_TOKEN as a bearer token.",
    ),
    checkpoints: bool = typer.Option(
        True, "--checkpoints/--no-checkpoints", help="Run the 15m/30m/1h/4h/24h compliance checkpoints while serving."
    ),
) -> None:
    """Serve /forensic/status (JSON), /metrics (Prometheus) and /healthz until interrupted."""
    from lyra_governor.server import CheckpointLoop, make_server

    cfg = settings(ctx)
    server = make_server(cfg, host, port, allow_remote)
    loop = CheckpointLoop(cfg, server.ledger).start() if checkpoints else None
    done = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if not done.is_set():
            done.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    remote = " (token required off loopback)" if server.token else ""
    console.print(
        f"serving on {server.url}{remote}: /forensic/status /metrics /healthz; store {cfg.db_url.split('://')[0]}",
        highlight=False,
        soft_wrap=True,
    )
    console.file.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        if loop is not None:
            loop.stop()
        server.server_close()
        server.ledger.close()
    console.print("stopped")
