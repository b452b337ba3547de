"""``enclave.broker.census.Census``: what a decision reads off its observation."""

from __future__ import annotations

from enclave.broker.census import Census
from enclave.domain.capacity import Startd, StartdKind


def _startd(name: str, node: str, kind: StartdKind, *, draining: bool = False) -> Startd:
    return Startd(name, node, kind, "drp", 8, 32 * 1024, draining=draining)


def test_names_are_those_a_new_pod_could_take() -> None:
    # A new worker pod is named htcondor-<node>-<n> (``naming.POD_PREFIX``): every borrowed startd's name counts
    # (pods and whole workers alike), and a standalone one's only when it starts with the prefix, draining or not.
    # A name holding the prefix elsewhere ("my-htcondor-x") is not one, nor is a node's name.
    borrowed = [_startd("htcondor-kub-001-1", "kub-001", StartdKind.POD),
                _startd("kub-002", "kub-002", StartdKind.NODE)]
    standalone = [_startd("condor-001", "condor-001", StartdKind.STANDALONE),
                  _startd("my-htcondor-x", "condor-002", StartdKind.STANDALONE)]
    pod_like = [_startd("htcondor-kub-003-1", "condor-003", StartdKind.STANDALONE, draining=True),
                _startd("htcondor-kub-004-2", "condor-004", StartdKind.STANDALONE)]
    assert Census.of(borrowed + standalone + pod_like).names == {"htcondor-kub-001-1", "kub-002",
                                                                 "htcondor-kub-003-1", "htcondor-kub-004-2"}
    assert Census.of(standalone + borrowed).names == {"htcondor-kub-001-1", "kub-002"}
