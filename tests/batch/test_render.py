"""Every rendered config file, read back through HTCondor's own config parser (one child process each)."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest
from classad2 import ClassAd, ExprTree

from enclave.access.render import namespace_objects
from enclave.batch import idtoken, policy, render
from enclave.domain.capacity import StartdKind
from enclave.errors import InputError
from enclave.spec.models import BatchTokens, EnclaveSpec

from .conftest import DEV, NOTEBOOK_SCHEDD, negotiator_order, startd

POD_ENV = {render.POD_POOL_ENV: "user", render.POD_NODE_ENV: "kub-003", render.POD_CPUS_ENV: "8",
           render.POD_MEMORY_ENV: "32768", render.POD_SINCE_ENV: "0"}


@pytest.fixture(scope="module")
def rendered(ldf: EnclaveSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("condor")
    members = {"alice": ["drp", "user"], "prompt-svc": ["prompt"], "*": ["general"]}
    render.write(render.render_all(ldf, members=members, config_dir=str(out)), out)
    return out


def test_every_role_is_rendered(rendered: Path, ldf: EnclaveSpec) -> None:
    names = sorted(p.name for p in rendered.iterdir())
    assert names == sorted(["central-manager.conf", "enclave-groups.map", "worker-pod-whole.conf",
                            "worker-pod-partitioned.conf",
                            *(f"submit-{h}.conf" for h in ldf.batch.submit_hosts),
                            *(f"execute-{p}.conf" for p in ldf.pools)])


def test_every_config_file_parses(rendered: Path) -> None:
    for path in sorted(rendered.glob("*.conf")):
        got = render.read_back(path, ["CONDOR_HOST", "DAEMON_LIST", "SEC_DEFAULT_AUTHENTICATION"],
                               env=POD_ENV)
        assert got["CONDOR_HOST"] == "lsst-condor-cm.ncsa.illinois.edu", path.name
        assert got["SEC_DEFAULT_AUTHENTICATION"] == "REQUIRED", path.name
        assert got["DAEMON_LIST"] and got["DAEMON_LIST"].startswith("MASTER"), path.name


def test_central_manager(rendered: Path, ldf: EnclaveSpec) -> None:
    got = render.read_back(rendered / "central-manager.conf",
                           ["DAEMON_LIST", "GROUP_NAMES", "GROUP_ACCEPT_SURPLUS", "ALLOW_ADVERTISE_SCHEDD",
                            *(f"GROUP_QUOTA_DYNAMIC_group_{p}" for p in ldf.pools)], subsystem="NEGOTIATOR")
    assert got["DAEMON_LIST"] == "MASTER, COLLECTOR, NEGOTIATOR"
    assert got["GROUP_NAMES"] == "group_prompt, group_drp, group_user, group_general"
    assert {p: float(got[f"GROUP_QUOTA_DYNAMIC_group_{p}"] or "nan") for p in ldf.pools} == {
        p: pool.guaranteed_share for p, pool in ldf.pools.items()}
    assert got["ALLOW_ADVERTISE_SCHEDD"] == ", ".join(f"condor@*/{h}" for h in ldf.batch.submit_hosts)


# LDF group quotas of a 960-core pool (GROUP_QUOTA_DYNAMIC x the pool): prompt 0.25 -> 240, drp 0.40 -> 384,
# user 0.10 -> 96, general 0.05 -> 48. Prompt at 90 % of its quota, DRP at 10 %, user at 50 %, general at 20 %;
# "<none>" (the root group) holds nothing.
LOADS = {"group_general": (9.6, 48), "group_user": (48, 96), "<none>": (0, 0), "group_prompt": (216, 240),
         "group_drp": (38.4, 384)}


def test_group_sort_expr_puts_the_latency_group_first(rendered: Path) -> None:
    expr = render.read_back(rendered / "central-manager.conf", ["GROUP_SORT_EXPR"],
                            subsystem="NEGOTIATOR")["GROUP_SORT_EXPR"]
    assert expr is not None
    # HTCondor's default sorts by usage / quota alone: DRP (0.1), general (0.2), user (0.5), prompt (0.9),
    # then "<none>" (3.4e+38). The rendered one takes prompt's group (the latency objective) first, the rest
    # in that order.
    assert negotiator_order(render.GROUP_SORT_DEFAULT, LOADS) == [
        "group_drp", "group_general", "group_user", "group_prompt", "<none>"]
    assert negotiator_order(expr, LOADS) == ["group_prompt", "group_drp", "group_general", "group_user", "<none>"]
    # On surplus (twice its quota) prompt still goes first; without a quota too (1.0, below every other
    # group's 2 + usage / quota); a group without a quota that is not a latency group goes after those with one.
    assert negotiator_order(expr, {**LOADS, "group_prompt": (480, 240)})[0] == "group_prompt"
    assert negotiator_order(expr, {**LOADS, "group_prompt": (0, 0)})[0] == "group_prompt"
    assert negotiator_order(expr, {**LOADS, "group_drp": (38.4, 0)}) == [
        "group_prompt", "group_general", "group_user", "group_drp", "<none>"]


def test_several_latency_groups_go_most_starved_first(ldf: EnclaveSpec) -> None:
    user = ldf.pools["user"].model_copy(update={"latency_objective": ldf.pools["prompt"].latency_objective})
    expr = render.group_sort_expr(ldf.model_copy(update={"pools": {**ldf.pools, "user": user}}))
    # Both latency groups first, user (0.5) before prompt (0.9); then DRP and general as before.
    assert negotiator_order(expr, LOADS) == ["group_user", "group_prompt", "group_drp", "group_general", "<none>"]
    # A latency group without a quota: after the latency groups with one, before every other group.
    assert negotiator_order(expr, {**LOADS, "group_user": (48, 0)}) == [
        "group_prompt", "group_user", "group_drp", "group_general", "<none>"]


def test_without_a_latency_pool_the_group_sort_is_htcondor_s_default(ldf: EnclaveSpec, tmp_path: Path) -> None:
    pools = {n: p.model_copy(update={"latency_objective": None}) for n, p in ldf.pools.items()}
    assert render.group_sort_expr(ldf.model_copy(update={"pools": pools})) == render.GROUP_SORT_DEFAULT
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    default = render.read_back(empty, ["GROUP_SORT_EXPR"], subsystem="NEGOTIATOR")["GROUP_SORT_EXPR"]
    assert default is not None and ExprTree(default) == ExprTree(render.GROUP_SORT_DEFAULT)


def test_pre_job_rank_puts_the_job_s_own_pool_first(rendered: Path, ldf: EnclaveSpec, tmp_path: Path) -> None:
    expr = render.read_back(rendered / "central-manager.conf", ["NEGOTIATOR_PRE_JOB_RANK"],
                            subsystem="NEGOTIATOR")["NEGOTIATOR_PRE_JOB_RANK"]
    assert expr is not None
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    default = render.read_back(empty, ["NEGOTIATOR_PRE_JOB_RANK"], subsystem="NEGOTIATOR")["NEGOTIATOR_PRE_JOB_RANK"]
    assert default is not None and ExprTree(default) == ExprTree(render.PRE_JOB_RANK_DEFAULT)
    job = policy.job_ad(ldf, owner="prompt-svc", pool="prompt", schedd=DEV)

    def rank(rule: str, pool: str, cpus: int, memory_mib: int) -> float:
        # The negotiator keeps the value as a float (matchmaker.cpp, EvalNegotiatorMatchRank: rank = (float)val).
        slot = policy.machine_ad(ldf, startd(pool, cores=cpus, memory_mib=memory_mib))
        value = float(ExprTree(rule).eval(scope=slot, target=job))
        return float(struct.unpack("f", struct.pack("f", value))[0])

    # HTCondor's default prefers the smallest slot (-100000 per core, -1 per MiB), whatever its pool: a DRP slot of
    # 4 cores before prompt's of 24. The rendered rule takes prompt's own first, and the default's order among
    # slots of the same pool.
    assert rank(default, "drp", 4, 16384) > rank(default, "prompt", 24, 131072)
    assert rank(expr, "prompt", 24, 131072) > rank(expr, "drp", 4, 16384)
    assert rank(expr, "prompt", 4, 16384) > rank(expr, "prompt", 24, 131072)
    # ... and still tells slots apart by a core or by 16 MiB in the float the negotiator keeps.
    assert rank(expr, "prompt", 4, 16384) > rank(expr, "prompt", 5, 16384)
    assert rank(expr, "prompt", 4, 16384) > rank(expr, "prompt", 4, 16400)
    # The own-pool term outweighs the default's whole range: the largest node of the spec against a one-core slot.
    big = max(g.cores for g in ldf.cluster.node_groups)
    mem = max(int(g.memory_gib * 1024) for g in ldf.cluster.node_groups)
    assert rank(expr, "prompt", big, mem) > rank(expr, "drp", 1, 1)


def test_without_a_latency_pool_the_pre_job_rank_is_htcondor_s_default(ldf: EnclaveSpec, tmp_path: Path) -> None:
    pools = {n: p.model_copy(update={"latency_objective": None}) for n, p in ldf.pools.items()}
    spec = ldf.model_copy(update={"pools": pools})
    assert "NEGOTIATOR_PRE_JOB_RANK" not in render.central_manager(spec).text


@pytest.mark.parametrize("pool", ["prompt", "drp", "user", "general"])
def test_execute_node_start_label_and_authorization(rendered: Path, ldf: EnclaveSpec, pool: str) -> None:
    a = ldf.batch.pool_attribute
    got = render.read_back(rendered / f"execute-{pool}.conf",
                           ["START", a, policy.GROUPS_ATTR, policy.SCHEDDS_ATTR, "STARTD_ATTRS", "ALLOW_DAEMON",
                            "ALLOW_WRITE", "SETTABLE_ATTRS_CONFIG", "SLOT_TYPE_1_PARTITIONABLE",
                            "ENABLE_RUNTIME_CONFIG", "MAXJOBRETIREMENTTIME", "STARTD_JOB_ATTRS", policy.VACATE_ATTR],
                           subsystem="STARTD")
    assert ExprTree(got["START"] or "") == policy.start_expr(ldf)
    assert ExprTree(got[a] or "").eval() == pool
    assert ExprTree(got[policy.GROUPS_ATTR] or "").eval() == policy.groups_table(ldf)
    assert ExprTree(got[policy.SCHEDDS_ATTR] or "").eval() == policy.schedds_table(ldf)
    assert set((got["STARTD_ATTRS"] or "").split()) >= {a, policy.GROUPS_ATTR, policy.SCHEDDS_ATTR}
    # The job's declared limit reaches its dynamic slot's ad (batch.live.running_jobs reads it there).
    assert "AllowedExecuteDuration" in (got["STARTD_JOB_ATTRS"] or "").split()
    # The pool's own schedds, then prompt's (its jobs overflow onto every startd), each once.
    own = list(policy.pool_submit_hosts(ldf, pool))
    trusted = ["lsst-condor-cm.ncsa.illinois.edu", *own,
               *(h for h in policy.pool_submit_hosts(ldf, "prompt") if h not in own)]
    assert got["ALLOW_DAEMON"] == got["ALLOW_WRITE"] == ", ".join(f"condor@*/{h}" for h in trusted)
    if pool in ("prompt", "drp"):  # reserved pools: the notebook schedd may not connect as a daemon
        assert NOTEBOOK_SCHEDD not in (got["ALLOW_DAEMON"] or "")
    # The label, its timestamp, the drain deadline and one relabel deadline per pool (test_vacate), nothing else.
    assert got["SETTABLE_ATTRS_CONFIG"] == ", ".join([render.POOL_KNOB, render.SINCE_KNOB, render.DRAIN_DUE_KNOB,
                                                      *(f"ENCLAVE_VACATE_{p}" for p in ldf.pools)])
    grace = render.LET_FINISH_SECONDS if pool != "drp" else int(ldf.pools["drp"].grace_seconds)  # drp: vacate
    # MaxJobRetirementTime is evaluated with the slot as MY and the job as TARGET (test_vacate): before any
    # relabel, a job of the pool retires for the pool's grace.
    slot = ClassAd({a: pool, "JobStart": 0, policy.VACATE_ATTR: ExprTree(got[policy.VACATE_ATTR] or "")})
    job = policy.job_ad(ldf, owner="svc", pool=pool, schedd=DEV)
    assert ExprTree(got["MAXJOBRETIREMENTTIME"] or "").eval(slot, job) == grace
    assert got["SLOT_TYPE_1_PARTITIONABLE"] == "True" and got["ENABLE_RUNTIME_CONFIG"] == "True"


def test_rendered_start_matches_like_the_policy(rendered: Path, ldf: EnclaveSpec) -> None:
    """A machine ad assembled from the values HTCondor read back matches exactly like machine_ad()."""
    a = ldf.batch.pool_attribute
    got = render.read_back(rendered / "execute-prompt.conf", ["START", a, policy.GROUPS_ATTR, policy.SCHEDDS_ATTR],
                           subsystem="STARTD")
    machine = ClassAd({"Cpus": 24, "Memory": 131072, "Arch": policy.ARCH, "OpSys": policy.OPSYS})
    for key in (a, policy.GROUPS_ATTR, policy.SCHEDDS_ATTR):
        machine[key] = ExprTree(got[key] or "")
    machine["Start"] = ExprTree(got["START"] or "")
    machine["Requirements"] = ExprTree("START")
    good = policy.job_ad(ldf, owner="prompt-svc", pool="prompt", schedd=DEV)
    bad = policy.job_ad(ldf, owner="bob", pool="prompt", schedd=NOTEBOOK_SCHEDD)
    assert machine.symmetricMatch(good) and not machine.symmetricMatch(bad)


def test_relabel_is_one_knob(rendered: Path, ldf: EnclaveSpec) -> None:
    """Setting ENCLAVE_POOL (what RemoteParam does at runtime) moves the label and the ALLOW lists together."""
    a = ldf.batch.pool_attribute
    got = render.read_back(rendered / "execute-user.conf", [a, "ALLOW_DAEMON"], subsystem="STARTD",
                           env={f"_CONDOR_{render.POOL_KNOB}": "prompt"})
    assert ExprTree(got[a] or "").eval() == "prompt"
    assert NOTEBOOK_SCHEDD not in (got["ALLOW_DAEMON"] or "")


def test_worker_pods(rendered: Path) -> None:
    knobs = ["EnclavePool", "EnclaveNode", "EnclaveStartdKind", "NUM_CPUS", "MEMORY", "CCB_ADDRESS",
             "STARTD_NOCLAIM_SHUTDOWN", "ALLOW_DAEMON"]
    part = render.read_back(rendered / "worker-pod-partitioned.conf", knobs, subsystem="STARTD", env=POD_ENV)
    whole = render.read_back(rendered / "worker-pod-whole.conf", knobs, subsystem="STARTD", env=POD_ENV)
    for got in (part, whole):
        assert ExprTree(got["EnclavePool"] or "").eval() == "user"
        assert ExprTree(got["EnclaveNode"] or "").eval() == "kub-003"
        assert got["CCB_ADDRESS"] == "lsst-condor-cm.ncsa.illinois.edu"
        assert got["STARTD_NOCLAIM_SHUTDOWN"] == "0"
        assert NOTEBOOK_SCHEDD in (got["ALLOW_DAEMON"] or "")
    assert ExprTree(part["EnclaveStartdKind"] or "").eval() == StartdKind.POD.value
    assert ExprTree(whole["EnclaveStartdKind"] or "").eval() == StartdKind.NODE.value
    # Both offer what the pod says it has (a whole worker's: what the node has left, KubeCluster._room_left).
    assert part["NUM_CPUS"] == whole["NUM_CPUS"] == "8" and part["MEMORY"] == whole["MEMORY"] == "32768"


@pytest.mark.parametrize("name", ["execute-drp.conf", "worker-pod-partitioned.conf", "worker-pod-whole.conf"])
def test_the_broker_may_drain_and_relabel_from_its_pod(rendered: Path, name: str) -> None:
    """The broker runs in the enclave-api pod (docs/deploy.md), at no fixed address, with an IDTOKEN for
    render.BROKER_IDENTITY: every startd admits that identity from any host for what the broker sends —
    DRAIN_JOBS and the reconfig at ADMINISTRATOR (startd_main.cpp, daemon_core_main.cpp), runtime settings at
    CONFIG — as well as the central manager's own daemons."""
    got = render.read_back(rendered / name, ["ALLOW_ADMINISTRATOR", "ALLOW_CONFIG"], subsystem="STARTD", env=POD_ENV)
    for knob in ("ALLOW_ADMINISTRATOR", "ALLOW_CONFIG"):
        assert [a.strip() for a in (got[knob] or "").split(",")] == [
            "condor@*/lsst-condor-cm.ncsa.illinois.edu", "enclave-broker@*/*"]


def test_notebook_pods_may_submit_to_the_commons_schedd(rendered: Path, ldf: EnclaveSpec) -> None:
    """condor_submit writes the queue with QMGMT_WRITE_CMD, which the schedd registers at WRITE (schedd.cpp), and
    IpVerify matches an ALLOW entry's host part against the peer's IP address and its names (condor_ipverify.cpp;
    htcondor/htcondor 7491a14). A notebook pod connects from its own pod address, which is neither the schedd pod's
    $(FULL_HOSTNAME) nor its $(IP_ADDRESS): the commons schedd must take any host, and any user only once
    authenticated. WRITE's authentication setting falls back to SEC_DEFAULT_AUTHENTICATION when
    SEC_WRITE_AUTHENTICATION is unset (condor_secman.cpp ``getSecSetting``, condor_perms.cpp ``aConfigNext``).
    A login host's schedd keeps its queue to its own host's users."""
    assert [h for h in ldf.batch.submit_hosts if render.commons_schedd(ldf, h)] == [NOTEBOOK_SCHEDD]
    knobs = ["ALLOW_WRITE", "DENY_WRITE", "SEC_WRITE_AUTHENTICATION", "SEC_DEFAULT_AUTHENTICATION"]
    got = render.read_back(rendered / f"submit-{NOTEBOOK_SCHEDD}.conf", knobs, subsystem="SCHEDD")
    assert "*@*/*" in [e.strip() for e in (got["ALLOW_WRITE"] or "").split(",")]
    assert got["DENY_WRITE"] is None
    assert got["SEC_WRITE_AUTHENTICATION"] is None and got["SEC_DEFAULT_AUTHENTICATION"] == "REQUIRED"
    # The network bound: the notebook namespace denies everything (access.render), then lets its notebooks
    # (Z2JH's component=singleuser-server) reach the schedd's pods, which the chart renders no policy for, on
    # 9618 alone: HTCondor's shared port (SHARED_PORT_PORT defaults to COLLECTOR_PORT, 9618; param_info.in).
    policies = {o["metadata"]["name"]: o["spec"] for o in namespace_objects(ldf, ldf.notebooks.namespace)
                if o["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    notebooks = {"podSelector": {"matchLabels": {"component": "singleuser-server"}}}
    submit = policies["allow-notebook-submit"]
    assert submit["podSelector"] == notebooks["podSelector"] and submit["policyTypes"] == ["Egress"]
    assert [rule["ports"] for rule in submit["egress"]] == [[{"protocol": "TCP", "port": 9618}]]
    assert {"from": [notebooks], "ports": [{"protocol": "TCP", "port": 9618}]} in \
        policies["allow-same-namespace"]["ingress"]
    dev = render.read_back(rendered / f"submit-{DEV}.conf", ["ALLOW_WRITE"], subsystem="SCHEDD")["ALLOW_WRITE"]
    assert not render.commons_schedd(ldf, DEV)
    assert "*@*/*" not in [e.strip() for e in (dev or "").split(",")]


def test_no_other_daemon_lets_the_broker_administer_it(rendered: Path, ldf: EnclaveSpec) -> None:
    """A leaked broker token must not shut down the collector, the negotiator or a schedd: only startd hosts admit
    its identity as an administrator. The schedds admit it to WRITE alone, for holding and removing departed
    accounts' jobs (HTCondorJobs.act sends ACT_ON_JOBS, which the schedd registers at WRITE: schedd.cpp)."""
    for path in [rendered / "central-manager.conf", *(p for p in rendered.glob("submit-*.conf"))]:
        got = render.read_back(path, ["ALLOW_ADMINISTRATOR", "ALLOW_CONFIG", "ALLOW_WRITE"])
        assert "enclave-broker" not in f"{got['ALLOW_ADMINISTRATOR']} {got['ALLOW_CONFIG']}", path
        if path.name.startswith("submit-"):
            assert "enclave-broker@*/*" in [a.strip() for a in (got["ALLOW_WRITE"] or "").split(",")], path
            # And a queue super user, to act on others' jobs: HTCondor's own 'root, condor' (param_info.in) kept, the
            # broker by its whole name (qmgmt.cpp: a bare entry would mean user@UID_DOMAIN, this host's name).
            supers = render.read_back(path, ["QUEUE_SUPER_USERS"], subsystem="SCHEDD")["QUEUE_SUPER_USERS"] or ""
            broker = f"enclave-broker@{ldf.batch.central_manager}"
            assert [u.strip() for u in supers.split(",")] == ["root", "condor", broker]


def test_every_daemon_is_in_the_central_managers_trust_domain(rendered: Path, ldf: EnclaveSpec) -> None:
    """A client presents only tokens whose issuer is the server's TRUST_DOMAIN (condor_auth_passwd.cpp, checkToken),
    which defaults to $(UID_DOMAIN), itself $(FULL_HOSTNAME) (param_info.in): left so, every host — every pod — is a
    trust domain of its own, and no token minted elsewhere is ever presented to it."""
    for path in rendered.glob("*.conf"):
        got = render.read_back(path, ["TRUST_DOMAIN"], env=POD_ENV)
        assert got["TRUST_DOMAIN"] == ldf.batch.central_manager, path


def test_submit_host_transform_is_what_policy_evaluates(rendered: Path, ldf: EnclaveSpec) -> None:
    names = [f"JOB_TRANSFORM_{render.TRANSFORM}", "JOB_TRANSFORM_NAMES", "SUBMIT_REQUIREMENT_NAMES", "SCHEDD_NAME",
             "PROTECTED_JOB_ATTRS", "IMMUTABLE_JOB_ATTRS", "SECURE_JOB_ATTRS",
             *(f"SUBMIT_REQUIREMENT_{r.name}" for r in policy.submit_requirements(ldf)),
             *(f"SUBMIT_REQUIREMENT_{r.name}_REASON" for r in policy.submit_requirements(ldf))]
    probes = ['userMap("EnclaveGroups", "alice")', 'userMap("EnclaveGroups", "alice", "group_prompt")',
              'userMap("EnclaveGroups", "prompt-svc")', 'userMap("EnclaveGroups", "mallory")']
    got = render.read_back(rendered / f"submit-{DEV}.conf", names, subsystem="SCHEDD", expressions=probes)
    rules = []
    for line in (got[f"JOB_TRANSFORM_{render.TRANSFORM}"] or "").splitlines():
        verb, attr, text = line.strip().split(" ", 2)
        assert verb == "EVALSET"
        rules.append((attr, ExprTree(text)))
    assert rules == policy.transform_rules(ldf, DEV)
    assert (policy.SCHEDD_ATTR, ExprTree(f'"{DEV}"')) in rules  # the host itself, whatever the job says
    for r in policy.submit_requirements(ldf):
        assert ExprTree(got[f"SUBMIT_REQUIREMENT_{r.name}"] or "") == r.expr
        assert ExprTree(got[f"SUBMIT_REQUIREMENT_{r.name}_REASON"] or "") == r.reason
    assert render.TRANSFORM in (got["JOB_TRANSFORM_NAMES"] or "").split()
    assert got["SCHEDD_NAME"] == DEV
    assert set((got["PROTECTED_JOB_ATTRS"] or "").split()) >= {"AcctGroup", "AccountingGroup", "EnclavePool",
                                                               policy.SCHEDD_ATTR}
    assert "GlobalJobId" in (got["IMMUTABLE_JOB_ATTRS"] or "")
    # A user's GlobalJobId is ignored before commit too (qmgmt.cpp ModifyAttrCheck, htcondor/htcondor 7491a14).
    # The transform's attributes must not be secure: ModifyAttrCheck checks that before it lets a submit
    # transform's write through, and would ignore theirs during the user's commit as well.
    secure = set((got["SECURE_JOB_ATTRS"] or "").split())
    assert "GlobalJobId" in secure and not secure & {attr for attr, _ in rules}
    # The schedd's own userMap, loaded from the rendered map through the rendered config.
    assert got[probes[0]] == "'group_drp,group_user'"
    assert got[probes[1]] == "'group_drp'"  # not a member of prompt: falls back to the first group
    assert got[probes[2]] == "'group_prompt'"
    assert got[probes[3]] == "'group_general'"


def test_bad_inputs(ldf: EnclaveSpec, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not in batch.submit_hosts"):
        render.submit_host(ldf, "elsewhere.example.org")
    with pytest.raises(InputError, match="unknown or no pools"):
        render.usermap(ldf, {"alice": ["nightly"]})
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot be the output directory"):
        render.write(render.render_all(ldf), blocker / "sub")


def _with_tokens(spec: EnclaveSpec, **tokens: object) -> EnclaveSpec:
    notebooks = spec.notebooks.model_copy(update={"batch_tokens": BatchTokens.model_validate(tokens)})
    return spec.model_copy(update={"notebooks": notebooks})


def test_the_commons_schedd_takes_notebook_tokens(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """What a notebook pod's token needs of the commons schedd, read back by HTCondor's parser: a client presents a
    token only when its issuer is the server's TRUST_DOMAIN (condor_auth_passwd.cpp ``checkToken``), and the schedd
    takes the identity's domain for the job's, a local user only in its UID_DOMAIN (qmgmt.cpp ``SetAttribute``), so
    the minted ``sub`` must end in the UID_DOMAIN this file gives. The key is a file of SEC_PASSWORD_DIRECTORY named
    as the spec names it (store_cred.cpp ``getTokenSigningKeyPath``)."""
    spec = _with_tokens(ldf, enabled=True)
    path = render.write([render.submit_host(spec, NOTEBOOK_SCHEDD)], tmp_path)[0]
    got = render.read_back(path, ["UID_DOMAIN", "TRUST_DOMAIN", "SEC_PASSWORD_DIRECTORY", render.NOTEBOOK_KEY_KNOB],
                           subsystem="SCHEDD")
    token = idtoken.mint(b"k", key_name=spec.notebooks.batch_tokens.key, issuer=spec.batch.central_manager,
                         subject=idtoken.notebook_subject(spec, "alice"), lifetime_s=60, now=0)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == got["TRUST_DOMAIN"] == "lsst-condor-cm.ncsa.illinois.edu"
    assert claims["sub"] == f"alice@{got['UID_DOMAIN']}"
    # The domain every commons schedd's Service name ends in, so one token serves all of them.
    assert NOTEBOOK_SCHEDD.endswith(f".{got['UID_DOMAIN']}")
    assert got[render.NOTEBOOK_KEY_KNOB] == f"{got['SEC_PASSWORD_DIRECTORY']}/NOTEBOOKS"


def test_a_notebook_token_buys_no_other_token(rendered: Path, ldf: EnclaveSpec) -> None:
    """daemon_core_main.cpp: ``handle_dc_session_token`` signs a token for the asking identity with the pool's key
    (``get_token_signing_key``) and no expiry unless asked, unless SEC_ENABLE_TOKEN_FETCH is false;
    ``handle_dc_start_token_request`` likewise with SEC_ENABLE_TOKEN_REQUEST. Both default true (param_info.in),
    which a login host's schedd keeps."""
    knobs = ["SEC_ENABLE_TOKEN_FETCH", "SEC_ENABLE_TOKEN_REQUEST"]
    commons = render.read_back(rendered / f"submit-{NOTEBOOK_SCHEDD}.conf", knobs, subsystem="SCHEDD")
    assert commons == {"SEC_ENABLE_TOKEN_FETCH": "False", "SEC_ENABLE_TOKEN_REQUEST": "False"}
    login = render.read_back(rendered / f"submit-{DEV}.conf", knobs, subsystem="SCHEDD")
    assert "False" not in login.values()


def test_a_minted_condor_is_no_daemon_at_the_commons_schedd(rendered: Path) -> None:
    """The hub can sign any ``sub`` with the notebook key, ``condor@…`` too; IpVerify matches an entry's host part
    against the peer's address (condor_ipverify.cpp), so ``condor@*/<central manager>`` admits no notebook pod.
    A login host's schedd keeps ``condor@*/*``."""
    commons = render.read_back(rendered / f"submit-{NOTEBOOK_SCHEDD}.conf", ["ALLOW_DAEMON"], subsystem="SCHEDD")
    assert commons["ALLOW_DAEMON"] == "condor@*/lsst-condor-cm.ncsa.illinois.edu"
    login = render.read_back(rendered / f"submit-{DEV}.conf", ["ALLOW_DAEMON"], subsystem="SCHEDD")
    assert "condor@*/*" in [e.strip() for e in (login["ALLOW_DAEMON"] or "").split(",")]


def test_no_notebook_token_for_a_queue_super_user(rendered: Path, ldf: EnclaveSpec) -> None:
    """A bare QUEUE_SUPER_USERS entry is that user in the schedd's UID_DOMAIN (qmgmt.cpp ``ContainsUserName``:
    ASSUME_UID_DOMAIN), the domain of notebook tokens: an account named as one would edit everyone's jobs."""
    got = render.read_back(rendered / f"submit-{NOTEBOOK_SCHEDD}.conf", ["QUEUE_SUPER_USERS"], subsystem="SCHEDD")
    bare = [u.strip() for u in (got["QUEUE_SUPER_USERS"] or "").split(",") if "@" not in u]
    assert bare == ["root", "condor"]
    for user in bare:
        with pytest.raises(InputError):
            idtoken.notebook_subject(ldf, user)


def test_no_notebook_key_without_notebook_tokens(rendered: Path) -> None:
    got = render.read_back(rendered / f"submit-{NOTEBOOK_SCHEDD}.conf", [render.NOTEBOOK_KEY_KNOB],
                           subsystem="SCHEDD")
    assert got[render.NOTEBOOK_KEY_KNOB] is None
