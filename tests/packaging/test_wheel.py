"""The built wheel carries everything enclave reads at run time (issue 18, "Packaging").

The shipped spec, scenarios and submit examples are package data under ``enclave/examples`` read through
importlib.resources; the top-level ``examples/`` is a mirror for readers of the repository and must agree.
The wheel test builds the wheel from this checkout, installs it into a fresh venv outside the checkout and runs
the main commands there, so a data file left out of the wheel fails here instead of at an operator's site.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MIRROR = ROOT / "examples"
SHIPPED = ROOT / "src" / "enclave" / "examples"


def _files(base: Path) -> dict[str, bytes]:
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def test_examples_mirror_agrees_with_the_package_data() -> None:
    mirror, shipped = _files(MIRROR), _files(SHIPPED)
    assert sorted(mirror) == sorted(shipped), "examples/ and src/enclave/examples/ list different files"
    differ = [name for name in mirror if mirror[name] != shipped[name]]
    assert not differ, f"edit src/enclave/examples/ and copy it to examples/ (cp -r); these differ: {differ}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Build from a copy, so the build's scratch (build/, *.egg-info) never lands in the checkout, and with
    # --no-build-isolation, so the setuptools and wheel already installed build it without network.
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out)], check=True, cwd=out)
    (built,) = out.glob("enclave-*.whl")
    return built


def test_wheel_holds_every_data_file_of_the_source_tree(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    src = ROOT / "src"
    data = {p.relative_to(src).as_posix() for p in (src / "enclave").rglob("*")
            if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts}
    assert data, "no data files found under src/ (wrong ROOT?)"
    assert data <= names, f"missing from the wheel: {sorted(data - names)}"


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with only the wheel installed; dependencies come from the test venv's
    site-packages through a .pth line (a plain path line: the test venv's own .pth files, among them the
    editable install pointing at a checkout, are not processed — see the `site` module documentation)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    pure = subprocess.run([str(venv / "bin" / "python"), "-c", where], check=True, capture_output=True,
                          text=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", pure, str(wheel)],
                   check=True)
    (Path(pure) / "zz-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _enclave(venv: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ENCLAVE_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), COLUMNS="250", ENCLAVE_DB=f"sqlite:///{home / 'enclave.db'}")
    code = "import sys; from enclave.main import main; sys.argv[0] = 'enclave'; main()"
    return subprocess.run([str(venv / "bin" / "python"), "-c", code, *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=300)


def test_installed_enclave_is_the_wheel_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    r = subprocess.run([str(installed / "bin" / "python"), "-c", "import enclave; print(enclave.__file__)"],
                       cwd=tmp_path, capture_output=True, text=True, check=True,
                       env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert r.stdout.strip().startswith(str(installed)), r.stdout


def test_installed_enclave_runs_the_main_commands(installed: Path, tmp_path: Path) -> None:
    ldf = yaml.safe_load((MIRROR / "lsst-ldf.yaml").read_text())
    scenarios = sorted(p.stem for p in (MIRROR / "scenarios").glob("*.yaml"))

    pools = _enclave(installed, tmp_path, "batch", "pools")
    assert pools.returncode == 0, pools.stderr + pools.stdout
    for name, pool in ldf["pools"].items():
        assert name in pools.stdout and pool["accounting_group"] in pools.stdout

    listed = _enclave(installed, tmp_path, "twin", "scenarios")
    assert listed.returncode == 0, listed.stderr + listed.stdout
    assert all(name in listed.stdout for name in scenarios), listed.stdout

    checked = _enclave(installed, tmp_path, "spec", "validate", str(MIRROR / "minimal.yaml"))
    assert checked.returncode == 0, checked.stderr + checked.stdout

    migrated = _enclave(installed, tmp_path, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr + migrated.stdout

    out = tmp_path / "rendered"
    rendered = _enclave(installed, tmp_path, "render", "all", "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr + rendered.stdout
    assert any(out.rglob("*.yaml")), "render all wrote no manifests"

    security = _enclave(installed, tmp_path, "security", "list")
    assert security.returncode == 0 and security.stdout.strip(), security.stderr
