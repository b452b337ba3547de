"""The deploy tests' fixtures: the strict API server fake and its adapter, and the bundle `enclave render deploy`
writes for each example spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.cli import app
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES
from tests.cluster.conftest import kube, server, spec  # noqa: F401  the strict API server fake and its adapter


@pytest.fixture(scope="module", params=["lsst-ldf.yaml", "minimal.yaml"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[EnclaveSpec, Path]:
    out = tmp_path_factory.mktemp("deploy")
    spec_path = EXAMPLES / request.param
    result = CliRunner().invoke(app, ["render", "deploy", "--spec", str(spec_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return load(spec_path), out
