"""Seed §4 lifecycle: one person through every transition, checking access, data and the journal each step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from enclave import journal
from enclave.access.permissions import Permission
from enclave.access.render import render_access
from enclave.accounts import data, lifecycle, storage, tokens
from enclave.accounts.authorize import permissions_of
from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind, AccountStatus
from enclave.db import Database
from enclave.errors import Unauthenticated
from enclave.spec.models import EnclaveSpec, Role
from tests.accounts.conftest import ADMIN, LATER, NOW, onboard

PLATFORM = {Permission.NOTEBOOKS_SPAWN, Permission.BATCH_SUBMIT}


@dataclass
class View:
    status: str
    kind: str
    uid: int
    home: str
    quota: float
    perms: frozenset[Permission]
    bindings: dict[str, str]
    last: journal.Entry


def view(db: Database, spec: EnclaveSpec, username: str) -> View:
    with db.session() as s:
        a = lifecycle.get(s, username)
        objects = render_access(spec, storage.subjects(s))
        bindings = {ns: o["roleRef"]["name"] for ns, objs in objects.items() for o in objs
                    if o["kind"] == "RoleBinding" and o["subjects"][0]["name"] == username}
        last = journal.query(s, target=f"account/{username}", newest_first=True, limit=1)[0]
        assert journal.verify(s) > 0
        return View(a.status, a.kind, a.uid, a.home_path, a.quota_gib, permissions_of(s, username), bindings, last)


def reach(db: Database, username: str, path: str) -> tuple[bool, bool]:
    with db.session() as s:
        a = lifecycle.get(s, username)
        return data.can_read(a, path), data.can_write(a, path)


def token_ok(db: Database, token: str, **kw: Any) -> bool:
    with db.session() as s:
        try:
            tokens.verify(s, token, now=NOW, **kw)
            return True
        except Unauthenticated:
            return False


def test_one_person_through_every_transition(db: Database, spec: EnclaveSpec, admin: str) -> None:
    # 1. A science user joins with a small allocation: platform only, default quota (the larger of the two).
    onboard(db, spec, "carol", name="Carol Ng", email="carol@uni.edu",
            allocation=Allocation("P-100", quota_gib=50, expires=LATER))
    v = view(db, spec, "carol")
    assert (v.status, v.kind, v.home, v.quota) == ("active", "science", "/jhome/carol", 100)
    assert v.perms == PLATFORM and not v.bindings
    assert (v.last.action, v.last.actor, v.last.before) == ("accounts.onboard", ADMIN, None)
    assert v.last.after["workspace"] == "/jhome/carol/workspace" and v.last.after["roles"] == ["science-user"]
    uid, home = v.uid, v.home
    assert reach(db, "carol", "/jhome/carol/workspace/a.fits") == (True, True)
    assert reach(db, "carol", "/jhome/carolyn/x") == (False, False)
    assert reach(db, "carol", "/jhome/carol/../root/x") == (False, False)
    with db.session() as s:
        token = tokens.issue(s, "carol", "carol", ["*"], 3 * 365 * 86400 // 3, now=NOW)
    assert token_ok(db, token)

    # 2. A larger allocation raises the quota.
    with db.session() as s:
        lifecycle.grow_quota(s, ADMIN, "carol", 500, reason="proposal P-100 amended", proposal_id="P-100", now=NOW)
    v = view(db, spec, "carol")
    assert v.quota == 500 and v.last.action == "accounts.grow-quota"
    assert (v.last.before["quota_gib"], v.last.after["quota_gib"]) == (100, 500)

    # 3. The allocation expires: read access to own data only; every other service gone.
    with db.session() as s:
        lifecycle.expire(s, ADMIN, "carol", reason="allocation ended", now=NOW)
    v = view(db, spec, "carol")
    assert v.status == "expired" and v.perms == frozenset() and not v.bindings
    assert reach(db, "carol", "/jhome/carol/workspace/a.fits") == (True, False)
    assert not token_ok(db, token) and token_ok(db, token, data_read=True)
    assert (v.last.action, v.last.before["status"], v.last.after["status"]) == ("accounts.expire", "active",
                                                                                 "expired")
    assert v.last.after["roles"] == []

    # 4. A new allocation reactivates the same account.
    with db.session() as s:
        lifecycle.renew(s, ADMIN, "carol", Allocation("P-200", quota_gib=200, expires=LATER), reason="P-200",
                      spec=spec, now=NOW)
    v = view(db, spec, "carol")
    assert v.status == "active" and v.perms == PLATFORM and v.quota == 500 and v.uid == uid
    assert token_ok(db, token) and v.last.action == "accounts.renew"

    # 5. Science user becomes staff: same account, same data, staff access.
    with db.session() as s:
        lifecycle.promote(s, ADMIN, "carol", reason="hired by the project", now=NOW)
        lifecycle.join_namespace(s, ADMIN, spec, "carol", "firefly", reason="firefly developer", now=NOW)
    v = view(db, spec, "carol")
    assert (v.kind, v.uid, v.home, v.status) == ("staff", uid, home, "active")
    assert Permission.LOGS_READ in v.perms and v.perms >= PLATFORM
    assert v.bindings == {"firefly": "edit"}
    assert reach(db, "carol", "/jhome/carol/workspace/a.fits") == (True, True)
    assert v.last.action == "accounts.join-namespace"

    # 6. Staff becomes a science user: a NEW account; the old one is deactivated; old data unreachable.
    with db.session() as s:
        new = lifecycle.demote(s, ADMIN, spec, "carol", new_username="cng", reason="left the project, kept a proposal",
                             allocation=Allocation("P-300", expires=LATER), now=NOW)
        new_uid = new.uid
    old, fresh = view(db, spec, "carol"), view(db, spec, "cng")
    assert (old.status, old.perms, old.bindings) == ("departed", frozenset(), {})
    assert old.last.action == "accounts.demote" and old.last.after["replaced_by"] == "cng"
    assert (fresh.status, fresh.kind, fresh.perms, fresh.bindings) == ("active", "science", PLATFORM, {})
    assert fresh.home == "/jhome/cng" and new_uid != uid and fresh.last.action == "accounts.onboard"
    assert reach(db, "cng", "/jhome/carol/workspace/a.fits") == (False, False)
    assert reach(db, "carol", "/jhome/carol/workspace/a.fits") == (False, False)
    assert reach(db, "cng", "/jhome/cng/workspace/b.fits") == (True, True)
    assert not token_ok(db, token) and not token_ok(db, token, data_read=True)
    with db.session() as s:
        person = lifecycle.person_of(s, "cng")
        assert [a.username for a in person.accounts] == ["carol", "cng"]
        assert lifecycle.get(s, "carol").replaced_by == lifecycle.get(s, "cng").id
        assert lifecycle.get(s, "cng").gid != lifecycle.get(s, "carol").gid

    # 7. The new science account's allocation expires in turn.
    with db.session() as s:
        lifecycle.expire(s, ADMIN, "cng", reason="P-300 ended", now=NOW)
    assert reach(db, "cng", "/jhome/cng/workspace/b.fits") == (True, False)

    with db.session() as s:
        actions = [e.action for e in journal.query(s, action="accounts.*")
                   if e.target in ("account/carol", "account/cng")]
    assert actions == ["accounts.onboard", "accounts.grow-quota", "accounts.expire", "accounts.renew",
                       "accounts.promote", "accounts.join-namespace", "accounts.demote", "accounts.onboard",
                       "accounts.expire"]


def test_staff_departure_revokes_everything_at_once_and_keeps_data(db: Database, spec: EnclaveSpec,
                                                                     admin: str) -> None:
    onboard(db, spec, "dave", kind=AccountKind.STAFF, roles=[Role.DEVELOPER, Role.K8S_SERVICE_ADMIN],
            namespaces=["firefly", "qserv"])
    with db.session() as s:
        token = tokens.issue(s, ADMIN, "dave", ["*"], 86400, now=NOW)
    v = view(db, spec, "dave")
    assert v.bindings == {ns: "admin" for ns in ("jupyter-lsst", "firefly", "qserv", "portal")}
    assert Permission.BATCH_PODS in v.perms
    with db.session() as s:
        lifecycle.depart(s, ADMIN, "dave", reason="left LSST", now=NOW)
    v = view(db, spec, "dave")
    assert (v.status, v.perms, v.bindings, v.home) == ("departed", frozenset(), {}, "/jhome/dave")
    assert v.last.before["roles"] == ["developer", "k8s-service-admin"] and v.last.after["roles"] == []
    assert v.last.before["namespaces"] == ["firefly", "qserv"] and v.last.after["namespaces"] == []
    assert not token_ok(db, token) and not token_ok(db, token, data_read=True)
    assert reach(db, "dave", "/jhome/dave") == (False, False)
    with db.session() as s:
        assert all(t.revoked_at is not None for t in tokens.list_tokens(s, "dave"))
        assert lifecycle.get(s, "dave").ended_at is not None


def test_returning_person_gets_a_new_account(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "erin", kind=AccountKind.STAFF, email="erin@lsst.org")
    with db.session() as s:
        lifecycle.depart(s, ADMIN, "erin", reason="contract ended", now=NOW)
    onboard(db, spec, "erin2", kind=AccountKind.STAFF, email="erin@lsst.org")
    with db.session() as s:
        assert [a.username for a in lifecycle.person_of(s, "erin2").accounts] == ["erin", "erin2"]
        assert lifecycle.get(s, "erin").status == AccountStatus.DEPARTED


def test_uids_homes_and_quota_follow_the_spec(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "f1")
    onboard(db, spec, "f2", allocation=Allocation("P-9", quota_gib=1000))
    onboard(db, spec, "f3", uid=50_000)
    onboard(db, spec, "f4")
    with db.session() as s:
        a = {n: lifecycle.get(s, n) for n in ("root", "f1", "f2", "f3", "f4")}
    assert [a[n].uid for n in ("root", "f1", "f2", "f3", "f4")] == [10_000, 10_001, 10_002, 50_000, 50_001]
    assert all(x.gid == x.uid for x in a.values())
    assert a["f1"].quota_gib == spec.storage.home_quota_gib == 100
    assert a["f2"].quota_gib == 1000 and a["f2"].allocation_id == "P-9"
    assert a["f1"].workspace_path == f"{spec.storage.home_root}/f1/{spec.storage.workspace_subdir}"


def test_expire_due_expires_only_past_allocations(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "g1", allocation=Allocation("P-1", expires=NOW + timedelta(days=10)))
    onboard(db, spec, "g2", allocation=Allocation("P-2", expires=NOW + timedelta(days=100)))
    onboard(db, spec, "g3")
    with db.session() as s:
        done = lifecycle.expire_due(s, ADMIN, now=NOW + timedelta(days=30))
        assert [a.username for a in done] == ["g1"]
        assert lifecycle.get(s, "g2").status == "active" and lifecycle.get(s, "g3").status == "active"
        assert journal.query(s, action="accounts.expire")[0].reason == "allocation expiry date passed"


def test_bootstrap_only_on_an_empty_enclave(db: Database, spec: EnclaveSpec, unchanged: Any) -> None:
    with db.session() as s:
        first = lifecycle.bootstrap(s, spec, "root", name="Root", email="root@lsst.org", now=NOW)
        assert lifecycle.roles_of(s, "root") == [Role.DEVELOPER, Role.SYSADMIN] and first.kind == "staff"
    from enclave.errors import Conflict
    err = unchanged(lambda s: lifecycle.bootstrap(s, spec, "other", name="O", email="o@x.org"), Conflict)
    assert "already has 1 account" in str(err)
    with db.session() as s:
        entry = journal.query(s)[0]
        assert (entry.actor, entry.action, entry.target) == ("bootstrap", "accounts.bootstrap", "account/root")


@pytest.mark.parametrize("role", [Role.SYSADMIN])
def test_the_last_sysadmin_cannot_be_removed(db: Database, spec: EnclaveSpec, admin: str, unchanged: Any,
                                             role: Role) -> None:
    from enclave.errors import InvalidTransition
    unchanged(lambda s: lifecycle.depart(s, ADMIN, ADMIN, reason="bye"), InvalidTransition)
    unchanged(lambda s: lifecycle.revoke_role(s, ADMIN, ADMIN, role, reason="oops"), InvalidTransition)
    unchanged(lambda s: lifecycle.demote(s, ADMIN, spec, ADMIN, new_username="r2", reason="x"), InvalidTransition)
    onboard(db, spec, "second", kind=AccountKind.STAFF, roles=[Role.SYSADMIN])
    with db.session() as s:
        lifecycle.depart(s, "second", ADMIN, reason="handover", now=NOW)
    with db.session() as s:
        assert lifecycle.get(s, ADMIN).status == "departed"


def test_concurrent_onboarding_gets_distinct_uids(db: Database, spec: EnclaveSpec, admin: str) -> None:
    import threading
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                onboard(db, spec, f"c{n}x{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with db.session() as s:
        uids = [a.uid for a in lifecycle.list_accounts(s)]
        assert len(uids) == 21 and len(set(uids)) == 21
        assert journal.verify(s) == 21


def test_a_lost_race_is_a_conflict(db: Database, spec: EnclaveSpec, admin: str) -> None:
    from enclave.accounts.models import Person
    from enclave.errors import Conflict
    with pytest.raises(Conflict, match="concurrent"), db.session() as s:
        s.add(Person(name="X", email="root@lsst.org", created_at=NOW))
