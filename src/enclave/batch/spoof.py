"""A catalogue of attempts to spoof a job onto processing it may not use (seed §7.1), and their verdicts.

Each attempt is what a user could actually do: write ``+Attr = …`` lines in a submit file, submit
through a trusted schedd or run a schedd of their own. Its verdict comes from real classad2
evaluation of the rendered policy, layer by layer:

1. *schedd*: a trusted schedd sets Owner itself, keeps a GlobalJobId the user wrote (the worst case), runs
   the submit transform, which names the submit host, and the submit requirements (``policy.schedd_admit``); a
   rogue schedd does none of that;
2. *START* on a node of the pool the attacker aims at, and the job's own Requirements;
3. *authorization*: whether the collector's rendered ``ALLOW_ADVERTISE_SCHEDD`` lets that schedd advertise its
   submitters, without which the negotiator never matches its jobs. Not the startd's ``ALLOW_DAEMON``: a claim
   travels over its match's session, which every startd admits at DAEMON level (``render._startd_common``).

START is checked even for jobs the schedd already refused, so each defence is shown to hold alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from classad2 import ClassAd

from enclave.batch import policy
from enclave.batch.policy import Admission
from enclave.domain.capacity import Startd, StartdKind
from enclave.spec.models import EnclaveSpec

ROGUE_SCHEDD = "jupyter-bob.jupyter-lsst.svc"
"""A schedd a science user started inside their own notebook pod."""

PROMPT_SERVICE = "prompt-svc"
DEVELOPER = "alice"
SCIENCE_USER = "bob"


def catalogue_members(spec: EnclaveSpec) -> dict[str, list[str]]:
    """Who may use which pool in the catalogue's world (the schedd's membership map)."""
    others: list[str] = [p for p in ("drp", "user", "general") if p in spec.pools]
    return {
        PROMPT_SERVICE: ["prompt"],
        DEVELOPER: others,
        SCIENCE_USER: [p for p in ("user", "general") if p in spec.pools] or [spec.batch.default_pool],
        policy.EVERYONE: [spec.batch.default_pool],
    }


@dataclass(frozen=True)
class Attempt:
    name: str
    description: str
    owner: str
    schedd: str
    target_pool: str
    """Pool of the node the job is tried against."""
    submitted: Mapping[str, str]
    """What the user wrote: attribute → ClassAd expression text (the ``+Attr = …`` lines)."""
    legitimate: bool
    trusted_schedd: bool = True


@dataclass(frozen=True)
class Verdict:
    attempt: Attempt
    admission: Admission
    start_failures: tuple[str, ...]
    """Names of the START clauses that are not true for the job on a node of the target pool."""
    requirements_ok: bool
    authorized: bool
    """The schedd may advertise to the collector, so the negotiator matches its jobs (rendered
    ALLOW_ADVERTISE_SCHEDD)."""
    stored: ClassAd = field(repr=False)

    @property
    def start_ok(self) -> bool:
        return not self.start_failures

    @property
    def runs(self) -> bool:
        return self.admission.accepted and self.start_ok and self.requirements_ok and self.authorized

    @property
    def as_expected(self) -> bool:
        return self.runs is self.attempt.legitimate

    def refused_by(self) -> list[str]:
        layers = []
        if not self.admission.accepted:
            layers.append("schedd: " + "; ".join(self.admission.refused))
        if self.start_failures:
            layers.append("START: " + ", ".join(self.start_failures))
        if not self.requirements_ok:
            layers.append("job Requirements")
        if not self.authorized:
            layers.append(f"authorization: {self.attempt.schedd} is not in the collector's ALLOW_ADVERTISE_SCHEDD")
        return layers


def catalogue(spec: EnclaveSpec) -> list[Attempt]:
    """Legitimate jobs and spoofing attempts for ``spec``'s pools and submit hosts."""
    a = spec.batch.pool_attribute
    dev = policy.pool_submit_hosts(spec, "prompt")[0]
    # A submit host the user pool trusts but prompt does not (the notebook schedd in lsst-ldf).
    prompt_hosts = policy.pool_submit_hosts(spec, "prompt")
    open_hosts = [h for h in policy.pool_submit_hosts(spec, "user") if h not in prompt_hosts]
    nb = open_hosts[0] if open_hosts else dev
    prompt_group = policy.accounting_group(spec, "prompt")
    attempts = [
        Attempt("legit-prompt", "prompt service submits nightly work from a development host",
                PROMPT_SERVICE, dev, "prompt", {a: '"prompt"'}, legitimate=True),
        Attempt("legit-user", "science user submits L3 work from their notebook",
                SCIENCE_USER, nb, "user", {a: '"user"'}, legitimate=True),
        Attempt("legit-default", "a job naming no pool lands in the default pool",
                SCIENCE_USER, nb, spec.batch.default_pool, {}, legitimate=True),
        Attempt("forged-pool-attribute", "science user labels the job for prompt processing",
                SCIENCE_USER, nb, "prompt", {a: '"prompt"'}, legitimate=False),
        Attempt("forged-pool-expression", "pool attribute written as an expression that equals any node's",
                SCIENCE_USER, nb, "prompt", {a: f"TARGET.{a}"}, legitimate=False),
        Attempt("forged-accounting-group", "science user claims the prompt accounting group",
                SCIENCE_USER, dev, "prompt",
                {a: '"prompt"', "AcctGroup": f'"{prompt_group}"', "AccountingGroup": f'"{prompt_group}.bob"',
                 "AcctGroupUser": '"bob"'}, legitimate=False),
        Attempt("forged-accounting-group-expression", "accounting group written to read the node's own table",
                SCIENCE_USER, dev, "prompt",
                {a: '"prompt"', "AcctGroup": f"TARGET.{policy.GROUPS_ATTR}[TARGET.{a}]"}, legitimate=False),
        Attempt("forged-owner", "science user claims to be the prompt service account",
                SCIENCE_USER, nb, "prompt", {a: '"prompt"', "Owner": f'"{PROMPT_SERVICE}"'}, legitimate=False),
        Attempt("user-job-on-prompt-node", "an honest user job tried against a prompt node",
                SCIENCE_USER, nb, "prompt", {a: '"user"'}, legitimate=False),
        Attempt("unknown-pool", "a pool that does not exist",
                SCIENCE_USER, nb, "user", {a: '"nightly"'}, legitimate=False),
        Attempt("untrusted-schedd", "a schedd the user runs in their own pod, with no enclave transform",
                SCIENCE_USER, ROGUE_SCHEDD, "user",
                {a: '"user"', "AcctGroup": '"group_user"', "AccountingGroup": '"group_user.bob"'},
                legitimate=False, trusted_schedd=False),
        Attempt("untrusted-schedd-forging-submit-host", "rogue schedd also forges the trusted schedd's name: "
                "START cannot tell, the collector refuses its ads, so it is never matched",
                SCIENCE_USER, ROGUE_SCHEDD, "user",
                {a: '"user"', "AcctGroup": '"group_user"', "AccountingGroup": '"group_user.bob"',
                 policy.SCHEDD_ATTR: f'"{nb}"'}, legitimate=False, trusted_schedd=False),
    ]
    if nb != dev:
        # GlobalJobId too: the schedd keeps a user's for every proc past the first (policy.transform_rules).
        attempts.append(Attempt(
            "forged-submit-host", "developer submits DRP work from a notebook, claiming a development host",
            DEVELOPER, nb, "drp",
            {a: '"drp"', policy.SCHEDD_ATTR: f'"{dev}"', "GlobalJobId": f'"{dev}#7.0#0"'}, legitimate=False))
        attempts.append(Attempt("legit-drp", "developer submits DRP work from a development host",
                                DEVELOPER, dev, "drp", {a: '"drp"'}, legitimate=True))
    if "prompt" in policy.overflow_pools(spec) and "drp" in spec.pools:
        # Overflow: prompt's jobs may run on every startd, with prompt's own group and schedds still required.
        attempts.append(Attempt("legit-prompt-overflow", "prompt service work overflowing onto a DRP node",
                                PROMPT_SERVICE, dev, "drp", {a: '"prompt"'}, legitimate=True))
        attempts.append(Attempt("forged-pool-overflow", "science user labels the job for prompt to reach a DRP "
                                "node through the overflow", SCIENCE_USER, nb, "drp", {a: '"prompt"'},
                                legitimate=False))
        if nb != dev:
            # START reads the job's own pool's schedds on another pool's node, not the node's pool's.
            attempts.append(Attempt("overflow-through-the-nodes-schedd", "prompt service work submitted through a "
                                    "schedd the user pool trusts and prompt does not, onto a user node",
                                    PROMPT_SERVICE, nb, "user", {a: '"prompt"'}, legitimate=False))
    # Pool names are case-sensitive to START (=?=, identicalMember): refused at submit, not left idle for ever.
    attempts.append(Attempt("pool-in-capitals", "prompt service names its pool in capitals",
                            PROMPT_SERVICE, dev, "prompt", {a: '"PROMPT"'}, legitimate=False))
    return attempts


def submitted_ad(attempt: Attempt) -> ClassAd:
    ad = ClassAd({"RequestCpus": 1, "RequestMemory": 2048, "JobUniverse": 5})
    for attr, text in attempt.submitted.items():
        ad[attr] = policy.parse_expr(text, where=f"{attempt.name}: +{attr}")
    return ad


def evaluate(spec: EnclaveSpec, attempt: Attempt, *, allowed_schedds: Sequence[str] | None = None) -> Verdict:
    """Run one attempt through schedd, START, Requirements and authorization.

    ``allowed_schedds`` is what the collector's ALLOW_ADVERTISE_SCHEDD admits (default: ``batch.submit_hosts``,
    as ``render.central_manager`` writes it). Needs the membership map loaded (``policy.load_membership``).
    """
    submitted = submitted_ad(attempt)
    submitted["Requirements"] = policy.default_requirements(spec)
    if attempt.trusted_schedd:
        admission = policy.schedd_admit(spec, submitted, owner=attempt.owner, schedd=attempt.schedd)
    else:
        # A stock schedd sets Owner and GlobalJobId the same way but runs none of the enclave's rules.
        ad = ClassAd(repr(submitted))
        ad["Owner"] = attempt.owner
        ad["GlobalJobId"] = f"{attempt.schedd}#1.0#0"
        ad["MyType"] = "Job"
        admission = Admission(ad=ad)
    job = admission.ad
    node = policy.machine_ad(spec, Startd(name=f"{attempt.target_pool}-node", node=f"{attempt.target_pool}-node",
                                          kind=StartdKind.STANDALONE, pool=attempt.target_pool, cores=24,
                                          memory_mib=131072))
    failures = tuple(c.name for c in policy.start_clauses(spec) if c.expr.eval(scope=node, target=job) is not True)
    whole = node.lookup("Start").eval(scope=node, target=job) is True
    if whole != (not failures):  # the clauses are the conjuncts of START: they must agree
        raise AssertionError(f"{attempt.name}: START and its clauses disagree")
    trusted = list(spec.batch.submit_hosts if allowed_schedds is None else allowed_schedds)
    return Verdict(
        attempt=attempt,
        admission=admission,
        start_failures=failures,
        requirements_ok=bool(node.matches(job)),
        authorized=attempt.schedd in trusted,
        stored=job,
    )


def run(spec: EnclaveSpec, members: Mapping[str, Sequence[str]] | None = None) -> list[Verdict]:
    """Load the membership map and judge every attempt of the catalogue."""
    policy.load_membership(spec, catalogue_members(spec) if members is None else members)
    return [evaluate(spec, a) for a in catalogue(spec)]
