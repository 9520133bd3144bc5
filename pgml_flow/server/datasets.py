"""``pgml.load_dataset``: the scikit-learn toy sets as tables in schema ``pgml``.

Loaded from the scikit-learn package itself (its bundled files), so it works offline.
Table and column names follow PostgresML's tutorials (``pgml.iris.target``,
``pgml.breast_cancer.malignant``, ``pgml.digits.image smallint[][]``, ...).
"""

from __future__ import annotations

import json
from typing import Any

from pgml_flow.server.api import UserError, format_sql, sql_errors

#: source -> (loader name, target column, target SQL type)
TOY_SETS: dict[str, tuple[str, str, str]] = {
    "breast_cancer": ("load_breast_cancer", "malignant", "boolean"),
    "diabetes": ("load_diabetes", "target", "real"),
    "digits": ("load_digits", "target", "smallint"),
    "iris": ("load_iris", "target", "integer"),
    "linnerud": ("load_linnerud", "", "real"),
    "wine": ("load_wine", "target", "integer"),
}

#: pgml.wine's feature columns, named and ordered as PostgresML's
WINE_COLUMNS = (
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
    "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "hue", "color_intensity",
    "od280/od315_of_diluted_wines", "proline",
)


def _table(source: str) -> tuple[list[tuple[str, str]], list[list[Any]]]:
    """Column definitions and rows of one toy set."""
    import sklearn.datasets

    loader, target, target_type = TOY_SETS[source]
    data = getattr(sklearn.datasets, loader)()
    if source == "digits":
        columns = [("image", "smallint[][]"), (target, target_type)]
        rows = [[img.astype(int).tolist(), int(t)] for img, t in zip(data.images, data.target,
                                                                     strict=True)]
        return columns, rows
    if source == "linnerud":
        names = [n.lower() for n in [*data.feature_names, *data.target_names]]
        columns = [(n, "real") for n in names]
        rows = [[*map(float, x), *map(float, y)] for x, y in zip(data.data, data.target,
                                                                  strict=True)]
        return columns, rows
    names = [str(n) for n in data.feature_names]
    x = data.data
    if source == "wine":
        # PostgresML's column names and order: hue before color_intensity (each holding
        # its own values: upstream's INSERT swaps the two, a bug not copied here) and
        # "od280/od315_of_diluted_wines" as scikit-learn names it
        order = [names.index(n) for n in WINE_COLUMNS]
        names, x = list(WINE_COLUMNS), x[:, order]
    if source == "iris":  # PostgresML's names: sepal_length, ..., not "sepal length (cm)"
        names = [n.replace(" (cm)", "").replace(" ", "_") for n in names]
    columns = [(n, "real") for n in names] + [(target, target_type)]
    rows = []
    for features, y in zip(x, data.target, strict=True):
        label: Any = bool(y == 0) if source == "breast_cancer" else (
            float(y) if target_type == "real" else int(y)
        )
        rows.append([*map(float, features), label])
    return columns, rows


@sql_errors
def load_dataset(
    plpy: Any, source: str, subset: str | None, limit: int | None, kwargs: Any
) -> list[tuple[str, int]]:
    """(Re)create ``pgml.<source>`` and fill it; returns (table name, rows).

    ``limit`` is PostgresML's: the number of rows to load, a positive number; NULL loads
    them all.  Anything else is refused before the table is touched.
    """
    if limit is not None and int(limit) < 1:
        raise UserError(
            f"load_dataset: limit must be a positive number of rows, got {limit}",
            hint='pass "limit" => N (N >= 1) for the first N rows, or NULL (the default) '
                 "for all of them",
        )
    if source not in TOY_SETS:
        raise UserError(
            f"dataset {source!r} is not available offline",
            hint=f"pgml-flow ships the scikit-learn toy sets: {', '.join(sorted(TOY_SETS))}",
        )
    if subset or (kwargs and json.loads(kwargs) if isinstance(kwargs, str) else kwargs):
        plpy.notice(f"load_dataset: subset and kwargs do not apply to {source!r}; ignored")
    columns, rows = _table(source)
    if limit is not None:
        rows = rows[: int(limit)]
    names = [c[0] for c in columns]
    types = [c[1] for c in columns]
    _replace_table(plpy, source, names, types)
    if source == "digits":
        # unnest() cannot rebuild a 2-D array per row: insert row by row (1,797 rows)
        statement = format_sql(plpy, "INSERT INTO pgml.%I VALUES ($1, $2)", source)
        plan = plpy.prepare(statement, ["smallint[]", "smallint"])
        for image, target in rows:
            plan.execute([image, target])
    else:
        placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
        template = "INSERT INTO pgml.%I SELECT * FROM unnest(" + placeholders + ")"  # noqa: S608
        statement = format_sql(plpy, template, source)
        plan = plpy.prepare(statement, [f"{t}[]" for t in types])
        plan.execute([[row[i] for row in rows] for i in range(len(columns))])
    return [(f"pgml.{source}", len(rows))]


def _replace_table(plpy: Any, source: str, names: list[str], types: list[str]) -> None:
    """Make ``pgml.<source>`` an empty table with these columns, keeping what depends on it.

    PostgresML drops the table and creates it again, so a view on it blocks the reload
    (without CASCADE) or disappears (with it). Here a table that already has exactly these
    columns is emptied instead (TRUNCATE), so views, grants and comments on it stay and
    nothing is lost; a table with other columns (e.g. pgml.wine as loaded before its
    columns followed PostgresML's) is dropped without CASCADE and created again: a view on
    it stops the reload with PostgreSQL's error naming it, rather than being dropped.
    """
    # identifiers are quoted by PostgreSQL (format %I); the types come from TOY_SETS
    same = plpy.prepare(
        "SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum) = $2::text[]"
        "   AND array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)"
        "       = $3::text[], false) AS same"
        "  FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass(format('pgml.%I', $1)) AND a.attnum > 0"
        "   AND NOT a.attisdropped",
        ["text", "text[]", "text[]"],
    )
    found = same.execute([source, names, [_canonical(t) for t in types]])[0]
    if found["same"]:
        plpy.execute(format_sql(plpy, "TRUNCATE pgml.%I", source))
        return
    ddl = plpy.prepare(
        "SELECT format('DROP TABLE IF EXISTS pgml.%1$I; CREATE TABLE pgml.%1$I (%2$s)', $1,"
        " string_agg(format('%I %s', c, t), ', ' ORDER BY o)) AS q"
        " FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(c, t, o)",
        ["text", "text[]", "text[]"],
    )
    try:
        plpy.execute(ddl.execute([source, names, types])[0]["q"])
    except plpy.spiexceptions.DependentObjectsStillExist as exc:
        raise UserError(
            f"pgml.{source} has other columns than this pgml-flow loads, and objects depend "
            f"on it: {exc}",
            hint=f"drop the objects that depend on pgml.{source} (or the table), then load "
                 "it again; later reloads keep them (the table is emptied, not dropped)",
        ) from None


def _canonical(sql_type: str) -> str:
    """A TOY_SETS type as format_type() spells it (a column's array type has no dimensions)."""
    base = sql_type.replace("[]", "")
    arrays = "[]" if "[]" in sql_type else ""
    return {"real": "real", "boolean": "boolean", "smallint": "smallint",
            "integer": "integer"}[base] + arrays
