"""``pgml-flow metrics``: the Prometheus exporter and its health probes (docs/operations.md,
"Monitoring"), a thin layer over :mod:`pgml_flow.exporter`."""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Annotated, Any

import typer

from cli.output import flow
from pgml_flow.metrics import DEFAULT_PORT

app = typer.Typer(help="Prometheus metrics and health probes of the database.",
                  no_args_is_help=True)

HostOption = Annotated[str, typer.Option(
    "--host", envvar="PGML_FLOW_METRICS_HOST",
    help="Address to listen on (0.0.0.0: every interface, as in a container).")]


@app.command("serve")
def serve(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", envvar="PGML_FLOW_METRICS_PORT", min=0, max=65535,
        help="Port to listen on (0: a free one, printed at start).")] = DEFAULT_PORT,
) -> None:
    """Serve /metrics (queried at scrape time), /health and /health/ready until SIGTERM."""
    from pgml_flow.exporter import Exporter

    log = logging.getLogger("pgml_flow.exporter")
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    exporter = Exporter(flow())
    server = exporter.bind(host, port)
    address = server.server_address
    log.info("metrics on http://%s:%s/metrics (probes /health, /health/ready)",
             address[0], address[1], extra={"action": "metrics_start"})

    def on_signal(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever, which runs in this thread: raise out of it
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.info("metrics stopped", extra={"action": "metrics_stop"})


@app.command("show")
def show() -> None:
    """Print the metrics once, as a scrape would get them (Prometheus text format)."""
    from pgml_flow.exporter import Exporter

    sys.stdout.write(Exporter(flow()).metrics().decode())


@app.command("ready")
def ready() -> None:
    """Print the readiness check's JSON (what /health/ready answers); exit 1 if not ready."""
    from pgml_flow.exporter import Exporter

    ok, body = Exporter(flow()).ready()
    sys.stdout.write(json.dumps(body, indent=2, default=str) + "\n")
    if not ok:
        raise typer.Exit(1)
