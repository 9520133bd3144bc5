"""Client-scoped models end to end: specs, per-client training, the BI surface, isolation.

One database (from the migrated template) is seeded and trained once for the module:
three learnable clients and a tiny fourth one. Tests that break isolation on purpose
restore it before they end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg
import pytest
from psycopg import sql
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from cli.app import app
from pgml_flow import migrate
from pgml_flow.app import PgmlFlow
from pgml_flow.database import drop_database, recreate_database, with_dbname
from pgml_flow.errors import ClientNotFound, ConfigurationError, IsolationBreach, SpecError
from pgml_flow.isolation import tcp_address
from pgml_flow.seed import COMPONENT_POOL, VERBS, seed
from pgml_flow.training import TrainingResult, train_client
from pgml_models.specs import (
    ModelSpec,
    RetrainingPolicy,
    builtin_specs,
    load_specs,
    parse_spec,
    project_name,
)
from tests.conftest import TEMPLATE, as_client, flow_for

AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
LEARNABLE = (1, 2, 3)
TINY = 4
MODELS = ("trajectory", "complexity", "rework")


@dataclasses.dataclass
class Trained:
    url: str
    flow: PgmlFlow
    results: list[TrainingResult]


@pytest.fixture(scope="module")
def trained(admin_url: str, template_url: str) -> Iterator[Trained]:
    name = f"test_models_{uuid.uuid4().hex[:8]}"
    recreate_database(admin_url, name, template=TEMPLATE)
    url = with_dbname(admin_url, name)
    flow = flow_for(url)
    try:
        with psycopg.connect(url) as conn:
            seed(conn, clients=3, issues=1200, seed=11, as_of=AS_OF)
            seed(conn, clients=1, issues=30, seed=11, as_of=AS_OF, first_client_id=TINY)
        flow.refresh_training_summary()
        flow.grant_bi_access()
        results = flow.train(list(MODELS))
        yield Trained(url, flow, results)
    finally:
        flow.revoke_bi_access()
        drop_database(admin_url, name)


# -- specs (no database) ---------------------------------------------------------------------
def test_builtin_specs() -> None:
    specs = builtin_specs()
    assert list(specs) == list(MODELS)
    policies = {n: dataclasses.astuple(s.retraining) for n, s in specs.items()}
    assert policies == {
        "trajectory": ("0 2 * * 0", 100, 45.0, 30),
        "complexity": ("0 3 * * 3", 200, 3.0, 14),
        "rework": ("0 4 * * 6", 50, 0.7, 21),
    }
    assert specs["rework"].task == "classification" and specs["rework"].key_metric == "f1"
    # story points and lead times are judged (deployed, promoted) by their absolute error,
    # held out by time (the newest rows), with a seed
    assert {n: (s.key_metric, s.split_by, s.seed) for n, s in specs.items()} == {
        "trajectory": ("mean_absolute_error", "completed_at", 42),
        "complexity": ("mean_absolute_error", "created", 42),
        "rework": ("f1", "merged_at", 42),
    }
    assert specs["complexity"].hyperparams["objective"] == "reg:absoluteerror"
    assert specs["complexity"].reads_rows and not specs["rework"].reads_rows
    assert project_name("complexity", 7) == specs["complexity"].project(7) == "complexity__client_7"


def test_user_spec_file_adds_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("""
[models.bug_points]
task = "regression"
training_view = "public.my_bug_training"
target = "story_points"
features = ["title_length", "description_words"]
min_training_rows = 10
[models.bug_points.retraining]
schedule = "0 1 * * *"
min_new_records = 10
performance_threshold = 0.5
data_freshness_days = 7

[models.rework]
task = "classification"
training_view = "pgml_flow.rework_training"
target = "reworked"
features = ["log_size"]
[models.rework.retraining]
schedule = "0 4 * * 6"
min_new_records = 50
performance_threshold = 0.7
data_freshness_days = 21
""")
    specs = load_specs([path], use_env=False)
    assert set(specs) == {*MODELS, "bug_points"}
    assert specs["rework"].features == ("log_size",)
    assert specs["bug_points"].project(3) == "bug_points__client_3"


@pytest.mark.parametrize(("body", "message"), [
    ({"task": "ranking"}, "task must be one of"),
    ({"features": []}, "features must be a non-empty list"),
    ({"target": "a"}, "target must be a column name that is not a feature"),
    ({"retraining": {"schedule": "weekly", "min_new_records": 1,
                     "performance_threshold": 0.5, "data_freshness_days": 1}}, "cron"),
    ({"training_view": "x; DROP TABLE issues"}, "training_view must be a view name"),
    ({"colour": "red"}, "unknown key"),
])
def test_invalid_specs_say_what_is_wrong(body: dict[str, Any], message: str) -> None:
    base = {"task": "regression", "training_view": "v", "target": "y", "features": ["a", "b"],
            "retraining": {"schedule": "0 1 * * *", "min_new_records": 1,
                           "performance_threshold": 0.5, "data_freshness_days": 1}}
    with pytest.raises(SpecError, match=message):
        parse_spec("m", {**base, **body})
    with pytest.raises(SpecError, match="lowercase"):
        parse_spec("Bad__Name", base)


# -- features ----------------------------------------------------------------------------------
def test_spec_features_are_the_feature_views_columns(trained: Trained) -> None:
    """Training reads the spec's columns; the BI surface reads the same columns by name
    (ROW form) or the features array, which holds the numeric ones in spec order."""
    with psycopg.connect(trained.url) as conn:
        for spec in builtin_specs().values():
            assert spec.feature_view is not None
            numeric = [c for c in spec.features if conn.execute(
                "SELECT format_type(atttypid, NULL) IN ('real', 'double precision') FROM"
                " pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
                (spec.training_view, c)).fetchone()[0]]
            assert numeric == (list(spec.features) if not spec.reads_rows
                               else ["title_length", "description_words"]), spec.name

            def same(c: str) -> sql.Composable:
                return sql.SQL("t.{0} IS NOT DISTINCT FROM f.{0}").format(sql.Identifier(c))

            query = sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE ARRAY[{}]::real[] "
                "IS DISTINCT FROM f.features OR NOT ({})) "
                "FROM {} t JOIN {} f USING (client_id, entity_id)"
            ).format(sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c))
                                        for c in numeric),
                     sql.SQL(" AND ").join(same(c) for c in spec.features),
                     sql.Identifier(*spec.training_view.split(".")),
                     sql.Identifier(*spec.feature_view.split(".")))
            total, different = conn.execute(query).fetchone()
            assert total > 100 and different == 0, spec.name


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_no_builtin_spec_or_feature_view_names_a_generator_value() -> None:
    """The synthetic generator's component names and title keywords appear nowhere in the
    built-in specs' values or the feature views: which values matter is learned per client
    (the complexity spec's preprocess), so real clients' components and words count too."""
    keywords = {w.lower() for verb, _ in VERBS for w in verb.split() if len(w) > 2}
    values = {c.lower() for c in COMPONENT_POOL} | keywords
    assert {"api", "billing", "typo", "refactor", "migrate"} <= values
    root = Path(__file__).resolve().parent.parent
    features_sql = re.sub(r"--[^\n]*", "", (root / "sql/idempotent/100_features.sql").read_text())
    assert not _words(features_sql) & values, _words(features_sql) & values

    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [t for k, v in node.items() for t in (str(k), *strings(v))]
        if isinstance(node, list):
            return [t for v in node for t in strings(v)]
        return [str(node)]

    found = set()
    for spec in builtin_specs().values():
        body = spec.to_json()
        # the spec's own keys (search, ...) are pgml-flow's words; everything in them counts
        found |= {w for v in body.values() for t in strings(v) for w in _words(t)} & values
    assert not found, found
    toml = re.sub(r"#[^\n]*", "", (root / "pgml_models/specs/builtin.toml").read_text())
    keys = {*ModelSpec.__dataclass_fields__, *RetrainingPolicy.__dataclass_fields__}
    toml = re.sub(r"\b(?:" + "|".join(sorted(keys)) + r")\b\s*=", "=", toml)
    assert not _words(toml) & values, _words(toml) & values


# -- training --------------------------------------------------------------------------------
def test_every_client_trained_or_skipped_with_reason(trained: Trained) -> None:
    by_key = {(r.client_id, r.model_name): r for r in trained.results}
    assert set(by_key) == {(c, m) for c in (*LEARNABLE, TINY) for m in MODELS}
    for client in LEARNABLE:
        for model in MODELS:
            result = by_key[(client, model)]
            assert result.status == "promoted", result
            assert result.project == f"{model}__client_{client}"
            assert result.model_id is not None and result.key_metric_value is not None
    tiny = by_key[(TINY, "trajectory")]
    assert tiny.status == "skipped" and tiny.model_id is None
    assert "min_training_rows" in (tiny.detail or "") and "at least 30" in (tiny.detail or "")

    with psycopg.connect(trained.url) as conn:
        events = conn.execute(
            "SELECT client_id, model_name, status, challenger_model_id, training_rows, detail"
            " FROM ml_retraining_events ORDER BY id").fetchall()
        assert len(events) == len(trained.results)
        assert {e[2] for e in events} <= {"promoted", "skipped"}
        projects = {r[0] for r in conn.execute("SELECT name FROM pgml.projects")}
    assert projects == {f"{m}__client_{c}" for c in LEARNABLE for m in MODELS}


def test_unknown_client_and_model_are_clear_errors(trained: Trained) -> None:
    with pytest.raises(ClientNotFound, match=r"client.*99"):
        trained.flow.train(["complexity"], [99])
    with pytest.raises(SpecError, match="no model spec named 'nope'"):
        trained.flow.train(["nope"], [1])


def _global_view(conn: psycopg.Connection, model: str) -> str:
    spec = builtin_specs()[model]
    view = f"{model}__global"
    conn.execute(sql.SQL(
        "CREATE OR REPLACE VIEW pgml_flow_training.{} AS SELECT {}, {} FROM {} "
        "WHERE client_id IN ({})").format(
        sql.Identifier(view), sql.SQL(", ").join(map(sql.Identifier, spec.features)),
        sql.Identifier(spec.target), sql.Identifier(*spec.training_view.split(".")),
        sql.SQL(", ").join(map(sql.Literal, LEARNABLE))))
    return f"pgml_flow_training.{view}"


def test_per_client_models_beat_one_global_model(trained: Trained) -> None:
    """The premise: clients differ (point scale, pace, rework), so one model per client wins.

    Every model is scored on all of its client's rows: regression by mean absolute error,
    classification (probabilities) by ROC AUC per client.
    """
    specs = builtin_specs()
    with psycopg.connect(trained.url, autocommit=True) as conn:
        for model in MODELS:
            spec = specs[model]
            conn.execute(
                "SELECT * FROM pgml.train(%s, %s, %s, %s, %s::pgml.algorithm, %s::jsonb,"
                " test_sampling => %s::pgml.sampling, preprocess => %s::jsonb)",
                (f"{model}__global", spec.task, _global_view(conn, model), spec.target,
                 spec.algorithm, psycopg.types.json.Jsonb(spec.hyperparams), "random",
                 psycopg.types.json.Jsonb(spec.preprocess)))
            assert spec.feature_view is not None
            # complexity reads its columns by name (the ROW form: the row f), the others
            # their features array
            features = sql.SQL("f" if spec.reads_rows else "f.features")
            rows = conn.execute(sql.SQL(
                "SELECT client_id, {target}::float8,"
                "  pgml.predict_proba(pgml_flow.project_name(%s, client_id), {features}),"
                "  pgml.predict_proba(%s, {features})"
                "  FROM {view} f WHERE is_training AND client_id = ANY(%s)"
                if spec.task == "classification" else
                "SELECT client_id, {target}::float8,"
                "  pgml.predict(pgml_flow.project_name(%s, client_id), {features}),"
                "  pgml.predict(%s, {features})"
                "  FROM {view} f WHERE is_training AND client_id = ANY(%s)").format(
                target=sql.Identifier(spec.target), features=features,
                view=sql.Identifier(*spec.feature_view.split("."))),
                (model, f"{model}__global", list(LEARNABLE))).fetchall()
            clients = np.array([r[0] for r in rows])
            y = np.array([r[1] for r in rows])
            if spec.task == "classification":
                own = np.array([r[2][1] for r in rows])
                one = np.array([r[3][1] for r in rows])
                auc_own = np.mean([roc_auc_score(y[clients == c], own[clients == c])
                                   for c in LEARNABLE])
                auc_one = np.mean([roc_auc_score(y[clients == c], one[clients == c])
                                   for c in LEARNABLE])
                print(model, auc_own, auc_one)
                assert auc_own > auc_one, (model, auc_own, auc_one)
            else:
                # by the spec's own key metric (absolute error for both regressions: the
                # complexity candidates snap to each client's point scale, which squared
                # error punishes for what it is built to do)
                mae_own = np.mean(np.abs(np.array([r[2] for r in rows]) - y))
                mae_one = np.mean(np.abs(np.array([r[3] for r in rows]) - y))
                print(model, mae_own, mae_one)
                assert mae_own < mae_one, (model, mae_own, mae_one)


# -- the BI surface --------------------------------------------------------------------------
def test_bi_predictions_equal_pgml_predict(trained: Trained) -> None:
    seen = {"points": 0, "epics": 0, "risks": 0}
    for client in LEARNABLE:
        with as_client(trained.url, client) as bi:
            points: dict[int, Any] = dict(bi.execute(
                "SELECT issue_id, predicted_story_points FROM analytics.issue_story_points"))
            epics: dict[int, Any] = dict(bi.execute(
                "SELECT issue_id, predicted_lead_time_days FROM analytics.epic_forecasts"))
            risks = {r[0]: r[1:] for r in bi.execute(
                "SELECT pull_request_id, rework_probability, predicted_rework, rework_risk,"
                " model_id, model_trained_at, rework_score"
                " FROM analytics.pull_request_rework_risk")}
            quality = {r[0]: r[1] for r in bi.execute(
                "SELECT model_name, model_id FROM analytics.model_quality")}
        with psycopg.connect(trained.url, autocommit=True) as admin:
            def expected(model: str, expression: str, c: int = client) -> dict[int, Any]:
                """expression of {project} and {features}, per open item of the client:
                its features array, or its row f (the ROW form) for complexity."""
                call = sql.SQL(expression).format(
                    project=sql.SQL("pgml_flow.project_name(%s, client_id)"),
                    features=sql.SQL("f" if builtin_specs()[model].reads_rows
                                     else "f.features"))
                return dict(admin.execute(sql.SQL(
                    "SELECT entity_id, {} FROM {} f WHERE client_id = %s AND is_open").format(
                    call, sql.Identifier("pgml_flow", f"{model}_features")),
                    (model, c)).fetchall())

            # the views give pgml's real as double precision through numeric: its six
            # significant digits (8.7, not 8.699999809265137)
            as_double = "::numeric::double precision"

            deployed: dict[str, int] = dict(admin.execute(
                "SELECT p.name, (SELECT model_id FROM pgml.deployments d"
                "  WHERE d.project_id = p.id ORDER BY d.id DESC LIMIT 1) FROM pgml.projects p"))
            assert points == expected("complexity", "pgml.predict({project}, {features})"
                                      + as_double)
            assert epics == expected("trajectory", "pgml.predict({project}, {features})"
                                     + as_double)
            scores = expected("rework", "(pgml.predict_proba({project}, {features}))[2]"
                              + as_double)
            labels = expected("rework", "pgml.predict({project}, {features})")
            (prior,) = admin.execute(
                "SELECT target_mean FROM ml_model_baselines WHERE client_id = %s"
                " AND model_id = %s", (client, deployed[f"rework__client_{client}"])).fetchone()
        # the raw score is the model's; the probability is it with its odds times
        # pi / (1 - pi): the balanced model's prior shifted back to the client's rework rate
        odds = prior / (1 - prior)
        assert {k: v[5] for k, v in risks.items()} == scores
        for k, (probability, predicted, risk, *_) in risks.items():
            score = scores[k]
            assert probability == pytest.approx(score * odds / (score * odds + 1 - score),
                                                rel=1e-12), k
            assert risk == ("high" if probability >= 0.5 else "medium" if predicted else "low")
        assert {k: v[1] for k, v in risks.items()} == {k: v == 1 for k, v in labels.items()}
        assert {v[3] for v in risks.values()} <= {deployed[f"rework__client_{client}"]}
        assert all(v[4] is not None for v in risks.values())
        assert quality == {m: deployed[f"{m}__client_{client}"] for m in MODELS}
        seen["points"] += len(points)
        seen["epics"] += len(epics)
        seen["risks"] += len(risks)
    assert min(seen.values()) > 0, seen


def _heldout_rework(conn: psycopg.Connection, client: int) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray, float]:
    """The deployed rework model on its held-out test rows: labels, raw scores, served
    (calibrated) probabilities, and the class prior pi the calibration uses.

    The held-out rows are the last ``test_rows`` rows of the client's training view
    (pgml.train's test_sampling 'last'); the model never saw them, and pi
    (``ml_model_baselines.target_mean``) is their client's rework rate at training.
    """
    spec = builtin_specs()["rework"]
    project = spec.project(client)
    model_id, test_rows, prior, hyperparams = conn.execute(
        "SELECT d.model_id, (s.analysis ->> 'test_rows')::integer, b.target_mean, m.hyperparams"
        "  FROM pgml.projects p"
        "  CROSS JOIN LATERAL (SELECT x.model_id FROM pgml.deployments x"
        "                       WHERE x.project_id = p.id ORDER BY x.id DESC LIMIT 1) d"
        "  JOIN pgml.models m ON m.id = d.model_id"
        "  JOIN pgml.snapshots s ON s.id = m.snapshot_id"
        "  JOIN ml_model_baselines b ON b.client_id = %s AND b.model_id = d.model_id"
        " WHERE p.name = %s", (client, project)).fetchone()
    assert hyperparams.get("class_weight") == "balanced", hyperparams
    rows = conn.execute(sql.SQL(
        "SELECT {target}::integer, s.score,"
        "       pgml_flow.calibrated(s.score, pgml_flow.calibration_odds(%s, %s))"
        "  FROM (SELECT row_number() OVER () AS n, count(*) OVER () AS total, v.*"
        "          FROM pgml_flow_training.{view} v) t"
        " CROSS JOIN LATERAL (SELECT (pgml.predict_proba(%s, ARRAY[{features}]::real[]))[2]"
        "                            ::numeric::double precision AS score) s"
        " WHERE t.n > t.total - %s").format(
        target=sql.Identifier(spec.target), view=sql.Identifier(project),
        features=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(f))
                                    for f in spec.features)),
        (psycopg.types.json.Jsonb(hyperparams), prior, model_id, test_rows)).fetchall()
    assert len(rows) == test_rows > 100
    labels, scores, probabilities = np.array(rows, dtype=float).T
    return labels, scores, probabilities, float(prior)


def test_rework_probability_is_calibrated(trained: Trained) -> None:
    """The balanced rework model's score is no probability; the served one is.

    On each client's held-out rows the mean served probability is the observed rework rate
    (within three standard errors), the raw score's is far from it, and the Brier score of
    the probability beats the raw score's and that of always predicting the rework rate.
    """
    for client in LEARNABLE:
        with psycopg.connect(trained.url) as conn:
            y, score, probability, prior = _heldout_rework(conn, client)
        observed = y.mean()
        error = math.sqrt(observed * (1 - observed) / len(y))
        brier = {name: float(np.mean((p - y) ** 2)) for name, p in (
            ("raw", score), ("calibrated", probability), ("prior", np.full(len(y), prior)))}
        print(f"client {client}: {len(y)} held-out rows, rework rate {observed:.3f} "
              f"(+-{error:.3f}), mean probability {probability.mean():.3f}, mean raw score "
              f"{score.mean():.3f}, pi {prior:.3f}; Brier raw {brier['raw']:.4f}, calibrated "
              f"{brier['calibrated']:.4f}, always pi {brier['prior']:.4f}")
        assert abs(probability.mean() - observed) <= 3 * error, client
        assert abs(score.mean() - observed) > 3 * error, client
        assert brier["calibrated"] < brier["raw"], (client, brier)
        assert brier["calibrated"] < brier["prior"], (client, brier)


def test_calibration_is_the_identity_without_class_weights(trained: Trained) -> None:
    """A classifier trained without class weights serves its own probability unchanged."""
    cases = [  # hyperparams, pi, odds factor
        ({"class_weight": "balanced", "max_iter": 5}, 0.2, 0.25),
        ({"is_unbalance": True}, 0.2, 0.25),
        ({"scale_pos_weight": 4}, 0.2, 0.25),
        ({}, 0.2, 1.0), ({"class_weight": None}, 0.2, 1.0), ({"max_iter": 5}, None, 1.0),
        ({"class_weight": "balanced"}, None, None), ({"class_weight": "balanced"}, 0.0, None),
    ]
    with psycopg.connect(trained.url, autocommit=True) as conn:
        for hyperparams, prior, factor in cases:
            (odds,) = conn.execute("SELECT pgml_flow.calibration_odds(%s, %s)",
                                   (psycopg.types.json.Jsonb(hyperparams), prior)).fetchone()
            assert odds == (None if factor is None else pytest.approx(factor)), hyperparams
        # a balanced score at the decision boundary is the class prior; 0 and 1 stay
        assert conn.execute("SELECT pgml_flow.calibrated(0.5, 0.25), pgml_flow.calibrated(0, 9),"
                            " pgml_flow.calibrated(1, 9), pgml_flow.calibrated(0.3, 1)"
                            ).fetchone() == (pytest.approx(0.2), 0, 1, 0.3)

        base = builtin_specs()["rework"]
        spec = dataclasses.replace(base, name="rework_unweighted", hyperparams={
            k: v for k, v in base.hyperparams.items() if k != "class_weight"})
        try:
            result = train_client(conn, spec, 1)
            assert result.status == "promoted", result
            with as_client(trained.url, 1) as bi:
                rows = bi.execute("SELECT probability, score, prediction"
                                  " FROM analytics.predictions('rework_unweighted')").fetchall()
            assert rows and all(p is not None and p == s for p, s, _ in rows)
            assert all((p >= 0.5) == (y == 1) for p, _, y in rows)
        finally:
            conn.execute("DELETE FROM ml_model_registry WHERE model_name = %s", (spec.name,))
            conn.execute("SELECT pgml.delete_project(%s)", (spec.project(1),))


def test_predictions_of_an_unknown_model_is_an_error(trained: Trained) -> None:
    with as_client(trained.url, 1) as bi:
        with pytest.raises(psycopg.errors.UndefinedObject) as raised:
            bi.execute("SELECT * FROM analytics.predictions('typo')")
        message = raised.value.diag.message_primary or ""
        assert "unknown model 'typo'" in message
        assert all(model in message for model in MODELS), message
        # as the views call it: a model not registered (not trained yet) has no rows
        assert bi.execute("SELECT count(*) FROM analytics.predictions('typo', missing_ok => true)"
                          ).fetchone() == (0,)


def test_bi_url_is_a_tcp_connection_string_for_the_login(trained: Trained) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": trained.url, "COLUMNS": "200"}
    with psycopg.connect(trained.url) as conn:
        (role,) = conn.execute("SELECT role_name FROM client_bi_roles WHERE client_id = 1"
                               ).fetchone()
        database, port = conn.execute("SELECT current_database(), current_setting('port')"
                                      ).fetchone()
    result = runner.invoke(app, ["bi", "url", "--client", "1", "--json"], env=env)
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    # the suite's server is reached through its unix socket: the address it listens on
    assert entry == {"client_id": 1, "login": role, "host": "127.0.0.1", "port": int(port),
                     "database": database, "sslmode": "disable", "password_set": False,
                     "url": f"postgresql://{role}@127.0.0.1:{port}/{database}?sslmode=disable"}
    assert "has no password" in result.stderr
    plain = entry["url"]

    password = "p@ss w/rd:1"
    trained.flow.grant_bi_access([1], password=password)
    result = runner.invoke(app, ["bi", "url", "--client", "1", "--password-env", "BI_PW"],
                           env={**env, "BI_PW": password})
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url == plain.replace(f"//{role}@", f"//{role}:{quote(password, safe='')}@")
    with psycopg.connect(url, autocommit=True) as bi:  # over TCP, as the BI login
        assert bi.info.host == "127.0.0.1"
        assert bi.execute("SELECT current_user").fetchone() == (role,)
        assert bi.execute("SELECT count(*) FROM analytics.issue_story_points").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.UndefinedObject, match="unknown model 'typo'"):
            bi.execute("SELECT * FROM analytics.predictions('typo')")
    result = runner.invoke(app, ["bi", "url", "--client", "1"], env=env)
    assert result.stdout.strip() == plain  # a password only when given

    result = runner.invoke(app, ["bi", "url", "--client", "1", "--password-env", "NOPE_X"],
                           env=env)
    assert isinstance(result.exception, ConfigurationError)
    assert "NOPE_X is not set" in str(result.exception)
    result = runner.invoke(app, ["bi", "url", "--client", "99"], env=env)
    assert isinstance(result.exception, ClientNotFound)


def test_tcp_address_of_a_bi_url() -> None:
    # DATABASE_URL over TCP: its host and port, whatever the server listens on
    assert tcp_address("db.example.com", 6432, "*", 5432) == ("db.example.com", 6432)
    assert tcp_address("db.example.com", 6432, "*", 5432, "bi.example.com") == (
        "bi.example.com", 6432)
    # a unix socket: the server's one listen address and its port
    assert tcp_address("/run/pg", 5432, "127.0.0.1", 54329) == ("127.0.0.1", 54329)
    assert tcp_address("/run/pg", 5432, "*", 54329, "db.example.com") == (
        "db.example.com", 54329)
    for listen in ("*", "0.0.0.0", "", "127.0.0.1, 10.0.0.5"):
        with pytest.raises(ConfigurationError, match="--host"):
            tcp_address("/run/pg", 5432, listen, 5432)


def test_predictions_are_logged_with_latency_and_anomaly(trained: Trained) -> None:
    client = 3

    def logged(conn: psycopg.Connection) -> int:
        return conn.execute("SELECT count(*) FROM ml_prediction_log WHERE client_id = %s",
                            (client,)).fetchone()[0]

    with psycopg.connect(trained.url, autocommit=True) as admin:
        # earlier reads logged some of these predictions, and a re-read of an unchanged
        # prediction is logged once (tests/test_prediction_log.py): start from none
        admin.execute("DELETE FROM ml_prediction_log WHERE client_id = %s", (client,))
        admin.execute("INSERT INTO pgml_flow_settings VALUES ('prediction_log_rows', '-1')")
        before = logged(admin)
        with as_client(trained.url, client) as bi:
            n = bi.execute("SELECT count(*) FROM analytics.issue_story_points").fetchone()[0]
            own = bi.execute("SELECT count(*), min(response_time_ms), count(anomaly_score),"
                             " bool_and(severity IN ('none', 'low', 'medium', 'high'))"
                             " FROM analytics.prediction_log").fetchone()
        assert n > 0 and logged(admin) == before + n
        assert own[0] == before + n and own[1] > 0 and own[2] == own[0] and own[3]
        anomalies = admin.execute(
            "SELECT count(*) FROM ml_prediction_log WHERE client_id = %s"
            " AND is_anomaly <> (anomaly_score >= 3)", (client,)).fetchone()[0]
        assert anomalies == 0

        # a read-only transaction (BI tools, standbys) reads fine and logs nothing
        with as_client(trained.url, client) as bi, bi.transaction():
            bi.execute("SET TRANSACTION READ ONLY")
            assert bi.execute(
                "SELECT count(*) FROM analytics.issue_story_points").fetchone()[0] == n
        assert logged(admin) == before + n

        # a sample of at most prediction_log_rows predictions per read
        admin.execute("UPDATE pgml_flow_settings SET value = '2'"
                      " WHERE name = 'prediction_log_rows'")
        admin.execute("DELETE FROM ml_prediction_log WHERE client_id = %s", (client,))
        with as_client(trained.url, client) as bi:
            bi.execute("SELECT count(*) FROM analytics.issue_story_points")
        assert logged(admin) == min(n, 2)
        before = logged(admin)
        admin.execute("DELETE FROM pgml_flow_settings WHERE name = 'prediction_log_rows'")

        # logging switched off for the client
        admin.execute("UPDATE clients SET prediction_logging = false WHERE client_id = %s",
                      (client,))
        try:
            with as_client(trained.url, client) as bi:
                bi.execute("SELECT count(*) FROM analytics.pull_request_rework_risk")
            assert logged(admin) == before
        finally:
            admin.execute("UPDATE clients SET prediction_logging = true WHERE client_id = %s",
                          (client,))


def test_a_tenant_cannot_reach_another_client(trained: Trained) -> None:
    with as_client(trained.url, 1) as bi:
        bi.execute("SET pgml_flow.client_id = 2")  # only admins may pick a client
        assert bi.execute("SELECT pgml_flow.current_client_id()").fetchone() == (1,)
        assert {r[0] for r in bi.execute("SELECT client_id FROM analytics.issue_story_points")} \
            == {1}
        assert {r[0] for r in bi.execute("SELECT DISTINCT client_id FROM issues")} == {1}
        for statement in ("SELECT pgml.predict('complexity__client_2', ARRAY[1.0])",
                          "SELECT * FROM pgml.files", "SELECT * FROM pgml.snapshots",
                          "SELECT * FROM pgml_flow.serving_model(2, 'complexity')",
                          "SELECT * FROM pgml_flow_training.complexity__client_2",
                          "SELECT * FROM pgml_flow.complexity_features",
                          "SELECT * FROM mv_ml_training_summary",
                          "SET ROLE pgml_flow_ml"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                bi.execute(statement)
    # a client without models: open items come without predictions; quality says why
    with as_client(trained.url, TINY) as bi:
        rows = bi.execute("SELECT predicted_story_points, model_id"
                          " FROM analytics.issue_story_points").fetchall()
        quality = bi.execute("SELECT model_name, model_id, last_run_status, last_run_detail"
                             " FROM analytics.model_quality").fetchall()
    assert all(r == (None, None) for r in rows)
    assert {q[0] for q in quality} == set(MODELS)
    assert all(q[1] is None and q[2] == "skipped" and "min_training_rows" in q[3]
               for q in quality)


# -- the audit -------------------------------------------------------------------------------
def test_isolation_audit_passes(trained: Trained) -> None:
    report = trained.flow.audit_isolation()
    assert report.ok, report.failures
    bi = [c for c in report.checks if c.kind == "bi"]
    assert {c.client_id for c in bi} == {*LEARNABLE, TINY}
    assert {"analytics.issue_story_points", "analytics.epic_forecasts",
            "analytics.pull_request_rework_risk", "analytics.model_quality",
            "public.issues", "public.ml_prediction_log"} <= {c.object for c in bi}
    assert sum(c.rows or 0 for c in bi if c.client_id == 1) > 1000
    internal = {c.object for c in report.checks if c.kind == "internal"}
    assert {"pgml.files", "pgml.snapshots", "pgml.models",
            "pgml_flow_training.complexity__client_2"} <= internal
    with psycopg.connect(trained.url) as conn:
        logs = conn.execute("SELECT count(*) FROM ml_prediction_log").fetchone()[0]
    assert trained.flow.audit_isolation().ok
    with psycopg.connect(trained.url) as conn:  # the audit leaves no log rows behind
        assert conn.execute("SELECT count(*) FROM ml_prediction_log").fetchone()[0] == logs


def test_cli_train_skip_reason_and_audit(trained: Trained) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": trained.url, "COLUMNS": "200"}
    result = runner.invoke(app, ["train", "trajectory", "--client", str(TINY)], env=env)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "min_training_rows" in result.output
    result = runner.invoke(app, ["verify", "isolation"], env=env)
    assert result.exit_code == 0, result.output
    assert "isolation ok" in result.output
    result = runner.invoke(app, ["train", "complexity"], env=env)
    assert isinstance(result.exception, Exception) and "--client ID" in str(result.exception)


def test_a_user_spec_trains_without_code_changes(trained: Trained, tmp_path: Path) -> None:
    with psycopg.connect(trained.url, autocommit=True) as conn:
        conn.execute("CREATE VIEW public.bug_points_training AS"
                     " SELECT client_id, title_length, description_words, story_points"
                     "   FROM pgml_flow.complexity_training WHERE issue_type = 'Bug'")
    path = tmp_path / "bugs.toml"
    path.write_text("""
[models.bug_points]
task = "regression"
training_view = "public.bug_points_training"
target = "story_points"
features = ["title_length", "description_words"]
min_training_rows = 20
[models.bug_points.retraining]
schedule = "0 1 * * *"
min_new_records = 10
performance_threshold = 0.5
data_freshness_days = 7
""")
    result = CliRunner().invoke(app, ["train", "bug_points", "--client", "1", "--specs",
                                      str(path), "--json"],
                                env={"DATABASE_URL": trained.url})
    assert result.exit_code == 0, result.output
    assert '"status": "promoted"' in result.output
    assert '"project": "bug_points__client_1"' in result.output
    # without a feature_view the BI surface cannot serve it, and says so
    with as_client(trained.url, 1) as bi, pytest.raises(
            psycopg.errors.InvalidParameterValue,
            match=r"'bug_points' has no feature_view.*serves: complexity, rework"):
        bi.execute("SELECT * FROM analytics.predictions('bug_points')")


ARRAY_SPECS = """
[models.sized_points]
task = "regression"
training_view = "public.sized_points"
feature_view = "public.sized_points_features"
target = "story_points"
features = ["sizes", "tags", "issue_type"]
algorithm = "xgboost"
hyperparams = { n_estimators = 20 }
min_training_rows = 50
[models.sized_points.preprocess]
tags = { encode = "multi_hot", top_k = 5 }
issue_type = { encode = "one_hot", impute = "zero" }
[models.sized_points.retraining]
schedule = "0 1 * * *"
min_new_records = 10
performance_threshold = 0.1
data_freshness_days = 7

[models.sized_points_array]
task = "regression"
training_view = "public.sized_points"
feature_view = "public.sized_points_features"
target = "story_points"
features = ["sizes", "title_length"]
algorithm = "xgboost"
hyperparams = { n_estimators = 20 }
min_training_rows = 50
[models.sized_points_array.retraining]
schedule = "0 1 * * *"
min_new_records = 10
performance_threshold = 0.1
data_freshness_days = 7
"""


def test_array_features_train_and_predict(trained: Trained, tmp_path: Path) -> None:
    """A number array (real[]) and a text[] feature in a user's spec: training stores the
    baseline per array element (it used to fail casting real[] to double precision, after
    deploying), and the BI surface serves both models from the user's feature view: the
    one with preprocess reads its columns by name, the other its features array. The
    view is the user's own: training grants the BI surface SELECT on it."""
    with psycopg.connect(trained.url, autocommit=True) as conn:
        conn.execute("""CREATE VIEW public.sized_points_features AS
            SELECT f.client_id, f.entity_id, f.is_open, f.is_training, f.created,
                   f.story_points, f.title_length, f.issue_type,
                   ARRAY[f.title_length, f.description_words]::real[] AS sizes,
                   f.components AS tags,
                   ARRAY[f.title_length, f.description_words, f.title_length]::real[]
                       AS features
              FROM pgml_flow.complexity_features f""")
        conn.execute("CREATE VIEW public.sized_points AS SELECT * FROM"
                     " public.sized_points_features WHERE is_training")
        (owner,) = conn.execute("SELECT DISTINCT proowner::regrole::text FROM pg_proc"
                                " WHERE proname = 'predictions'"
                                " AND pronamespace = 'analytics'::regnamespace").fetchone()
        assert not conn.execute("SELECT has_table_privilege(%s, 'public.sized_points_features',"
                                " 'SELECT')", (owner,)).fetchone()[0]
    path = tmp_path / "arrays.toml"
    path.write_text(ARRAY_SPECS)
    result = CliRunner().invoke(app, ["train", "sized_points", "sized_points_array",
                                      "--client", "1", "--specs", str(path), "--json"],
                                env={"DATABASE_URL": trained.url})
    assert result.exit_code == 0, result.output
    assert result.output.count('"status": "promoted"') == 2, result.output
    with psycopg.connect(trained.url, autocommit=True) as conn:
        assert conn.execute("SELECT has_table_privilege(%s, 'public.sized_points_features',"
                            " 'SELECT')", (owner,)).fetchone()[0]
        baselines: dict[str, list[str]] = dict(conn.execute(
            "SELECT model_name, feature_names FROM ml_model_baselines"
            " WHERE model_name LIKE 'sized_points%' AND client_id = 1").fetchall())
        assert baselines == {"sized_points": ["sizes[1]", "sizes[2]"],
                             "sized_points_array": ["sizes[1]", "sizes[2]", "title_length"]}
        expected: dict[str, dict[int, float]] = {}
        for model, features in (("sized_points", "f"), ("sized_points_array", "f.features")):
            expected[model] = dict(conn.execute(
                f"SELECT entity_id, pgml.predict('{model}__client_1', {features})"
                " FROM public.sized_points_features f WHERE client_id = 1 AND is_open"
            ).fetchall())
    with as_client(trained.url, 1) as bi:
        for model in expected:
            served = {r[0]: r[1] for r in bi.execute(
                "SELECT entity_id, prediction FROM analytics.predictions(%s)", (model,))}
            assert served.keys() == expected[model].keys() and served, model
            assert all(v is not None and math.isclose(v, expected[model][k], rel_tol=1e-5)
                       for k, v in served.items()), (model, served, expected[model])


def test_bi_views_show_unscorable_items_as_unknown(trained: Trained) -> None:
    """Features a model cannot score never render as a number or a 'high' risk.

    Three open pull requests and three open epics of a client get a NaN, a NULL and an
    Infinity feature (a feature view of the test's, swapped into the registry). The
    rework model (logistic regression) scores none of them: NULL probability, risk
    'unknown' (a NaN probability used to read as 'high': 'NaN' >= 0.6 is true). The
    lead-time model (random forest) scores missing values but not infinities. The read
    as the client's BI login never fails, and the log's anomaly scores ignore the NaN
    (an infinite feature scores infinitely far from the training data: severity high).
    """
    bad = {"NaN": "ARRAY['NaN'::real] || f.features[2:]",
           "NULL": "ARRAY[f.features[1], NULL::real] || f.features[3:]",
           "Infinity": "ARRAY[f.features[1], f.features[2], 'Infinity'::real] || f.features[4:]"}
    with psycopg.connect(trained.url, autocommit=True) as admin:
        (client,) = admin.execute(
            "SELECT r.client_id FROM pgml_flow.rework_features r WHERE r.is_open"
            " AND r.client_id = ANY(%s) GROUP BY 1 HAVING count(*) >= 3 AND (SELECT count(*)"
            " FROM pgml_flow.trajectory_features t WHERE t.client_id = r.client_id"
            " AND t.is_open) >= 3 ORDER BY 1 LIMIT 1", (list(LEARNABLE),)).fetchone()
        (owner,) = admin.execute("SELECT proowner::regrole::text FROM pg_proc"
                                 " WHERE oid = 'analytics.predictions'::regproc").fetchone()
        items: dict[str, dict[str, int]] = {}
        for model in ("rework", "trajectory"):
            ids = [r[0] for r in admin.execute(sql.SQL(
                "SELECT entity_id FROM {} WHERE client_id = %s AND is_open ORDER BY entity_id"
                " LIMIT 3").format(sql.Identifier("pgml_flow", f"{model}_features")),
                (client,))]
            assert len(ids) == 3, model
            items[model] = dict(zip(bad, ids, strict=True))
            cases = " ".join(f"WHEN {int(i)} THEN {bad[k]}" for k, i in items[model].items())
            admin.execute(f"CREATE VIEW public.test_bad_{model} AS SELECT f.client_id,"
                          f" f.entity_id, f.is_open, CASE f.entity_id {cases}"
                          f" ELSE f.features END AS features FROM pgml_flow.{model}_features f")
            admin.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.Identifier("public", f"test_bad_{model}"), sql.Identifier(owner)))
        # what used to come out natively: class 0, probability NaN; now the error of both paths
        project = f"rework__client_{client}"
        features = admin.execute("SELECT features FROM public.test_bad_rework"
                                 " WHERE entity_id = %s", (items["rework"]["NaN"],)).fetchone()[0]
        for function in ("pgml.predict_proba", "pgml._py_predict_proba"):
            with pytest.raises(psycopg.errors.InvalidParameterValue,
                               match="feature 1 is NaN or NULL"):
                admin.execute(f"SELECT {function}(%s, %s::real[])", (project, features))
        admin.execute("INSERT INTO pgml_flow_settings VALUES ('prediction_log_rows', '-1')"
                      " ON CONFLICT (name) DO UPDATE SET value = excluded.value")
        (last_logged,) = admin.execute("SELECT coalesce(max(id), 0) FROM ml_prediction_log"
                                       " WHERE client_id = %s", (client,)).fetchone()
        try:
            for model in items:
                admin.execute("UPDATE ml_model_registry SET feature_view = %s"
                              " WHERE model_name = %s", (f"public.test_bad_{model}", model))
            with as_client(trained.url, client) as bi:
                risks = {r[0]: r[1:] for r in bi.execute(
                    "SELECT pull_request_id, rework_probability, predicted_rework, rework_risk,"
                    " model_id FROM analytics.pull_request_rework_risk")}
                epics = {r[0]: r[1:] for r in bi.execute(
                    "SELECT issue_id, predicted_lead_time_days, expected_completion"
                    " FROM analytics.epic_forecasts")}
        finally:
            for model in items:
                admin.execute("UPDATE ml_model_registry SET feature_view = %s"
                              " WHERE model_name = %s", (f"pgml_flow.{model}_features", model))
                admin.execute(f"DROP VIEW public.test_bad_{model}")
            admin.execute("DELETE FROM pgml_flow_settings WHERE name = 'prediction_log_rows'")
        for pr in items["rework"].values():
            assert risks[pr][:3] == (None, None, "unknown") and risks[pr][3] is not None
        others = [v for k, v in risks.items() if k not in items["rework"].values()]
        assert others and all(v[0] is not None and v[2] in ("low", "medium", "high")
                              for v in others)
        assert epics[items["trajectory"]["Infinity"]] == (None, None)
        for kind in ("NaN", "NULL"):  # a random forest scores missing values
            days, completion = epics[items["trajectory"][kind]]
            assert days is not None and math.isfinite(days) and completion is not None
        logged = admin.execute(
            "SELECT entity_id, prediction, anomaly_score, severity FROM ml_prediction_log"
            " WHERE client_id = %s AND model_name = 'rework' AND entity_id = ANY(%s)"
            " AND id > %s", (client, list(items["rework"].values()), last_logged)).fetchall()
        assert {r[0] for r in logged} == set(items["rework"].values())
        for entity, prediction, score, severity in logged:
            # an infinite feature is as far from the training data as can be: severity high
            infinite = entity == items["rework"]["Infinity"]
            assert prediction is None and (score == math.inf if infinite else
                                           score is None or math.isfinite(score))
            assert severity == admin.execute("SELECT pgml_flow.anomaly_severity(%s::real)",
                                             (score,)).fetchone()[0]


def test_audit_fails_when_isolation_is_broken(trained: Trained) -> None:
    """Last: breaks isolation on purpose, checks the audit notices, then restores it."""
    with psycopg.connect(trained.url, autocommit=True) as conn:
        try:
            conn.execute("DROP POLICY tenant_isolation ON issues")
            report = trained.flow.audit_isolation()
            verdicts = {(c.object, c.verdict) for c in report.failures}
            assert ("public.issues", "NO POLICY") in verdicts
            assert ("public.issues", "MISSING") in verdicts  # BI logins lost their rows
            with pytest.raises(IsolationBreach, match="isolation audit failed"):
                report.raise_on_failure()

            conn.execute("ALTER TABLE pull_requests DISABLE ROW LEVEL SECURITY")
            report = trained.flow.audit_isolation()
            leaks = [c for c in report.failures
                     if c.object == "public.pull_requests" and c.verdict == "LEAK"]
            assert len(leaks) == len({*LEARNABLE, TINY})
            assert leaks[0].other_clients

            result = CliRunner().invoke(app, ["verify", "isolation"],
                                        env={"DATABASE_URL": trained.url, "COLUMNS": "200"})
            assert isinstance(result.exception, IsolationBreach)
            assert "LEAK" in result.output
        finally:
            conn.execute("ALTER TABLE pull_requests ENABLE ROW LEVEL SECURITY")
            migrate.apply_idempotent(trained.url)
    assert trained.flow.audit_isolation().ok
