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
    if source == "wine":
        names = [n.replace("/", "_") for n in names]
    if source == "iris":  # PostgresML's names: sepal_length, ..., not "sepal length (cm)"
        names = [n.replace(" (cm)", "").replace(" ", "_") for n in names]
    columns = [(n, "real") for n in names] + [(target, target_type)]
    rows = []
    for x, y in zip(data.data, data.target, strict=True):
        label: Any = bool(y == 0) if source == "breast_cancer" else (
            float(y) if target_type == "real" else int(y)
        )
        rows.append([*map(float, x), label])
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
    # identifiers are quoted by PostgreSQL (format %I); the types come from TOY_SETS
    ddl = plpy.prepare(
        "SELECT format('DROP TABLE IF EXISTS pgml.%1$I; CREATE TABLE pgml.%1$I (%2$s)', $1,"
        " string_agg(format('%I %s', c, t), ', ' ORDER BY o)) AS q"
        " FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(c, t, o)",
        ["text", "text[]", "text[]"],
    )
    plpy.execute(ddl.execute([source, names, types])[0]["q"])
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
