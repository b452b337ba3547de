"""`make demo` runs in its own home (issue 16): its broker journals simulated moves, which must never land in
the database the shell's $ENCLAVE_DB names."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_ignores_the_shells_database_and_says_where_it_keeps_its_own() -> None:
    env = {**os.environ, "ENCLAVE_DB": "sqlite:////operators/real.db", "ENCLAVE_JOURNAL_KEY": "/operators/key"}
    # -n: print the recipe without running it; the stamp is made current so no install step is printed.
    done = subprocess.run(["make", "-n", "demo", "STAMP=Makefile"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    recipe = done.stdout
    assert f"ENCLAVE_HOME={ROOT}/.demo-home" in recipe
    assert "-u ENCLAVE_DB" in recipe and "-u ENCLAVE_JOURNAL_KEY" in recipe and "-u ENCLAVE_JOURNAL_ANCHOR" in recipe
    assert f"enclave demo: database, journal key and anchor in {ROOT}/.demo-home" in recipe
    assert "enclave serve" in recipe
