"""Why does (or doesn't) a job run on a node? Like ``condor_q -better-analyze``, for the enclave's policy.

The submit description is parsed by HTCondor's own submit-language parser (``htcondor2.Submit``); the
job ad is built from it as condor_submit would (``+Attr``/``MY.Attr`` lines, request_cpus,
request_memory, requirements), passed through the schedd's transform and submit requirements
(``policy.schedd_admit``), and matched against each node's machine ad clause by clause with classad2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import htcondor2
from classad2 import ClassAd, ExprTree

from enclave.batch import policy
from enclave.batch.policy import Admission, Clause
from enclave.domain.capacity import Startd, StartdKind
from enclave.errors import InputError, NotFound, Problem
from enclave.spec.document import parse
from enclave.spec.models import EnclaveSpec, NodeRole, node_name

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_MIB_PER_UNIT = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


@dataclass(frozen=True)
class Submitted:
    """A submit description turned into the ad condor_submit would send, plus what requirements it got."""

    ad: ClassAd
    requirement_clauses: tuple[Clause, ...]
    queue: str


def read_submit(text: str, *, where: str = "submit file") -> htcondor2.Submit:
    try:
        return htcondor2.Submit(text)
    except (ValueError, RuntimeError, htcondor2.HTCondorException) as exc:
        raise InputError([Problem(where, f"HTCondor cannot parse the submit description ({exc})",
                                  "check it with condor_submit -dry-run; every line is 'key = value'")]) from exc


def _memory_mib(text: str, where: str) -> int | ExprTree:
    m = _MEMORY_RE.match(text)
    if m:
        return max(1, round(float(m.group(1)) * _MIB_PER_UNIT[m.group(2).upper()]))
    return policy.parse_expr(text, where=where)


def _int_or_expr(text: str, where: str) -> int | ExprTree:
    try:
        return int(text)
    except ValueError:
        return policy.parse_expr(text, where=where)


def job_from_submit(spec: EnclaveSpec, submit: htcondor2.Submit, *, where: str = "submit file") -> Submitted:
    """The job ad condor_submit would build for the first job of ``submit`` (before the schedd)."""
    keys = {k.lower(): k for k in submit}
    ad = ClassAd({"JobUniverse": 5, "RequestCpus": 1, "RequestMemory": 128})
    for key in submit:
        # +Attr arrives as MY.Attr from the parser; both spellings set a job attribute verbatim.
        if key.startswith(("+", "MY.", "my.")):
            name = key[1:] if key.startswith("+") else key[3:]
            ad[name] = policy.parse_expr(submit.expand(key), where=f"{where}: {key}")
    if "request_cpus" in keys:
        ad["RequestCpus"] = _int_or_expr(submit.expand(keys["request_cpus"]), f"{where}: request_cpus")
    if "request_memory" in keys:
        ad["RequestMemory"] = _memory_mib(submit.expand(keys["request_memory"]), f"{where}: request_memory")
    if "accounting_group" in keys:
        ad["AcctGroup"] = submit.expand(keys["accounting_group"])
    clauses: list[Clause] = []
    referenced: set[str] = set()
    if "requirements" in keys:
        text = submit.expand(keys["requirements"])
        user = policy.parse_expr(text, where=f"{where}: requirements")
        clauses.append(Clause("requirements (submit file)", user, "what the submit file asks for"))
        referenced = set(policy.target_refs(user))
    # condor_submit adds a default clause only for what the user's requirements leave unmentioned.
    for clause in policy.requirement_clauses(spec):
        if not (policy.target_refs(clause.expr) & referenced):
            clauses.append(clause)
    ad["Requirements"] = policy.parse_expr(" && ".join(f"({c.expr!r})" for c in clauses), where="requirements")
    return Submitted(ad=ad, requirement_clauses=tuple(clauses), queue=submit.getQArgs() or "1")


@dataclass(frozen=True)
class ClauseResult:
    side: str
    """'START' (the node's policy) or 'Requirements' (the job's)."""
    clause: Clause
    value: object

    @property
    def ok(self) -> bool:
        return self.value is True


@dataclass(frozen=True)
class NodeAnalysis:
    node: str
    pool: str
    matches: bool
    results: tuple[ClauseResult, ...]

    @property
    def failing(self) -> list[ClauseResult]:
        return [r for r in self.results if not r.ok]


def analyze(spec: EnclaveSpec, job: ClassAd, clauses: Sequence[Clause], machine: ClassAd,
            node: str, pool: str) -> NodeAnalysis:
    """Evaluate every START clause (job as TARGET) and every requirement clause (node as TARGET)."""
    results = [ClauseResult("START", c, c.expr.eval(scope=machine, target=job)) for c in policy.start_clauses(spec)]
    results += [ClauseResult("Requirements", c, c.expr.eval(scope=job, target=machine)) for c in clauses]
    matches = bool(machine.symmetricMatch(job))
    if matches != all(r.ok for r in results):  # the clauses are the conjuncts: both views must agree
        raise AssertionError(f"clause analysis disagrees with the match on {node}")
    return NodeAnalysis(node=node, pool=pool, matches=matches, results=tuple(results))


def node_startds(spec: EnclaveSpec, nodes: Sequence[str] | None,
                 labels: Mapping[str, str] | None = None) -> list[Startd]:
    """Startds for ``nodes`` (default: every standalone batch node) with their pools.

    Labels default to the rendered layout (``policy.static_labels``); pass the live ones to explain
    against the pool as it is now. A Kubernetes worker named here is taken as an HTCondor pod on it.
    """
    labels = dict(policy.static_labels(spec) if labels is None else labels)
    groups = {node_name(g.name, i): g for g in spec.cluster.node_groups for i in range(1, g.count + 1)}
    wanted = list(labels) if nodes is None else list(nodes)
    out = []
    for name in wanted:
        group = groups.get(name)
        if group is None:
            raise NotFound(f"node '{name}' is not in the spec", where="--node",
                           fix="use a node name <group>-<NNN> from the spec, e.g. "
                               f"{next(iter(labels), 'condor-001')}")
        if group.role == NodeRole.CONTROL_PLANE:
            raise InputError([Problem("--node", f"'{name}' is a control-plane node: it runs no jobs",
                                      "name a batch-only or worker node")])
        pool = labels.get(name)
        if pool is None:
            raise NotFound(f"node '{name}' runs no startd with a known pool label", where="--node",
                           fix="give its label with --label NODE=POOL")
        kind = StartdKind.STANDALONE if group.role == NodeRole.BATCH_ONLY else StartdKind.POD
        out.append(Startd(name=name, node=name, kind=kind, pool=pool, cores=group.cores,
                          memory_mib=int(group.memory_gib * 1024)))
    return out


@dataclass(frozen=True)
class Explanation:
    submitted: Submitted
    admission: Admission
    nodes: tuple[NodeAnalysis, ...]


def explain(spec: EnclaveSpec, text: str, *, owner: str, schedd: str, nodes: Sequence[str] | None = None,
            labels: Mapping[str, str] | None = None, startds: Sequence[Startd] | None = None,
            where: str = "submit file") -> Explanation:
    """Explain a submit description against nodes. Needs the membership map loaded for userMap().

    ``startds`` (e.g. the live ones) replaces the spec's layout; ``nodes`` then selects among them by
    startd or node name.
    """
    submitted = job_from_submit(spec, read_submit(text, where=where), where=where)
    admission = policy.schedd_admit(spec, submitted.ad, owner=owner, schedd=schedd)
    if startds is None:
        chosen = node_startds(spec, nodes, labels)
    else:
        chosen = [sd for sd in startds if nodes is None or sd.name in nodes or sd.node in nodes]
        missing = [n for n in nodes or () if not any(n in (sd.name, sd.node) for sd in startds)]
        if missing:
            raise NotFound(f"no startd runs on or is named {', '.join(missing)}", where="--node",
                           fix="list the startds with `enclave batch pools --live`")
    analyses = []
    for sd in chosen:
        machine = policy.machine_ad(spec, sd)
        analyses.append(analyze(spec, admission.ad, submitted.requirement_clauses, machine, sd.name, sd.pool))
    return Explanation(submitted=submitted, admission=admission, nodes=tuple(analyses))


@dataclass(frozen=True)
class ClauseCount:
    side: str
    """'START' (the node's policy) or 'Requirements' (the job's)."""
    clause: Clause
    ruled_out: int
    """Slots on which this clause is false (other clauses may rule them out too)."""
    only: int
    """Slots on which this is the only false clause: fixing it alone would let the job match there."""


@dataclass(frozen=True)
class Summary:
    """What ``condor_q -better-analyze`` prints before any per-slot detail: per clause how many slots it rules
    out, then the run analysis summary (HTCondor manual, condor_q, "Analyze"; users' manual "Managing a Job",
    "Why is the job not running?": "Of N machines, X are rejected by your job's requirements, Y reject your job
    because of their own requirements, Z ... are available to run your job")."""

    slots: int
    matched: int
    rejected_by_job: int
    """Slots where a Requirements clause (the job's) is false."""
    reject_job: int
    """Slots where a START clause (the node's policy) is false."""
    clauses: tuple[ClauseCount, ...]
    pools: dict[str, tuple[int, int]]
    """pool → (slots, slots that match)."""


def summarise(explanation: Explanation) -> Summary:
    nodes = explanation.nodes
    clauses: list[ClauseCount] = []
    if nodes:
        for i, first in enumerate(nodes[0].results):
            out = [n for n in nodes if not n.results[i].ok]
            only = sum(1 for n in out if len(n.failing) == 1)
            clauses.append(ClauseCount(first.side, first.clause, len(out), only))
    pools: dict[str, tuple[int, int]] = {}
    for n in nodes:
        total, ok = pools.get(n.pool, (0, 0))
        pools[n.pool] = (total + 1, ok + int(n.matches))
    return Summary(
        slots=len(nodes), matched=sum(1 for n in nodes if n.matches),
        rejected_by_job=sum(1 for n in nodes if any(r.side == "Requirements" for r in n.failing)),
        reject_job=sum(1 for n in nodes if any(r.side == "START" for r in n.failing)),
        clauses=tuple(clauses), pools=dict(sorted(pools.items())),
    )


def read_members(path: Path) -> dict[str, list[str]]:
    """A membership file: YAML mapping owner (or '*') → list of pools."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}", where=str(path), fix="check the --members path") from exc
    except UnicodeDecodeError:
        raise InputError([Problem(str(path), "not UTF-8 text", "save the members file as UTF-8")]) from None
    data, _ = parse(text, str(path))
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(p, str) for p in v) for k, v in data.items()):
        raise InputError([Problem(str(path), "expected a mapping of owner to a list of pools",
                                  "write e.g. 'alice: [drp, user]' and '\"*\": [general]'")])
    return {k: list(v) for k, v in data.items()}
