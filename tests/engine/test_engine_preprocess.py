"""Column types and every encode / impute / scale option, train-only statistics."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest

from pgml_flow.engine import RowTransformer, prepare_dataset, train, transform
from pgml_flow.engine.columns import parse_pg_type
from pgml_flow.engine.errors import DataError, FeatureCountMismatch, InvalidPreprocess

COLUMNS = [
    ("color", "text"),
    ("size", "character varying(10)"),
    ("age", "int4"),
    ("income", "numeric(10,2)"),
    ("member", "bool"),
    ("embedding", "real[]"),
    ("y", "float8"),
]
COLORS = ["red", "green", "blue", None]
SIZES = ["S", "M", "L", "XL"]


def make_rows(n: int = 40) -> list[tuple]:
    rows = []
    for i in range(n):
        rows.append(
            (
                COLORS[i % 4],
                SIZES[i % 4],
                None if i % 5 == 0 else 20 + i,
                Decimal(f"{i}.50"),
                i % 2 == 0,
                [float(i), float(-i)],
                float(i % 4) * 10 + i * 0.1,
            )
        )
    return rows


PREPROCESS = {"color": {"impute": "mode"}, "age": {"impute": "mean"}}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("int4", ("number", False)),
        ("_float8", ("number", True)),
        ("double precision[]", ("number", True)),
        ("numeric(10,2)", ("number", False)),
        ("character varying(20)", ("text", False)),
        ("boolean", ("bool", False)),
        ("bool[]", ("bool", True)),
        ("timestamp with time zone", ("unsupported", False)),
    ],
)
def test_pg_type_spellings(name, expected):
    assert parse_pg_type(name) == expected


def test_all_types_flatten_in_column_order():
    data = prepare_dataset(
        "regression", COLUMNS, make_rows(), "y", preprocess=PREPROCESS, test_sampling="last"
    )
    assert data.feature_names == [
        "color",
        "size",
        "age",
        "income",
        "member",
        "embedding[1]",
        "embedding[2]",
    ]
    assert data.num_features == 7
    features = {c["name"]: c for c in data.columns["features"]}
    assert features["color"]["categories"] == ["blue", "green", "red"]  # sorted train values
    assert features["embedding"]["array_length"] == 2
    assert data.columns["labels"][0]["name"] == "y"
    json.dumps(data.columns)  # JSON-serializable as stored in pgml.snapshots.columns
    # native codes; the NULL color (row 3) gets the mode: red and green tie with 8 train
    # rows each, the smaller code (green = 1) wins
    assert data.x_train[:4, 0].tolist() == [2.0, 1.0, 0.0, 1.0]
    # the first row: income Decimal, bool, array
    assert data.x_train[0, 3:].tolist() == [0.5, 1.0, 0.0, -0.0]


def test_statistics_come_from_train_rows_only():
    rows = make_rows(40)
    data = prepare_dataset(
        "regression", COLUMNS, rows, "y", preprocess=PREPROCESS, test_size=10, test_sampling="last"
    )
    age = next(c for c in data.columns["features"] if c["name"] == "age")
    train_ages = [r[2] for r in rows[:30] if r[2] is not None]
    assert age["statistics"]["mean"] == [pytest.approx(np.mean(train_ages))]
    assert age["fill"] == [pytest.approx(np.mean(train_ages))]
    assert age["statistics"]["missing"] == 6 and age["statistics"]["rows"] == 30
    # test row 35 has NULL age: imputed with the TRAIN mean
    assert data.x_test[5, 2] == pytest.approx(np.mean(train_ages))


def test_null_feature_without_impute_names_the_column():
    with pytest.raises(
        DataError, match=r"column 'age' contains NULL.*\{\"age\": \{\"impute\": \"mean\"\}\}"
    ):
        prepare_dataset(
            "regression", COLUMNS, make_rows(), "y", preprocess={"color": {"impute": "mode"}}
        )


def with_values(column: str, values: dict[int, object], n: int = 40) -> list[tuple]:
    """make_rows with some values of one column replaced (row index -> value)."""
    index = [name for name, _ in COLUMNS].index(column)
    return [tuple(values.get(i, v) if j == index else v for j, v in enumerate(row))
            for i, row in enumerate(make_rows(n))]


def test_nan_feature_is_reported_as_nan_not_null():
    nan_income = with_values("income", {3: Decimal("NaN"), 7: Decimal("NaN")})
    with pytest.raises(DataError, match=r"column 'income' contains 2 NaN value\(s\) \(NaN is a "
                       r"number, not NULL.*\{\"income\": \{\"impute\": \"mean\"\}\}.*"
                       r"WHERE income IS NULL OR income NOT IN \('NaN', 'Infinity', '-Infinity'\)"):
        prepare_dataset("regression", COLUMNS, nan_income, "y", test_size=0.1,
                        test_sampling="last", preprocess=PREPROCESS)
    # NULLs and NaN together are both counted, each by its name
    nan_age = with_values("age", {1: float("nan")})
    with pytest.raises(DataError, match=r"column 'age' contains 8 NULL and 1 NaN value\(s\)"):
        prepare_dataset("regression", COLUMNS, nan_age, "y",
                        preprocess={"color": {"impute": "mode"}})
    # an array element too
    nan_element = with_values("embedding", {2: [float("nan"), 1.0]})
    with pytest.raises(DataError, match=r"column 'embedding' contains 1 NaN value\(s\).*WHERE "
                       r"embedding IS NULL OR NOT \(embedding && '\{NaN,Infinity,-Infinity\}'\)"):
        prepare_dataset("regression", COLUMNS, nan_element, "y", preprocess=PREPROCESS)
    # with an impute rule, NaN is a missing value like NULL
    data = prepare_dataset("regression", COLUMNS, nan_income, "y", test_size=10,
                           test_sampling="last",
                           preprocess={**PREPROCESS, "income": {"impute": "zero"}})
    assert data.x_train[3, 3] == 0.0 and data.x_train[7, 3] == 0.0
    assert np.isfinite(data.x_train).all()


def test_infinite_feature_is_refused_even_with_an_impute_rule():
    rows = with_values("income", {4: Decimal("Infinity"), 9: float("-inf"), 11: float("inf")})
    with pytest.raises(DataError, match=r"column 'income' contains 2 Infinity and 1 -Infinity "
                       r"value\(s\), which no model can use"):
        prepare_dataset("regression", COLUMNS, rows, "y",
                        preprocess={**PREPROCESS, "income": {"impute": "mean"}})


@pytest.mark.parametrize(("value", "found"), [
    (float("nan"), "1 NaN"), (Decimal("NaN"), "1 NaN"), (float("inf"), "1 Infinity"),
    (float("-inf"), "1 -Infinity"),
])
def test_nan_or_infinite_label_is_named(value, found):
    rows = with_values("y", {5: value})
    with pytest.raises(DataError, match=f"label column 'y' has {found} value\\(s\\), which are "
                       "not NULL.*WHERE y NOT IN"):
        prepare_dataset("regression", COLUMNS, rows, "y", preprocess=PREPROCESS)
    with pytest.raises(DataError, match="label column 'y' has 1 NULL value"):
        prepare_dataset("regression", COLUMNS, with_values("y", {5: None}), "y",
                        preprocess=PREPROCESS)


@pytest.mark.parametrize("impute", ["mean", "median", "mode", "min", "max", "zero"])
def test_impute(impute):
    rows = make_rows(40)
    data = prepare_dataset(
        "regression",
        COLUMNS,
        rows,
        "y",
        test_size=10,
        test_sampling="last",
        preprocess={"color": {"impute": "mode"}, "age": {"impute": impute}},
    )
    ages = np.array([r[2] for r in rows[:30] if r[2] is not None], dtype=float)
    values, counts = np.unique(ages, return_counts=True)
    expected = {
        "mean": ages.mean(),
        "median": np.median(ages),
        "mode": values[np.argmax(counts)],
        "min": ages.min(),
        "max": ages.max(),
        "zero": 0.0,
    }[impute]
    assert data.x_train[0, 2] == pytest.approx(expected)  # row 0 has NULL age


@pytest.mark.parametrize("scale", ["preserve", "standard", "min_max", "max_abs", "robust"])
def test_scale(scale):
    data = prepare_dataset(
        "regression",
        COLUMNS,
        make_rows(),
        "y",
        preprocess={**PREPROCESS, "income": {"scale": scale}, "embedding": {"scale": scale}},
    )
    income = data.x_train[:, 3]
    emb = data.x_train[:, 6]
    if scale == "standard":
        assert income.mean() == pytest.approx(0, abs=1e-9) and income.std() == pytest.approx(1)
        assert emb.std() == pytest.approx(1)  # each array element scaled on its own
    elif scale == "min_max":
        assert (income.min(), income.max()) == (pytest.approx(0), pytest.approx(1))
    elif scale == "max_abs":
        assert np.abs(income).max() == pytest.approx(1) and income.min() > 0
        assert np.abs(emb).max() == pytest.approx(1) and emb.max() <= 0
    elif scale == "robust":
        q1, median, q3 = np.percentile(income, [25, 50, 75])
        assert median == pytest.approx(0) and q3 - q1 == pytest.approx(1)
    else:
        assert income.min() >= 0.5


@pytest.mark.parametrize(
    ("encode", "width"),
    [("native", 1), ("one_hot", 3), ("target", 1), ({"ordinal": ["red", "green", "blue"]}, 1)],
)
@pytest.mark.parametrize("impute", ["error", "mode"])
def test_encodings_and_unseen_categories(encode, width, impute):
    rows = [r for r in make_rows() if r[0] is not None]
    data = prepare_dataset(
        "regression",
        COLUMNS,
        rows,
        "y",
        test_size=10,
        test_sampling="last",
        preprocess={"color": {"encode": encode, "impute": impute}, "age": {"impute": "mean"}},
    )
    spec = RowTransformer.from_json(json.loads(json.dumps(data.columns)))
    assert spec.num_features == data.num_features == 6 + width

    def encoded(color: str | None) -> list[float]:
        return spec.transform([(color, "S", 30, 1, True, [1.0, 2.0])])[0, :width].tolist()

    color = data.columns["features"][0]
    red_ys = [r[6] for r in rows[:-10] if r[0] == "red"]  # train rows only
    expected_red = {
        "native": [2.0],
        "one_hot": [0.0, 0.0, 1.0],
        "target": [pytest.approx(np.mean(red_ys))],
    }.get(encode if isinstance(encode, str) else "", [0.0])
    assert encoded("red") == expected_red
    if impute == "error":  # an unseen category is an error, as in PostgresML
        with pytest.raises(DataError, match="column 'color' has the value 'purple', a category"):
            encoded("purple")
        with pytest.raises(DataError, match="column 'color' contains NULL"):
            encoded(None)
    else:
        assert encoded("purple") == pytest.approx(color["fill"])
        assert encoded(None) == pytest.approx(color["fill"])


def test_ordinal_value_not_in_list():
    with pytest.raises(DataError, match=r"value\(s\) \['red'\] missing from its ordinal list"):
        prepare_dataset(
            "regression",
            COLUMNS,
            make_rows(),
            "y",
            preprocess={
                "color": {"encode": {"ordinal": ["green", "blue"]}, "impute": "mode"},
                "age": {"impute": "mean"},
            },
        )


def test_row_form_matches_training_transform():
    rows = make_rows(40)
    data = prepare_dataset(
        "regression", COLUMNS, rows, "y", preprocess=PREPROCESS, test_size=10, test_sampling="last"
    )
    features = [r[:6] for r in rows[30:]]
    np.testing.assert_array_equal(transform(data.columns, features), data.x_test)
    by_name = [dict(zip([c for c, _ in COLUMNS[:6]], r, strict=True)) for r in features]
    np.testing.assert_array_equal(transform(data.columns, by_name), data.x_test)
    anonymous = [{f"f{i + 1}": v for i, v in enumerate(r)} for r in features]  # ROW(...)
    np.testing.assert_array_equal(transform(data.columns, anonymous), data.x_test)
    with pytest.raises(FeatureCountMismatch, match="expected 6 feature columns"):
        transform(data.columns, [features[0][:5]])
    result = train("regression", "linear", data)
    x = transform(data.columns, features[:1])
    assert result.model.predict(x)[0] == result.model.predict(data.x_test[:1])[0]


def test_array_length_mismatch():
    rows = make_rows(20)
    rows[3] = (*rows[3][:5], [1.0, 2.0, 3.0], rows[3][6])
    with pytest.raises(DataError, match=r"'embedding' has rows of different lengths \[2, 3\]"):
        prepare_dataset("regression", COLUMNS, rows, "y", preprocess=PREPROCESS)
    data = prepare_dataset("regression", COLUMNS, make_rows(), "y", preprocess=PREPROCESS)
    with pytest.raises(DataError, match="a row of length 1, but the model expects length 2"):
        transform(data.columns, [("red", "S", 1, 1, True, [1.0])])


@pytest.mark.parametrize(
    ("preprocess", "message"),
    [
        ({"nope": {"impute": "mean"}}, "names column 'nope'"),
        ({"age": {"impute": "average"}}, "impute 'average' for column 'age' is not valid"),
        ({"age": {"scale": "log"}}, "scale 'log'"),
        ({"age": {"fill": 1}}, r"unknown key\(s\) \['fill'\]"),
        ({"color": {"encode": "hash"}}, "encode 'hash'"),
        ({"color": {"encode": {"ordinal": []}}}, "ordinal"),
        ({"age": {"encode": "one_hot"}}, "applies to text columns; column 'age' is int4"),
        ({"age": "mean"}, "must be an object"),
    ],
)
def test_invalid_preprocess(preprocess, message):
    with pytest.raises(InvalidPreprocess, match=message):
        prepare_dataset("regression", COLUMNS, make_rows(), "y", preprocess=preprocess)


def test_unsupported_column_type_names_the_column():
    columns = [("at", "timestamp"), ("y", "float8")]
    with pytest.raises(DataError, match="column 'at' has type timestamp"):
        prepare_dataset("regression", columns, [(1, 1.0), (2, 2.0)], "y")


def test_missing_label_column():
    with pytest.raises(Exception, match="label column 'z' is not a column"):
        prepare_dataset("regression", COLUMNS, make_rows(), "z")


def test_plpy_style_mapping_rows_equal_tuple_rows():
    rows = make_rows()
    names = [name for name, _ in COLUMNS]
    as_dicts = [dict(zip(names, row, strict=True)) for row in rows]
    a = prepare_dataset("regression", COLUMNS, rows, "y", preprocess=PREPROCESS)
    b = prepare_dataset("regression", COLUMNS, as_dicts, "y", preprocess=PREPROCESS)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.columns == b.columns


def test_empty_relation():
    with pytest.raises(DataError, match="has no rows"):
        prepare_dataset("regression", COLUMNS, [], "y")


# -- vocabulary encodings: multi_hot (text[]) and words (text) ---------------------------------
VOCAB_COLUMNS = [("title", "text"), ("tags", "text[]"), ("n", "int4"), ("y", "float8")]


def vocab_rows(n: int = 120) -> list[tuple]:
    """The title word 'big' and the tag 'slow' make y large; 'the' and 'misc' are common
    and change nothing; 'rare' is in fewer than min_count rows."""
    rows = []
    for i in range(n):
        words = ["the", "big" if i % 3 == 0 else "small", "rare" if i == 5 else "item"]
        tags = None if i % 11 == 0 else ["misc", *(["slow"] if i % 4 == 0 else [])]
        y = 10.0 * (i % 3 == 0) + 5.0 * (i % 4 == 0 and i % 11 != 0) + (i % 5) * 0.1
        rows.append((" ".join(words).title() + "!", tags, i % 7, y))
    return rows


def test_vocabulary_encodings_learn_which_values_matter():
    pre = {"title": {"encode": "words", "top_k": 2}, "tags": {"encode": "multi_hot",
                                                              "top_k": 1, "min_count": 5}}
    data = prepare_dataset("regression", VOCAB_COLUMNS, vocab_rows(), "y",
                           test_sampling="last", preprocess=pre)
    # the two words that move y most ('the' and 'item' are in nearly every row); one tag
    assert data.feature_names == ["title:big", "title:small", "tags=slow", "n"]
    by_name = {c["name"]: c for c in data.columns["features"]}
    assert by_name["title"]["categories"] == ["big", "small"]
    assert by_name["title"]["preprocess"] == {"encode": "words", "impute": "error",
                                              "scale": "preserve", "top_k": 2, "min_count": 3}
    assert by_name["tags"]["statistics"]["distinct"] == 2
    # stored with the snapshot: a prediction encodes the same way; NULL and unseen values
    # add no indicator (never an error)
    rows = [("A BIG one", ["slow", "new"], 1, 0.0), (None, None, 2, 0.0),
            ("small", [None, "misc"], 3, 0.0)]
    x = transform(data.columns, [r[:3] for r in rows])
    np.testing.assert_array_equal(x, [[1, 0, 1, 1], [0, 0, 0, 2], [0, 1, 0, 3]])
    result = train("regression", "xgboost", data, {"n_estimators": 20})
    assert result.metrics["r2"] > 0.5


def test_without_a_label_the_vocabulary_is_the_most_frequent():
    data = prepare_dataset("clustering", VOCAB_COLUMNS[:1], [r[:1] for r in vocab_rows()],
                           preprocess={"title": {"encode": "words", "top_k": 2}})
    assert data.feature_names[:2] == ["title:item", "title:the"]


@pytest.mark.parametrize(
    ("preprocess", "message"),
    [
        ({"tags": {"encode": "one_hot"}}, r"text\[\] feature needs the encoding multi_hot"),
        ({"title": {"encode": "multi_hot"}, "tags": {"encode": "multi_hot"}},
         "multi_hot' applies to text\\[\\] columns"),
        ({"title": {"encode": "words", "top_k": 0}}, "top_k for column 'title' must be a "
                                                     "positive integer"),
        ({"title": {"encode": "one_hot", "top_k": 3}}, "top_k for column 'title' applies to"),
        ({"n": {"encode": "words"}, "tags": {"encode": "multi_hot"}},
         "applies to text columns; column 'n' is int4"),
    ],
)
def test_invalid_vocabulary_preprocess(preprocess, message):
    with pytest.raises((InvalidPreprocess, DataError), match=message):
        prepare_dataset("regression", VOCAB_COLUMNS, vocab_rows(), "y", preprocess=preprocess)


def test_vocabulary_encodings_compile_for_the_c_row_form():
    """The C scorer's row section encodes multi_hot and words itself (ext/pgml_native/text.c,
    the tokenizer of engine/text.py): the model's ROW form is native too."""
    from sklearn.linear_model import Ridge

    from pgml_flow.engine import native

    data = prepare_dataset("regression", VOCAB_COLUMNS, vocab_rows(), "y",
                           preprocess={"title": {"encode": "words"},
                                       "tags": {"encode": "multi_hot"}})
    est = Ridge().fit(data.x_train, data.y_train)
    with_rows = native.compile_model(est, columns=data.columns)
    assert with_rows[8] == native.ROW_FORMAT_VERSION
    assert len(with_rows) > len(native.compile_model(est))
    assert native.compile_model(est)[8] == native.FORMAT_VERSION
