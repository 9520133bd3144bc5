"""The HTTP endpoint of the metrics and probes: ``/metrics``, ``/health``, ``/health/ready``.

One small server for both ``pgml-flow metrics serve`` and the scheduler service (``scheduler
run --metrics-port``), so that the two expose exactly the same metrics and probes:

* ``/metrics``: the Prometheus text format of :class:`pgml_flow.metrics.Collector` (queried
  at scrape time) plus the process's own metrics (the scheduler's last sweep);
* ``/health``: liveness, ``200 {"status": "alive"}`` while the process serves requests;
  it never touches the database, so a database outage does not get the pod restarted;
* ``/health/ready``: readiness, ``200`` with ``{"status": "ready", "checks": ...}`` when the
  database answers, its schema is at head and every eligible client has a deployed model
  of every spec, else ``503`` with the failing check and what to do.

A threaded ``http.server``: scrapes and probes are a few per minute, and every request
opens its own short database connection.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from pgml_flow.errors import ConfigurationError
from pgml_flow.metrics import DEFAULT_PORT, Collector, MetricsConfig, ModelFacts, readiness

if TYPE_CHECKING:
    from pgml_flow.app import PgmlFlow

logger = logging.getLogger(__name__)
__all__ = ["DEFAULT_PORT", "Exporter"]


class Exporter:
    """The registry and HTTP server of one process (``role``: exporter or scheduler)."""

    def __init__(self, flow: PgmlFlow, *, role: str = "exporter",
                 config: MetricsConfig | None = None, extra: Iterable[Any] = ()) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.core import InfoMetricFamily

        self.flow = flow
        self.config = config or MetricsConfig.from_env()
        self.facts = ModelFacts(flow, self.config.model_ttl)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(Collector(flow, self.config, self.facts))
        for collector in extra:
            self.registry.register(collector)

        class _Info:
            def describe(self) -> list[Any]:
                return []

            def collect(self) -> Iterable[Any]:
                info = InfoMetricFamily("pgml_flow_exporter", "Which pgml-flow process serves "
                                        "these metrics, and its settings")
                info.add_metric([], {"role": role,
                                     "max_clients": str(exporter.config.max_clients),
                                     "window_seconds": str(exporter.config.window_seconds)})
                yield info

        exporter = self
        self.registry.register(_Info())
        self.server: ThreadingHTTPServer | None = None

    def metrics(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def ready(self) -> tuple[bool, dict[str, Any]]:
        return readiness(self.flow, self.facts)

    def bind(self, host: str, port: int) -> ThreadingHTTPServer:
        """Listen on ``host:port`` (port 0: a free one, see ``server.server_address``)."""
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/") or "/"
                if path == "/metrics":
                    from prometheus_client import CONTENT_TYPE_LATEST

                    self._send(200, exporter.metrics(), CONTENT_TYPE_LATEST)
                elif path == "/health":
                    self._json(200, {"status": "alive"})
                elif path == "/health/ready":
                    ok, body = exporter.ready()
                    self._json(200 if ok else 503, body)
                else:
                    self._json(404, {"error": f"no page {path}; see /metrics, /health and "
                                              "/health/ready"})

            def _json(self, code: int, body: dict[str, Any]) -> None:
                self._send(code, json.dumps(body, default=str).encode(), "application/json")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("%s %s", self.address_string(), format % args)

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port} for metrics: {exc.strerror or exc}; "
                "choose another --port (PGML_FLOW_METRICS_PORT) or stop what uses it") from None
        self.server.daemon_threads = True
        return self.server

    def start(self, host: str, port: int) -> tuple[str, int]:
        """Serve in a background thread (the scheduler service); returns the address."""
        server = self.bind(host, port)
        threading.Thread(target=server.serve_forever, name="pgml-flow metrics",
                         daemon=True).start()
        address = server.server_address
        logger.info("metrics on http://%s:%s/metrics (probes /health, /health/ready)",
                    address[0], address[1], extra={"action": "metrics_start"})
        return str(address[0]), int(address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
