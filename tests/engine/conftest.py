"""Import the engine before any test module imports scikit-learn.

The engine sets ``OMP_WAIT_POLICY`` on import, which only takes effect if it happens
before an OpenMP runtime is loaded (see ``pgml_flow/engine/__init__.py``).
"""

import pgml_flow.engine  # noqa: F401
