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
  binary ``COPY``, posts the batches and writes the predictions back;
* the services as a per-row caller (a dashboard calling ``pgml.predict`` once per row)
  drives them: the psycopg service calling the model's ``predict`` once per row, and
  the HTTP service answering one row per POST (keep-alive) — the issue's premise that a
  Python prediction costs 100-200 µs of per-call overhead.  They take hundreds of µs a
  row, so they are measured end to end on the first rows only, sized by a probe to take
  about ``PER_ROW_SECONDS``, and their predictions are compared row by row with the
  database's on those rows.

Why both kinds: the batch services predict in C as the database does, so all they add is
data movement, and the write-back every variant pays (the floor) is already about half of
in-database scoring's time; their ratio stays small (docs/benchmarks.md).  The issue's 40x
is about the per-call cost a per-row caller pays.

The services' model is loaded before the clock starts (a service keeps it loaded), as
the database's is warmed by one prediction first.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import psycopg

from pgml_flow import engine
from pgml_flow.benchmarks.common import (
    NUM_FEATURES,
    BenchmarkError,
    Figure,
    Model,
    Progress,
    Workload,
    query,
    quiet,
    sample_size,
)

IN_DATABASE = "in-database INSERT ... SELECT pgml.predict"
COPY_SERVICE = "psycopg service: binary COPY + numpy"
FETCH_SERVICE = "psycopg service: fetchmany + COPY"
HTTP_SERVICE = "HTTP service (JSON batches)"
ROW_SERVICE = "psycopg service: a predict per row"
ROW_HTTP_SERVICE = "HTTP service: a request per row"
WRITE_ONLY = "write-back only (no predict)"
#: the services that predict a batch of rows per call, and those called once per row
BATCH_SERVICES = (COPY_SERVICE, FETCH_SERVICE, HTTP_SERVICE)
ROW_SERVICES = (ROW_SERVICE, ROW_HTTP_SERVICE)
#: rows per fetchmany / per HTTP request of the batch service
BATCH_ROWS = 10_000
#: most rows a per-row service scores, and about how long its sample should take
PER_ROW_SAMPLE_ROWS = 20_000
PER_ROW_SECONDS = 3.0
#: rows of the end-to-end probe that warms a per-row service and sizes its sample
PER_ROW_PROBE_ROWS = 100
#: largest relative difference allowed between a sampled service's and in-db predictions
TOLERANCE = 1e-4
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


#: feature rows as psycopg reads them -> one prediction each
Predictor = Callable[[Sequence[Sequence[float]]], Sequence[float]]


def batch_predictor(model: Any) -> Predictor:
    """One numpy batch predict per fetched batch."""
    return lambda rows: model.predict(np.asarray(rows, dtype=np.float32)).tolist()


def row_predictor(model: Any) -> Predictor:
    """One ``model.predict`` call per row: what a service called once per row does."""
    return lambda rows: [float(model.predict(np.asarray(row, dtype=np.float32))[0])
                         for row in rows]


def fetch_service(conn: psycopg.Connection, predict: Predictor, rows: int) -> None:
    """Server-side cursor, fetchmany batches, ``predict``, COPY each batch back, commit.

    The usual psycopg service; ``predict`` says how it predicts a fetched batch (one
    numpy call, a call per row, an HTTP request per row).
    """
    with conn.transaction(), conn.cursor(name="pgml_flow_bench_read") as cur:
        cur.execute(query("read_rows"), {"rows": rows})
        while batch := cur.fetchmany(BATCH_ROWS):
            predictions = predict([r[1] for r in batch])
            with conn.cursor() as out, out.copy(query("copy_results_in_text")) as copy:
                for (row_id, _), prediction in zip(batch, predictions, strict=True):
                    copy.write_row((row_id, prediction))


def _handler(model: Any) -> type[BaseHTTPRequestHandler]:
    class Predict(BaseHTTPRequestHandler):
        """POST ``{"rows": [[features], ...]}`` -> ``{"predictions": [...]}``, keep-alive."""

        protocol_version = "HTTP/1.1"
        # headers and body are two writes: without TCP_NODELAY each small answer waits
        # for the client's delayed ACK (about 40 ms), which no real service would do
        disable_nagle_algorithm = True

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


@contextmanager
def _http_server(model: Any) -> Iterator[int]:
    """A local prediction service holding ``model``; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(model))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="pgml-flow-bench-http", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def _http_client(port: int) -> Iterator[Callable[[list[Any]], list[float]]]:
    """``post(rows) -> predictions`` over one keep-alive connection to the service."""
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(rows: list[Any]) -> list[float]:
        body = json.dumps({"rows": rows})
        client.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = client.getresponse()
        payload = response.read()
        if response.status != 200:
            raise BenchmarkError(f"the HTTP prediction service answered {response.status}")
        predictions: list[float] = json.loads(payload)["predictions"]
        return predictions

    try:
        yield post
    finally:
        client.close()


def http_service(conn: psycopg.Connection, port: int, rows: int) -> None:
    """Read with binary COPY, POST JSON batches to the service, write back with COPY."""
    ids, x = _read_copy(conn, rows)
    predictions: list[float] = []
    with _http_client(port) as post:
        for start in range(0, len(x), BATCH_ROWS):
            predictions.extend(post(x[start:start + BATCH_ROWS].tolist()))
    _write_copy(conn, ids, np.asarray(predictions, dtype=np.float32))


def http_row_service(conn: psycopg.Connection, port: int, rows: int) -> None:
    """Read with psycopg (fetchmany), POST each row on its own, write back with COPY."""
    with _http_client(port) as post:
        fetch_service(conn, lambda batch: [post([row])[0] for row in batch], rows)


def end_to_end(work: Workload, rows: int | None = None, model_name: str = "xgboost",
               progress: Progress = quiet) -> list[Figure]:
    """End-to-end scoring of ``rows`` rows: in the database, then each Python service.

    The per-row services score a sample of the first rows (see the module docstring).
    """
    rows = min(rows or work.rows, work.rows)
    model = work.model(model_name)
    with work.connect() as conn:
        loaded = _warm(conn, model)
        with _http_server(loaded) as port:
            figures = _measure(conn, model, loaded, port, rows, progress)
        conn.execute(query("truncate_results"))
    return figures


def _warm(conn: psycopg.Connection, model: Model) -> Any:
    """Load the model the database serves, as a service would; warm both sides."""
    conn.execute(query("one_core"))
    files = [(r[0], r[1]) for r in conn.execute(query("model_files"),
                                                {"model_id": model.model_id})]
    loaded = engine.load_model(files)
    conn.execute(query("warm_predict"), {"project": model.project})
    loaded.predict(np.ones((1, NUM_FEATURES), dtype=np.float32))
    return loaded


def _measure(conn: psycopg.Connection, model: Model, loaded: Any, port: int, rows: int,
             progress: Progress) -> list[Figure]:
    """Every variant in turn: the batch ones on all ``rows``, the per-row ones sampled."""
    figures: list[Figure] = []
    reference: list[float] = []

    def timed_run(scored: int, body: Callable[[int], object]) -> float:
        conn.execute(query("truncate_results"))
        started = time.perf_counter()
        body(scored)
        return time.perf_counter() - started

    def run(name: str, body: Callable[[int], object]) -> None:
        progress(f"{model.name}: {name}, {rows:,} rows end to end")
        seconds = timed_run(rows, body)
        total = _written(conn, rows)
        if not reference:
            reference.append(total)
            scoring = "native" if model.native else "Python path"
            note = f"{scoring}, one backend"
        else:
            drift = abs(total - reference[0]) / max(abs(reference[0]), 1e-9)
            note = f"Σ within {drift:.0e} of in-db"
        figures.append(Figure(name, model.name, rows, seconds, note))

    def sampled(name: str, body: Callable[[int], object]) -> None:
        probe = min(rows, PER_ROW_PROBE_ROWS)
        progress(f"{model.name}: {name}, a {probe:,}-row probe sizes the sample")
        sample = sample_size(rows, probe, timed_run(probe, body), PER_ROW_SAMPLE_ROWS,
                             PER_ROW_SECONDS)
        progress(f"{model.name}: {name}, {sample:,} rows end to end")
        seconds = timed_run(sample, body)
        _written(conn, sample)
        diff = _compared(conn, model.project, sample)
        figures.append(Figure(name, model.name, sample, seconds,
                              f"sample of {sample:,} rows; each within {diff:.0e} of in-db"))

    run(IN_DATABASE, lambda n: conn.execute(query("score_into_results"),
                                            {"project": model.project, "rows": n}))
    run(COPY_SERVICE, lambda n: copy_service(conn, loaded, n))
    run(FETCH_SERVICE, lambda n: fetch_service(conn, batch_predictor(loaded), n))
    run(HTTP_SERVICE, lambda n: http_service(conn, port, n))
    sampled(ROW_SERVICE, lambda n: fetch_service(conn, row_predictor(loaded), n))
    sampled(ROW_HTTP_SERVICE, lambda n: http_row_service(conn, port, n))
    progress(f"the floor: {rows:,} rows read and written back without a prediction")
    seconds = timed_run(rows, lambda n: conn.execute(query("write_only"), {"rows": n}))
    figures.append(Figure(WRITE_ONLY, "-", rows, seconds, "INSERT ... SELECT without predict"))
    return figures


def _written(conn: psycopg.Connection, rows: int) -> float:
    """The sum of the predictions written back, after checking there is one per row."""
    row = conn.execute(query("check_results")).fetchone()
    count, total = (int(row[0]), float(row[1])) if row else (0, 0.0)
    if count != rows:
        raise BenchmarkError(f"a scoring run wrote {count:,} predictions for {rows:,} rows")
    return total


def _compared(conn: psycopg.Connection, project: str, rows: int) -> float:
    """The largest relative difference between the predictions written back and the
    database's own on the same rows, after checking each row was written once."""
    row = conn.execute(query("compare_results"), {"project": project}).fetchone()
    distinct, diff = (int(row[0]), float(row[1])) if row else (0, 0.0)
    if distinct != rows:
        raise BenchmarkError(f"a scoring run wrote predictions for {distinct:,} distinct "
                             f"rows of {rows:,}")
    if diff > TOLERANCE:
        raise BenchmarkError(f"a service's predictions differ from the database's by up to "
                             f"{diff:.1e} (relative), more than {TOLERANCE:.0e}")
    return diff


def ratios(figures: list[Figure]) -> dict[str, float]:
    """How many times faster in-database scoring is than each alternative (rows/s)."""
    base = next((f for f in figures if f.benchmark == IN_DATABASE), None)
    if base is None:
        return {}
    return {f.benchmark: base.rows_per_second / f.rows_per_second
            for f in figures if f.benchmark not in (IN_DATABASE, WRITE_ONLY)}
