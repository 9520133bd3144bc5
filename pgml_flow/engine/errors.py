"""Finer error classes for the in-database engine.

All derive from :class:`pgml_flow.errors.ModelError`, so the SQL layer can catch one
class and turn it into ``plpy.error(str(exc))``; tests and callers that care can
catch the specific subclass.  Messages name the column / algorithm / value at fault
and say what to do, because the user sees them as a PostgreSQL ERROR line and has
nothing else to go on.
"""

from __future__ import annotations

from pgml_flow.errors import ModelError


class InvalidArgument(ModelError):
    """An argument of pgml.train / pgml.predict is invalid."""


class UnsupportedAlgorithm(InvalidArgument):
    """This algorithm is not available for this task."""


class InvalidHyperparams(InvalidArgument):
    """The hyperparams (or search_params / search_args) are invalid for this algorithm."""


class InvalidPreprocess(InvalidArgument):
    """The preprocess JSON is invalid."""


class DataError(ModelError):
    """The training or prediction data cannot be used as is."""


class SplitError(DataError):
    """The data cannot be split into train and test sets as asked."""


class FeatureCountMismatch(DataError):
    """The number of features does not match the model."""

    #: SQLSTATE of the SQL error: invalid_parameter_value (the features argument)
    sqlstate = "22023"
    hint = "Pass one value per feature, in the column order the model was trained on."


class TrainingFailed(ModelError):
    """The estimator failed to train."""


class IncompatibleModel(ModelError):
    """The stored model cannot be loaded by this installation; retrain it."""


class NonFiniteFeature(DataError):
    """A feature is NaN, NULL or an infinity that this model cannot score."""

    #: SQLSTATE of the SQL error: invalid_parameter_value (the features argument)
    sqlstate = "22023"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
