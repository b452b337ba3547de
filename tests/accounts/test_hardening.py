"""Issue 20 on the accounts side: quotas bounded and correctable, promote with a held role, cohort CSVs and
command arguments that are not text refused cleanly — each refusal leaves the database unchanged."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from enclave import journal
from enclave.accounts import lifecycle
from enclave.accounts.cohort import MAX_FIELD, parse_cohort
from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import InputError, InvalidTransition
from enclave.services.factory import Factory
from enclave.spec.models import MAX_GIB, EnclaveSpec, Role
from tests.accounts.conftest import ADMIN, LATER, NOW, onboard
from tests.local import database_env, map_me

HEADER = "username,name,email,kind,quota_gib\n"


@pytest.mark.parametrize("quota", [math.inf, -math.inf, math.nan, MAX_GIB * 2, 0.0, -5.0])
def test_grow_quota_refuses_what_is_not_a_quota(db: Database, spec: EnclaveSpec, admin: str, unchanged: Any,
                                                quota: float) -> None:
    onboard(db, spec, "sci")
    err = unchanged(lambda s: lifecycle.grow_quota(s, ADMIN, "sci", quota, reason="typo"), InputError)
    assert f"{quota:g} GiB is not a quota" in str(err)


def test_allocation_quota_is_bounded_everywhere(db: Database, spec: EnclaveSpec, admin: str, unchanged: Any) -> None:
    err = unchanged(lambda s: lifecycle.onboard(s, ADMIN, spec, "big", name="Big", email="b@x.org",
                                                kind=AccountKind.SCIENCE, reason="r", now=NOW,
                                                allocation=Allocation("P-1", quota_gib=math.inf, expires=LATER)),
                    InputError)
    assert "inf GiB is not a quota" in str(err)
    with pytest.raises(InputError, match="quota_gib: nan GiB is not a quota|nan GiB is not a quota"):
        rows = parse_cohort(HEADER + "ann,Ann,ann@x.org,science,nan\n")
        with db.session() as s:
            lifecycle.onboard_many(s, ADMIN, spec, rows, reason="r", now=NOW)


def test_an_admin_corrects_a_quota_downwards_with_a_journaled_reason(db: Database, spec: EnclaveSpec,
                                                                     admin: str, unchanged: Any) -> None:
    onboard(db, spec, "sci")
    with db.session() as s:
        lifecycle.grow_quota(s, ADMIN, "sci", 900_000, reason="meant 900", now=NOW)
    with db.session() as s:
        account = lifecycle.correct_quota(s, ADMIN, "sci", 900, reason="typo in grow-quota: meant 900", now=NOW)
        assert account.quota_gib == 900
    with db.session() as s:
        last = journal.query(s, action="accounts.correct-quota")[-1]
        assert (last.actor, last.reason) == (ADMIN, "typo in grow-quota: meant 900")
        assert (last.before["quota_gib"], last.after["quota_gib"]) == (900_000, 900)
    # Asking for the quota it already has is a clear refusal, not a silent second journal entry.
    unchanged(lambda s: lifecycle.correct_quota(s, ADMIN, "sci", 900, reason="again"), InvalidTransition)
    unchanged(lambda s: lifecycle.correct_quota(s, ADMIN, "sci", math.inf, reason="x"), InputError)
    onboard(db, spec, "plain")
    unchanged(lambda s: lifecycle.correct_quota(s, "plain", "sci", 10, reason="x"), Exception)  # no permission


def test_promote_with_a_role_already_held_succeeds_once(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "sci")
    # science-user is held from onboarding; keep it and add developer in the same promote.
    with db.session() as s:
        account = lifecycle.promote(s, ADMIN, "sci", reason="hired", roles=[Role.SCIENCE_USER, Role.DEVELOPER],
                                    now=NOW)
        assert account.kind == "staff"
    with db.session() as s:
        assert sorted(lifecycle.roles_of(s, "sci")) == sorted([Role.SCIENCE_USER, Role.DEVELOPER])
    # Asking again for what already holds is a no-op with a message, not an error to retry (issue 20 item 5).
    again = Factory(spec, db).accounts.promote(ADMIN, "sci", reason="again")
    assert again.note == "sci is already a staff account: nothing to change"


@pytest.mark.parametrize(("text", "what"), [
    (HEADER + "ann,Ann,ann@x.org,science,1\x00\n", "NUL byte"),
    (HEADER + "ann," + "N" * (MAX_FIELD + 1) + ",ann@x.org,science,1\n", f"longer than {MAX_FIELD}"),
    (HEADER + 'ann,"' + "N" * 200_000 + '",ann@x.org,science,1\n', f"longer than {MAX_FIELD}|not valid CSV"),
])
def test_hostile_csv_is_an_input_error(text: str, what: str) -> None:
    with pytest.raises(InputError, match=what):
        parse_cohort(text, "c.csv")


def test_a_field_exactly_as_long_as_the_bound_is_parsed() -> None:
    # MAX_FIELD is the longest field the parser takes: only a longer one is refused ("is longer than"). Whether
    # such a name fits its account is onboarding's rule, not the file's.
    [row] = parse_cohort(HEADER + "ann," + "N" * MAX_FIELD + ",ann@x.org,science,1\n", "c.csv")
    assert row.name == "N" * MAX_FIELD


def test_cli_import_of_binary_csv_and_non_utf8_argument(db: Database, admin: str, tmp_path: Path) -> None:
    map_me(db)  # the test's OS user acts as root in local mode, so the input itself is what gets refused
    env = {k: v for k, v in os.environ.items() if k not in ("ENCLAVE_DB", "ENCLAVE_DB_FILE")}
    env.update(database_env(db.url, tmp_path))
    enclave = Path(sys.executable).parent / "enclave"
    binary = tmp_path / "cohort.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(256))
    done = subprocess.run([str(enclave), "accounts", "import", str(binary), "--as", "root", "--reason", "r"],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "not UTF-8" in done.stderr and "Traceback" not in done.stderr, done.stderr
    done = subprocess.run([os.fsencode(str(enclave)), b"accounts", b"show", b"bad\xffname", b"--as", b"root"],
                          env=env, capture_output=True, check=False)
    err = done.stderr.decode()
    assert done.returncode == 1 and "argument 3" in err and "not UTF-8" in err and "Traceback" not in err, err


@pytest.mark.parametrize(("ask", "note"), [
    (lambda a: a.grant_role(ADMIN, "held", Role.DEVELOPER, reason="again"), "held already holds developer"),
    (lambda a: a.revoke_role(ADMIN, "held", Role.SECURITY, reason="gone"), "held does not hold security"),
    (lambda a: a.promote(ADMIN, "held", reason="again"), "held is already a staff account"),
])
def test_asking_for_what_already_holds_changes_nothing_and_says_so(db: Database, spec: EnclaveSpec, admin: str,
                                                                   ask: Any, note: str) -> None:
    """Issue 20 item 5: a state that already holds is a no-op with a clear message — no journal entry, no change,
    never an error (the old refusal of a held role looped as a 'concurrent change' on promote)."""
    accounts = Factory(spec, db).accounts
    before = accounts.onboard(ADMIN, "held", name="Held", email="held@x.org", kind=AccountKind.STAFF, reason="t",
                              roles=[Role.DEVELOPER])
    with db.session() as s:
        entries = journal.verify(s)
    done = ask(accounts)
    assert done.note == f"{note}: nothing to change"
    assert done.model_copy(update={"note": None}) == before
    with db.session() as s:
        assert journal.verify(s) == entries
