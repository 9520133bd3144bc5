"""The machine's shared folder (``../shared`` beside the checkout): the public datasets and
vendored sources, read at run time and never copied into the repository.

A clone made elsewhere (CI clones main into a fresh directory) has no ``../shared`` of its
own; then the folder beside the checkout it was cloned from (its ``origin``, a local path)
is used.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

#: the directory holding ``pgml_flow/`` (a checkout)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_path(*parts: str) -> Path:
    """``../shared/<parts>`` of this checkout, else of the local checkout it was cloned from;
    the first when neither exists (so that an error names where it looked)."""
    candidates = [PROJECT_ROOT.parent.joinpath("shared", *parts)]
    origin = subprocess.run(["git", "-C", str(PROJECT_ROOT), "config", "--get",
                             "remote.origin.url"],
                            capture_output=True, text=True, check=False).stdout.strip()
    if origin and "://" not in origin.removeprefix("file://") and ":" not in origin.split("/")[0]:
        candidates.append(Path(origin.removeprefix("file://")).resolve().parent.joinpath(
            "shared", *parts))
    return next((c for c in candidates if c.exists()), candidates[0])
