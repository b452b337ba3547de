"""A token's holder driving a twin from the CLI is held to the token's scopes, as the enclave's API holds it
(``BrokerService.scopes``; review, stop 48: the twin took the account's roles alone)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from enclave.access.permissions import Permission
from enclave.broker.layout import initial_state
from enclave.db import Database
from enclave.domain.capacity import Relabel
from enclave.errors import PermissionDenied
from enclave.services.broker import BrokerService
from tests.broker.conftest import CONDOR_ADMIN, NOW, MemoryBackend, make_spec


def _move(broker: BrokerService, backend: MemoryBackend) -> Relabel:
    s = backend.state.startds[0]
    return Relabel(actor=CONDOR_ADMIN, reason="r", startd=s.name, from_pool=s.pool,
                   to_pool="user" if s.pool != "user" else "drp")


def _broker(db: Database) -> tuple[BrokerService, MemoryBackend]:
    spec = make_spec(broker={"cooldown_seconds": 0})
    backend = MemoryBackend(replace(initial_state(spec, NOW - 100_000), now=NOW))
    return BrokerService(spec, db, backend, "memory"), backend


def test_a_token_scoped_away_from_relabelling_may_not_relabel_on_the_twin(db: Database) -> None:
    # The API checks each permission of the action against the token (routes.broker: caller.need_scope); the
    # htcondor admin's roles grant batch.relabel, but a journal.read token does not.
    broker, backend = _broker(db)
    broker.scopes = frozenset({Permission.JOURNAL_READ})
    with pytest.raises(PermissionDenied, match="this token may not use batch.relabel"):
        broker.apply(_move(broker, backend))
    assert backend.applied == []


def test_a_token_with_the_scope_relabels_and_one_without_scopes_is_the_roles_alone(db: Database) -> None:
    broker, backend = _broker(db)
    broker.scopes = frozenset({Permission.BATCH_RELABEL})
    assert broker.apply(_move(broker, backend)).applied
    broker.scopes = None  # local mode: the roles decide
    assert broker.apply(_move(broker, backend)).applied
