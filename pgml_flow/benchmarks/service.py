"""In-database scoring against the alternative users have today: a Python service.

All variants score the same rows with the same stored model and write the predictions
back to ``pgml_flow_bench_results``, end to end (read, predict, write, commit):

* in the database: ``INSERT INTO results SELECT id, pgml.predict(project, features)``;
* a Python service with psycopg that loads the model the database serves (the
  library's own files from ``pgml.files``, :func:`pgml_flow.engine.load_model`) and
  predicts with numpy batches, reading either with the fast path (binary ``COPY``
  parsed straight into numpy) or the usual one (server-side cursor, ``fetchmany``),
  writing back with ``COPY``;
* for reference, the floor: the same INSERT ... SELECT without a prediction;
* the same behind HTTP: a local prediction service (``ThreadingHTTPServer`` on
  127.0.0.1) that takes batches of rows as JSON, and a client that reads the rows with
  binary ``COPY``, posts the batches and writes the predictions back.

The services' model is loaded before the clock starts (a service keeps it loaded), as
the database's is warmed by one prediction first.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import psycopg

from pgml_flow import engine
from pgml_flow.benchmarks.common import (
    NUM_FEATURES,
    BenchmarkError,
    Figure,
    Progress,
    Workload,
    query,
    quiet,
)

IN_DATABASE = "in-database INSERT ... SELECT pgml.predict"
COPY_SERVICE = "psycopg service: binary COPY + numpy"
FETCH_SERVICE = "psycopg service: fetchmany + COPY"
HTTP_SERVICE = "HTTP service (JSON batches)"
WRITE_ONLY = "write-back only (no predict)"
#: rows per fetchmany / per HTTP request
BATCH_ROWS = 10_000
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = _SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_FLOAT4_OID = 700


def _row_dtype(num_features: int) -> np.dtype:
    """One binary COPY tuple of (int4 id, real[] features) without NULLs: fixed width."""
    return np.dtype([
        ("nfields", ">i2"), ("id_len", ">i4"), ("id", ">i4"), ("array_len", ">i4"),
        ("ndim", ">i4"), ("has_null", ">i4"), ("elemtype", ">u4"), ("dim", ">i4"),
        ("lbound", ">i4"), ("cells", [("len", ">i4"), ("value", ">f4")], (num_features,)),
    ])


_RESULT_DTYPE = np.dtype([("nfields", ">i2"), ("id_len", ">i4"), ("id", ">i4"),
                          ("p_len", ">i4"), ("p", ">f4")])


def parse_copy(data: bytes, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, features)`` from ``COPY (SELECT id, features ...) TO STDOUT (FORMAT BINARY)``."""
    if not data.startswith(_SIGNATURE) or not data.endswith(_TRAILER):
        raise BenchmarkError("binary COPY output has no PGCOPY header or trailer")
    extension = int.from_bytes(data[15:19], "big")
    body = memoryview(data)[19 + extension:len(data) - len(_TRAILER)]
    dtype = _row_dtype(num_features)
    if len(body) % dtype.itemsize:
        raise BenchmarkError(f"feature rows are not all {num_features} non-NULL reals")
    rows = np.frombuffer(body, dtype=dtype)
    expected = {"nfields": 2, "id_len": 4, "array_len": 20 + 8 * num_features, "ndim": 1,
                "has_null": 0, "elemtype": _FLOAT4_OID, "dim": num_features}
    for name, value in expected.items():
        if len(rows) and not (rows[name] == value).all():
            raise BenchmarkError(f"feature rows are not all {num_features} non-NULL reals "
                                 f"({name} differs)")
    return rows["id"].astype(np.int32), rows["cells"]["value"].astype(np.float32)


def results_copy(ids: np.ndarray, predictions: np.ndarray) -> bytes:
    """``(id, prediction)`` rows as a binary COPY stream."""
    out = np.empty(len(ids), dtype=_RESULT_DTYPE)
    out["nfields"], out["id_len"], out["p_len"] = 2, 4, 4
    out["id"] = ids
    out["p"] = predictions
    return _HEADER + out.tobytes() + _TRAILER


def _read_copy(conn: psycopg.Connection, rows: int) -> tuple[np.ndarray, np.ndarray]:
    chunks: list[bytes] = []
    with conn.cursor() as cur, cur.copy(query("copy_rows_out"), {"rows": rows}) as copy:
        chunks.extend(bytes(chunk) for chunk in copy)
    return parse_copy(b"".join(chunks), NUM_FEATURES)


def _write_copy(conn: psycopg.Connection, ids: np.ndarray, predictions: np.ndarray) -> None:
    with conn.cursor() as cur, cur.copy(query("copy_results_in")) as copy:
        copy.write(results_copy(ids, predictions))


def copy_service(conn: psycopg.Connection, model: Any, rows: int) -> None:
    """Read with binary COPY into numpy, predict in one batch, write back with binary COPY."""
    ids, x = _read_copy(conn, rows)
    _write_copy(conn, ids, np.asarray(model.predict(x), dtype=np.float32))


def fetch_service(conn: psycopg.Connection, model: Any, rows: int) -> None:
    """Server-side cursor, fetchmany batches, numpy predict, COPY each batch back."""
    with conn.transaction(), conn.cursor(name="pgml_flow_bench_read") as cur:
        cur.execute(query("read_rows"), {"rows": rows})
        while batch := cur.fetchmany(BATCH_ROWS):
            x = np.asarray([r[1] for r in batch], dtype=np.float32)
            predictions = model.predict(x).tolist()
            with conn.cursor() as out, out.copy(query("copy_results_in_text")) as copy:
                for (row_id, _), prediction in zip(batch, predictions, strict=True):
                    copy.write_row((row_id, prediction))


def _handler(model: Any) -> type[BaseHTTPRequestHandler]:
    class Predict(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            predictions = model.predict(np.asarray(body["rows"], dtype=np.float32))
            out = json.dumps({"predictions": predictions.tolist()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: no line per request on stderr."""

    return Predict


def http_service(conn: psycopg.Connection, port: int, rows: int) -> None:
    """Read with binary COPY, POST JSON batches to the service, write back with COPY."""
    ids, x = _read_copy(conn, rows)
    predictions: list[float] = []
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for start in range(0, len(x), BATCH_ROWS):
            body = json.dumps({"rows": x[start:start + BATCH_ROWS].tolist()})
            client.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = client.getresponse()
            payload = response.read()
            if response.status != 200:
                raise BenchmarkError(f"the HTTP prediction service answered {response.status}")
            predictions.extend(json.loads(payload)["predictions"])
    finally:
        client.close()
    _write_copy(conn, ids, np.asarray(predictions, dtype=np.float32))


def end_to_end(work: Workload, rows: int | None = None, model_name: str = "xgboost",
            progress: Progress = quiet) -> list[Figure]:
    """End-to-end scoring of ``rows`` rows: in the database, then each Python service."""
    rows = min(rows or work.rows, work.rows)
    model = work.model(model_name)
    figures: list[Figure] = []
    with work.connect() as conn:
        conn.execute(query("one_core"))
        files = [(r[0], r[1]) for r in conn.execute(query("model_files"),
                                                    {"model_id": model.model_id})]
        loaded = engine.load_model(files)
        conn.execute(query("warm_predict"), {"project": model.project})
        loaded.predict(np.ones((1, NUM_FEATURES), dtype=np.float32))

        reference: list[float] = []

        def run(name: str, body: Callable[[], object]) -> None:
            progress(f"{model.name}: {name}, {rows:,} rows end to end")
            conn.execute(query("truncate_results"))
            started = time.perf_counter()
            body()
            seconds = time.perf_counter() - started
            total = _written(conn, rows)
            if not reference:
                reference.append(total)
                scoring = "native" if model.native else "Python path"
                note = f"{scoring}, one backend"
            else:
                drift = abs(total - reference[0]) / max(abs(reference[0]), 1e-9)
                note = f"Σ within {drift:.0e} of in-db"
            figures.append(Figure(name, model.name, rows, seconds, note))

        run(IN_DATABASE, lambda: conn.execute(query("score_into_results"),
                                              {"project": model.project, "rows": rows}))
        run(COPY_SERVICE, lambda: copy_service(conn, loaded, rows))
        run(FETCH_SERVICE, lambda: fetch_service(conn, loaded, rows))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(loaded))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="pgml-flow-bench-http", daemon=True)
        thread.start()
        try:
            run(HTTP_SERVICE, lambda: http_service(conn, server.server_address[1], rows))
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
        progress(f"the floor: {rows:,} rows read and written back without a prediction")
        conn.execute(query("truncate_results"))
        started = time.perf_counter()
        conn.execute(query("write_only"), {"rows": rows})
        figures.append(Figure(WRITE_ONLY, "-", rows, time.perf_counter() - started,
                              "INSERT ... SELECT without predict"))
        conn.execute(query("truncate_results"))
    return figures


def _written(conn: psycopg.Connection, rows: int) -> float:
    """The sum of the predictions written back, after checking there is one per row."""
    row = conn.execute(query("check_results")).fetchone()
    count, total = (int(row[0]), float(row[1])) if row else (0, 0.0)
    if count != rows:
        raise BenchmarkError(f"a scoring run wrote {count:,} predictions for {rows:,} rows")
    return total


def ratios(figures: list[Figure]) -> dict[str, float]:
    """How many times faster in-database scoring is than each alternative (rows/s)."""
    base = next((f for f in figures if f.benchmark == IN_DATABASE), None)
    if base is None:
        return {}
    return {f.benchmark: base.rows_per_second / f.rows_per_second
            for f in figures if f.benchmark not in (IN_DATABASE, WRITE_ONLY)}
