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
def test_make_demo_ignores_the_shells_database_and_says_where_it_keeps_its_own(tmp_path: Path) -> None:
    env = {**os.environ, "ENCLAVE_DB": "sqlite:////operators/real.db", "ENCLAVE_JOURNAL_KEY": "/operators/key"}
    # -n: print the recipe without running it. The install stamp is a fresh file of our own, newer than
    # pyproject.toml, so no install step is printed. Not the Makefile itself: make remakes a makefile that is
    # out of date with its prerequisites before reading it, and runs that recipe even under -n (GNU make
    # manual, "How Makefiles Are Remade"), which ran pip whenever a checkout left pyproject.toml the newer.
    stamp = tmp_path / "installed"
    stamp.touch()
    done = subprocess.run(["make", "-n", "demo", f"DEMO_STAMP={stamp}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    recipe = done.stdout
    assert "pip install" not in recipe
    assert f"ENCLAVE_HOME={ROOT}/.demo-home" in recipe
    assert "-u ENCLAVE_DB" in recipe and "-u ENCLAVE_JOURNAL_KEY" in recipe and "-u ENCLAVE_JOURNAL_ANCHOR" in recipe
    assert f"enclave demo: database, journal key and anchor in {ROOT}/.demo-home" in recipe
    assert "enclave serve" in recipe
