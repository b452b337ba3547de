"""One output convention: every read command prints a table, or JSON or YAML with -o (kubectl's flag,
https://kubernetes.io/docs/reference/kubectl/#output-options); -h is --help everywhere; --version.

The walk below covers every command of the program: each is either a read command (it must take -o and is run
here with -o json and -o yaml, both parsed) or a change, a server or a long simulation listed as such — a new
command fails the test until it is put in one list or the other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from enclave.main import app
from enclave.services.local import os_user
from enclave.spec.defaults import EXAMPLES
from tests.pg import _sqlite_template, private_copy

TINY = str(Path(__file__).parents[1] / "broker" / "data" / "tiny.yaml")
SUBMIT = EXAMPLES / "submit"
LAB = "registry.lsst.local/lsstsqre/sciplat-lab"
DIGEST = "sha256:" + "1" * 64

# Read commands and the arguments that make them print something (run after the setup below).
READ: dict[str, list[str]] = {
    "access check": ["root", "accounts.manage"],
    "access matrix": [],
    "accounts list": ["--as", "root"],
    "accounts show": ["ann", "--as", "root"],
    "batch explain": [str(SUBMIT / "prompt.sub"), "--owner", "prompt-svc", "--members", str(SUBMIT / "members.yaml")],
    "batch pools": [],
    # A fixed token: the default names the minute the plan is made, which the json and yaml runs may straddle.
    "backup restore-plan": ["backup.tar.gz", "--cluster-token", "enclave-restored-test"],
    "batch spoof": [],
    "broker plan": ["--scenario", TINY, "--at-hours", "0.2"],
    "db status": [],
    "images list": [],
    "journal show": ["--as", "root", "--limit", "5"],
    "journal verify": ["--as", "root"],
    "local list": [],
    "notebooks capacity": [],
    "notebooks options": ["ann"],
    "roles list": ["--as", "root"],
    "security check": ["--exit-code", "0"],  # the output is the point here, not whether every check passes
    "security list": [],
    "spec show": [str(EXAMPLES / "lsst-ldf.yaml")],
    "spec validate": [str(EXAMPLES / "lsst-ldf.yaml")],
    "tokens list": ["--as", "root"],
    "twin scenarios": [],
    "upgrade plan": ["--today", "2026-11-25"],
    "upgrade releases": ["--today", "2026-11-25"],
}
VARIES = {"security check": "summary", "upgrade plan": "steps"}
# Read commands run with -o json and -o yaml elsewhere, needing what this file does not set up.
READ_ELSEWHERE = {"backup verify": "tests/ops/test_cli.py (needs a backup archive of a real etcd)",
                  "backup list": "tests/ops/test_backup_catalog.py (needs named archives of a real etcd)",
                  "config get-contexts": "tests/cli/test_identity.py (needs a context, so a server to log in to)",
                  "config current-context": "tests/cli/test_identity.py (needs a context)",
                  "broker schedule show": "tests/broker/test_schedule_push.py (needs a schedule an HTCondor "
                                          "administrator pushed)",
                  "security credentials": "tests/ops/test_cli.py (needs a deploy bundle with its tokens)"}
# Commands that change state, serve, or run a simulation and write a report: no -o.
NOT_READ = {
    "accounts bootstrap", "accounts demote", "accounts depart", "accounts expire", "accounts expire-due",
    "accounts grow-quota", "accounts import", "accounts join", "accounts leave", "accounts onboard",
    "accounts promote", "accounts reach", "accounts renew", "accounts correct-quota", "backup create",
    "backup restore",
    "backup prune", "backup schedule", "vospace", "batch add-pods", "batch delete-pods",
    "batch drain-node", "batch drain-startd", "batch move", "batch return-node", "batch start-htcondor",
    "broker run", "db migrate", "images approve", "images reject", "images submit", "render access",
    "render admission", "render all", "render condor", "render deploy", "render notebooks", "roles grant",
    "roles revoke", "serve", "journal rekey",
    "logs",  # prints the log's own lines, as `kubectl logs` does (no -o), and journals the read
    "tokens issue", "tokens revoke", "twin compare", "twin run", "twin sweep", "webdav", "login", "config use-context",
    "local map", "local unmap", "broker schedule push",
}


def commands() -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return out


def test_every_command_is_classified_and_read_commands_take_o() -> None:
    found = commands()
    assert set(found) == set(READ) | set(READ_ELSEWHERE) | NOT_READ, "classify each new command here"
    for name in (*READ, *READ_ELSEWHERE):
        opts = {o for p in found[name].params for o in p.opts}
        assert {"-o", "--output"} <= opts, name
    for name in NOT_READ:
        assert "-o" not in {o for p in found[name].params for o in p.opts}, f"{name}: -o is the output format"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One database with a sysadmin, a science user and a vetted image, shared by every read below."""
    home = tmp_path_factory.mktemp("cli")
    private_copy(_sqlite_template(), home / "enclave.db")
    patch = pytest.MonkeyPatch()
    patch.setenv("ENCLAVE_HOME", str(home / "home"))
    patch.setenv("ENCLAVE_DB", f"sqlite:///{home / 'enclave.db'}")
    patch.delenv("ENCLAVE_AS", raising=False)
    run = CliRunner().invoke
    for args in (["accounts", "bootstrap", "root", "--name", "Root", "--email", "root@lsst.org"],
                 ["accounts", "onboard", "ann", "--as", "root", "--name", "Ann", "--email", "ann@lsst.org",
                  "--kind", "science", "--proposal", "P-1", "--reason", "test"],
                 ["accounts", "onboard", "svc", "--as", "root", "--name", "Svc", "--email", "svc@lsst.org",
                  "--kind", "staff", "--role", "k8s-service-admin", "--reason", "test"],
                 ["accounts", "onboard", "sec1", "--as", "root", "--name", "Sec", "--email", "sec1@lsst.org",
                  "--kind", "staff", "--role", "security", "--reason", "test"],
                 # The test's OS user acts as these two as well (local mode: explicitly mapped by a sysadmin).
                 ["local", "map", os_user().name, "svc", "--as", "root", "--reason", "test"],
                 ["local", "map", os_user().name, "sec1", "--as", "root", "--reason", "test"],
                 # A notebook image of the spec, vetted under the two-person rule (seed §10).
                 ["images", "submit", f"{LAB}:w_2018_25@{DIGEST}", "--as", "svc", "--reason", "spec image"],
                 ["images", "approve", f"{LAB}@{DIGEST}", "--as", "sec1", "--reason", "scanned, clean"],
                 ["tokens", "issue", "--as", "root"]):
        r = run(app, args)
        assert r.exit_code == 0, (args, r.output)
    yield
    patch.undo()


@pytest.mark.parametrize("name", sorted(READ))
def test_read_command_prints_json_and_yaml_that_parse(db: None, name: str) -> None:
    outputs = {}
    for fmt in ("json", "yaml"):
        r = CliRunner().invoke(app, [*name.split(), *READ[name], "-o", fmt])
        assert r.exit_code == 0, (name, fmt, r.output, r.exception)
        outputs[fmt] = json.loads(r.stdout) if fmt == "json" else yaml.safe_load(r.stdout)
    # The same data either way, and something in it (the security report and the upgrade plan's removed-API
    # findings name the temporary directory enclave's objects were rendered into, different each run: their
    # summary and steps must agree).
    key = VARIES.get(name)
    same = (outputs["json"][key] == outputs["yaml"][key]) if key else outputs["json"] == outputs["yaml"]
    assert same and outputs["json"] not in (None, {}, []), name


def test_times_are_iso_8601_utc(db: None) -> None:
    entries = json.loads(CliRunner().invoke(app, ["journal", "show", "--as", "root", "-o", "json"]).stdout)
    tokens = json.loads(CliRunner().invoke(app, ["tokens", "list", "--as", "root", "-o", "json"]).stdout)
    for text in [e["at"] for e in entries] + [t["expires_at"] for t in tokens]:
        assert text.endswith("Z") or text.endswith("+00:00"), text
    assert tokens[0]["expires_at"].endswith("Z")


def test_h_is_help_and_version_prints_the_version() -> None:
    assert "Usage: enclave journal show" in " ".join(CliRunner().invoke(app, ["journal", "show", "-h"]).output.split())
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("enclave ")


def test_bad_output_format_is_refused() -> None:
    r = CliRunner().invoke(app, ["access", "matrix", "-o", "xml"])
    assert r.exit_code == 2 and "xml" in r.output
