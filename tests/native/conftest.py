"""Fixtures for the native scorer tests.

``native_lib`` builds the PostgreSQL-independent core (ext/pgml_native/model.c)
into a shared library and loads it with ctypes, so parity tests exercise the
exact C code the extension runs without needing a database.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

EXT_DIR = Path(__file__).resolve().parents[2] / "ext" / "pgml_native"


class NativeError(Exception):
    """The C core refused a blob."""


class NativeModel:
    """A parsed blob, evaluated through the C core."""

    def __init__(self, lib: ctypes.CDLL, blob: bytes) -> None:
        self._lib = lib
        self._ptr = ctypes.c_void_p()
        err = ctypes.create_string_buffer(512)
        rc = lib.pgmln_parse(blob, len(blob), None, None, ctypes.byref(self._ptr), err, 512)
        if rc != 0:
            raise NativeError(err.value.decode())
        self.num_features = lib.pgmln_num_features(self._ptr)
        self.num_classes = lib.pgmln_num_classes(self._ptr)
        self.width = lib.pgmln_vector_width(self._ptr)
        self.has_scalar = bool(lib.pgmln_has_scalar(self._ptr))

    def __del__(self) -> None:
        if getattr(self, "_ptr", None):
            self._lib.pgmln_free(self._ptr)

    def _rows(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        assert x.ndim == 2 and x.shape[1] == self.num_features
        return x

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = self._rows(x)
        out = np.empty(len(x), dtype=np.float64)
        self._lib.pgmln_predict_rows(self._ptr, x.ctypes.data, len(x), out.ctypes.data)
        return out

    def predict_checked(self, row: Any) -> tuple[int, float, int]:
        """(status, prediction, feature) of ``pgmln_predict_checked`` for one row."""
        x = np.ascontiguousarray(row, dtype=np.float32).reshape(-1)
        assert x.shape == (self.num_features,)
        out, feature = ctypes.c_double(np.nan), ctypes.c_int(-1)
        status = self._lib.pgmln_predict_checked(
            self._ptr, x.ctypes.data, ctypes.byref(out), ctypes.byref(feature)
        )
        return int(status), out.value, feature.value

    def outputs(self, x: np.ndarray) -> np.ndarray:
        x = self._rows(x)
        out = np.empty((len(x), self.width), dtype=np.float64)
        self._lib.pgmln_outputs_rows(self._ptr, x.ctypes.data, len(x), out.ctypes.data)
        return out


class NativeLib:
    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        lib.pgmln_parse.argtypes = [
            ctypes.c_char_p,
            sz,
            vp,
            vp,
            ctypes.POINTER(vp),
            ctypes.c_char_p,
            sz,
        ]
        lib.pgmln_parse.restype = ctypes.c_int
        lib.pgmln_free.argtypes = [vp]
        for fn in (
            "pgmln_num_features",
            "pgmln_num_classes",
            "pgmln_vector_width",
            "pgmln_has_scalar",
        ):
            getattr(lib, fn).argtypes = [vp]
            getattr(lib, fn).restype = ctypes.c_int
        lib.pgmln_predict_rows.argtypes = [vp, vp, sz, vp]
        lib.pgmln_predict_checked.argtypes = [vp, vp, vp, vp]
        lib.pgmln_predict_checked.restype = ctypes.c_int
        lib.pgmln_outputs_rows.argtypes = [vp, vp, sz, vp]
        self.lib = lib

    def load(self, blob: bytes) -> NativeModel:
        return NativeModel(self.lib, blob)


@pytest.fixture(scope="session")
def native_lib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeLib]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("pgmln") / "libpgmln.so"
    subprocess.run(
        [
            cc,
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-shared",
            "-fPIC",
            "-o",
            str(out),
            str(EXT_DIR / "model.c"),
            str(EXT_DIR / "text.c"),
            "-lm",
        ],
        check=True,
    )
    yield NativeLib(out)


# --------------------------------------------------------------------------- PostgreSQL


class NativeDB:
    """A fresh pgml-flow database; models are inserted by hand with compiled blobs."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.conninfo, autocommit=True)

    def add_model(
        self, conn: Any, project: str, blob: bytes | None, *, parts: int = 3, deploy: bool = True
    ) -> int:
        """Insert a model (and its blob split into `parts` rows, out of order)."""
        conn.execute(
            "INSERT INTO pgml.projects(name, task) VALUES (%s, 'regression') "
            "ON CONFLICT (name) DO NOTHING",
            (project,),
        )
        (pid,) = conn.execute("SELECT id FROM pgml.projects WHERE name = %s", (project,)).fetchone()
        (mid,) = conn.execute(
            "INSERT INTO pgml.models(project_id, num_features, algorithm, hyperparams, status,"
            " search_params, search_args) VALUES (%s, 0, 'xgboost', '{}', 'successful', '{}',"
            " '{}') RETURNING id",
            (pid,),
        ).fetchone()
        if blob is not None:
            step = max(1, -(-len(blob) // parts))
            chunks = [blob[i : i + step] for i in range(0, len(blob), step)]
            for part in reversed(range(len(chunks))):
                conn.execute(
                    "INSERT INTO pgml.files(model_id, path, part, data) VALUES (%s,'native',%s,%s)",
                    (mid, part, chunks[part]),
                )
            # an unrelated file of the same model must not be mixed in
            conn.execute(
                "INSERT INTO pgml.files(model_id, path, part, data) VALUES (%s,'estimator',0,%s)",
                (mid, b"pickle"),
            )
        if deploy:
            self.deploy(conn, project, mid)
        return int(mid)

    def deploy(self, conn: Any, project: str, model_id: int) -> None:
        conn.execute(
            "INSERT INTO pgml.deployments(project_id, model_id, strategy) "
            "SELECT id, %s, 'specific' FROM pgml.projects WHERE name = %s",
            (model_id, project),
        )


def skip_unless_scorer_reads_input_rules(conn: Any) -> None:
    """Skip on a server still running a pgml_native older than this compiler's blobs.

    The extension is preloaded: a build installed since the server started is not used
    until it restarts, and it refuses the input rules (header flags) of new blobs.
    """
    import psycopg
    from sklearn.linear_model import LinearRegression

    from pgml_flow.engine.native import compile_model

    blob = compile_model(LinearRegression().fit(np.eye(2), [0.0, 1.0]))
    try:
        conn.execute("SELECT pgml.native_eval(%s, ARRAY[1, 2]::real[])", (blob,))
    except psycopg.errors.DataCorrupted as exc:
        pytest.skip(f"the server runs a pgml_native older than input rules "
                    f"({exc.diag.message_primary}); restart PostgreSQL to load the installed "
                    "build")


@pytest.fixture
def native_db(db_url: str) -> NativeDB:
    """A fresh database at the head schema (the project's fixture), with pgml_native."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pgml_native'")
        if not row.fetchone()[0]:
            pytest.skip("pgml_native is not installed: ./dev setup builds and installs it")
        skip_unless_scorer_reads_input_rules(conn)
    return NativeDB(db_url)
