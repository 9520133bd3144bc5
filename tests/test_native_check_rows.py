"""The held-out rows pgml.train checks a native form on (issue 15, item 10)."""

from __future__ import annotations

import numpy as np

from pgml_flow.server import api


def test_check_rows_keep_the_first_rows_every_class_and_non_finite_rows() -> None:
    """Fewer rows than the 200 scanned, but every class and missing-value path still
    covered, so a blob wrong for one class or for NaN inputs still disagrees."""
    x = np.zeros((200, 3), dtype=np.float32)
    expected = np.zeros(200)
    expected[150] = 7  # a class first predicted far after the first rows
    expected[199] = 3
    x[120, 1] = np.nan
    x[130, 2] = np.inf
    x[180:, 0] = np.nan  # more non-finite rows than are kept
    chosen = api._check_rows(x, expected, classification=True)
    assert chosen.tolist()[:api.CHECK_ROWS] == list(range(api.CHECK_ROWS))
    assert {150, 199, 120, 130} <= set(chosen.tolist())
    non_finite = [i for i in chosen.tolist() if i >= api.CHECK_ROWS and i not in (150, 199)]
    assert len(non_finite) == api.CHECK_NON_FINITE_ROWS
    # regression: no classes to cover; fewer rows than CHECK_ROWS: all of them
    assert api._check_rows(x, expected, classification=False).tolist()[-1] == 185
    assert api._check_rows(x[:10], expected[:10], classification=True).tolist() == list(range(10))
