"""The twin's HTCondor settings, read from the pool's rendered configuration: one source of truth.

The spec's ``batch.htcondor`` is rendered into the pool's config files (``enclave.batch.render``); this module
renders them, writes them to a scratch directory and asks HTCondor's own config machinery what each daemon
would read (``render.read_back``: ``htcondor2.param`` after ``htcondor2.reload_config`` with CONDOR_CONFIG on
the file, in a child process so nothing is left in this one). Where the rendered config is silent the
bindings answer with HTCondor's compiled-in default (``param_info.in``), so the twin and a rendered pool
agree by construction. A scenario's own ``htcondor:`` keys still override (``enclave.twin.scenario.parse``).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from enclave.batch import render
from enclave.spec.models import EnclaveSpec

SCHEDD_INTERVAL_DEFAULT = 300.0
"""SCHEDD_INTERVAL's entry in param_info.in has an empty default; the schedd's is in the code (htcondor/htcondor
7491a14, src/condor_schedd.V6/schedd.cpp:16137: param_integer("SCHEDD_INTERVAL", 300))."""
CYCLE_DELAY_DEFAULT = 20.0
"""NEGOTIATOR_CYCLE_DELAY has no entry in param_info.in; the negotiator's default is in the code
(htcondor/htcondor 7491a14, src/condor_negotiator.V6/matchmaker.cpp:1883: param_integer("NEGOTIATOR_CYCLE_DELAY",
20, 0)), so the bindings return nothing for it when the config is silent."""

def _number(value: str | None, knob: str) -> float:
    if value is None:
        raise ValueError(f"HTCondor has no value for {knob}")
    return float(value)


def pool_htcondor(spec: EnclaveSpec) -> dict[str, Any]:
    """The twin's ``htcondor:`` fields as the rendered pool config of ``spec`` sets them (cached per spec)."""
    return dict(_read(spec.model_dump_json()))


@functools.lru_cache(maxsize=32)
def _read(spec_json: str) -> tuple[tuple[str, Any], ...]:
    spec = EnclaveSpec.model_validate_json(spec_json)
    files = {f.name: f for f in render.render_all(spec)}
    with tempfile.TemporaryDirectory(prefix="enclave-twin-config-") as tmp:
        out = Path(tmp)
        render.write(list(files.values()), out)
        cm = render.read_back(out / "central-manager.conf", ["NEGOTIATOR_INTERVAL", "NEGOTIATOR_CYCLE_DELAY",
                                                              "NEGOTIATOR_MIN_INTERVAL"], subsystem="NEGOTIATOR")
        first = f"submit-{spec.batch.submit_hosts[0]}.conf"
        schedd = render.read_back(out / first, ["JOB_START_COUNT", "JOB_START_DELAY", "SCHEDD_INTERVAL",
                                                "SCHEDD_MIN_INTERVAL"], subsystem="SCHEDD")
        # condor_submit (subsystem SUBMIT) reads SUBMIT_SEND_RESCHEDULE on the submit host.
        submit = render.read_back(out / first, ["SUBMIT_SEND_RESCHEDULE"], subsystem="SUBMIT")
        dedicated = []
        for host in spec.batch.submit_hosts:
            got = render.read_back(out / f"submit-{host}.conf", [render.DEDICATED_KNOB], subsystem="SCHEDD")
            if got[render.DEDICATED_KNOB]:
                dedicated.append(got[render.DEDICATED_KNOB])
        startd = render.read_back(out / f"execute-{spec.batch.default_pool}.conf",
                                  ["CLAIM_WORKLIFE", "CONSUMPTION_POLICY", render.WORKLIFE_KNOB],
                                  subsystem="STARTD", env={render.POD_POOL_ENV: spec.batch.default_pool})
        # -1 (forever) is passed on as read: the scenario's Worklife turns it into the twin's forever.
        worklife = _number(startd[render.WORKLIFE_KNOB] or startd["CLAIM_WORKLIFE"], "CLAIM_WORKLIFE")
        # Which pools set their own is the spec's word (a pool may set the common value); what each reads is
        # HTCondor's, from that pool's execute file.
        own = {}
        by_clock = {}
        for pool, conf in spec.pools.items():
            if render.worklife_expression(spec, pool):
                by_clock[pool] = str(render.read_pool_worklife(out / f"execute-{pool}.conf", pool))
            elif conf.claim_worklife is not None:
                got = render.read_back(out / f"execute-{pool}.conf", ["CLAIM_WORKLIFE"], subsystem="STARTD")
                own[pool] = _number(got["CLAIM_WORKLIFE"], "CLAIM_WORKLIFE")
    delay = cm["NEGOTIATOR_CYCLE_DELAY"]
    values: dict[str, Any] = {
        "negotiator_interval_s": _number(cm["NEGOTIATOR_INTERVAL"], "NEGOTIATOR_INTERVAL"),
        "negotiator_cycle_delay_s": CYCLE_DELAY_DEFAULT if delay is None else float(delay),
        "negotiator_min_interval_s": _number(cm["NEGOTIATOR_MIN_INTERVAL"], "NEGOTIATOR_MIN_INTERVAL"),
        "claim_worklife_s": worklife,
        "pool_claim_worklife_s": own,
        "pool_claim_worklife_by_clock": by_clock,
        "consumption_policy": (startd["CONSUMPTION_POLICY"] or "").lower() == "true",
        "job_start_count": int(_number(schedd["JOB_START_COUNT"], "JOB_START_COUNT")),
        "job_start_delay_s": _number(schedd["JOB_START_DELAY"], "JOB_START_DELAY"),
        # param_info.in gives SCHEDD_INTERVAL no default; the schedd's own is 300 (schedd.cpp Scheduler::Init).
        "schedd_interval_s": SCHEDD_INTERVAL_DEFAULT if not schedd["SCHEDD_INTERVAL"]
        else _number(schedd["SCHEDD_INTERVAL"], "SCHEDD_INTERVAL"),
        "schedd_min_interval_s": _number(schedd["SCHEDD_MIN_INTERVAL"], "SCHEDD_MIN_INTERVAL"),
        # True: every submit asks for a cycle (a schedd before 26.0); otherwise a 26.x schedd's own rule.
        "reschedule_on_submit": "always" if submit["SUBMIT_SEND_RESCHEDULE"] == "True" else "schedd-idle",
        "dedicated_schedds": [p for p in dedicated if p in spec.pools],
    }
    return tuple(values.items())
