"""The layering is a contract: import-linter keeps it (``.importlinter``), and these tests show the contract bites.

A copy of the source with one wrong-way import planted must fail the lint — otherwise a green lint would prove
nothing. And every SQL statement lives in a storage module (or the database package itself)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "enclave"
LINT = Path(sys.executable).parent / "lint-imports"


def lint(source_root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts over the package found under ``source_root``."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run([str(LINT), str(ROOT / ".importlinter"), "--no-cache"], cwd=source_root,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def planted(tmp_path: Path, module: str, line: str) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy / "enclave", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "enclave" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return copy


def test_the_contracts_hold() -> None:
    done = lint(ROOT / "src")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout or " broken" not in done.stdout.split("Contracts:")[-1]


@pytest.mark.parametrize(("module", "line", "contract"), [
    # The base must not know a front end.
    ("spec/models.py", "import enclave.cli  # noqa", "Front ends above services"),
    # A front end must not open the database itself.
    ("cli/spec.py", "from enclave.db import Database  # noqa", "Front ends reach storage"),
    # The decision code must not talk to the cluster.
    ("broker/decide.py", "import enclave.cluster.kube  # noqa", "The decision code is pure"),
    # Neither front end imports the other.
    ("api/plain.py", "import enclave.cli.options  # noqa", "Front ends above services"),
    # The twin never reaches the live adapters.
    ("twin/metrics.py", "import enclave.batch.live  # noqa", "The twin never meets"),
])
def test_a_planted_wrong_import_fails_the_lint(tmp_path: Path, module: str, line: str, contract: str) -> None:
    done = lint(planted(tmp_path, module, line))
    assert done.returncode != 0, done.stdout[-2000:]
    broken = done.stdout.split("Broken contracts")[-1]
    assert contract in broken, broken[-2000:]


SQL_CALLS = {"select", "insert", "update", "delete", "text", "func"}
SESSION_CALLS = {"execute", "scalar", "scalars", "add", "add_all", "get", "get_one", "query"}


def sql_sites(path: Path) -> list[str]:
    """Calls that build or run SQL: ``sa.select(…)``, ``session.execute(…)``, ``session.add(…)`` and the like."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner, name = node.func.value, node.func.attr
        owner_name = owner.id if isinstance(owner, ast.Name) else ""
        if (owner_name == "sa" and name in SQL_CALLS) or (owner_name == "session" and name in SESSION_CALLS):
            found.append(f"{path.relative_to(SRC)}:{node.lineno} {owner_name}.{name}")
    return found


def test_sql_lives_only_in_storage_modules() -> None:
    outside = [site for path in SRC.rglob("*.py")
               if path.name != "storage.py" and "db" not in path.relative_to(SRC).parts[:1]
               for site in sql_sites(path)]
    assert outside == []


def test_the_sql_finder_finds_sql() -> None:
    """The check above would pass vacuously if it found nothing anywhere."""
    assert any("sa.select" in s for s in sql_sites(SRC / "accounts" / "storage.py"))
    assert any("session.execute" in s for s in sql_sites(SRC / "journal" / "storage.py"))
