"""pgml_models: the pgml client (typed Python over psycopg) and the model specs.

``PgmlClient`` speaks the pgml SQL API, so it works on pgml-flow's implementation
and on a server with the real PostgresML extension alike.
"""

from pgml_models.client import Deployment, ModelInfo, PgmlClient, ProjectInfo, TrainOutcome

__all__ = ["Deployment", "ModelInfo", "PgmlClient", "ProjectInfo", "TrainOutcome"]
