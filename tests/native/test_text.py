"""Text features (tfidf, hashing, words, multi_hot): the C scorer against the Python path.

The tokenizer is defined in pgml_flow/engine/text.py and reproduced in ext/pgml_native/text.c;
these tests hold them to the same bytes (tokens, MurmurHash3) on punctuation, case, digits,
accents, emoji, CJK, empty, NULL and very long texts, the C row encoding to the same
features as ``RowTransformer.transform``, the Python encodings to scikit-learn's
``TfidfVectorizer`` / ``HashingVectorizer``, and ``pgml.predict`` of the real server (ROW
form, native) to ``pgml._py_predict_row`` (the Python path) on a model trained by
``pgml.train`` with text preprocessing.
"""

from __future__ import annotations

import ctypes
import json
import random
from typing import Any

import numpy as np
import pytest
from conftest import NativeLib, NativeModel

from pgml_flow.engine import native
from pgml_flow.engine.dataset import RowTransformer, prepare_dataset
from pgml_flow.engine.text import analyze, murmurhash3_32, tokens

#: texts that test the tokenizer's corners
TRICKY = [
    "Fix the login-form (v2) 🐛 in IE11!!", "ÉCOLE naïve café Straße ΣΟΦΙΑ Привет Ёлка Łódź Ÿes",
    "", "a", "ab", "x_y snake_case done-done", "数据库连接失败 👨‍👩‍👧 e\u0301t\u00e9",
    "tab\tnew\nline\r\n", "«quoted» — dash… ½ ¾ µs \u00d72 ÷3", "İstanbul \u0131i ǅ Ǳ",
    "🙂🙂 ok👍ok",
    "CAPS caps Caps 123 4567 v1.2.3", "\ufeffbom\u00a0nbsp\u3000ideo", "login form " * 2000,
]
WORDS = ["login", "form", "cache", "refactor", "fix", "bug", "api", "ui", "slow", "crash",
         "café", "über", "数据", "🐛", "test", "add", "remove", "page"]


def _random_texts(n: int, seed: int) -> list[str | None]:
    rng = random.Random(seed)
    alphabet = [chr(c) for c in [*range(32, 127), *range(0xA0, 0x250), *range(0x370, 0x460),
                                 0x2014, 0x3000, 0x4E2D, 0xFEFF, 0xFE0F, 0x1F600, 0x1F44D,
                                 0x10348, 0xE0041, 0xFFFD, 0x200D]]
    out: list[str | None] = []
    for _ in range(n):
        if rng.random() < 0.05:
            out.append(None)
            continue
        parts = [rng.choice(WORDS) if rng.random() < 0.7 else
                 "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
                 for _ in range(rng.randint(0, 12))]
        seps = [" ", " ", ", ", "-", ". ", "\n", "/", "_"]
        text = "".join(p + rng.choice(seps) for p in parts)
        out.append(text.upper() if rng.random() < 0.2 else text)
    return out


def _lib(native_lib: NativeLib) -> ctypes.CDLL:
    lib = native_lib.lib
    lib.pgmln_tokens.restype = ctypes.c_size_t
    lib.pgmln_tokens.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                 ctypes.c_size_t]
    lib.pgmln_murmur3.restype = ctypes.c_int32
    lib.pgmln_murmur3.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    for encode in (lib.pgmln_row_encode, lib.pgmln_row_encode_used):
        encode.restype = ctypes.c_int
        encode.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    lib.pgmln_row_columns.restype = ctypes.c_int
    lib.pgmln_row_columns.argtypes = [ctypes.c_void_p]
    lib.pgmln_row_name.restype = ctypes.c_char_p
    lib.pgmln_row_name.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pgmln_predict_row_f64.restype = ctypes.c_double
    lib.pgmln_predict_row_f64.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.pgmln_predict_used_f64.restype = ctypes.c_int
    lib.pgmln_predict_used_f64.argtypes = [ctypes.c_void_p] * 4
    return lib


def _c_predict_used(lib: ctypes.CDLL, model: NativeModel, x: np.ndarray) -> float:
    """pgmln_predict_used_f64 of the row pgmln_row_encode_used just wrote (the server's)."""
    out, feature = ctypes.c_double(np.nan), ctypes.c_int(-1)
    assert lib.pgmln_predict_used_f64(model._ptr, x.ctypes.data, ctypes.byref(out),
                                      ctypes.byref(feature)) == 0
    return out.value


def _c_tokens(lib: ctypes.CDLL, text: str) -> list[str]:
    raw = text.encode()
    need = lib.pgmln_tokens(raw, len(raw), None, 0)
    buf = ctypes.create_string_buffer(need + 1)
    lib.pgmln_tokens(raw, len(raw), buf, need)
    return buf.raw[:need].decode().split("\n")[:-1]


class Value(ctypes.Structure):
    """model.h's pgmln_value."""

    _fields_ = [("isnull", ctypes.c_int), ("num", ctypes.c_double), ("str", ctypes.c_char_p),
                ("len", ctypes.c_size_t), ("arr", ctypes.c_void_p), ("n", ctypes.c_size_t),
                ("items", ctypes.POINTER(ctypes.c_char_p)),
                ("item_lens", ctypes.POINTER(ctypes.c_size_t)), ("nitems", ctypes.c_size_t)]


def _c_features(lib: ctypes.CDLL, model: NativeModel, row: dict[str, Any],
                x: np.ndarray | None = None) -> np.ndarray:
    """pgmln_row_encode of every column of one row; with ``x``, pgmln_row_encode_used into
    it (the server's: the features the model reads, over the previous row's)."""
    encode = lib.pgmln_row_encode if x is None else lib.pgmln_row_encode_used
    x = np.full(model.num_features, np.nan) if x is None else x
    keep: list[Any] = []
    for c in range(lib.pgmln_row_columns(model._ptr)):
        value = row[lib.pgmln_row_name(model._ptr, c).decode()]
        v = Value(isnull=int(value is None))
        if isinstance(value, list):
            items = [None if i is None else i.encode() for i in value]
            v.items = (ctypes.c_char_p * len(items))(*items)
            v.item_lens = (ctypes.c_size_t * len(items))(*[len(i or b"") for i in items])
            v.nitems = len(items)
            keep += [v.items, v.item_lens]
        elif isinstance(value, str):
            raw = value.encode()
            keep.append(raw)
            v.str, v.len = raw, len(raw)
        elif value is not None:
            v.num = float(value)
        assert encode(model._ptr, c, ctypes.byref(v), x.ctypes.data) == 0
    return x


PREPROCESS = {
    "title": {"text": "tfidf", "max_features": 40, "ngram": [1, 2], "sublinear_tf": True},
    "body": {"text": "hashing", "n_features": 32, "ngram": [1, 3], "alternate_sign": True},
    "summary": {"encode": "words", "top_k": 12, "min_count": 2},
    "labels": {"encode": "multi_hot", "top_k": 5, "min_count": 2},
}
COLUMNS = [("title", "text"), ("body", "text"), ("summary", "text"), ("labels", "text[]"),
           ("n", "float8"), ("y", "float8")]


def _table(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    titles, bodies, summaries = (_random_texts(n, seed + k) for k in range(3))
    rows = []
    for i in range(n):
        labels = None if rng.random() < 0.1 else [
            rng.choice(["Ops", "ops", "UI", "Backend", "🐛", None, "data"])
            for _ in range(rng.randint(0, 3))]
        title = titles[i] or ""
        y = 3.0 * title.lower().count("bug") + 2.0 * ("login" in (bodies[i] or "")) + i % 3
        rows.append({"title": titles[i], "body": bodies[i], "summary": summaries[i],
                     "labels": labels, "n": float(i % 7), "y": y})
    return rows


def test_c_tokenizer_encodings_and_predictions_match_python(native_lib: NativeLib) -> None:
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from xgboost import XGBRegressor

    lib = _lib(native_lib)
    texts = [*TRICKY, *[t for t in _random_texts(1500, 1) if t is not None]]
    for text in texts:  # tokens and hashes, byte for byte
        assert _c_tokens(lib, text) == tokens(text), text
        for term in analyze(text, 1, 2)[:4]:
            raw = term.encode()
            assert lib.pgmln_murmur3(raw, len(raw)) == murmurhash3_32(term)

    # the Python encodings are scikit-learn's vectorizers with this analyzer
    rows = _table(400, 7)
    data = prepare_dataset("regression", COLUMNS, rows, "y", preprocess=PREPROCESS, seed=1)
    columns = {c["name"]: c for c in data.columns["features"]}
    train_titles = [r["title"] or "" for r in rows if r["title"] is not None]
    assert columns["title"]["categories"] and len(columns["title"]["idf"]) <= 40
    assert columns["body"]["categories"] is None and columns["body"]["width"] == 32
    docs = [t or "" for t in texts[:300]]
    ours = RowTransformer.from_json(data.columns)
    x_py = ours.transform([{**rows[0], "title": t, "body": t} for t in docs])
    tfidf = TfidfVectorizer(analyzer=lambda d: analyze(d, 1, 2), sublinear_tf=True,
                            vocabulary=columns["title"]["categories"])
    tfidf.idf_ = np.asarray(columns["title"]["idf"])
    assert np.allclose(x_py[:, :len(tfidf.idf_)], tfidf.transform(docs).toarray(), atol=1e-12)
    hashing = HashingVectorizer(analyzer=lambda d: analyze(d, 1, 3), n_features=32)
    start = len(tfidf.idf_)
    assert np.allclose(x_py[:, start:start + 32], hashing.transform(docs).toarray(), atol=1e-12)
    assert len(train_titles) > 300

    # the C row encoding gives the same features, bit for bit, and the same predictions
    probes = [*_table(150, 99), *[
        {"title": t, "body": t, "summary": t, "labels": [t, None, "ops"], "n": 1.0, "y": 0.0}
        for t in [*TRICKY, "x" * 100_000, "é" * 50_001 + " bug", None]]]
    expected = ours.transform(probes)
    # five classes: a multinomial logistic regression
    classes = np.minimum(np.round(np.asarray(data.y_train, dtype=float)), 4)
    for estimator in (XGBRegressor(n_estimators=30, max_depth=4), Ridge(alpha=0.1),
                      LogisticRegression(C=10.0, max_iter=300)):
        estimator.fit(data.x_train, classes if isinstance(estimator, LogisticRegression)
                      else data.y_train)
        model = native_lib.load(native.compile_model(estimator, columns=data.columns))
        served = np.zeros(model.num_features)  # reused from row to row, as the server does
        for row, want in zip(probes, expected, strict=True):
            got = _c_features(lib, model, row)
            assert np.array_equal(got, want), row
            py = float(estimator.predict(want.reshape(1, -1))[0])
            c = lib.pgmln_predict_row_f64(model._ptr, got.ctypes.data)
            assert c == pytest.approx(py, rel=1e-5, abs=1e-5)
            # the server's encoding scores the same, to the bit: trees get the columns
            # they read and those the text touched, linear models the lists of the text's
            # non-zero features (x keeps its zeros there, whatever the previous row was)
            _c_features(lib, model, row, served)
            assert _c_predict_used(lib, model, served) == c, row
            if not isinstance(estimator, XGBRegressor):
                widths = [columns[n]["width"] for n in ("title", "body", "summary", "labels")]
                assert not served[:sum(widths)].any(), row


@pytest.mark.parametrize("bad", [
    {"title": {"text": "bm25"}},
    {"title": {"text": "tfidf", "ngram": [2, 1]}},
    {"title": {"text": "tfidf", "ngram": [1, 9]}},
    {"title": {"text": "tfidf", "impute": "mean"}},
    {"title": {"text": "hashing", "max_features": 10}},
    {"n": {"text": "tfidf"}},
])
def test_text_preprocess_errors_name_the_column_and_the_fix(bad: dict[str, Any]) -> None:
    from pgml_flow.engine.errors import InvalidPreprocess

    with pytest.raises(InvalidPreprocess, match=r"column '(title|n)'"):
        prepare_dataset("regression", COLUMNS, _table(20, 1), "y",
                        preprocess={"labels": PREPROCESS["labels"], **bad})


def test_old_words_encodings_stay_on_python() -> None:
    data = prepare_dataset("regression", COLUMNS[2:], _table(60, 3), "y",
                           preprocess={k: PREPROCESS[k] for k in ("summary", "labels")})
    old = json.loads(json.dumps(data.columns))
    for col in old["features"]:
        col.pop("tokenizer", None)  # a snapshot from before the shared tokenizer
    with pytest.raises(native.NotCompilable, match="retrain"):
        native.row_section(old, data.x_train.shape[1])


def test_pgml_train_with_text_and_both_predict_forms_native(native_db: Any) -> None:
    """pgml.train with text preprocessing stores a native ROW form (blob version 2);
    pgml.predict of a table row and of ROW(...) is answered in C, equal to the Python path."""
    import psycopg

    rows = _table(150, 11)
    probes = [*_table(40, 12), *[
        {"title": t, "body": t, "summary": t, "labels": [t, None, "ops"], "n": 2.0, "y": 0.0}
        for t in [*TRICKY, "bug " * 50_000, None]]]
    with native_db.connect() as conn:
        for table, data in (("items", rows), ("probe", probes)):
            conn.execute(f"CREATE TABLE {table} (id serial, title text, body text, "
                         "summary varchar, labels varchar[], n real, y float8)")
            with conn.cursor().copy(f"COPY {table} (title, body, summary, labels, n, y) "
                                    "FROM STDIN") as copy:
                for r in data:
                    copy.write_row([r["title"], r["body"], r["summary"], r["labels"], r["n"],
                                    r["y"]])
        conn.execute("CREATE VIEW train AS SELECT title, body, summary, labels, n, y FROM items")
        conn.execute(
            "SELECT * FROM pgml.train('texts', 'regression', 'train', 'y', 'xgboost',"
            " '{\"n_estimators\": 15, \"max_depth\": 3}', preprocess => %s::jsonb)",
            (json.dumps(PREPROCESS),))
        (model_id, version) = conn.execute(
            "SELECT m.id, get_byte(f.data, 8) FROM pgml.models m JOIN pgml.files f"
            " ON f.model_id = m.id AND f.path = 'native' AND f.part = 0"
            " ORDER BY m.id DESC LIMIT 1").fetchone()
        assert version == native.ROW_FORMAT_VERSION  # the row section: text compiled
    with native_db.connect() as fresh:  # a session where Python never loads the model
        (by_name,) = fresh.execute(
            "SELECT array_agg(pgml.predict('texts', p) ORDER BY id) FROM probe p").fetchone()
        (positional,) = fresh.execute(
            "SELECT array_agg(pgml.predict(%s::bigint, ROW(title, body, summary, labels, n))"
            " ORDER BY id) FROM probe", (model_id,)).fetchone()
        assert fresh.execute("SELECT count(*) FROM pgml.cached_models()").fetchone()[0] == 0
        (python,) = fresh.execute(
            "SELECT array_agg(pgml._py_predict_row('texts', to_json(p)) ORDER BY id)"
            " FROM probe p").fetchone()
    np.testing.assert_allclose(by_name, python, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(positional, python, rtol=1e-6, atol=1e-6)
    assert len(set(python)) > 5  # the text moves the predictions
    with native_db.connect() as conn, pytest.raises(psycopg.Error, match="ngram"):
        conn.execute("SELECT * FROM pgml.train('bad', 'regression', 'train', 'y', 'xgboost',"
                     " preprocess => '{\"title\": {\"text\": \"tfidf\", \"ngram\": 2}}')")


def test_complexity_bi_view_served_natively_as_python_scores(tflow: Any) -> None:
    """The built-in complexity model (one_hot, multi_hot, words) compiles with its row
    section: status says native, and its BI view, read as a client's BI login, is scored
    in C with what the Python path gives."""
    import psycopg
    from psycopg import sql

    status = tflow.model_status(["complexity"])
    assert {s["serving"] for s in status} == {"native"}
    model_id = status[0]["deployed_model_id"]
    tflow.grant_bi_access([status[0]["client_id"]])
    try:
        with psycopg.connect(tflow.url, autocommit=True) as conn:
            role = conn.execute("SELECT role_name FROM client_bi_roles WHERE client_id = %s",
                                (status[0]["client_id"],)).fetchone()[0]
            conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(role)))
            bi = [float(r[0]) for r in conn.execute(
                "SELECT predicted_story_points FROM analytics.issue_story_points"
                " ORDER BY issue_id")]
            conn.execute("RESET SESSION AUTHORIZATION")
            # served in C: the Python path never loaded the model in this session
            assert conn.execute("SELECT count(*) FROM pgml.cached_models()").fetchone()[0] == 0
            (python,) = conn.execute(
                "SELECT pgml_flow.predict_rows(%s, array_agg(to_json(f) ORDER BY entity_id))"
                " FROM pgml_flow.complexity_features f WHERE client_id = %s AND is_open",
                (model_id, status[0]["client_id"])).fetchone()
        assert len(bi) == len(python) > 50
        # the view reads the real through numeric: its 6 significant digits
        np.testing.assert_allclose(bi, python, rtol=1e-5, atol=1e-5)
    finally:
        tflow.revoke_bi_access()
