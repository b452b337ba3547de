"""Where the embedded default spec and the shipped scenarios live.

They are package data (``enclave/examples/``), read through importlib.resources, so an installed wheel
carries them (https://docs.python.org/3/library/importlib.resources.html). The top-level ``examples/``
of the source tree is a documented mirror for readers of the repository; ``tests/spec/test_packaging.py``
fails when the two differ.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

# A wheel installed by pip is unpacked on disk, so the resource is a real directory; str() of the
# Traversable is its path (a zip import would need resources.as_file, which enclave does not support).
EXAMPLES = Path(str(resources.files("enclave").joinpath("examples")))
DEFAULT_SPEC = EXAMPLES / "lsst-ldf.yaml"


def default_spec_path() -> Path:
    """$ENCLAVE_SPEC if set, else the LSST LDF example shipped with enclave."""
    return Path(os.environ.get("ENCLAVE_SPEC", str(DEFAULT_SPEC)))
