"""Column descriptions: PostgreSQL types, the ``preprocess`` JSON, raw value extraction.

This module decides *what* each column of the training relation is (feature or label,
number / bool / text, scalar or fixed-length array) and validates the user's
``preprocess`` rules against it, before any statistics are computed.  Errors name the
column, because the user only sees the message.

Type names are accepted in every spelling the SQL layer may have at hand:
``pg_type.typname`` (``int4``, ``_float8``) or ``format_type()`` (``integer``,
``double precision[]``, ``numeric(10,2)``, ``character varying(20)``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgml_flow.engine.errors import DataError, InvalidArgument, InvalidPreprocess

_NUMBER_TYPES = {
    "int2", "smallint", "int4", "integer", "int", "int8", "bigint", "float4", "real",
    "float8", "double precision", "float", "numeric", "decimal", "oid",
}  # fmt: skip
_BOOL_TYPES = {"bool", "boolean"}
_TEXT_TYPES = {
    "text", "varchar", "character varying", "bpchar", "character", "char", "name", "citext",
}  # fmt: skip

ENCODINGS = ("native", "target", "one_hot", "ordinal", "multi_hot", "words")
#: the ``text`` preprocessing of a text column (``{"text": "tfidf", ...}``, pgml_flow.engine.text):
#: its encode value, and the keys each takes with their defaults
TEXT_ENCODINGS = ("tfidf", "hashing")
TEXT_KEYS: dict[str, dict[str, Any]] = {
    "tfidf": {"max_features": 1000, "ngram": [1, 1], "min_df": 2, "max_df": 1.0,
              "sublinear_tf": False},
    "hashing": {"n_features": 1024, "ngram": [1, 1], "alternate_sign": False},
}
#: the longest n-gram the text encodings take (the C scorer keeps that many tokens)
MAX_NGRAM = 4
#: encodings that learn a vocabulary from the train rows (``top_k``, ``min_count``): one
#: indicator per value of a ``text[]`` column (multi_hot) or word of a text column (words)
VOCABULARY_ENCODINGS = ("multi_hot", "words")
#: the default vocabulary size and least number of train rows a value must occur in
DEFAULT_TOP_K = {"multi_hot": 20, "words": 50}
DEFAULT_MIN_COUNT = 3
IMPUTES = ("error", "mean", "median", "mode", "min", "max", "zero")
SCALES = ("preserve", "standard", "min_max", "max_abs", "robust")


def parse_pg_type(pg_type: str) -> tuple[str, bool]:
    """Map a PostgreSQL type name to ``(kind, is_array)``; kind is number, bool or text.

    Returns kind ``"unsupported"`` for anything else so the caller can name the column.
    """
    name = pg_type.strip().lower()
    is_array = False
    if name.startswith("_"):
        name, is_array = name[1:], True
    while name.endswith("[]"):
        name, is_array = name[:-2].strip(), True
    name = re.sub(r"\(.*\)", "", name).strip()
    if name in _NUMBER_TYPES:
        return "number", is_array
    if name in _BOOL_TYPES:
        return "bool", is_array
    if name in _TEXT_TYPES:
        return "text", is_array
    return "unsupported", is_array


@dataclass(frozen=True)
class Preprocess:
    """One column's preprocessing rule, validated."""

    encode: str = "native"
    impute: str = "error"
    scale: str = "preserve"
    #: the category order for ``{"encode": {"ordinal": [...]}}``
    ordinal: tuple[str, ...] | None = None
    #: multi_hot / words: at most this many values (words) are kept ...
    top_k: int | None = None
    #: ... each in at least this many train rows
    min_count: int | None = None
    #: tfidf / hashing: their keys (TEXT_KEYS), defaults filled in, as sorted pairs
    text: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        if self.encode in TEXT_ENCODINGS:
            return {"text": self.encode, **self.text_options}
        encode: Any = (
            {"ordinal": list(self.ordinal or ())} if self.encode == "ordinal" else self.encode
        )
        out: dict[str, Any] = {"encode": encode, "impute": self.impute, "scale": self.scale}
        if self.encode in VOCABULARY_ENCODINGS:
            out.update(top_k=self.vocabulary_size, min_count=self.least_count)
        return out

    @property
    def text_options(self) -> dict[str, Any]:
        """tfidf / hashing: every key with its value (``ngram`` as a list)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.text}

    @property
    def ngram(self) -> tuple[int, int]:
        lo, hi = dict(self.text).get("ngram", (1, 1))
        return int(lo), int(hi)

    @property
    def vocabulary_size(self) -> int:
        return self.top_k or DEFAULT_TOP_K.get(self.encode, 0)

    @property
    def least_count(self) -> int:
        return self.min_count or DEFAULT_MIN_COUNT


def parse_rule(column: str, rule: Any) -> Preprocess:
    """Validate one column's entry of the ``preprocess`` JSON."""
    if not isinstance(rule, Mapping):
        raise InvalidPreprocess(
            f'preprocess for column {column!r} must be an object like {{"impute": "mean"}}, '
            f"got {rule!r}"
        )
    if "text" in rule:
        return parse_text_rule(column, rule)
    unknown = set(rule) - {"encode", "impute", "scale", "top_k", "min_count"}
    if unknown:
        raise InvalidPreprocess(
            f"preprocess for column {column!r} has unknown key(s) {sorted(unknown)}; "
            "valid keys: encode, impute, scale, top_k and min_count (multi_hot, words)"
        )
    encode: Any = rule.get("encode", "native")
    ordinal: tuple[str, ...] | None = None
    if isinstance(encode, Mapping):
        values = encode.get("ordinal")
        if set(encode) != {"ordinal"} or not isinstance(values, list) or not values:
            raise InvalidPreprocess(
                f'preprocess encode for column {column!r} must be a name or {{"ordinal": '
                f'["low", "high", ...]}}, got {encode!r}'
            )
        if len(set(map(str, values))) != len(values):
            raise InvalidPreprocess(f"ordinal list for column {column!r} has duplicates")
        ordinal, encode = tuple(str(v) for v in values), "ordinal"
    for key, value, allowed in (
        ("encode", encode, ENCODINGS),
        ("impute", rule.get("impute", "error"), IMPUTES),
        ("scale", rule.get("scale", "preserve"), SCALES),
    ):
        if value not in allowed or (key == "encode" and value == "ordinal" and ordinal is None):
            raise InvalidPreprocess(
                f"preprocess {key} {value!r} for column {column!r} is not valid; "
                f"choose one of: {', '.join(allowed)}"
            )
    sizes: dict[str, int | None] = {}
    for key in ("top_k", "min_count"):
        value = rule.get(key)
        if value is not None and encode not in VOCABULARY_ENCODINGS:
            raise InvalidPreprocess(
                f"preprocess {key} for column {column!r} applies to the encodings "
                f"{' and '.join(VOCABULARY_ENCODINGS)} only, not {encode!r}"
            )
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise InvalidPreprocess(
                f"preprocess {key} for column {column!r} must be a positive integer, "
                f"got {value!r}"
            )
        sizes[key] = value
    return Preprocess(encode, rule.get("impute", "error"), rule.get("scale", "preserve"), ordinal,
                      sizes["top_k"], sizes["min_count"])


def _positive_int(column: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidPreprocess(
            f"preprocess {key} for column {column!r} must be a positive integer, got {value!r}"
        )
    return value


def parse_text_rule(column: str, rule: Mapping[str, Any]) -> Preprocess:
    """``{"text": "tfidf" | "hashing", ...}``: validate the text preprocessing of a column.

    No impute or scale: a NULL text is an empty one (a row of zeros), and the rows are
    already l2-normalised.
    """
    kind = rule["text"]
    if kind not in TEXT_ENCODINGS:
        raise InvalidPreprocess(
            f"preprocess text {kind!r} for column {column!r} is not valid; choose one of: "
            f"{', '.join(TEXT_ENCODINGS)}"
        )
    allowed = TEXT_KEYS[kind]
    unknown = set(rule) - {"text", *allowed}
    if unknown:
        raise InvalidPreprocess(
            f"preprocess for column {column!r} (text {kind!r}) has unknown key(s) "
            f"{sorted(unknown)}; valid keys: text, {', '.join(allowed)} (a NULL text is an "
            "empty one and the rows are l2-normalised, so there is no impute or scale)"
        )
    options: dict[str, Any] = {**allowed, **{k: v for k, v in rule.items() if k != "text"}}
    for key in ("max_features", "n_features"):
        if key in options:
            options[key] = _positive_int(column, key, options[key])
    ngram = options["ngram"]
    if (not isinstance(ngram, list | tuple) or len(ngram) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in ngram)
            or not 1 <= ngram[0] <= ngram[1] <= MAX_NGRAM):
        raise InvalidPreprocess(
            f"preprocess ngram for column {column!r} must be [lo, hi] with "
            f"1 <= lo <= hi <= {MAX_NGRAM}, e.g. [1, 2] for words and pairs of words; "
            f"got {ngram!r}"
        )
    options["ngram"] = (ngram[0], ngram[1])
    for key in ("min_df", "max_df"):
        if key in options:
            value = options[key]
            if (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
                    or (isinstance(value, float) and value > 1)):
                raise InvalidPreprocess(
                    f"preprocess {key} for column {column!r} must be a number of rows (a "
                    f"positive integer) or a share of them (0 < x <= 1.0), got {value!r}"
                )
    for key in ("sublinear_tf", "alternate_sign"):
        if key in options and not isinstance(options[key], bool):
            raise InvalidPreprocess(
                f"preprocess {key} for column {column!r} must be true or false, "
                f"got {options[key]!r}"
            )
    return Preprocess(kind, text=tuple(sorted(options.items())))


@dataclass(frozen=True)
class Column:
    """A column of the training relation, before statistics."""

    name: str
    pg_type: str
    kind: str  # number | bool | text
    is_array: bool
    position: int
    preprocess: Preprocess


def describe_columns(
    columns: Sequence[tuple[str, str]],
    y_column_names: Sequence[str] | None,
    preprocess: Mapping[str, Any] | None = None,
) -> tuple[list[Column], list[Column]]:
    """Split the relation's ``(name, pg type)`` pairs into (features, labels).

    Every non-label column is a feature, in column order.
    """
    names = [name for name, _ in columns]
    labels_wanted = list(y_column_names or [])
    for label in labels_wanted:
        if label not in names:
            raise InvalidArgument(
                f"label column {label!r} is not a column of the relation; "
                f"columns are: {', '.join(names)}"
            )
    if not isinstance(preprocess or {}, Mapping):
        raise InvalidPreprocess('preprocess must be a JSON object like {"col": {"impute": "mean"}}')
    rules = dict(preprocess or {})
    for name in rules:
        if name not in names:
            raise InvalidPreprocess(
                f"preprocess names column {name!r}, which is not a column of the relation"
            )
    features: list[Column] = []
    labels: list[Column] = []
    for position, (name, pg_type) in enumerate(columns):
        kind, is_array = parse_pg_type(pg_type)
        rule = parse_rule(name, rules[name]) if name in rules else Preprocess()
        column = Column(name, pg_type, kind, is_array, position, rule)
        is_label = name in labels_wanted
        text_array = kind == "text" and is_array
        if kind == "unsupported" or (text_array and rule.encode != "multi_hot") or (
                is_label and is_array):
            role = "label" if is_label else "feature"
            raise DataError(
                f"column {name!r} has type {pg_type}, which pgml-flow cannot use as a {role}; "
                "supported: bool, smallint, integer, bigint, real, double precision, numeric"
                + (", text" if not is_array else "")
                + (" and fixed-length arrays of the numeric ones" if not is_label else "")
                + ("; a text[] feature needs the encoding multi_hot, e.g. preprocess => "
                   f'\'{{"{name}": {{"encode": "multi_hot"}}}}\'' if text_array and not is_label
                   else "; cast it or select other columns through a view")
            )
        if rule.encode in TEXT_ENCODINGS and (is_label or kind != "text" or is_array):
            raise InvalidPreprocess(
                f"preprocess text {rule.encode!r} applies to text feature columns; column "
                f"{name!r} is {pg_type}" + (" (the label)" if is_label else "")
                + (": use multi_hot for the values of a text[] column" if is_array else "")
            )
        if not is_label and kind != "text" and rule.encode != "native":
            raise InvalidPreprocess(
                f"preprocess encode {rule.encode!r} applies to text columns; column {name!r} "
                f"is {pg_type} (cast it to text to treat it as categorical)"
            )
        if not is_label and rule.encode == "multi_hot" and not text_array:
            raise InvalidPreprocess(
                f"preprocess encode 'multi_hot' applies to text[] columns (one indicator per "
                f"value); column {name!r} is {pg_type}: use one_hot for one value per row"
            )
        if not is_label and rule.encode == "words" and is_array:
            raise InvalidPreprocess(
                f"preprocess encode 'words' applies to text columns; column {name!r} is "
                f"{pg_type}: use multi_hot for the values of a text[] column"
            )
        (labels if is_label else features).append(column)
    labels.sort(key=lambda c: labels_wanted.index(c.name))
    if not features:
        raise InvalidArgument("the relation has no feature columns besides the label")
    return features, labels


def column_values(rows: Sequence[Any], position: int, name: str) -> list[Any]:
    """One column's values from rows that are sequences or mappings (plpy result rows)."""
    if rows and isinstance(rows[0], Mapping):
        return [row[name] for row in rows]
    return [row[position] for row in rows]


def _to_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _flat(value: Sequence[Any]) -> list[Any]:
    """Multi-dimensional arrays (e.g. ``smallint[][]`` images) arrive as nested lists."""
    if value and isinstance(value[0], list | tuple):
        return [v for inner in value for v in _flat(inner)]
    return list(value)


def numeric_block(column: Column, values: Sequence[Any], width: int | None) -> np.ndarray:
    """Values of a number/bool (array) column as an ``(n, width)`` float block, NaN = NULL.

    ``width`` is the array length learned from the training data (None: learn it now).
    A NULL array counts as all-NULL elements; a different length is an error.
    """
    if not column.is_array:
        try:
            return np.array([_to_float(v) for v in values], dtype=np.float64).reshape(-1, 1)
        except (TypeError, ValueError) as exc:
            raise DataError(f"column {column.name!r} has a non-numeric value: {exc}") from exc
    block = _plain_arrays(values)
    if block is not None and block.shape[1] > 0 and width in (None, block.shape[1]):
        return block
    values = [None if v is None else _flat(v) for v in values]
    if width is None:
        lengths = {len(v) for v in values if v is not None}
        if len(lengths) > 1:
            raise DataError(
                f"array column {column.name!r} has rows of different lengths "
                f"{sorted(lengths)}; arrays must have one fixed length"
            )
        width = lengths.pop() if lengths else 0
        if width == 0:
            raise DataError(f"array column {column.name!r} has no non-empty array")
    block = np.full((len(values), width), np.nan, dtype=np.float64)
    for i, value in enumerate(values):
        if value is None:
            continue
        if len(value) != width:
            raise DataError(
                f"array column {column.name!r} has a row of length {len(value)}, "
                f"but the model expects length {width}"
            )
        block[i] = [_to_float(v) for v in value]
    return block


def _plain_arrays(values: Sequence[Any]) -> np.ndarray | None:
    """The common case at numpy's speed: every value a one-dimensional list of numbers of
    one length (NULL elements become NaN).  None when the rows need the element-by-element
    path (a NULL array, nested arrays, lengths that differ, a non-numeric element), which
    then also words the error.  Preparing ``digits`` (115,000 pixels, checked and then
    converted one Python call each) took 0.029 s of CPU, 0.016 s this way."""
    if not values or not all(type(v) is list for v in values):
        return None
    try:
        block = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return block if block.ndim == 2 else None


@dataclass(frozen=True)
class NonFinite:
    """How many NULL, NaN, Infinity and -Infinity values (array elements) a number column has.

    PostgreSQL's ``real``, ``double precision`` and ``numeric`` hold NaN and the infinities as
    values, which are not NULL: a message about them must not say NULL.
    """

    nulls: int = 0
    nans: int = 0
    positive: int = 0
    negative: int = 0

    @property
    def infinite(self) -> int:
        return self.positive + self.negative

    def describe(self) -> str:
        """``2 NULL, 3 NaN and 1 Infinity``: the kinds present."""
        return _counted([(self.nulls, "NULL"), (self.nans, "NaN"), (self.positive, "Infinity"),
                         (self.negative, "-Infinity")])

    def infinities(self) -> str:
        """``2 Infinity and 1 -Infinity``: the infinite kinds present."""
        return _counted([(self.positive, "Infinity"), (self.negative, "-Infinity")])


def _counted(counts: list[tuple[int, str]]) -> str:
    parts = [f"{count} {name}" for count, name in counts if count]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def non_finite(column: Column, values: Sequence[Any]) -> NonFinite:
    """Count the NULL, NaN and infinite values of a number column (elements of an array one).

    Integers cannot be either and are skipped; a value that is no number at all is left
    for :func:`numeric_block` to report.
    """
    numbers: list[Any]
    plain = _plain_arrays(values) if column.is_array else None
    if plain is not None and not np.isnan(plain).any():  # no NULL and no NaN to tell apart
        return NonFinite(positive=int(np.isposinf(plain).sum()),
                         negative=int(np.isneginf(plain).sum()))
    if column.is_array:
        nulls, numbers = 0, []
        for value in values:
            items = [None] if value is None else _flat(value)
            nulls += items.count(None)
            numbers.extend(v for v in items if v is not None and not isinstance(v, int))
    else:
        nulls = list(values).count(None)
        numbers = [v for v in values if v is not None and not isinstance(v, int)]
    try:
        block = np.array(numbers, dtype=np.float64)
    except (TypeError, ValueError):
        block = np.array([_float_or_zero(v) for v in numbers], dtype=np.float64)
    return NonFinite(nulls=nulls, nans=int(np.isnan(block).sum()),
                     positive=int(np.isposinf(block).sum()),
                     negative=int(np.isneginf(block).sum()))


def _float_or_zero(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def without_non_finite(name: str, is_array: bool, *, keep_nulls: bool) -> str:
    """A WHERE clause that leaves out the rows with NaN or an infinity in column ``name``."""
    special = "('NaN', 'Infinity', '-Infinity')"
    test = (f"NOT ({name} && '{{NaN,Infinity,-Infinity}}')" if is_array
            else f"{name} NOT IN {special}")
    return f"WHERE {name} IS NULL OR {test}" if keep_nulls else f"WHERE {test}"
