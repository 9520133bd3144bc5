"""pgml_flow.word_count, description_words of the complexity views: the C function counts
what the regex counted, on every kind of white space, in the server's collation."""

from __future__ import annotations

import random

import psycopg

#: regexp_split_to_array's fields, the definition word_count replaced in the view
REGEX = ("CASE WHEN coalesce(btrim(t), '') = '' THEN 0"
         " ELSE array_length(regexp_split_to_array(btrim(t), '\\s+'), 1) END")


def _texts() -> list[str | None]:
    tricky: list[str | None] = [
        None, "", " ", "   ", "a", " a ", "\na", "a\n", "\t", "a  b\t\tc\r\nd", "\x0bx\x0c",
        "x\x1cy", "x\x1fy \x1e", "naïve café", "a\u00a0b", "a\u3000b", "a\u2003b\u2028c",
        "数据库 连接", "🐛 bug", "x" * 5000 + " y", " \n ",
        # non-ASCII is counted in C unless some collation's \s may match it
        "x\u200by", "x\u180ey", "\ufeffbom x", "a\u0085b", "a\u202fb c", "é è\tê",
        "Ünïcödé wörds ✓ ok", "x\u1680y", "a\u205f\u3000b",
    ]
    rng = random.Random(13)
    alphabet = ["a", "b", "Z", "1", " ", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1d", ".",
                "é", "\u00a0", "\u3000", "\u2009", "\u0085", "中"]
    # mostly ASCII (the C path), some with a character that sends it to the regex
    randoms = ["".join(rng.choice(alphabet[:12] if rng.random() < 0.7 else alphabet)
                       for _ in range(rng.randint(0, 40))) for _ in range(1500)]
    return [*tricky, *randoms]


def test_word_count_is_the_regex_and_native_where_the_scorer_is(conn: psycopg.Connection) -> None:
    texts = _texts()
    rows = conn.execute(
        f"SELECT i, pgml_flow.word_count(t), {REGEX}"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i)", (texts,)).fetchall()
    differ = [(texts[i - 1], ours, regex) for i, ours, regex in rows if ours != regex]
    assert not differ, differ[:5]
    assert len(rows) == len(texts)
    # the view's column is this function (the regex ran twice per row before)
    (definition,) = conn.execute(
        "SELECT pg_get_viewdef('pgml_flow.complexity_features'::regclass)").fetchone()
    assert "word_count(i.description)" in definition and "regexp_split" not in definition
    # in C wherever pgml.predict is (the native scorer installed and on)
    (language, predict_language) = conn.execute(
        "SELECT (SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
        "         WHERE p.oid = 'pgml_flow.word_count(text)'::regprocedure),"
        "       (SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
        "         WHERE p.oid = to_regprocedure('pgml.predict(bigint, anyelement)'))"
    ).fetchone()
    assert language == ("c" if predict_language == "c" else "sql")


def test_without_the_native_scorer_the_sql_definition_serves(conn: psycopg.Connection) -> None:
    """pgml_flow.define_native_or_sql (005_upgrade.sql), which 095 and 096 call: with
    pgml.native_scoring off, or a pgml_native without the symbol, the function is created
    from its SQL body, which counts as the C function does."""
    texts = _texts()
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL pgml.native_scoring = off")
        (language,) = conn.execute(
            "SELECT pgml_flow.define_native_or_sql('pgml_flow.word_count(t text)', 'integer',"
            " 'IMMUTABLE PARALLEL SAFE', 'pgml_native_word_count', %s, 'count words')",
            (f"SELECT {REGEX}",)).fetchone()
        assert language == "sql"
        differ = conn.execute(
            f"SELECT t FROM unnest(%s::text[]) AS u(t) WHERE pgml_flow.word_count(t) <> {REGEX}",
            (texts,)).fetchall()
        assert not differ
        conn.execute("RESET pgml.native_scoring")
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        (language,) = conn.execute(
            "SELECT pgml_flow.define_native_or_sql('pgml_flow.word_count(t text)', 'integer',"
            " 'IMMUTABLE PARALLEL SAFE', 'pgml_native_no_such_symbol', %s, 'count words')",
            (f"SELECT {REGEX}",)).fetchone()
        (installed,) = conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pgml_native'").fetchone()
        assert language == "sql"
        if installed:
            assert any("pgml_native has no pgml_native_no_such_symbol" in n for n in notices)
