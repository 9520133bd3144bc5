"""Text features: one tokenizer, n-grams, tf-idf and hashing, as the C scorer computes them.

The ``text`` preprocessing of a text column (``{"title": {"text": "tfidf", ...}}``) turns
each value into a fixed-width block of numbers.  The rules are defined here, code point by
code point, rather than borrowed from :meth:`str.lower` and ``re``'s ``\\w``: those follow
the Unicode database of the running Python (and ``lower`` has context rules, such as the
Greek final sigma), which the C scorer in ``ext/pgml_native/text.c`` could not reproduce
byte for byte.  What a token is:

* a **word character** is an ASCII letter or digit, or any non-ASCII code point except the
  separators: U+0080-U+00BF (Latin-1 controls and punctuation), U+00D7, U+00F7,
  U+2000-U+2BFF (punctuation, symbols, arrows, shapes), U+3000-U+303F (CJK punctuation),
  U+FE00-U+FE0F (variation selectors), U+FEFF, U+FFF0-U+FFFF, U+1F000-U+1FAFF (emoji and
  pictographs) and U+E0000-U+E007F (tags);
* a **token** is a maximal run of 2 or more word characters (counted in code points), so
  ASCII punctuation, whitespace, the underscore, emoji and one-letter words separate or
  vanish; ``"Fix the login-form (v2) 🐛"`` has fix, the, login, form, v2;
* tokens are **lower-cased** with a fixed table: A-Z, the Latin-1 capitals U+00C0-U+00DE
  (not U+00D7), Latin Extended-A pairs, Greek U+0391-U+03AB and Cyrillic U+0400-U+042F;
  other scripts stay as written.  Every mapping keeps the UTF-8 length;
* an **n-gram** is n consecutive tokens joined by one space (scikit-learn's word n-grams).

``tfidf`` follows scikit-learn's ``TfidfVectorizer`` with this analyzer: the vocabulary is
the n-grams found in at least ``min_df`` train rows (a fraction of them when below 1),
the ``max_features`` most frequent over the train rows (ties: more rows, then
alphabetical), sorted; idf = ln((1 + n) / (1 + df)) + 1 (smooth_idf); a row's value is its
count (1 + ln(count) with ``sublinear_tf``) times the idf, then the row is divided by its
Euclidean norm (summed in vocabulary order, as the C scorer sums).  ``hashing`` follows
``HashingVectorizer``: each n-gram's signed 32-bit MurmurHash3 (seed 0) of its UTF-8
bytes picks column |h| mod n_features, adding 1 (or -1 for negative h with
``alternate_sign``), then the same l2 norm.  A NULL or empty text is a row of zeros.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

#: the tokenizer's version, stored with each fitted text encoding (``"tokenizer": 1``);
#: an encoding fitted before it (a ``words`` column without it) keeps Python's regex
TOKENIZER_VERSION = 1

_WORD_CHARS = (
    "0-9A-Za-z"
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u1fff\u2c00-\u2fff\u3040-\ufdff\ufe10-\ufefe"
    "\uff00-\uffef\U00010000-\U0001efff\U0001fb00-\U000dffff\U000e0080-\U0010ffff"
)
_TOKEN = re.compile(f"[{_WORD_CHARS}]{{2,}}")


def _lower_table() -> dict[int, int]:
    """The lower-casing table (see the module docstring); every pair keeps the UTF-8 length."""
    table: dict[int, int] = {}
    for cp in range(0x41, 0x5B):
        table[cp] = cp + 32
    for cp in range(0xC0, 0xDF):
        if cp != 0xD7:
            table[cp] = cp + 32
    for lo, hi, parity in ((0x100, 0x12F, 0), (0x132, 0x137, 0), (0x139, 0x148, 1),
                           (0x14A, 0x177, 0), (0x179, 0x17E, 1)):
        for cp in range(lo, hi + 1):
            if cp % 2 == parity:
                table[cp] = cp + 1
    table[0x178] = 0xFF
    for cp in range(0x391, 0x3AC):
        if cp != 0x3A2:
            table[cp] = cp + 32
    for cp in range(0x400, 0x410):
        table[cp] = cp + 80
    for cp in range(0x410, 0x430):
        table[cp] = cp + 32
    return table


_LOWER = _lower_table()


def tokens(text: Any) -> list[str]:
    """The tokens of a text, in order (see the module docstring); none for NULL."""
    if text is None:
        return []
    return _TOKEN.findall(str(text).translate(_LOWER))


def ngrams(toks: Sequence[str], lo: int, hi: int) -> list[str]:
    """The n-grams of the tokens for n = lo..hi, each n-gram its tokens joined by a space."""
    if lo == hi == 1:
        return list(toks)
    out: list[str] = []
    for n in range(lo, hi + 1):
        out.extend(" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1))
    return out


def analyze(text: Any, lo: int = 1, hi: int = 1) -> list[str]:
    """The n-grams (terms) of one text: what tf-idf counts and hashing hashes."""
    return ngrams(tokens(text), lo, hi)


def fit_tfidf(texts: Sequence[Any], ngram: tuple[int, int], max_features: int,
              min_df: float, max_df: float = 1.0) -> tuple[list[str], list[float], int]:
    """Vocabulary (sorted), idf per term and number of distinct terms, from the train texts."""
    n = len(texts)
    counts: Counter[str] = Counter()
    df: Counter[str] = Counter()
    for text in texts:
        terms = Counter(analyze(text, *ngram))
        counts.update(terms)
        df.update(terms.keys())
    least = min_df if min_df >= 1 else math.ceil(min_df * n)
    most = max_df * n if max_df <= 1 else max_df
    kept = [t for t, d in df.items() if least <= d <= most]
    kept.sort(key=lambda t: (-counts[t], -df[t], t))
    vocabulary = sorted(kept[:max_features])
    idf = [math.log((1 + n) / (1 + df[t])) + 1.0 for t in vocabulary]
    return vocabulary, idf, len(df)


def _normalised(row: dict[int, float]) -> dict[int, float]:
    """The row divided by its l2 norm, the squares summed in column order (as C sums)."""
    total = 0.0
    for j in sorted(row):
        total += row[j] * row[j]
    if total == 0.0:
        return row
    norm = math.sqrt(total)
    return {j: v / norm for j, v in row.items()}


def tfidf_block(texts: Sequence[Any], index: dict[str, int], idf: Sequence[float],
                ngram: tuple[int, int], sublinear_tf: bool) -> np.ndarray:
    """The tf-idf rows of the texts over a fitted vocabulary (``index``: term -> column)."""
    block = np.zeros((len(texts), len(idf)))
    for r, text in enumerate(texts):
        counts: Counter[int] = Counter(
            j for j in (index.get(t) for t in analyze(text, *ngram)) if j is not None)
        row = {j: (1.0 + math.log(c) if sublinear_tf else float(c)) * idf[j]
               for j, c in counts.items()}
        for j, v in _normalised(row).items():
            block[r, j] = v
    return block


def murmurhash3_32(term: str) -> int:
    """Signed 32-bit MurmurHash3 (x86_32, seed 0) of the term's UTF-8 bytes."""
    from sklearn.utils import murmurhash3_32 as murmur

    return int(murmur(term, seed=0, positive=False))


def hashing_block(texts: Sequence[Any], n_features: int, ngram: tuple[int, int],
                  alternate_sign: bool) -> np.ndarray:
    """HashingVectorizer rows (l2-normalised) of the texts."""
    from sklearn.utils import murmurhash3_32 as murmur

    block = np.zeros((len(texts), n_features))
    for r, text in enumerate(texts):
        row: dict[int, float] = {}
        for term in analyze(text, *ngram):
            h = int(murmur(term, seed=0, positive=False))
            j = abs(h) % n_features
            row[j] = row.get(j, 0.0) + (-1.0 if alternate_sign and h < 0 else 1.0)
        for j, v in _normalised(row).items():
            block[r, j] = v
    return block


def word_set(text: Any) -> set[str]:
    """The distinct tokens of a text (the ``words`` encoding, tokenizer version 1)."""
    return set(tokens(text))
