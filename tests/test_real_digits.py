"""pgml_flow.real_digits, how analytics.predictions converts every prediction: the C function
gives what ``real::numeric::double precision`` gave (six significant digits), on every kind
of value, and is the one serving where the native scorer is."""

from __future__ import annotations

import psycopg

#: reals whose six-digit form is tricky: zero and negative zero (numeric has no -0), the
#: special values, the smallest and largest, values that round up a digit (9.999995),
#: and the float4 neighbours of short decimals
EDGES = ["0", "-0", "NaN", "Infinity", "-Infinity", "1.4e-45", "1.17549435e-38",
         "3.4028235e38", "-3.4028235e38", "8.7", "0.1", "-0.1", "1234.567", "9.999995",
         "999999.5", "1e6", "123456789", "5e-7", "-2.5e-10", "0.30000001"]


def test_real_digits_is_the_numeric_cast_and_native_where_the_scorer_is(
        conn: psycopg.Connection) -> None:
    differ = conn.execute(
        "SELECT x, pgml_flow.real_digits(x), x::numeric::double precision"
        "  FROM (SELECT unnest(%s::real[]) AS x"
        "        UNION ALL"
        "        SELECT ((random() - 0.5) * 10 ^ (random() * 60 - 30))::real"
        "          FROM generate_series(1, 20000)) s"
        " WHERE pgml_flow.real_digits(x) IS DISTINCT FROM x::numeric::double precision"
        "    OR (pgml_flow.real_digits(x) = 0"
        "        AND pgml_flow.real_digits(x)::text <> (x::numeric::double precision)::text)",
        (EDGES,)).fetchall()
    assert not differ, differ[:5]
    assert conn.execute("SELECT pgml_flow.real_digits(NULL)").fetchone() == (None,)
    # in C wherever pgml.predict is (the native scorer installed and on)
    (language, predict_language) = conn.execute(
        "SELECT (SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
        "         WHERE p.oid = 'pgml_flow.real_digits(real)'::regprocedure),"
        "       (SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
        "         WHERE p.oid = to_regprocedure('pgml.predict(bigint, anyelement)'))"
    ).fetchone()
    assert language == ("c" if predict_language == "c" else "sql")
