"""DB-free unit tests of pgml_flow.engine (the code that runs inside the backend)."""
