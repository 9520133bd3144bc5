"""Compile fitted estimators into the blob the ``pgml_native`` C extension scores.

Scoring through plpython costs 100-200 µs per row; the C evaluator in
``ext/pgml_native`` walks a flattened tree ensemble (or a dot product) in about
a microsecond.  This module turns a fitted XGBoost, LightGBM or scikit-learn
model into that evaluator's input and refuses, with :class:`NotCompilable`,
anything it cannot reproduce exactly, so callers can keep the Python path for
those models.

Supported
---------
* XGBoost ``gbtree``/``dart`` (``XGBModel`` or ``Booster``): identity-link
  objectives (``reg:squarederror``, ``reg:absoluteerror``, ``reg:pseudohubererror``,
  ``reg:quantileerror`` with one quantile, ``binary:logitraw``, ``rank:*``), log-link
  ones (``count:poisson``, ``reg:gamma``, ``reg:tweedie``, ``survival:cox``),
  ``binary:logistic``/``reg:logistic`` and ``multi:softprob``/``multi:softmax``;
  ``base_score`` taken from the model's JSON and moved to margin space the way
  XGBoost 3.x does; early-stopped sklearn models keep only ``best_iteration``.
* LightGBM ``gbdt``/``rf``/``dart``/``goss`` (``LGBMModel`` or ``Booster``), numerical
  splits with its three missing-value types, objectives regression-like
  (identity), poisson/gamma/tweedie (exp), binary/cross_entropy (sigmoid),
  multiclass (softmax), multiclassova (per-class sigmoid).
* scikit-learn trees and forests (``DecisionTree*``, ``ExtraTree*``,
  ``RandomForest*``, ``ExtraTrees*``), honouring ``missing_go_to_left``;
  ``GradientBoosting*`` with a dummy or zero ``init``; linear models with
  ``coef_``/``intercept_`` and a plain linear decision function (OLS, ridge,
  lasso, elastic net, SGD, Huber, logistic regression binary/multinomial/OvR,
  linear SVMs, GLMs with identity or log link); ``RANSACRegressor`` and
  ``MultiOutputRegressor`` over supported regressors.
* CatBoost oblivious trees (``CatBoostRegressor``/``CatBoostClassifier`` with the
  default symmetric ``grow_policy``) on float features: RMSE-like losses (identity),
  Poisson/Tweedie (exp), Logloss/CrossEntropy (sigmoid), MultiClass (softmax), read
  from the model's own JSON export.  Categorical, text and embedding features
  (CatBoost's CTRs) and the non-symmetric grow policies stay on the Python path.

Blob format, versions 1 and 2 (all little-endian)
-------------------------------------------------
Version 2 is version 1 plus an optional row section (flags bit3) at the end of the
body; blobs without one are still written as version 1, byte for byte as before, so
an older extension keeps reading every model that has no row form.

Header, 64 bytes::

    off  type     field
    0    char[8]  magic b"PGMLNATV"
    8    u32      version = 1
    12   u32      kind: 1 tree ensemble, 2 linear, 3 oblivious trees (CatBoost)
    16   u32      task: 0 regression, 1 classification
    20   u32      link: 0 identity, 1 sigmoid(link_param * raw), 2 softmax, 3 exp,
                  4 one-vs-rest (sigmoid each, normalise), 5 none (class only)
    24   u32      num_features F (>= 1)
    28   u32      num_outputs K: width of the raw score vector
    32   u32      num_classes C: 0 for regression; classification has K == C,
                  or K == 1 and C == 2 (one margin, class 1 when raw > 0)
    36   u32      flags: bit0 preprocessing present, bit1 class labels present,
                  bit2 read |x| <= 1e-35 as 0.0 (LightGBM's predictor does),
                  bit3 row section present (version 2),
                  bit4 input rules present: bit5 refuses NaN, bit6 refuses infinities
                  (pgml_flow.engine.inputs; a refused value is scored by the Python
                  path, which raises the error; without bit4, a blob written before
                  input rules, every row with a NaN or an infinity goes there)
    40   f64      link_param (sigmoid slope; 1.0 otherwise)
    48   f64      divisor: raw = base + (sum of tree leaves) / divisor
                  (number of trees for averaging forests, else 1)
    56   u64      body_len: bytes between header and trailer

Body, in order::

    f64 base[K]                      raw score before any tree / intercepts
    f64 labels[C]                    if flags bit1: value predict returns per class
                                     (else the class index)
    f64 impute[F], shift[F], mult[F] if flags bit0: x = NaN ? impute : x  (NaN impute
                                     keeps it missing), then x' = (x - shift) * mult
    kind 1 (trees):
      u32 n_trees, u32 leaf_width W (1: a tree adds to one output; K: to all),
      u64 n_nodes,
      u32 tree_nodes[n_trees]        node count per tree
      u32 tree_group[n_trees]        output a W == 1 tree adds to
      node[n_nodes], 20 bytes each:  i32 left, i32 right (tree-local index; -1 and -1
                                     for a leaf; children after their parent),
                                     u32 feature, u32 flags (bit0 missing goes left,
                                     bit1 |x| <= 1e-35 also counts as missing),
                                     f32 threshold (go left iff x <= threshold)
      f64 leaf_values[n_leaves * W]  leaves in node order
    kind 2 (linear):
      f64 coef[K * F]                row-major: raw[k] = base[k] + sum_j coef[k*F + j] * x_j
                                     (model.c transposes it when parsing: feature-major in
                                     memory, so a row costs its non-zero features x K)
    kind 3 (oblivious trees: every node of a level has the same split):
      u32 n_trees, u32 leaf_width W, u64 n_splits,
      u32 tree_depth[n_trees]        D_t <= 16 levels (0: a constant tree)
      u32 tree_group[n_trees]        output a W == 1 tree adds to
      split[n_splits], 12 bytes:     u32 feature, u32 flags (bit0 NaN counts as
                                     above the threshold), f32 threshold; tree by
                                     tree, level 0 first
      f64 leaf_values[sum 2^D_t * W] tree t's leaf i is the one whose level d sets
                                     bit d of i exactly when x > threshold
    row section (flags bit3): the ROW(...) form of pgml.predict, i.e. the training
    snapshot's input columns in order and their fitted preprocessing
    (pgml_flow.engine.preprocess.Encoder), whose widths add up to F:
      u32 n_columns, then per column:
      u32 kind (0 number, 1 bool, 2 text), u32 encode (0 none for number/bool,
      1 native, 2 ordinal, 3 one_hot, 4 target, 5 multi_hot, 6 words, 7 tfidf,
      8 hashing), u32 flags (bit0 fill present = an impute rule other than
      "error", bit1 array column: number arrays, and text[] for multi_hot only),
      u32 width, u32 name_len, u8 name[name_len] (UTF-8),
      u32 n_categories, then per category u32 len, u8 bytes[len] (UTF-8; the
                                     sorted train values, the ordinal list, or the
                                     vocabulary; width = n_categories for one_hot,
                                     multi_hot, words, tfidf; none for hashing)
      u32 tokenizer (1), u32 ngram_lo, u32 ngram_hi, u32 text_flags (bit0
          sublinear_tf, bit1 alternate_sign)     if encode is words, tfidf, hashing
                                     (the tokenizer of pgml_flow.engine.text)
      f64 idf[n_categories]          if encode is tfidf
      f64 target_means[n_categories], f64 target_prior   if encode is target
      f64 fill[width]                if flags bit0
      f64 center[width], f64 scale[width]     x' = (x - center) / scale

    output section (flags bit7, last; any version): the target options of
    pgml_flow.engine.targets, applied after the link (add_output_section):
      u32 transform (0 none, 1 expm1: the model learned log1p(y), 2 class median:
          a classifier whose scalar output is the lower weighted median of its class
          probabilities over scale, one value per class; the model is then served as
          regression: no probabilities),
      u32 n_scale, f64 scale[n_scale]          ascending: regression outputs snap to
                                               the nearest (halfway: the smaller)
      u32 calibration (0 none, 1 sigmoid, 2 isotonic), u32 n_points,
      f64 points                               sigmoid (n_points 2): a, b with
                                               q = sigmoid(a * logit(p) + b); isotonic:
                                               x[n_points] ascending, y[n_points],
                                               q = np.interp(p, x, y); p = P(class 1)

Trailer: u32 CRC-32 (zlib) of all preceding bytes.

Thresholds are float32 with ``<=`` for every library: XGBoost's ``x < t``
becomes ``x <= nextafter(t, -inf)``, and double thresholds (LightGBM,
scikit-learn) become the largest float32 not above them; for float32 inputs
those decide exactly like the library.  LightGBM's missing type "None" (NaN
treated as 0.0) is folded into the default direction.
"""

from __future__ import annotations

import gc
import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from pgml_flow.engine.columns import VOCABULARY_ENCODINGS
from pgml_flow.engine.inputs import InputPolicy, input_policy
from pgml_flow.errors import ModelError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "ROW_FORMAT_VERSION",
    "NotCompilable",
    "add_output_section",
    "add_row_section",
    "compile_model",
    "row_section",
    "without_input_rules",
]

MAGIC = b"PGMLNATV"
FORMAT_VERSION = 1
#: the version of blobs that carry a row section
ROW_FORMAT_VERSION = 2
FLAG_ROW = 8
#: input rules (see :mod:`pgml_flow.engine.inputs`): present, refuse NaN, refuse infinities
FLAG_INPUT_RULES = 16
FLAG_REFUSE_NAN = 32
FLAG_REFUSE_INF = 64
_INPUT_FLAGS = FLAG_INPUT_RULES | FLAG_REFUSE_NAN | FLAG_REFUSE_INF
#: the output section (target options) is present
FLAG_OUTPUT = 128

KIND_TREES = 1
KIND_LINEAR = 2
KIND_OBLIVIOUS = 3
TASK_REGRESSION = 0
TASK_CLASSIFICATION = 1
LINK_IDENTITY = 0
LINK_SIGMOID = 1
LINK_SOFTMAX = 2
LINK_EXP = 3
LINK_OVR = 4
LINK_NONE = 5
#: output section transform 2: a classifier's prediction is the lower weighted median of
#: its class probabilities over the scale (engine.targets_classes)
OUT_CLASS_MEDIAN = 2

NODE_DEFAULT_LEFT = 1
NODE_ZERO_MISSING = 2
#: oblivious split flag: NaN sets the level's bit (CatBoost's nan_value_treatment AsTrue)
SPLIT_NAN_ABOVE = 1
OBLIVIOUS_MAX_DEPTH = 16

_HEADER = struct.Struct("<8sIIIIIIIIddQ")
_NODE_DTYPE = np.dtype(
    [("left", "<i4"), ("right", "<i4"), ("feature", "<u4"), ("flags", "<u4"), ("thr", "<f4")]
)
_SPLIT_DTYPE = np.dtype([("feature", "<u4"), ("flags", "<u4"), ("thr", "<f4")])


class NotCompilable(ModelError):
    """This model cannot be compiled for native scoring; serve it through Python instead."""


@dataclass
class _Tree:
    """One tree in library-neutral form; leaves have left == right == -1."""

    left: np.ndarray  # int32
    right: np.ndarray  # int32
    feature: np.ndarray  # uint32
    flags: np.ndarray  # uint32
    threshold: np.ndarray  # float32, go left iff x <= threshold
    value: np.ndarray  # float64 (n_nodes, W), read at leaves only
    group: int = 0


@dataclass
class _Forest:
    """Trees concatenated: each :class:`_Tree` field of every tree, end to end (child
    indices stay tree-local), with each tree's node count and group.

    Why: XGBoost's JSON is read field by field over all its trees at once; cutting that
    into a :class:`_Tree` per tree and joining them again in :func:`_write` took about 5 ms
    of every training of a 1,600-tree model.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    flags: np.ndarray
    threshold: np.ndarray
    value: np.ndarray  # (n_nodes, W)
    counts: np.ndarray  # int64 (n_trees,)
    groups: np.ndarray  # (n_trees,)

    @classmethod
    def of(cls, trees: list[_Tree], width: int) -> _Forest:
        return cls(
            np.concatenate([t.left for t in trees]),
            np.concatenate([t.right for t in trees]),
            np.concatenate([t.feature for t in trees]),
            np.concatenate([t.flags for t in trees]),
            np.concatenate([t.threshold for t in trees]),
            np.concatenate([np.asarray(t.value, dtype=np.float64).reshape(len(t.left), width)
                            for t in trees]),
            np.array([len(t.left) for t in trees], dtype=np.int64),
            np.array([t.group for t in trees], dtype=np.int64),
        )

    def trees(self) -> list[_Tree]:
        """One :class:`_Tree` per tree (views of the concatenated arrays)."""
        ends = np.cumsum(self.counts).tolist()
        return [_Tree(self.left[a:b], self.right[a:b], self.feature[a:b], self.flags[a:b],
                      self.threshold[a:b], self.value[a:b], int(self.groups[i]))
                for i, (a, b) in enumerate(zip([0, *ends[:-1]], ends, strict=True))]


@dataclass
class _Spec:
    kind: int
    task: int
    link: int
    num_features: int
    num_outputs: int
    num_classes: int = 0
    link_param: float = 1.0
    divisor: float = 1.0
    base: np.ndarray | None = None
    labels: np.ndarray | None = None
    trees: list[_Tree] = field(default_factory=list)
    leaf_width: int = 1
    #: the trees in concatenated form instead of ``trees`` (XGBoost)
    forest: _Forest | None = None
    coef: np.ndarray | None = None
    snap_zero: bool = False
    oblivious: _Oblivious | None = None


@dataclass
class _Oblivious:
    """Oblivious trees (kind 3): tree t has ``depth[t]`` splits, level 0 first, and
    ``2 ** depth[t]`` leaves of ``leaf_width`` values each, all trees concatenated."""

    depth: np.ndarray  # uint32 (n_trees,)
    group: np.ndarray  # uint32 (n_trees,)
    splits: np.ndarray  # _SPLIT_DTYPE (sum of depth,)
    leaves: np.ndarray  # float64 (sum of 2 ** depth, leaf_width)


# --------------------------------------------------------------------------- helpers


def _f32_le_from_f64(t: np.ndarray) -> np.ndarray:
    """Largest float32 <= t, so float32 ``x <= t`` decides the same in float32."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(over="ignore"):
        t32 = t.astype(np.float32)
    over = t32.astype(np.float64) > t
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    return t32


def _f32_le_from_lt(t: np.ndarray) -> np.ndarray:
    """Turn float32 ``x < t`` into ``x <= t'`` (t' the float32 just below t)."""
    t32 = np.asarray(t, dtype=np.float32)
    return np.nextafter(t32, np.float32(-np.inf)).astype(np.float32)


def _labels(classes: Any) -> np.ndarray | None:
    """Numeric class labels are returned by predict; anything else returns the index."""
    arr = np.asarray(classes)
    if arr.dtype.kind in "biuf":
        out = arr.astype(np.float64)
        if np.all(np.isfinite(out)):
            return out
    return None


def _preorder(tree: _Tree) -> _Tree:
    """Renumber nodes in pre-order so children come after their parent."""
    order: list[int] = []
    stack = [0]
    while stack:
        n = stack.pop()
        order.append(n)
        if tree.left[n] != -1:
            stack.append(int(tree.right[n]))
            stack.append(int(tree.left[n]))
    idx = np.asarray(order, dtype=np.int64)
    if len(set(order)) != len(order):
        raise NotCompilable("tree is not a tree (a node is reachable twice)")
    new_of_old = np.full(len(tree.left), -1, dtype=np.int64)
    new_of_old[idx] = np.arange(len(idx))
    left = tree.left[idx]
    right = tree.right[idx]
    leaf = left == -1
    left = np.where(leaf, -1, new_of_old[np.where(leaf, 0, left)]).astype(np.int32)
    right = np.where(leaf, -1, new_of_old[np.where(leaf, 0, right)]).astype(np.int32)
    return _Tree(
        left,
        right,
        tree.feature[idx],
        tree.flags[idx],
        tree.threshold[idx],
        tree.value[idx],
        tree.group,
    )


def _normalise_tree(tree: _Tree) -> _Tree:
    n = len(tree.left)
    leaf = tree.left == -1
    tree.right = np.where(leaf, -1, tree.right).astype(np.int32)
    tree.left = tree.left.astype(np.int32)
    tree.feature = np.where(leaf, 0, tree.feature).astype(np.uint32)
    tree.flags = np.where(leaf, 0, tree.flags).astype(np.uint32)
    tree.threshold = np.where(leaf, 0.0, tree.threshold).astype(np.float32)
    pos = np.arange(n)
    ok = bool(np.all(leaf | ((tree.left > pos) & (tree.right > pos)))) and bool(
        np.all(leaf | ((tree.left < n) & (tree.right < n)))
    )
    return tree if ok else _preorder(tree)


def _in_order(trees: list[_Tree]) -> bool:
    """Is every node's child after it and inside its tree (as :func:`_normalise_tree` wants,
    which then changes nothing but the values it zeroes at leaves)?  All trees at once."""
    if not trees:
        return True
    counts = np.array([len(t.left) for t in trees], dtype=np.int64)
    return _in_order_arrays(np.concatenate([t.left for t in trees]),
                            np.concatenate([t.right for t in trees]), counts)


def _in_order_arrays(left: np.ndarray, right: np.ndarray, counts: np.ndarray) -> bool:
    """:func:`_in_order` of concatenated trees (``counts`` nodes each)."""
    size = np.repeat(counts, counts)
    pos = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    left, right = left.astype(np.int64), right.astype(np.int64)
    inner = left != -1
    return bool(np.all(~inner | ((left > pos) & (right > pos) & (left < size) & (right < size))))


def _forest_of(spec: _Spec) -> _Forest:
    """The spec's trees concatenated, each renumbered first (:func:`_normalise_tree`) if
    a child comes before its parent or outside its tree."""
    forest = spec.forest
    if forest is not None and _in_order_arrays(forest.left, forest.right, forest.counts):
        return forest
    trees = spec.trees if forest is None else forest.trees()
    if not _in_order(trees):
        trees = [_normalise_tree(t) for t in trees]
    return _Forest.of(trees, spec.leaf_width)


def _preprocess_arrays(preprocess: dict[str, Any], nf: int) -> np.ndarray:
    """``{"impute": [...], "shift": [...], "mult": [...]}`` -> (3, F) float64."""
    unknown = set(preprocess) - {"impute", "shift", "mult"}
    if unknown:
        raise NotCompilable(f"unknown preprocess keys {sorted(unknown)}; use impute, shift, mult")
    defaults = {"impute": math.nan, "shift": 0.0, "mult": 1.0}
    rows = []
    for key in ("impute", "shift", "mult"):
        vals = preprocess.get(key)
        if vals is None:
            row = np.full(nf, defaults[key])
        else:
            row = np.array(
                [defaults[key] if v is None else float(v) for v in vals], dtype=np.float64
            )
            if row.shape != (nf,):
                raise NotCompilable(f"preprocess {key!r} has {row.size} values, model has {nf}")
        if key != "impute" and not np.all(np.isfinite(row)):
            raise NotCompilable(f"preprocess {key!r} must be finite")
        rows.append(row)
    return np.vstack(rows)


_COL_KINDS = {"number": 0, "bool": 1, "text": 2}
_ENCODES = {"native": 1, "ordinal": 2, "one_hot": 3, "target": 4, "multi_hot": 5, "words": 6,
            "tfidf": 7, "hashing": 8}
#: encodings with one indicator (or weight) per category, and those that tokenize text
_PER_CATEGORY = {"one_hot", "multi_hot", "words", "tfidf"}
_TOKENIZED = {"words", "tfidf", "hashing"}
TEXT_SUBLINEAR_TF = 1
TEXT_ALTERNATE_SIGN = 2
#: the snapshot ``columns`` format the row section is compiled from (engine.dataset)
_SNAPSHOT_FORMAT = 1


def _finite_list(values: Any, n: int, what: str, name: str) -> list[float]:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != (n,):
        raise NotCompilable(f"column {name!r}: {what} has {arr.size} values, expected {n}")
    if not np.all(np.isfinite(arr)):
        raise NotCompilable(
            f"column {name!r}: {what} is not finite (e.g. infinite training values), "
            "which the native row form does not reproduce"
        )
    return [float(v) for v in arr]


def _utf8(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise NotCompilable(f"{what} {text!r} is not a string")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotCompilable(f"{what} {text!r} is not valid UTF-8: {exc}") from exc


def _row_column(col: dict[str, Any]) -> tuple[bytes, int]:
    """One column of the row section, and its width."""
    name = str(col.get("name"))
    kind = col.get("kind")
    if kind not in _COL_KINDS:
        raise NotCompilable(
            f"column {name!r} has kind {kind!r}; the native row form compiles number, "
            "bool and text columns"
        )
    rule = col.get("preprocess") or {}
    encode_rule = rule.get("text") or rule.get("encode", "native")
    encode_name = "ordinal" if isinstance(encode_rule, dict) else encode_rule
    impute = rule.get("impute", "error")
    is_array = col.get("array_length") is not None
    width = int(col["width"])
    categories: list[Any] = []
    encode = 0
    if kind == "text":
        if encode_name not in _ENCODES:
            raise NotCompilable(
                f"column {name!r} has encoding {encode_rule!r}, which the native row form "
                "does not know"
            )
        if is_array != (encode_name == "multi_hot"):
            raise NotCompilable(f"text array column {name!r} cannot be compiled")
        if encode_name in _TOKENIZED and col.get("tokenizer") != 1:
            raise NotCompilable(
                f"column {name!r} was fitted with the tokenizer of an older pgml-flow, which "
                "the C scorer does not reproduce; retrain the model for a native ROW form"
            )
        encode = _ENCODES[encode_name]
        categories = list(col.get("categories") or [])
    elif encode_name != "native" or col.get("categories"):
        raise NotCompilable(f"{kind} column {name!r} has a categorical encoding")
    per_category = encode_name in _PER_CATEGORY and kind == "text"
    # one_hot or a vocabulary encoding whose train rows had no value: no inputs
    empty_ok = kind == "text" and encode_name in (*VOCABULARY_ENCODINGS, "one_hot")
    if (width < 1 and not empty_ok) or (per_category and width != len(categories)) or (
        not per_category and not is_array and encode_name != "hashing" and width != 1
    ) or (encode_name == "hashing" and categories):
        raise NotCompilable(f"column {name!r}: width {width} does not match its encoding")
    fill = col.get("fill")
    if (fill is None) != (impute == "error"):
        raise NotCompilable(f"column {name!r}: impute {impute!r} without matching fill values")
    name_bytes = _utf8(name, "column name")
    flags = (1 if fill is not None else 0) | (2 if is_array else 0)
    parts = [
        struct.pack("<IIIII", _COL_KINDS[kind], encode, flags, width, len(name_bytes)),
        name_bytes,
        struct.pack("<I", len(categories)),
    ]
    for category in categories:
        raw = _utf8(category, f"column {name!r}: category")
        parts.append(struct.pack("<I", len(raw)) + raw)
    doubles: list[float] = []
    if kind == "text" and encode_name in _TOKENIZED:
        lo, hi = rule.get("ngram") or [1, 1]
        text_flags = ((TEXT_SUBLINEAR_TF if rule.get("sublinear_tf") else 0)
                      | (TEXT_ALTERNATE_SIGN if rule.get("alternate_sign") else 0))
        parts.append(struct.pack("<IIII", 1, int(lo), int(hi), text_flags))
    if kind == "text" and encode_name == "tfidf":
        doubles += _finite_list(col.get("idf"), len(categories), "idf", name)
    if encode == _ENCODES["target"]:
        if col.get("target_means") is None:
            raise NotCompilable(f"column {name!r}: target encoding without target means")
        doubles += _finite_list(col["target_means"], len(categories), "target_means", name)
        doubles += _finite_list([col.get("target_prior") or 0.0], 1, "target_prior", name)
    if fill is not None:
        doubles += _finite_list(fill, width, "fill", name)
    doubles += _finite_list(col["center"], width, "center", name)
    scale = _finite_list(col["scale"], width, "scale", name)
    if 0.0 in scale:
        raise NotCompilable(f"column {name!r}: scale 0")
    doubles += scale
    parts.append(struct.pack(f"<{len(doubles)}d", *doubles))
    return b"".join(parts), width


def row_section(columns: dict[str, Any], num_features: int) -> bytes:
    """The row section for a training snapshot's ``columns`` JSON (``pgml.snapshots``).

    It carries exactly what ``RowTransformer.transform`` applies (names in order,
    encodings with their categories, fitted impute values, centers and scales), so
    the C scorer turns a record into the same features as the Python path.  What
    it cannot express raises :class:`NotCompilable`: the model's ROW form then stays
    on the Python path (its array form may still be native).
    """
    if not isinstance(columns, dict) or columns.get("format") != _SNAPSHOT_FORMAT:
        got = columns.get("format") if isinstance(columns, dict) else type(columns).__name__
        raise NotCompilable(
            f"snapshot columns have format {got!r}, not {_SNAPSHOT_FORMAT}; the row form "
            "stays on the Python path"
        )
    features = columns.get("features") or []
    if not features:
        raise NotCompilable("the snapshot has no feature columns")
    parts = [struct.pack("<I", len(features))]
    total = 0
    for col in features:
        try:
            part, width = _row_column(col)
        except (KeyError, TypeError, ValueError) as exc:
            raise NotCompilable(
                f"snapshot column {col.get('name')!r} is malformed: {type(exc).__name__}: {exc}"
            ) from exc
        parts.append(part)
        total += width
    if total != num_features:
        raise NotCompilable(
            f"the snapshot's columns make {total} features, the model has {num_features}"
        )
    return b"".join(parts)


def _write(
    spec: _Spec,
    preprocess: dict[str, Any] | None,
    row: bytes | None = None,
    policy: InputPolicy | None = None,
) -> bytes:
    nf, k, c = spec.num_features, spec.num_outputs, spec.num_classes
    base = np.zeros(k) if spec.base is None else np.asarray(spec.base, dtype=np.float64)
    if base.shape != (k,):
        raise NotCompilable(f"internal: base has shape {base.shape}, expected ({k},)")
    parts: list[bytes] = [base.astype("<f8").tobytes()]
    flags = 0
    if spec.labels is not None:
        flags |= 2
        parts.append(np.asarray(spec.labels, dtype="<f8").tobytes())
    if spec.snap_zero:
        flags |= 4
    if policy is not None:
        flags |= FLAG_INPUT_RULES
        flags |= 0 if policy.nan else FLAG_REFUSE_NAN
        flags |= 0 if policy.inf else FLAG_REFUSE_INF
    if preprocess:
        flags |= 1
        parts.append(_preprocess_arrays(preprocess, nf).astype("<f8").tobytes())
    if spec.kind == KIND_TREES:
        forest = _forest_of(spec)
        w = spec.leaf_width
        counts = forest.counts.astype("<u4")
        groups = forest.groups.astype("<u4")
        n_nodes = int(counts.sum())
        # _normalise_tree's zeroing at leaves, over all the trees at once (one by one, a
        # 1,600-tree model spent 0.1 s of every training here)
        left = forest.left
        leaf = left == -1
        nodes = np.empty(n_nodes, dtype=_NODE_DTYPE)
        nodes["left"] = left.astype(np.int32)
        nodes["right"] = np.where(leaf, -1, forest.right)
        nodes["feature"] = np.where(leaf, 0, forest.feature)
        nodes["flags"] = np.where(leaf, 0, forest.flags)
        nodes["thr"] = np.where(leaf, 0.0, forest.threshold).astype(np.float32)
        leaves = np.asarray(forest.value, dtype=np.float64).reshape(n_nodes, w)[leaf]
        if np.any(nodes["feature"][nodes["left"] != -1] >= nf):
            raise NotCompilable("a split uses a feature index beyond the model's feature count")
        if not np.all(np.isfinite(leaves)):
            raise NotCompilable("model has non-finite leaf values")
        parts += [
            struct.pack("<IIQ", len(counts), w, n_nodes),
            counts.tobytes(),
            groups.tobytes(),
            nodes.tobytes(),
            leaves.astype("<f8").tobytes(),
        ]
    elif spec.kind == KIND_OBLIVIOUS:
        obl = spec.oblivious
        assert obl is not None
        if np.any(obl.splits["feature"] >= nf):
            raise NotCompilable("a split uses a feature index beyond the model's feature count")
        if not np.all(np.isfinite(obl.leaves)):
            raise NotCompilable("model has non-finite leaf values")
        parts += [
            struct.pack("<IIQ", len(obl.depth), spec.leaf_width, len(obl.splits)),
            obl.depth.astype("<u4").tobytes(),
            obl.group.astype("<u4").tobytes(),
            obl.splits.astype(_SPLIT_DTYPE).tobytes(),
            obl.leaves.astype("<f8").tobytes(),
        ]
    else:
        assert spec.coef is not None
        coef = np.asarray(spec.coef, dtype=np.float64).reshape(k, nf)
        if not np.all(np.isfinite(coef)):
            raise NotCompilable("model has non-finite coefficients")
        parts.append(coef.astype("<f8").tobytes())
    if row is not None:
        flags |= FLAG_ROW
        parts.append(row)
    body = b"".join(parts)
    header = _HEADER.pack(
        MAGIC,
        FORMAT_VERSION if row is None else ROW_FORMAT_VERSION,
        spec.kind,
        spec.task,
        spec.link,
        nf,
        k,
        c,
        flags,
        float(spec.link_param),
        float(spec.divisor),
        len(body),
    )
    blob = header + body
    return blob + struct.pack("<I", zlib.crc32(blob) & 0xFFFFFFFF)


# --------------------------------------------------------------------------- XGBoost

_XGB_IDENTITY = {
    "reg:squarederror",
    "reg:linear",
    "reg:squaredlogerror",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "reg:quantileerror",
    "binary:logitraw",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
}
_XGB_LOG = {"count:poisson", "reg:gamma", "reg:tweedie", "survival:cox"}
_XGB_LOGISTIC = {"binary:logistic", "reg:logistic"}
_XGB_SOFTMAX = {"multi:softprob", "multi:softmax"}


def _xgb_tree(t: dict[str, Any], group: int, weight: float) -> _Tree:
    if any(int(s) != 0 for s in t.get("split_type", [])) or t.get("categories"):
        raise NotCompilable("XGBoost model uses categorical splits; only numerical splits compile")
    left = np.asarray(t["left_children"], dtype=np.int64)
    right = np.asarray(t["right_children"], dtype=np.int64)
    cond = np.asarray(t["split_conditions"], dtype=np.float32)
    if int(t["tree_param"].get("size_leaf_vector", "1") or 1) > 1:
        raise NotCompilable("XGBoost multi-output trees are not supported")
    leaf = left == -1
    value = cond.astype(np.float64)
    if weight != 1.0:
        value = value * weight
    return _Tree(
        left=left.astype(np.int32),
        right=right.astype(np.int32),
        feature=np.asarray(t["split_indices"], dtype=np.uint32),
        flags=np.where(np.asarray(t["default_left"], dtype=bool), NODE_DEFAULT_LEFT, 0).astype(
            np.uint32
        ),
        threshold=np.where(leaf, np.float32(0), _f32_le_from_lt(cond)),
        value=value.reshape(-1, 1),
        group=group,
    )


def _xgb_forest(trees_json: list[dict[str, Any]], tree_info: list[int],
                weights: list[float]) -> _Forest | None:
    """:func:`_xgb_tree` of every tree, its conversions done once over all of them (one
    by one, the 1,600 trees of a 10-class model took 0.1 s of every training), as one
    :class:`_Forest`; None without trees."""
    from itertools import chain

    for t in trees_json:
        if t.get("categories") or int(t["tree_param"].get("size_leaf_vector", "1") or 1) > 1:
            trees = [_xgb_tree(t, tree_info[i], weights[i] if weights else 1.0)
                     for i, t in enumerate(trees_json)]  # raises NotCompilable as it should
            return _Forest.of(trees, 1)
    if not trees_json:
        return None

    def joined(key: str, dtype: Any) -> np.ndarray:
        return np.fromiter(chain.from_iterable(t[key] for t in trees_json), dtype=dtype,
                           count=total)

    counts = np.array([len(t["left_children"]) for t in trees_json], dtype=np.int64)
    total = int(counts.sum())
    if any(t.get("split_type") for t in trees_json) and np.any(joined("split_type", np.int64)):
        raise NotCompilable("XGBoost model uses categorical splits; only numerical splits compile")
    left = joined("left_children", np.int64)
    cond = np.array(list(chain.from_iterable(t["split_conditions"] for t in trees_json)),
                    dtype=np.float32)
    leaf = left == -1
    value = cond.astype(np.float64)
    if weights and any(w != 1.0 for w in weights[:len(trees_json)]):
        per_tree = np.array(weights[:len(trees_json)], dtype=np.float64)
        value = np.where(np.repeat(per_tree, counts) != 1.0,
                         value * np.repeat(per_tree, counts), value)
    right = joined("right_children", np.int64).astype(np.int32)
    feature = joined("split_indices", np.uint32)
    flags = np.where(joined("default_left", np.int64).astype(bool), NODE_DEFAULT_LEFT,
                     0).astype(np.uint32)
    threshold = np.where(leaf, np.float32(0), _f32_le_from_lt(cond))
    groups = np.array(tree_info[:len(trees_json)], dtype=np.int64)
    return _Forest(left.astype(np.int32), right, feature, flags, threshold,
                   value.reshape(-1, 1), counts, groups)


def _json_document(raw: bytes | bytearray) -> Any:
    """The parsed JSON, without the cyclic collector, which a model's JSON (a list per tree
    field, 25,000 of them for 1,600 trees) would otherwise start again and again over the
    process's objects: 12 ms instead of 35 ms in a process that has imported scikit-learn
    (JSON makes no reference cycles).  Parsed by orjson (a declared dependency of the
    server's environment): 5-7 ms instead of ``json``'s 11 for those 1.1 MB, the same
    values (both round every number correctly).  orjson refuses the ``NaN``/``Infinity``
    tokens that ``json`` reads, so a document with them is read by ``json``."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return json.loads(raw)
    finally:
        if enabled:
            gc.enable()


def _compile_xgboost(model: Any, stored: bytes | None = None) -> _Spec:
    import xgboost as xgb

    booster = model if isinstance(model, xgb.Booster) else model.get_booster()
    is_sklearn = not isinstance(model, xgb.Booster)
    if is_sklearn:
        missing = getattr(model, "missing", np.nan)
        if missing is not None and not (isinstance(missing, float) and math.isnan(missing)):
            raise NotCompilable("XGBoost model with a non-NaN `missing` value")
    if stored is not None and stored[:2] != b'{"':
        raise NotCompilable("the stored XGBoost model is not JSON")
    doc = _json_document(stored if stored is not None else booster.save_raw(raw_format="json"))
    learner = doc["learner"]
    params = learner["learner_model_param"]
    objective = learner["objective"]["name"]
    gb = learner["gradient_booster"]
    gname = gb["name"]
    if gname == "dart":
        weights = [float(w) for w in gb.get("weight_drop", [])]
        gb = gb["gbtree"]
    elif gname == "gbtree":
        weights = []
    else:
        raise NotCompilable(f"XGBoost booster {gname!r} is not supported (only gbtree, dart)")
    tmodel = gb["model"]
    num_feature = int(params["num_feature"])
    num_class = int(params.get("num_class", "0") or 0)
    if int(params.get("num_target", "1") or 1) > 1:
        raise NotCompilable("XGBoost multi-target models are not supported")
    if tmodel.get("cats") and any(tmodel["cats"].get(k) for k in tmodel["cats"]):
        raise NotCompilable("XGBoost model uses categorical features")
    base = [float(v) for v in str(params["base_score"]).strip("[]").split(",") if v.strip()]
    if objective == "reg:quantileerror" and len(base) > 1:
        raise NotCompilable("XGBoost multi-quantile models are not supported")

    trees_json = tmodel["trees"]
    tree_info = [int(g) for g in tmodel["tree_info"]]
    n_use = len(trees_json)
    if is_sklearn:
        best = None
        try:
            best = model.best_iteration
        except AttributeError:
            best = None
        if best is not None:
            indptr = tmodel.get("iteration_indptr")
            if indptr:
                n_use = int(indptr[min(int(best) + 1, len(indptr) - 1)])
            else:  # older models: rounds are num_groups * num_parallel_tree trees
                per_round = max(1, num_class) * int(
                    tmodel["gbtree_model_param"].get("num_parallel_tree", "1")
                )
                n_use = min(n_use, (int(best) + 1) * per_round)

    k = max(1, num_class)
    if objective in _XGB_SOFTMAX:
        task, link, nclasses = TASK_CLASSIFICATION, LINK_SOFTMAX, num_class
        margin = base  # multi-class intercepts are stored as margins in 3.x
        if len(margin) == 1:
            margin = margin * k
    elif objective in _XGB_LOGISTIC:
        if len(base) != 1:
            raise NotCompilable("XGBoost logistic model with several base scores")
        p = base[0]
        if not 0.0 < p < 1.0:
            raise NotCompilable(f"XGBoost base_score {p} is not a probability")
        margin = [math.log(p / (1.0 - p))]
        if objective == "binary:logistic":
            task, link, nclasses = TASK_CLASSIFICATION, LINK_SIGMOID, 2
        else:
            task, link, nclasses = TASK_REGRESSION, LINK_SIGMOID, 0
    elif objective in _XGB_LOG:
        if len(base) != 1 or base[0] <= 0:
            raise NotCompilable("XGBoost log-link model with an unusable base_score")
        margin = [math.log(base[0])]
        task, link, nclasses = TASK_REGRESSION, LINK_EXP, 0
    elif objective in _XGB_IDENTITY:
        margin = base
        task, link, nclasses = TASK_REGRESSION, LINK_IDENTITY, 0
    else:
        raise NotCompilable(f"XGBoost objective {objective!r} is not supported natively")
    if k > 1 and task != TASK_CLASSIFICATION:
        raise NotCompilable("XGBoost multi-group regression is not supported")
    if len(margin) != k:
        raise NotCompilable(f"XGBoost base_score has {len(margin)} values for {k} outputs")

    forest = _xgb_forest(trees_json[:n_use], tree_info, weights)
    labels = None
    if task == TASK_CLASSIFICATION and is_sklearn and hasattr(model, "classes_"):
        labels = _labels(model.classes_)
    # XGBoost computes the base margin in float32
    margin32 = np.asarray(margin, dtype=np.float32).astype(np.float64)
    return _Spec(
        kind=KIND_TREES,
        task=task,
        link=link,
        num_features=num_feature,
        num_outputs=k,
        num_classes=nclasses,
        base=margin32,
        labels=labels,
        trees=[] if forest is not None else [_constant_tree(0.0)],
        forest=forest,
    )


def _constant_tree(value: float, group: int = 0, width: int = 1) -> _Tree:
    return _Tree(
        left=np.array([-1], dtype=np.int32),
        right=np.array([-1], dtype=np.int32),
        feature=np.zeros(1, dtype=np.uint32),
        flags=np.zeros(1, dtype=np.uint32),
        threshold=np.zeros(1, dtype=np.float32),
        value=np.full((1, width), value, dtype=np.float64),
        group=group,
    )


# --------------------------------------------------------------------------- LightGBM


def _lgb_tree(structure: dict[str, Any], group: int) -> _Tree:
    left: list[int] = []
    right: list[int] = []
    feature: list[int] = []
    flags: list[int] = []
    thr: list[float] = []
    value: list[float] = []

    def emit(node: dict[str, Any]) -> int:
        idx = len(left)
        left.append(-1)
        right.append(-1)
        feature.append(0)
        flags.append(0)
        thr.append(0.0)
        value.append(0.0)
        if "leaf_value" in node and "split_feature" not in node:
            value[idx] = float(node["leaf_value"])
            return idx
        if node.get("decision_type", "<=") != "<=":
            raise NotCompilable("LightGBM model uses categorical splits; only numerical compile")
        t = float(node["threshold"])
        missing = node.get("missing_type", "None")
        default_left = bool(node.get("default_left", True))
        if missing == "None":  # NaN is read as 0.0: the direction is fixed per node
            fl = NODE_DEFAULT_LEFT if t >= 0.0 else 0
        elif missing == "Zero":
            fl = (NODE_DEFAULT_LEFT if default_left else 0) | NODE_ZERO_MISSING
        elif missing == "NaN":
            fl = NODE_DEFAULT_LEFT if default_left else 0
        else:
            raise NotCompilable(f"LightGBM missing type {missing!r} is not supported")
        feature[idx] = int(node["split_feature"])
        flags[idx] = fl
        thr[idx] = t
        left[idx] = emit(node["left_child"])
        right[idx] = emit(node["right_child"])
        return idx

    # deep trees would overflow Python recursion; LightGBM's are bounded by num_leaves
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        emit(structure)
    finally:
        sys.setrecursionlimit(limit)
    lf = np.asarray(left, dtype=np.int32)
    thr32 = _f32_le_from_f64(np.asarray(thr))
    return _Tree(
        left=lf,
        right=np.asarray(right, dtype=np.int32),
        feature=np.asarray(feature, dtype=np.uint32),
        flags=np.asarray(flags, dtype=np.uint32),
        threshold=thr32,
        value=np.asarray(value, dtype=np.float64).reshape(-1, 1),
        group=group,
    )


def _compile_lightgbm(model: Any) -> _Spec:
    import lightgbm as lgb

    is_sklearn = not isinstance(model, lgb.Booster)
    booster = model.booster_ if is_sklearn else model
    dump = booster.dump_model()
    if booster.params.get("linear_tree") or "is_linear=1" in booster.model_to_string():
        raise NotCompilable("LightGBM linear trees are not supported")
    objective = str(dump.get("objective", "regression")).split()
    name = objective[0] if objective else "regression"
    opts = dict(o.split(":", 1) for o in objective[1:] if ":" in o)
    num_class = int(dump.get("num_class", 1))
    per_iter = int(dump.get("num_tree_per_iteration", 1))
    num_features = int(dump["max_feature_idx"]) + 1
    sigmoid = float(opts.get("sigmoid", 1.0))
    if name in {"binary"}:
        task, link, k, nclasses = TASK_CLASSIFICATION, LINK_SIGMOID, 1, 2
    elif name in {"cross_entropy", "xentropy"}:
        task, link, k, nclasses = TASK_REGRESSION, LINK_SIGMOID, 1, 0
        sigmoid = 1.0
    elif name in {"multiclass", "softmax"}:
        task, link, k, nclasses = TASK_CLASSIFICATION, LINK_SOFTMAX, num_class, num_class
    elif name in {"multiclassova", "multiclass_ova", "ova", "ovr"}:
        task, link, k, nclasses = TASK_CLASSIFICATION, LINK_SIGMOID, num_class, num_class
    elif name in {"poisson", "gamma", "tweedie"}:
        task, link, k, nclasses = TASK_REGRESSION, LINK_EXP, 1, 0
    elif name in {
        "regression",
        "regression_l2",
        "l2",
        "mean_squared_error",
        "mse",
        "regression_l1",
        "l1",
        "huber",
        "fair",
        "quantile",
        "mape",
        "lambdarank",
        "rank_xendcg",
        "custom",
    }:
        task, link, k, nclasses = TASK_REGRESSION, LINK_IDENTITY, 1, 0
    else:
        raise NotCompilable(f"LightGBM objective {name!r} is not supported natively")
    if per_iter != k:
        raise NotCompilable(f"LightGBM model has {per_iter} trees per iteration, expected {k}")
    trees = [
        _lgb_tree(info["tree_structure"], int(info["tree_index"]) % per_iter)
        for info in dump["tree_info"]
    ]
    if not trees:
        trees = [_constant_tree(0.0)]
    divisor = 1.0
    if dump.get("average_output"):
        divisor = float(max(1, len(trees) // per_iter))
    labels = None
    if task == TASK_CLASSIFICATION and is_sklearn:
        labels = _labels(model.classes_)
    return _Spec(
        kind=KIND_TREES,
        task=task,
        link=link,
        num_features=num_features,
        num_outputs=k,
        num_classes=nclasses,
        link_param=sigmoid,
        divisor=divisor,
        labels=labels,
        trees=trees,
        snap_zero=True,
    )


# --------------------------------------------------------------------------- CatBoost

#: CatBoost losses whose ``predict`` is the raw formula value, and those it exponentiates
_CB_IDENTITY = {"RMSE", "MAE", "Quantile", "Expectile", "MAPE", "Huber", "Lq", "LogCosh",
                "FairLoss"}
_CB_EXP = {"Poisson", "Tweedie"}
_CB_SIGMOID = {"Logloss", "CrossEntropy"}


def _catboost_json(model: Any) -> dict[str, Any]:
    """The model as CatBoost exports it to JSON (its documented, stable model format)."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pgml_flow_cb_") as tmp:
        path = os.path.join(tmp, "model.json")
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as f:
            doc: dict[str, Any] = json.load(f)
    return doc


def _compile_catboost(model: Any) -> _Spec:
    """CatBoost's oblivious trees as kind 3, read from its JSON export.

    Each tree is its list of splits (``float_feature_index``, ``border``), level 0
    first; CatBoost sets bit d of the leaf index when ``x > border`` (float32) and
    treats NaN as ``nan_value_treatment`` says (AsTrue: above every border; AsFalse and
    AsIs: below).  ``raw = scale * sum(leaves) + bias`` per output: the scale is folded
    into the leaves, the bias is the base.  What the JSON holds beyond float features
    (CTRs of categorical, text or embedding features) raises :class:`NotCompilable`.
    """
    doc = _catboost_json(model)
    info = doc.get("features_info") or {}
    other = sorted(k for k, v in info.items() if k != "float_features" and v)
    if other:
        raise NotCompilable(
            f"CatBoost model uses {', '.join(other)} (CatBoost's own categorical, text or "
            "embedding handling, computed by CatBoost at predict time); only float features "
            "compile, so it is served by the Python path"
        )
    if "oblivious_trees" not in doc:
        raise NotCompilable(
            "CatBoost model has non-symmetric trees (grow_policy Depthwise or Lossguide); "
            "only the default SymmetricTree policy's oblivious trees compile"
        )
    floats = {int(f["feature_index"]): f for f in info.get("float_features") or []}
    nf = int(getattr(model, "n_features_in_", 0) or 0) or len(model.feature_names_ or [])
    params = (doc.get("model_info") or {}).get("params") or {}
    loss = str((params.get("loss_function") or {}).get("type", ""))
    scale, bias = doc.get("scale_and_bias") or [1.0, [0.0]]
    base = np.atleast_1d(np.asarray(bias, dtype=np.float64))
    k = len(base)
    classifier = type(model).__name__ == "CatBoostClassifier"
    if classifier and loss in _CB_SIGMOID and k == 1:
        task, link, nclasses = TASK_CLASSIFICATION, LINK_SIGMOID, 2
    elif classifier and loss == "MultiClass" and k == len(model.classes_) > 2:
        task, link, nclasses = TASK_CLASSIFICATION, LINK_SOFTMAX, k
    elif not classifier and k == 1 and loss in _CB_IDENTITY | _CB_EXP:
        task, nclasses = TASK_REGRESSION, 0
        link = LINK_EXP if loss in _CB_EXP else LINK_IDENTITY
    else:
        raise NotCompilable(
            f"CatBoost {type(model).__name__} with loss {loss!r} and {k} outputs is not "
            "compiled (regression losses, Logloss, CrossEntropy and MultiClass are)"
        )
    trees_json = doc["oblivious_trees"]
    depth = np.array([len(t["splits"]) for t in trees_json], dtype=np.uint32)
    if np.any(depth > OBLIVIOUS_MAX_DEPTH):
        raise NotCompilable(f"CatBoost tree deeper than {OBLIVIOUS_MAX_DEPTH} levels")
    splits = np.zeros(int(depth.sum()), dtype=_SPLIT_DTYPE)
    borders = np.zeros(len(splits), dtype=np.float64)
    i = 0
    for t in trees_json:
        for s in t["splits"]:
            if s.get("split_type", "FloatFeature") != "FloatFeature":
                raise NotCompilable(f"CatBoost split of type {s.get('split_type')!r} "
                                    "(only float feature splits compile)")
            f = floats[int(s["float_feature_index"])]
            splits[i]["feature"] = int(f["flat_feature_index"])
            splits[i]["flags"] = (SPLIT_NAN_ABOVE if f.get("nan_value_treatment") == "AsTrue"
                                  else 0)
            borders[i] = float(s["border"])
            i += 1
    # x > border in float32 is x > (the largest float32 not above border)
    splits["thr"] = _f32_le_from_f64(borders)
    leaves = np.concatenate([np.asarray(t["leaf_values"], dtype=np.float64)
                             for t in trees_json]) if trees_json else np.zeros(0)
    if len(leaves) != int((2 ** depth.astype(np.int64)).sum()) * k:
        raise NotCompilable("CatBoost leaf values do not match the trees' depths")
    if float(scale) != 1.0:
        leaves = leaves * float(scale)
    obl = _Oblivious(depth=depth, group=np.zeros(len(depth), dtype=np.uint32), splits=splits,
                     leaves=leaves.reshape(-1, k))
    if not len(depth):
        obl = _Oblivious(np.zeros(1, np.uint32), np.zeros(1, np.uint32),
                         np.zeros(0, _SPLIT_DTYPE), np.zeros((1, k)))
    return _Spec(
        kind=KIND_OBLIVIOUS,
        task=task,
        link=link,
        num_features=max(nf, 1),
        num_outputs=k,
        num_classes=nclasses,
        base=base,
        labels=_labels(model.classes_) if classifier else None,
        leaf_width=k,
        oblivious=obl,
    )


# --------------------------------------------------------------------------- scikit-learn


def _sk_tree(tree: Any, value: np.ndarray, group: int = 0) -> _Tree:
    left = np.asarray(tree.children_left, dtype=np.int32)
    mgl = getattr(tree, "missing_go_to_left", None)
    if mgl is None:  # sklearn < 1.3 never saw NaN: it compares NaN <= t, i.e. goes right
        flags = np.zeros(len(left), dtype=np.uint32)
    else:
        flags = np.where(np.asarray(mgl, dtype=bool), NODE_DEFAULT_LEFT, 0).astype(np.uint32)
    feat = np.asarray(tree.feature)
    return _Tree(
        left=left,
        right=np.asarray(tree.children_right, dtype=np.int32),
        feature=np.where(left == -1, 0, feat).astype(np.uint32),
        flags=flags,
        threshold=_f32_le_from_f64(np.where(left == -1, 0.0, tree.threshold)),
        value=value,
        group=group,
    )


def _sk_tree_values(est: Any, classifier: bool) -> np.ndarray:
    """Leaf values: class fractions for classifiers (as predict_proba), else outputs."""
    v = np.asarray(est.tree_.value, dtype=np.float64)
    if classifier:
        v = v[:, 0, :]
        s = v.sum(axis=1, keepdims=True)
        s[s == 0] = 1.0
        return v / s
    return v[:, :, 0]


def _compile_sklearn_forest(model: Any, estimators: list[Any], classifier: bool) -> _Spec:
    if getattr(model, "n_outputs_", 1) != 1 and classifier:
        raise NotCompilable("multi-output tree classifiers are not supported")
    nf = int(model.n_features_in_)
    if classifier:
        nclasses = len(model.classes_)
        k = nclasses
    else:
        nclasses = 0
        k = int(getattr(model, "n_outputs_", 1))
    trees = [_sk_tree(e.tree_, _sk_tree_values(e, classifier)) for e in estimators]
    return _Spec(
        kind=KIND_TREES,
        task=TASK_CLASSIFICATION if classifier else TASK_REGRESSION,
        link=LINK_IDENTITY,
        num_features=nf,
        num_outputs=k,
        num_classes=nclasses,
        divisor=float(len(estimators)),
        labels=_labels(model.classes_) if classifier else None,
        trees=trees,
        leaf_width=k,
    )


def _compile_sklearn_gb(model: Any, classifier: bool) -> _Spec:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    init = model.init_
    if not (init == "zero" or isinstance(init, DummyClassifier | DummyRegressor)):
        raise NotCompilable("GradientBoosting with a custom `init` estimator is not supported")
    nf = int(model.n_features_in_)
    try:
        base = np.asarray(model._raw_predict_init(np.zeros((1, nf), dtype=np.float32)))[0]
    except Exception as exc:
        raise NotCompilable(f"cannot compute GradientBoosting init prediction: {exc}") from exc
    k = model.estimators_.shape[1]
    lr = float(model.learning_rate)
    trees = []
    for stage in model.estimators_:
        for g, est in enumerate(stage):
            v = np.asarray(est.tree_.value, dtype=np.float64)[:, 0, 0] * lr
            trees.append(_sk_tree(est.tree_, v.reshape(-1, 1), g))
    if classifier:
        nclasses = len(model.classes_)
        loss = getattr(model, "loss", "log_loss")
        if nclasses == 2:
            link = LINK_SIGMOID
            slope = 2.0 if loss == "exponential" else 1.0
        else:
            link, slope = LINK_SOFTMAX, 1.0
        return _Spec(
            kind=KIND_TREES,
            task=TASK_CLASSIFICATION,
            link=link,
            link_param=slope,
            num_features=nf,
            num_outputs=k,
            num_classes=nclasses,
            base=base.reshape(k),
            labels=_labels(model.classes_),
            trees=trees,
        )
    return _Spec(
        kind=KIND_TREES,
        task=TASK_REGRESSION,
        link=LINK_IDENTITY,
        num_features=nf,
        num_outputs=1,
        base=base.reshape(1),
        trees=trees,
    )


def _hgb_tree(predictor: Any, group: int) -> _Tree:
    """One HistGradientBoosting tree: ``x <= num_threshold`` goes left, NaN as it learned."""
    nodes = predictor.nodes
    if np.any(nodes["is_categorical"]):
        raise NotCompilable("HistGradientBoosting with categorical splits is not supported")
    leaf = np.asarray(nodes["is_leaf"], dtype=bool)
    return _Tree(
        left=np.where(leaf, -1, nodes["left"]).astype(np.int32),
        right=np.where(leaf, -1, nodes["right"]).astype(np.int32),
        feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.uint32),
        flags=np.where(np.asarray(nodes["missing_go_to_left"], dtype=bool) & ~leaf,
                       NODE_DEFAULT_LEFT, 0).astype(np.uint32),
        threshold=_f32_le_from_f64(np.where(leaf, 0.0, nodes["num_threshold"])),
        # leaf values are stored already shrunk by the learning rate
        value=np.asarray(nodes["value"], dtype=np.float64).reshape(-1, 1),
        group=group,
    )


#: HistGradientBoosting's inverse link (its ``_loss.link``) -> the scorer's
_HGB_LINKS = {"IdentityLink": LINK_IDENTITY, "LogLink": LINK_EXP, "LogitLink": LINK_SIGMOID,
              "MultinomialLogit": LINK_SOFTMAX}


def _compile_sklearn_hgb(model: Any, classifier: bool) -> _Spec:
    """HistGradientBoosting: baseline + the sum of each iteration's trees, then the link."""
    if getattr(model, "_preprocessor", None) is not None:
        raise NotCompilable("HistGradientBoosting with categorical features is not supported")
    link_name = type(getattr(getattr(model, "_loss", None), "link", None)).__name__
    if link_name not in _HGB_LINKS:
        raise NotCompilable(f"HistGradientBoosting with the {link_name} link is not supported")
    k = int(model.n_trees_per_iteration_)
    trees = [_hgb_tree(predictor, g) for iteration in model._predictors
             for g, predictor in enumerate(iteration)]
    base = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(k)
    nf = int(model.n_features_in_)
    if not trees:
        trees = [_constant_tree(0.0, g) for g in range(k)]
    if classifier:
        return _Spec(kind=KIND_TREES, task=TASK_CLASSIFICATION, link=_HGB_LINKS[link_name],
                     num_features=nf, num_outputs=k, num_classes=len(model.classes_),
                     base=base, labels=_labels(model.classes_), trees=trees)
    return _Spec(kind=KIND_TREES, task=TASK_REGRESSION, link=_HGB_LINKS[link_name],
                 num_features=nf, num_outputs=1, base=base, trees=trees)


def _dense(a: Any) -> np.ndarray:
    if hasattr(a, "toarray"):
        a = a.toarray()
    return np.asarray(a, dtype=np.float64)


def _compile_sklearn_linear(model: Any) -> _Spec:
    from sklearn.base import is_classifier

    nf = int(model.n_features_in_)
    coef = _dense(model.coef_)
    intercept = np.atleast_1d(_dense(getattr(model, "intercept_", 0.0))).ravel()
    name = type(model).__name__
    if is_classifier(model):
        classes = model.classes_
        nclasses = len(classes)
        coef = coef.reshape(-1, nf)
        k = coef.shape[0]
        if not ((nclasses == 2 and k == 1) or k == nclasses):
            raise NotCompilable(f"{name} has {k} coefficient rows for {nclasses} classes")
        if intercept.size == 1 and k > 1:
            intercept = np.repeat(intercept, k)
        if name in {"LogisticRegression", "LogisticRegressionCV"}:
            if k == 1:
                link = LINK_SIGMOID
            elif getattr(model, "multi_class", None) == "ovr":
                link = LINK_OVR
            else:
                link = LINK_SOFTMAX
        elif name == "SGDClassifier" and model.loss == "log_loss":
            link = LINK_SIGMOID if k == 1 else LINK_OVR
        else:
            link = LINK_NONE
        return _Spec(
            kind=KIND_LINEAR,
            task=TASK_CLASSIFICATION,
            link=link,
            num_features=nf,
            num_outputs=k,
            num_classes=nclasses,
            base=intercept.reshape(k),
            labels=_labels(classes),
            coef=coef,
        )
    coef = coef.reshape(-1, nf)
    k = coef.shape[0]
    if intercept.size == 1 and k > 1:
        intercept = np.repeat(intercept, k)
    link = LINK_IDENTITY
    base_loss = getattr(model, "_base_loss", None)
    if base_loss is not None:  # GLMs: PoissonRegressor, GammaRegressor, TweedieRegressor
        link_name = type(base_loss.link).__name__
        if link_name == "LogLink":
            link = LINK_EXP
        elif link_name != "IdentityLink":
            raise NotCompilable(f"{name} with link {link_name} is not supported")
    return _Spec(
        kind=KIND_LINEAR,
        task=TASK_REGRESSION,
        link=link,
        num_features=nf,
        num_outputs=k,
        base=intercept.reshape(k),
        coef=coef,
    )


_SK_LINEAR_EXTRA = {"LinearSVC", "LinearSVR"}
_SK_LINEAR_EXCLUDE = {"RANSACRegressor"}


def _compile_multioutput(model: Any) -> _Spec:
    specs = [_to_spec(e) for e in model.estimators_]
    if not specs or any(
        s.task != TASK_REGRESSION or s.num_outputs != 1 or s.link != LINK_IDENTITY for s in specs
    ):
        raise NotCompilable("MultiOutputRegressor needs single-output identity regressors")
    nf = specs[0].num_features
    k = len(specs)
    if all(s.kind == KIND_LINEAR for s in specs):
        coef = np.vstack([np.asarray(s.coef).reshape(1, nf) for s in specs])
        base = np.array([float(np.asarray(s.base)[0]) for s in specs])
        return _Spec(KIND_LINEAR, TASK_REGRESSION, LINK_IDENTITY, nf, k, base=base, coef=coef)
    if all(s.kind == KIND_TREES and s.leaf_width == 1 for s in specs):
        trees = []
        for g, s in enumerate(specs):
            for t in (s.trees if s.forest is None else s.forest.trees()):
                trees.append(
                    _Tree(t.left, t.right, t.feature, t.flags, t.threshold, t.value / s.divisor, g)
                )
        base = np.array([0.0 if s.base is None else float(np.asarray(s.base)[0]) for s in specs])
        return _Spec(KIND_TREES, TASK_REGRESSION, LINK_IDENTITY, nf, k, base=base, trees=trees)
    raise NotCompilable("MultiOutputRegressor over mixed estimator kinds is not supported")


def _to_spec(model: Any, stored: bytes | None = None) -> _Spec:
    """Dispatch on the estimator's library without importing libraries it doesn't use."""
    module = type(model).__module__ or ""
    name = type(model).__name__
    if module.startswith("xgboost"):
        return _compile_xgboost(model, stored)
    if module.startswith("lightgbm"):
        return _compile_lightgbm(model)
    if module.startswith("catboost"):
        return _compile_catboost(model)
    if not module.startswith("sklearn"):
        raise NotCompilable(f"{module}.{name} is not supported for native scoring")
    if not hasattr(model, "n_features_in_") and name != "MultiOutputRegressor":
        raise NotCompilable(f"{name} is not fitted")
    if name in {"DecisionTreeRegressor", "ExtraTreeRegressor"}:
        return _compile_sklearn_forest(model, [model], classifier=False)
    if name in {"DecisionTreeClassifier", "ExtraTreeClassifier"}:
        return _compile_sklearn_forest(model, [model], classifier=True)
    if name in {"RandomForestRegressor", "ExtraTreesRegressor"}:
        return _compile_sklearn_forest(model, list(model.estimators_), classifier=False)
    if name in {"RandomForestClassifier", "ExtraTreesClassifier"}:
        return _compile_sklearn_forest(model, list(model.estimators_), classifier=True)
    if name == "GradientBoostingRegressor":
        return _compile_sklearn_gb(model, classifier=False)
    if name == "GradientBoostingClassifier":
        return _compile_sklearn_gb(model, classifier=True)
    if name == "HistGradientBoostingRegressor":
        return _compile_sklearn_hgb(model, classifier=False)
    if name == "HistGradientBoostingClassifier":
        return _compile_sklearn_hgb(model, classifier=True)
    if name == "RANSACRegressor":
        return _to_spec(model.estimator_)
    if name == "MultiOutputRegressor":
        return _compile_multioutput(model)
    is_linear_module = module.startswith("sklearn.linear_model")
    is_linear_svm = name in _SK_LINEAR_EXTRA or (
        name == "SVR" and getattr(model, "kernel", None) == "linear"
    )
    if (is_linear_module and name not in _SK_LINEAR_EXCLUDE) or is_linear_svm:
        if not hasattr(model, "coef_"):
            raise NotCompilable(f"{name} has no coef_")
        return _compile_sklearn_linear(model)
    raise NotCompilable(f"scikit-learn {name} is not supported for native scoring")


def compile_model(
    estimator: Any,
    *,
    preprocess: dict[str, Any] | None = None,
    columns: dict[str, Any] | None = None,
    stored: bytes | None = None,
) -> bytes:
    """Compile a fitted estimator into a ``pgml_native`` blob.

    ``stored`` (optional, XGBoost): the model's stored JSON (``booster.json`` of
    :func:`pgml_flow.engine.storage.dump_model`), compiled instead of a new export of the
    booster: it saves that export, and a check of the blob against the fitted model's
    predictions then checks the stored file too.  Ignored for other libraries.

    ``preprocess`` (optional) bakes per-feature preprocessing into the blob:
    ``{"impute": [...], "shift": [...], "mult": [...]}``, each a list of
    ``num_features`` numbers (``None`` entries and missing keys mean: no impute,
    shift 0, mult 1).  The evaluator applies ``x = impute if x is NaN`` then
    ``x = (x - shift) * mult`` before the model, which expresses mean/median/...
    imputation and standard, min-max, max-abs and robust scaling.

    ``columns`` (optional) is the training snapshot's ``columns`` JSON; with it the
    blob (version 2) also serves the ``ROW(...)`` form of ``pgml.predict`` natively
    (:func:`row_section`).  It raises :class:`NotCompilable` like the model itself:
    callers that want the array form anyway compile again without ``columns``.

    The blob carries the estimator's input rules (:func:`pgml_flow.engine.inputs.input_policy`):
    the scorer hands the rows with a NaN or an infinity the library refuses to the
    Python path, which raises the error (:func:`without_input_rules` for older scorers).

    Raises :class:`NotCompilable` for anything the evaluator cannot reproduce.
    """
    try:
        spec = _to_spec(estimator, stored)
    except NotCompilable:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise NotCompilable(
            f"cannot compile {type(estimator).__name__}: {type(exc).__name__}: {exc}"
        ) from exc
    row = None if columns is None else row_section(columns, spec.num_features)
    return _write(spec, preprocess, row, input_policy(estimator))


def add_row_section(blob: bytes, columns: dict[str, Any]) -> bytes:
    """A compiled blob (version 1) with the row section of ``columns`` added (version 2).

    This lets the caller compile the model once, keep that blob for the array form, and
    try the row form separately: a :class:`NotCompilable` here leaves the first blob
    usable as it is.
    """
    if len(blob) < _HEADER.size + 4 or blob[:8] != MAGIC:
        raise NotCompilable("not a pgml_native blob")
    fields = list(_HEADER.unpack_from(blob))
    version, flags, num_features = fields[1], fields[8], fields[5]
    if version != FORMAT_VERSION or flags & (FLAG_ROW | FLAG_OUTPUT):
        raise NotCompilable(f"blob version {version} already has a row section or is unknown")
    row = row_section(columns, num_features)
    body = blob[_HEADER.size : -4] + row
    fields[1], fields[8], fields[11] = ROW_FORMAT_VERSION, flags | FLAG_ROW, len(body)
    out = _HEADER.pack(*fields) + body
    return out + struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF)


def without_input_rules(blob: bytes) -> bytes:
    """The blob without its input rules (flags bits 4-6), for a scorer built before them.

    Such a scorer refuses unknown flags; the new one reads a blob without input rules as
    one compiled before them (rows with a NaN or an infinity are scored by Python).
    """
    if len(blob) < _HEADER.size + 4 or blob[:8] != MAGIC:
        raise NotCompilable("not a pgml_native blob")
    fields = list(_HEADER.unpack_from(blob))
    fields[8] &= ~_INPUT_FLAGS
    out = _HEADER.pack(*fields) + blob[_HEADER.size : -4]
    return out + struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF)


def output_section(target: dict[str, Any]) -> bytes:
    """The output section for a model's ``meta.json`` ``target`` (engine.targets)."""
    transform = {None: 0, "log1p": 1}.get(target.get("transform"))
    if transform is None:
        raise NotCompilable(f"target transform {target.get('transform')!r} is not compiled")
    scale = np.asarray(target.get("scale") or [], dtype="<f8")
    if target.get("classes") is not None:  # engine.targets_classes: a classifier's median
        if target["classes"] != "median" or transform or len(scale):
            raise NotCompilable(f"target classes {target['classes']!r} is not compiled")
        transform = OUT_CLASS_MEDIAN
        scale = np.asarray(target["class_values"], dtype="<f8")
    parts = [struct.pack("<II", transform, len(scale)), scale.tobytes()]
    calibration = target.get("calibration")
    if not calibration:
        parts.append(struct.pack("<II", 0, 0))
    elif calibration.get("method") == "sigmoid":
        parts.append(struct.pack("<IIdd", 1, 2, float(calibration["a"]),
                                 float(calibration["b"])))
    elif calibration.get("method") == "isotonic":
        xs = np.asarray(calibration["x"], dtype="<f8")
        ys = np.asarray(calibration["y"], dtype="<f8")
        parts += [struct.pack("<II", 2, len(xs)), xs.tobytes(), ys.tobytes()]
    else:
        raise NotCompilable(f"calibration {calibration.get('method')!r} is not compiled")
    return b"".join(parts)


def add_output_section(blob: bytes, target: dict[str, Any]) -> bytes:
    """The blob with the model's target options (log1p, snapping, calibration) appended.

    Call it last (after :func:`add_row_section`): the section ends the body.  A scorer
    built before output sections refuses such a blob (unknown flag), so a model with
    target options is never scored natively without them.
    """
    if len(blob) < _HEADER.size + 4 or blob[:8] != MAGIC:
        raise NotCompilable("not a pgml_native blob")
    fields = list(_HEADER.unpack_from(blob))
    if fields[8] & FLAG_OUTPUT:
        raise NotCompilable("the blob already has an output section")
    body = blob[_HEADER.size : -4] + output_section(target)
    fields[8], fields[11] = fields[8] | FLAG_OUTPUT, len(body)
    out = _HEADER.pack(*fields) + body
    return out + struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF)
