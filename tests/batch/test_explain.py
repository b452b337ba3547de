"""Submit descriptions → job ads, as condor_submit would build them."""

from __future__ import annotations

import pytest
from classad2 import ExprTree

from enclave.batch import explain
from enclave.errors import InputError
from enclave.spec.models import EnclaveSpec


@pytest.mark.parametrize(("text", "mib"), [("2048", 2048), ("2 GB", 2048), ("1.5G", 1536), ("512M", 512),
                                            ("512MB", 512), ("1T", 1048576), ("4096 KB", 4), ("2GiB", 2048)])
def test_request_memory_units(ldf: EnclaveSpec, text: str, mib: int) -> None:
    sub = explain.read_submit(f"executable = /bin/true\nrequest_memory = {text}\nqueue\n")
    assert explain.job_from_submit(ldf, sub).ad["RequestMemory"] == mib


def test_macros_attributes_and_expressions(ldf: EnclaveSpec) -> None:
    sub = explain.read_submit("Cores = 4\nrequest_cpus = $(Cores)\nrequest_memory = RequestCpus * 2048\n"
                              "+EnclavePool = \"drp\"\nMY.Campaign = \"DR1\"\nqueue 5\n")
    job = explain.job_from_submit(ldf, sub)
    assert job.ad["RequestCpus"] == 4 and job.ad.eval("RequestMemory") == 8192
    assert job.ad["EnclavePool"] == "drp" and job.ad["Campaign"] == "DR1" and job.queue == "5"
    assert [c.name for c in job.requirement_clauses] == ["pool", "arch", "opsys", "cpus", "memory"]


def test_user_requirements_replace_the_defaults_they_mention(ldf: EnclaveSpec) -> None:
    sub = explain.read_submit("requirements = TARGET.Memory > 9000 && TARGET.OpSys == \"LINUX\"\nqueue\n")
    job = explain.job_from_submit(ldf, sub)
    assert [c.name for c in job.requirement_clauses] == ["requirements (submit file)", "pool", "arch", "cpus"]
    assert job.ad.lookup("Requirements") == ExprTree(
        '(TARGET.Memory > 9000 && TARGET.OpSys == "LINUX") && '
        # The pool clause from the job's side: its own pool's node, or any node, prompt (latency) overflowing.
        '(MY.EnclavePool is TARGET.EnclavePool || identicalMember(MY.EnclavePool, { "prompt" }) is true) && '
        '(TARGET.Arch == "X86_64") && (TARGET.Cpus >= MY.RequestCpus)')


def test_bad_expressions_say_where(ldf: EnclaveSpec) -> None:
    sub = explain.read_submit("+EnclavePool = \"drp\nqueue\n")
    with pytest.raises(InputError, match=r"job.sub: MY.EnclavePool: not a valid ClassAd expression"):
        explain.job_from_submit(ldf, sub, where="job.sub")
