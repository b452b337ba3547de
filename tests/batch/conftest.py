"""Shared fixtures for the batch tests: the two example specs and ad builders."""

from __future__ import annotations

import pytest

from enclave.broker.model import Startd, StartdKind
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec

DEV = "lsst-dev01.ncsa.illinois.edu"
NOTEBOOK_SCHEDD = "schedd.jupyter-lsst.svc"


@pytest.fixture(scope="session")
def ldf() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


@pytest.fixture(scope="session")
def mini() -> EnclaveSpec:
    return load(EXAMPLES / "minimal.yaml")


def startd(pool: str, *, name: str = "condor-001", cores: int = 24, memory_mib: int = 131072,
           kind: StartdKind = StartdKind.STANDALONE, busy: int = 0) -> Startd:
    return Startd(name=name, node=name, kind=kind, pool=pool, cores=cores, memory_mib=memory_mib, busy_cores=busy)
