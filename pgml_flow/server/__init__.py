"""Code that runs inside the PostgreSQL server process (plpython3u), behind ``sql/pgml``.

Imported by the bootstrap function ``pgml._bootstrap()`` after it has put the
``pgml.venv`` virtualenv on ``sys.path``.  Nothing heavy is imported here.
"""
