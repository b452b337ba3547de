"""The `enclave batch …` and `enclave render condor` commands, through the real CLI app."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from enclave.batch import policy
from enclave.cli import app
from enclave.errors import EnclaveError, exit_code
from enclave.spec import load
from enclave.spec.defaults import EXAMPLES

from .conftest import Daemons

SUBMIT = EXAMPLES / "submit"
MEMBERS = str(SUBMIT / "members.yaml")
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    """Exit code and text as `enclave` reports them (main() turns an EnclaveError into code + message)."""
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    if isinstance(result.exception, EnclaveError):
        return exit_code(result.exception), str(result.exception)
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def test_explain_names_the_failing_clause() -> None:
    code, out = run("batch", "explain", str(SUBMIT / "user-spoof.sub"), "--owner", "bob", "--schedd",
                    "schedd.jupyter-lsst.svc", "--members", MEMBERS, "--node", "condor-001")
    assert code == 0, out
    assert "refused at submit: user bob may not submit to pool prompt" in out
    assert "condor-001 (pool prompt): no match" in out
    assert "START clause 'accounting-group' is false" in out
    assert "START clause 'submit-host' is false" in out
    assert "AcctGroup='group_user'" in out


def test_explain_legitimate_and_too_big() -> None:
    code, out = run("batch", "explain", str(SUBMIT / "prompt.sub"), "--owner", "prompt-svc", "--members", MEMBERS,
                    "--details")
    assert code == 0, out
    # Prompt has a latency objective: its jobs may run on every one of the 40 batch nodes (overflow), its own
    # ten of the rendered layout and the other pools'.
    assert "matches 40 of 40 node(s)" in out
    assert "condor-001 (pool prompt): matches" in out
    assert "condor-040 (pool general): matches" in out
    code, out = run("batch", "explain", str(SUBMIT / "drp-big.sub"), "--owner", "alice", "--members", MEMBERS,
                    "--node", "condor-011")
    assert "matches 0 of 1" in out
    assert "Requirements clause 'cpus' is false" in out and "Requirements clause 'memory' is false" in out
    assert "START clause" not in out  # the pool and credentials are right: only the size is wrong


def test_explain_user_requirements_and_labels() -> None:
    code, out = run("batch", "explain", str(SUBMIT / "user.sub"), "--owner", "bob", "--schedd",
                    "schedd.jupyter-lsst.svc", "--members", MEMBERS, "--node", "kub-004", "--label", "kub-004=user",
                    "--node", "condor-001")
    assert code == 0, out
    assert "kub-004 (pool user): matches" in out
    assert "condor-001 (pool prompt): no match" in out


def test_explain_bad_inputs(tmp_path: Path) -> None:
    code, out = run("batch", "explain", str(tmp_path / "missing.sub"))
    assert code == 1 and "missing.sub: cannot read" in out
    binary = tmp_path / "binary.sub"
    binary.write_bytes(b"queue\n\xff\xfe")
    code, out = run("batch", "explain", str(binary))
    assert code == 1 and "binary.sub: not UTF-8 text" in out
    bad = tmp_path / "bad.sub"
    bad.write_text("this is not a submit line\n")
    code, out = run("batch", "explain", str(bad))
    assert code == 1 and "HTCondor cannot parse the submit description" in out
    code, out = run("batch", "explain", str(SUBMIT / "prompt.sub"), "--node", "condor-999")
    assert code == 3 and "node 'condor-999' is not in the spec" in out
    code, out = run("batch", "explain", str(SUBMIT / "prompt.sub"), "--node", "kub-master-001")
    assert code == 1 and "control-plane" in out
    code, out = run("batch", "explain", str(SUBMIT / "prompt.sub"), "--label", "condor-001")
    assert code == 1 and "is not NODE=POOL" in out
    members = tmp_path / "m.yaml"
    members.write_text("alice: [nightly]\n")
    code, out = run("batch", "explain", str(SUBMIT / "prompt.sub"), "--members", str(members))
    assert code == 1 and "unknown or no pools: nightly" in out


def test_pools_and_spoof() -> None:
    code, out = run("batch", "pools")
    assert code == 0, out
    assert "group_prompt" in out and "240" in out
    code, out = run("batch", "spoof")
    assert code == 0, out
    assert "all 18 verdicts as expected" in out  # 14, the two overflow attempts (prompt is a latency pool), prompt
    # through the notebook schedd onto a user node, and a pool in capitals


def test_render_condor_check(tmp_path: Path) -> None:
    code, out = run("render", "condor", "--out", str(tmp_path / "cfg"), "--check", "--spec",
                    str(EXAMPLES / "minimal.yaml"))
    assert code == 0, out
    assert out.count("HTCondor reads it back") == 8
    assert (tmp_path / "cfg" / "execute-prompt.conf").exists()


def test_explain_and_pools_live(daemons: Daemons) -> None:
    code, out = run("batch", "explain", str(SUBMIT / "user.sub"), "--owner", "bob", "--schedd",
                    "schedd.jupyter-lsst.svc", "--members", MEMBERS, "--live", "--details")
    assert code == 0, out
    assert "matches 1 of 4 node(s)" in out and "kub-003 (pool user): matches" in out
    code, out = run("batch", "explain", str(SUBMIT / "user.sub"), "--live", "--node", "condor-999")
    assert code == 3 and "no startd runs on or is named condor-999" in out
    code, out = run("batch", "pools", "--live")
    assert code == 0, out
    assert "idle jobs" in out


def _raw(*args: str) -> list[str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_explain_summary_first_like_better_analyze() -> None:
    """condor_q -better-analyze prints, per clause of the Requirements, how many slots match it, then "Of N
    machines, X are rejected by your job's requirements, Y reject your job because of their own requirements"
    (HTCondor manual: condor_q "Analyze"; users' manual "Managing a Job", "Why is the job not running?"), and
    shows one machine's detail only when asked (-machine). So does explain, in at most 20 lines on the LDF spec.

    drp-big.sub asks 64 cores and 256 GiB for pool drp: no LDF node has that (condor nodes are 24 cores,
    128 GiB), so 'cpus' and 'memory' each rule out all 40 batch nodes, and 'pool' rules out every node the
    rendered layout labels for another pool."""
    labels = policy.static_labels(load(EXAMPLES / "lsst-ldf.yaml"))
    not_drp = sum(1 for p in labels.values() if p != "drp")
    lines = _raw("batch", "explain", str(SUBMIT / "drp-big.sub"), "--owner", "alice", "--members", MEMBERS)
    assert len(lines) <= 20, "\n".join(lines)
    text = " ".join(" ".join(lines).split())
    assert f"matches 0 of {len(labels)} node(s): {len(labels)} rejected by the job's Requirements, " \
           f"{not_drp} reject the job by their own START policy" in text
    assert re.search(rf"Requirements cpus {len(labels)} 0 ", text)
    assert re.search(rf"Requirements memory {len(labels)} 0 ", text)
    assert re.search(rf"Requirements pool {not_drp} 0 ", text)
    assert "no match" not in text  # no per-node detail unless asked
    assert "per-node detail: --node NAME" in text
    for sub in ("prompt.sub", "user.sub", "user-spoof.sub"):
        assert len(_raw("batch", "explain", str(SUBMIT / sub), "--owner", "alice", "--members", MEMBERS)) <= 20


def test_explain_only_blocker_counts_slots_one_fix_away() -> None:
    """user-spoof.sub claims pool prompt with the user pool's accounting group (bob is not in prompt's
    membership): prompt overflows onto every node, so on all of them the accounting group is the only failing
    START clause (one fix away)."""
    labels = policy.static_labels(load(EXAMPLES / "lsst-ldf.yaml"))
    prompt = len(labels)
    text = " ".join(" ".join(_raw("batch", "explain", str(SUBMIT / "user-spoof.sub"), "--owner", "bob",
                                  "--members", MEMBERS)).split())
    assert re.search(rf"START accounting-group \d+ {prompt} ", text), text
