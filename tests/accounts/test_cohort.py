"""Onboarding a cohort: all rows or none, every problem reported, one journal entry per account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from enclave import journal
from enclave.accounts import lifecycle
from enclave.accounts.authorize import permissions_of
from enclave.accounts.cohort import parse_cohort
from enclave.accounts.lifecycle import Allocation, NewAccount
from enclave.accounts.models import Person
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import InputError, PermissionDenied
from enclave.spec.models import EnclaveSpec, Role
from tests.accounts.conftest import ADMIN, LATER, NOW, onboard
from tests.local import map_me, use_database

CSV = """username,name,email,kind,roles,namespaces,proposal,quota_gib,expires,uid
amy,Amy A,amy@uni.edu,science,,,P-1,400,2099-01-01,
bob,Bob B,bob@lsst.org,staff,developer;security,firefly;qserv,,,,
cat,Cat C,cat@uni.edu,science,,,,,,60000
"""


def test_parse_cohort() -> None:
    rows = parse_cohort(CSV)
    assert [r.username for r in rows] == ["amy", "bob", "cat"]
    assert rows[0].allocation is not None and rows[0].allocation.quota_gib == 400
    assert rows[0].allocation.expires is not None and rows[0].allocation.expires.tzinfo is not None
    assert rows[1].roles == (Role.DEVELOPER, Role.SECURITY) and rows[1].namespaces == ("firefly", "qserv")
    assert rows[2].uid == 60000 and rows[2].roles is None


def test_a_byte_order_mark_is_not_part_of_the_first_column() -> None:
    """Excel's "CSV UTF-8" export begins with U+FEFF (review, stop 48: "unknown column(s) \ufeffusername")."""
    [row] = parse_cohort("\ufeffusername,name,email,kind\namy,Amy,amy@x.org,science\n", "c.csv")
    assert row.username == "amy"


@pytest.mark.parametrize("text,where,what", [
    ("username,name\nx,y\n", "c.csv:1", "missing column(s) email, kind"),
    ("username,name,email,kind,colour\n", "c.csv:1", "unknown column(s) colour"),
    ("username,name,email,kind\n", "c.csv", "has no rows"),
    ("username,name,email,kind\nx,X,x@y.org,admin\n", "c.csv:2: kind", "not staff or science"),
    ("username,name,email,kind,roles\nx,X,x@y.org,staff,wizard\n", "c.csv:2: roles", "unknown role"),
    ("username,name,email,kind,expires\nx,X,x@y.org,science,soon\n", "c.csv:2: expires", "not a date"),
    ("username,name,email,kind,uid\nx,X,x@y.org,science,1.5\n", "c.csv:2: uid", "not a whole number"),
    # Review, stop 48: DictReader dropped fields past the header and kept a repeated column's last value.
    ("username,name,email,kind\namy,Amy,amy@x.org,science,EXTRA,MORE\n", "c.csv:2", "has 6 fields, the header 4"),
    ("username,name,email,kind,kind\nbob,Bob,bob@x.org,science,staff\n", "c.csv:1",
     "column(s) kind named more than once"),
])
def test_parse_errors_point_at_the_line(text: str, where: str, what: str) -> None:
    with pytest.raises(InputError) as info:
        parse_cohort(text, "c.csv")
    assert info.value.problems[0].where == where and what in info.value.problems[0].what


def test_cohort_onboards_everyone_with_journal(db: Database, spec: EnclaveSpec, admin: str) -> None:
    with db.session() as s:
        created = lifecycle.onboard_many(s, ADMIN, spec, parse_cohort(CSV), reason="spring cohort", now=NOW)
        assert [a.uid for a in created] == [10_001, 10_002, 60_000]
    with db.session() as s:
        assert lifecycle.get(s, "amy").quota_gib == 400
        assert permissions_of(s, "bob") >= {*permissions_of(s, "amy")}
        entries = journal.query(s, action="accounts.onboard")
        assert [e.target for e in entries] == ["account/amy", "account/bob", "account/cat"]
        assert all(e.reason == "spring cohort" and e.actor == ADMIN for e in entries)
        assert entries[1].after["namespaces"] == ["firefly", "qserv"]
        # bob's security is beyond a staff account's default (developer): a grant, journaled as one, from the
        # default alone to both.
        grants = journal.query(s, action="roles.grant")
        assert [(e.target, e.before, e.after) for e in grants] == [
            ("account/bob", {"roles": ["developer"]}, {"roles": ["developer", "security"]})]
        assert journal.verify(s) == 5


def test_one_bad_row_onboards_nobody(db: Database, spec: EnclaveSpec, admin: str, unchanged: Any) -> None:
    onboard(db, spec, "taken", email="taken@uni.edu")
    rows = [
        NewAccount("ok1", "Ok", "ok1@uni.edu", AccountKind.SCIENCE),
        NewAccount("taken", "T", "t2@uni.edu", AccountKind.SCIENCE),
        NewAccount("dup", "D", "taken@uni.edu", AccountKind.SCIENCE),
        NewAccount("ok1", "Again", "ok1b@uni.edu", AccountKind.SCIENCE),
        NewAccount("sci", "S", "s@uni.edu", AccountKind.SCIENCE, roles=(Role.SYSADMIN,)),
        NewAccount("old", "O", "o@uni.edu", AccountKind.SCIENCE,
                   allocation=Allocation("P", expires=NOW.replace(year=2000))),
        NewAccount("u1", "U", "u1@uni.edu", AccountKind.SCIENCE, uid=70_000),
        NewAccount("u2", "U", "u2@uni.edu", AccountKind.SCIENCE, uid=70_000),
        NewAccount("u3", "U", "u3@uni.edu", AccountKind.SCIENCE, uid=10_001),  # taken's (root has 10,000)
    ]
    err = unchanged(lambda s: lifecycle.onboard_many(s, ADMIN, spec, rows, reason="r", now=NOW), InputError)
    wheres = [p.where for p in err.problems]
    assert wheres == ["row 2 (taken) username", "row 3 (dup) email", "row 4 (ok1) username", "row 5 (sci) roles",
                      "row 6 (old) allocation expiry", "row 8 (u2) uid", "row 9 (u3) uid"], wheres
    # A repeated username is a person listed twice; a repeated uid, two accounts given one.
    fixes = {p.where: (p.what, p.fix) for p in err.problems}
    assert fixes["row 4 (ok1) username"] == ("repeats row 1", "list each person once")
    assert fixes["row 8 (u2) uid"] == ("repeats row 7", "give each account its own")
    assert fixes["row 9 (u3) uid"] == ("10001 is already in use", "leave the uid out")


def test_uids_handed_out_in_a_cohort_skip_those_its_rows_give(db: Database, spec: EnclaveSpec, admin: str) -> None:
    # root holds 10,000, so the next free uid is 10,001; a later row asks for that one itself.
    rows = [NewAccount("first", "F", "f@uni.edu", AccountKind.SCIENCE),
            NewAccount("given", "G", "g@uni.edu", AccountKind.SCIENCE, uid=10_001)]
    with db.session() as s:
        made = lifecycle.onboard_many(s, ADMIN, spec, rows, reason="r", now=NOW)
        assert [(a.username, a.uid) for a in made] == [("first", 10_002), ("given", 10_001)]


def test_cohort_needs_accounts_manage(db: Database, spec: EnclaveSpec, admin: str, unchanged: Any) -> None:
    """Refused for want of accounts.manage, not only of roles.grant: the cohort grants no role beyond each kind's
    default (bob's developer;security was the only grant, and was refusal enough while the manage check was
    missing, a mutant found)."""
    onboard(db, spec, "plain")
    rows = [row for row in parse_cohort(CSV) if not row.roles]
    assert [row.username for row in rows] == ["amy", "cat"]
    err = unchanged(lambda s: lifecycle.onboard_many(s, "plain", spec, rows, reason="r"), PermissionDenied)
    assert "may not accounts.manage" in str(err)


def test_import_cli(db: Database, admin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from enclave.cli import app
    use_database(monkeypatch, db.url, tmp_path)
    map_me(db)
    (tmp_path / "c.csv").write_text(CSV)
    result = CliRunner().invoke(app, ["accounts", "import", str(tmp_path / "c.csv"), "--as", ADMIN, "--reason", "c"])
    assert result.exit_code == 0 and "onboarded 3 account(s)" in result.output, result.output
    missing = CliRunner().invoke(app, ["accounts", "import", str(tmp_path / "nope.csv"), "--as", ADMIN,
                                       "--reason", "c"])
    assert isinstance(missing.exception, InputError) and "cannot read" in str(missing.exception)


def test_record_many_chains_like_record(db: Database) -> None:
    with db.session() as s:
        journal.record(s, actor="a", action="x.one", target="t/1", reason="r", before=None, after=1, at=LATER)
        entries = journal.record_many(s, [journal.Change("b", "x.many", f"t/{i}", "r", None, i) for i in range(3)])
        assert [e.seq for e in entries] == [2, 3, 4]
        assert journal.record_many(s, []) == []
    with db.session() as s:
        assert journal.verify(s) == 4


def test_cohort_reuses_a_returning_person_and_matches_single_onboard(db: Database, spec: EnclaveSpec,
                                                                      admin: str) -> None:
    onboard(db, spec, "gone", kind=AccountKind.STAFF, email="back@lsst.org", namespaces=["qserv"])
    with db.session() as s:
        lifecycle.depart(s, ADMIN, "gone", reason="left", now=NOW)
    rows = [NewAccount("back", "Back Again", "Back@LSST.org", AccountKind.STAFF, roles=(Role.DEVELOPER,),
                       namespaces=("firefly", "qserv", "firefly")),
            NewAccount("zed", "Zed", "zed@uni.edu", AccountKind.SCIENCE,
                       allocation=Allocation("P-5", quota_gib=250, expires=LATER))]
    with db.session() as s:
        created = lifecycle.onboard_many(s, ADMIN, spec, rows, reason="cohort", now=NOW)
        assert [a.username for a in created] == ["back", "zed"]
    onboard(db, spec, "single", allocation=Allocation("P-5", quota_gib=250, expires=LATER), name="Zed",
            email="single@uni.edu")
    with db.session() as s:
        back = lifecycle.get(s, "back")
        assert [a.username for a in back.person.accounts] == ["gone", "back"]
        assert [m.namespace for m in back.namespaces] == ["firefly", "qserv"]
        assert lifecycle.roles_of(s, "back") == [Role.DEVELOPER]
        by_target = {e.target: e.after for e in journal.query(s, action="accounts.onboard")}
        zed, single = by_target["account/zed"], by_target["account/single"]
        differing = {k for k in zed if zed[k] != single[k]}
        assert differing == {"username", "uid", "gid", "home", "workspace", "person"}, differing
        assert journal.verify(s) == 6


def test_a_cohort_of_returning_people_alone_adds_no_person(db: Database, spec: EnclaveSpec, admin: str) -> None:
    # Every row's person is known (each left the project and comes back): the cohort adds accounts and no
    # people: no INSERT of people is sent (a mutation round: an empty one became `INSERT INTO people DEFAULT
    # VALUES`, refused as a person with no name).
    onboard(db, spec, "gone1", kind=AccountKind.STAFF, email="one@lsst.org")
    onboard(db, spec, "gone2", kind=AccountKind.STAFF, email="two@lsst.org")
    with db.session() as s:
        for name in ("gone1", "gone2"):
            lifecycle.depart(s, ADMIN, name, reason="left", now=NOW)
    rows = [NewAccount("back1", "One", "one@lsst.org", AccountKind.STAFF),
            NewAccount("back2", "Two", "two@lsst.org", AccountKind.STAFF)]
    with db.session() as s:
        created = lifecycle.onboard_many(s, ADMIN, spec, rows, reason="they are back", now=NOW)
        assert [(a.username, a.person.email) for a in created] == [("back1", "one@lsst.org"),
                                                                   ("back2", "two@lsst.org")]
        assert sorted(p.email for p in s.execute(sa.select(Person)).scalars()) == [
            "one@lsst.org", "root@lsst.org", "two@lsst.org"]
