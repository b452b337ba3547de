"""Image vetting on SQLite and PostgreSQL: roles, four-eyes, transitions, journal, admission policy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import Conflict, InputError, InvalidTransition, NotFound, PermissionDenied
from enclave.journal import verify
from enclave.journal.models import JournalEntry
from enclave.ops import images
from enclave.ops.admission import allows, render_admission, validate_policy
from enclave.spec.models import EnclaveSpec, Role
from tests.accounts.conftest import admin, db, onboard, spec, unchanged  # noqa: F401
from tests.pg import database, postgres_server  # noqa: F401

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
LAB = "registry.lsst.local/lsstsqre/sciplat-lab"
Refuse = Callable[[Callable[[Session], object], type[Exception]], Exception]


@pytest.fixture
def people(db: Database, spec: EnclaveSpec, admin: str) -> Database:  # noqa: F811
    onboard(db, spec, "svc", kind=AccountKind.STAFF, roles=[Role.K8S_SERVICE_ADMIN])
    onboard(db, spec, "sec1", kind=AccountKind.STAFF, roles=[Role.SECURITY])
    onboard(db, spec, "sec2", kind=AccountKind.STAFF, roles=[Role.SECURITY])
    onboard(db, spec, "sci", kind=AccountKind.SCIENCE)
    return db


def test_submit_approve_list_and_journal(people: Database, spec: EnclaveSpec) -> None:  # noqa: F811
    with people.session() as s:
        images.submit(s, spec, "svc", f"{LAB}:w_2018_25@{D1}", reason="weekly build")
        images.submit(s, spec, "svc", f"{LAB}:r16_0@{D2}")
        assert images.approved_digests(s) == []
    with people.session() as s:
        row = images.approve(s, "sec1", f"{LAB}@{D1}", reason="scan clean")
        assert row.status == "approved" and row.decided_by == "sec1"
    with people.session() as s:
        assert images.approved_digests(s) == [f"{LAB}@{D1}"]
        assert images.approved_digests(s, "other.registry") == []
        vetted = images.vetter(s)
        assert vetted(f"{LAB}@{D1}") and vetted(f"{LAB}:w_2018_25")
        assert not vetted(f"{LAB}@{D2}") and not vetted(f"{LAB}:r16_0") and not vetted("nonsense")
        assert images.pin(s, f"{LAB}:w_2018_25") == f"{LAB}@{D1}"
        assert [r.status for r in images.listing(s)] == ["approved", "submitted"]
        actions = [e.action for e in s.execute(sa.select(JournalEntry).order_by(JournalEntry.seq)).scalars()]
        assert actions[-3:] == ["images.submit", "images.submit", "images.approve"]
        assert verify(s) > 0
    with people.session() as s:  # security withdraws an approval: the digest is no longer offered
        images.reject(s, "sec2", f"{LAB}@{D1}", reason="CVE found after approval")
        assert images.approved_digests(s) == []
        with pytest.raises(NotFound):
            images.pin(s, f"{LAB}:w_2018_25")


def test_refusals_change_nothing(people: Database, spec: EnclaveSpec, unchanged: Refuse) -> None:  # noqa: F811
    with people.session() as s:
        images.submit(s, spec, "sec1", f"{LAB}@{D1}")
    unchanged(lambda s: images.approve(s, "sec1", f"{LAB}@{D1}", reason="mine"), PermissionDenied)  # four eyes
    unchanged(lambda s: images.approve(s, "svc", f"{LAB}@{D1}", reason="ok"), PermissionDenied)     # not security
    unchanged(lambda s: images.submit(s, spec, "sci", f"{LAB}@{D2}"), PermissionDenied)
    unchanged(lambda s: images.submit(s, spec, "nobody", f"{LAB}@{D2}"), NotFound)
    unchanged(lambda s: images.submit(s, spec, "svc", f"{LAB}:latest"), InputError)            # no digest
    unchanged(lambda s: images.submit(s, spec, "svc", f"docker.io/library/python@{D2}"), InputError)
    unchanged(lambda s: images.submit(s, spec, "svc", f"{LAB}@{D1}"), Conflict)                # pending
    unchanged(lambda s: images.approve(s, "sec2", f"{LAB}@{D1}", reason=" "), InputError)
    unchanged(lambda s: images.approve(s, "sec2", f"{LAB}@{D2}", reason="x"), NotFound)
    unchanged(lambda s: images.approve(s, "sec2", f"{LAB}:tag", reason="x"), InputError)
    with people.session() as s:
        images.reject(s, "sec2", f"{LAB}@{D1}", reason="unknown base image")
    unchanged(lambda s: images.approve(s, "sec2", f"{LAB}@{D1}", reason="changed mind"), InvalidTransition)
    unchanged(lambda s: images.reject(s, "sec2", f"{LAB}@{D1}", reason="again"), InvalidTransition)
    with people.session() as s:  # resubmission reopens it, and another security member may approve
        images.submit(s, spec, "svc", f"{LAB}@{D1}", reason="base image documented")
        images.approve(s, "sec2", f"{LAB}@{D1}", reason="provenance ok")
        assert images.approved_digests(s) == [f"{LAB}@{D1}"]


def test_admission_policy_allows_only_approved(people: Database, spec: EnclaveSpec) -> None:  # noqa: F811
    with people.session() as s:
        empty = render_admission(spec, images.approved(s))
        images.submit(s, spec, "svc", f"{LAB}@{D1}")
        images.submit(s, spec, "svc", f"{LAB}@{D2}")
        images.approve(s, "sec1", f"{LAB}@{D1}", reason="ok")
        policy = render_admission(spec, images.approved(s))[0]
    validate_policy(empty[0])
    validate_policy(policy)
    assert not allows(empty[0], f"{LAB}@{D1}")  # nothing approved: everything refused
    assert allows(policy, f"{LAB}@{D1}")
    assert not allows(policy, f"{LAB}@{D2}") and not allows(policy, f"{LAB}:w_2018_25")
    # Kyverno ≥ 1.13 (the spec's default 1.13): the failure action on each validate rule
    assert {r["validate"]["failureAction"] for r in policy["spec"]["rules"]} == {"Enforce"}


def test_schema_catches_a_broken_policy(spec: EnclaveSpec) -> None:  # noqa: F811
    policy = render_admission(spec, [])[0]
    policy["spec"]["validationFailureAction"] = "Block"
    policy["spec"]["rules"][0]["validate"]["foreach"][0]["deny"]["conditions"]["all"][0]["operator"] = "NotInside"
    policy["spec"]["rules"][0]["matchh"] = {}
    with pytest.raises(InputError) as e:
        validate_policy(policy)
    assert len(e.value.problems) == 3


def test_the_notebook_side_counts_only_what_the_policy_admits(people: Database, spec: EnclaveSpec) -> None:  # noqa: F811
    """An image approved while vetting was off (submit checks the registry only when vetting is required) is not
    from the spec's registry, so the rendered policy leaves it out: the hub must neither offer nor pin it."""
    from enclave.services.images import ImageService

    lax = spec.model_copy(update={"registry": spec.registry.model_copy(update={"vetting_required": False})})
    elsewhere = "docker.io/jupyter/base-notebook"
    with people.session() as s:
        images.submit(s, lax, "svc", f"{elsewhere}:lab@{D1}")
        images.approve(s, "sec1", f"{elsewhere}@{D1}", reason="reviewed before vetting was required")
        images.submit(s, spec, "svc", f"{LAB}:w_2018_25@{D2}")
        images.approve(s, "sec1", f"{LAB}@{D2}", reason="ok")
        policy = render_admission(spec, images.approved(s))[0]
    assert not allows(policy, f"{elsewhere}@{D1}", spec.notebooks.namespace)
    service = ImageService(people, spec)
    vetted = service.vetter()
    assert not vetted(f"{elsewhere}@{D1}") and not vetted(f"{elsewhere}:lab")
    assert vetted(f"{LAB}@{D2}") and vetted(f"{LAB}:w_2018_25")
    with pytest.raises(NotFound, match="not from registry.lsst.local"):
        service.pin(f"{elsewhere}:lab")
    assert service.pin(f"{LAB}:w_2018_25") == f"{LAB}@{D2}"


def test_what_is_vetted_is_one_digest_of_one_repository_in_the_registry(
        people: Database, spec: EnclaveSpec) -> None:  # noqa: F811
    """What the hub offers and pins (``vetter``, ``pin``) is exactly what security approved: the repository and the
    digest (or the tag's newest approval), in the registry itself — not a registry whose name merely begins the
    same, not another repository with that digest or tag, not a digest only submitted or since rejected. A mutation
    round (stop 57) changed each of these and no test failed."""
    from enclave.services.images import ImageService

    lax = spec.model_copy(update={"registry": spec.registry.model_copy(update={"vetting_required": False})})
    lookalike = "registry.lsst.local.example.org/lsstsqre/sciplat-lab"
    other = "registry.lsst.local/lsstsqre/other"
    d3, d4 = "sha256:" + "c" * 64, "sha256:" + "d" * 64
    with people.session() as s:
        images.submit(s, spec, "svc", f"{LAB}:weekly@{D1}")
        images.approve(s, "sec1", f"{LAB}@{D1}", reason="scan clean")
        images.submit(s, spec, "svc", f"{LAB}:weekly@{D2}")  # the tag moved: its newest approval is what it means
        images.approve(s, "sec1", f"{LAB}@{D2}", reason="scan clean")
        images.submit(s, lax, "svc", f"{lookalike}:weekly@{d3}")
        images.approve(s, "sec1", f"{lookalike}@{d3}", reason="approved while vetting was off")
        images.submit(s, spec, "svc", f"{other}:pending@{d3}")  # submitted, never approved
        assert [a.pinned for a in images.approved(s, "registry.lsst.local")] == [f"{LAB}@{D1}", f"{LAB}@{D2}"]
    service = ImageService(people, spec)
    vetted = service.vetter()
    assert vetted(f"{LAB}@{D1}") and vetted(f"{LAB}:weekly")
    assert not vetted(f"{other}@{D1}") and not vetted(f"{other}:weekly")  # same digest or tag, other repository
    assert not vetted(f"{lookalike}@{d3}")
    assert service.pin(f"{LAB}:weekly") == f"{LAB}@{D2}"
    with pytest.raises(NotFound, match="not from registry.lsst.local"):
        service.pin(f"{lookalike}:weekly")
    with pytest.raises(NotFound, match="is not approved"):
        service.pin(f"{other}@{d3}")
    with people.session() as s:
        images.reject(s, "sec2", f"{LAB}@{D2}", reason="CVE found")
    with pytest.raises(NotFound, match="is not approved"):
        service.pin(f"{LAB}@{D2}")
    assert service.pin(f"{LAB}:weekly") == f"{LAB}@{D1}"  # the tag falls back to what is still approved
    # A name with neither tag nor digest means :latest, which moves: never pinned, even with :latest approved.
    with people.session() as s:
        images.submit(s, spec, "svc", f"{LAB}:latest@{d4}")
        images.approve(s, "sec1", f"{LAB}@{d4}", reason="scan clean")
        pinned = images.pinner(images.approved(s))
    assert pinned(f"{LAB}:latest") == f"{LAB}@{d4}" and pinned(LAB) is None
