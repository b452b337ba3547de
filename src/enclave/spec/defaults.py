"""Where the embedded default spec and examples live."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
DEFAULT_SPEC = EXAMPLES / "lsst-ldf.yaml"


def default_spec_path() -> Path:
    """$ENCLAVE_SPEC if set, else the LSST LDF example shipped with enclave."""
    return Path(os.environ.get("ENCLAVE_SPEC", str(DEFAULT_SPEC)))
