"""Rendered Kubernetes access, validated against the schema of the spec's Kubernetes version.

kubernetes-validate ships schemas from 1.25 on. The LSST LDF spec runs Kubernetes 1.9.3 (seed §9), which
it cannot validate against, so such specs are validated against the OLDEST schema it has (1.25) — and the
renderer only uses API groups that already existed in 1.9 (rbac v1, networking v1, core v1), which the
test below checks separately.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from enclave.access.render import (
    NOT_CHART_POLICED,
    SERVICE_POD_ROOM,
    VIEW_ROLE,
    Subject,
    app_namespaces,
    render_access,
)
from enclave.accounts import lifecycle, storage
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.notebooks.profiles import service_room
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec, Role
from tests.accounts.conftest import ADMIN, onboard

# RFC 1123 subdomain as apimachinery IsDNS1123Subdomain checks it: dot-separated labels, each alphanumeric at both ends.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
APIS_IN_1_9 = {"v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1"}


def schema_version(kube_version: str) -> str:
    """The spec's major.minor if kubernetes-validate has it, else its oldest (or newest) schema."""
    available = sorted({tuple(map(int, v.split(".")[:2])) for v in kubernetes_validate.utils.all_versions()})
    wanted = tuple(map(int, kube_version.lstrip("v").split(".")[:2]))
    chosen = wanted if wanted in available else (available[0] if wanted < available[0] else available[-1])
    return f"{chosen[0]}.{chosen[1]}.0"


def validate_all(spec: EnclaveSpec, objects: dict[str, list[dict[str, Any]]]) -> int:
    version = schema_version(spec.cluster.kubernetes_version)
    count = 0
    for docs in objects.values():
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
            assert doc["apiVersion"] in APIS_IN_1_9, doc["apiVersion"]
            assert DNS_SUBDOMAIN.match(doc["metadata"]["name"]), doc["metadata"]["name"]
            count += 1
    return count


SUBJECTS = [
    Subject("dev", "staff", "active", frozenset({Role.DEVELOPER}), frozenset({"firefly"})),
    Subject("ops", "staff", "active", frozenset({Role.K8S_SERVICE_ADMIN, Role.DEVELOPER}), frozenset({"qserv"})),
    Subject("sec", "staff", "active", frozenset({Role.SECURITY}), frozenset()),
    Subject("sys_admin", "staff", "active", frozenset({Role.SYSADMIN}), frozenset({"portal"})),
    Subject("sci", "science", "active", frozenset({Role.SCIENCE_USER}), frozenset()),
    Subject("gone", "staff", "departed", frozenset(), frozenset({"firefly"})),
    Subject("old", "science", "expired", frozenset({Role.SCIENCE_USER}), frozenset()),
    Subject("root", "staff", "departed", frozenset({Role.K8S_CLUSTER_ADMIN}), frozenset({"qserv"})),
    # Administrators of the cluster and of HTCondor, members of no namespace: seed §8 gives the first the cluster,
    # §7.1 the second HTCondor's ClassAds and daemons (BCS 1, 2, 5), which need no Kubernetes binding (a mutant
    # binding htcondor-admin to admin everywhere passed every test, stop 57).
    Subject("kadmin", "staff", "active", frozenset({Role.K8S_CLUSTER_ADMIN}), frozenset()),
    Subject("condor", "staff", "active", frozenset({Role.HTCONDOR_ADMIN}), frozenset()),
]


@pytest.mark.parametrize("example", ["lsst-ldf.yaml", "minimal.yaml"])
def test_every_object_validates(example: str) -> None:
    spec = load(EXAMPLES / example)
    objects = render_access(spec, SUBJECTS)
    assert list(objects) == app_namespaces(spec)
    assert validate_all(spec, objects) > 0


def test_ldf_is_validated_against_the_oldest_schema() -> None:
    assert schema_version("1.9.3") == "1.25.0"
    assert schema_version("1.29.4") == "1.29.0"


def test_bindings_follow_roles_and_membership() -> None:
    spec = load(EXAMPLES / "lsst-ldf.yaml")
    objects = render_access(spec, SUBJECTS)
    got = {(ns, o["subjects"][0]["name"]): (o["roleRef"]["kind"], o["roleRef"]["name"])
           for ns, docs in objects.items() for o in docs if o["kind"] == "RoleBinding"}
    view = ("Role", VIEW_ROLE)  # Kubernetes' view less pods/log (test_viewers_read_no_logs)
    expected = {("firefly", "dev"): ("ClusterRole", "edit"), ("portal", "sys_admin"): view}
    for ns in app_namespaces(spec):
        expected[(ns, "ops")] = ("ClusterRole", "admin")
        expected[(ns, "kadmin")] = ("ClusterRole", "admin")
        expected[(ns, "sec")] = view
    assert got == expected
    names = {o["metadata"]["name"] for docs in objects.values() for o in docs if o["kind"] == "RoleBinding"}
    assert "enclave-sys-admin.00000008-view" in names  # '_' is no DNS character: object_name codes it


# Kubernetes 1.9's system:aggregate-to-view (release-1.9 plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go):
# what the built-in view grants, get/list/watch on each.
VIEW_1_9 = {
    "": {"pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "endpoints",
         "persistentvolumeclaims", "configmaps", "limitranges", "resourcequotas", "bindings", "events", "pods/status",
         "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log", "namespaces"},
    "apps": {"controllerrevisions", "statefulsets", "statefulsets/scale", "daemonsets", "deployments",
             "deployments/scale", "replicasets", "replicasets/scale"},
    "autoscaling": {"horizontalpodautoscalers"},
    "batch": {"jobs", "cronjobs"},
    "extensions": {"daemonsets", "deployments", "deployments/scale", "ingresses", "replicasets", "replicasets/scale",
                   "replicationcontrollers/scale"},
    "policy": {"poddisruptionbudgets"},
}  # NetworkPolicies joined in 1.10 (kubernetes/kubernetes#56650)


def test_viewers_read_no_logs() -> None:
    """The built-in view grants pods/log, so security staff and members bound to it could read every container's log
    with kubectl, where ``enclave logs`` refuses them and journals the refusal (docs/accounts.md, "Developers'
    logs"): they are bound to a Role with view's rules but that one."""
    spec = load(EXAMPLES / "lsst-ldf.yaml")
    for docs in render_access(spec, SUBJECTS).values():
        [role] = [o for o in docs if o["kind"] == "Role" and o["metadata"]["name"] == VIEW_ROLE]
        granted: dict[str, set[str]] = {}
        for rule in role["rules"]:
            assert rule["verbs"] == ["get", "list", "watch"]
            for group in rule["apiGroups"]:
                granted.setdefault(group, set()).update(rule["resources"])
        assert granted == {g: r - {"pods/log"} for g, r in VIEW_1_9.items()}


def test_a_username_that_is_no_label_value_still_applies() -> None:
    """A label value begins and ends with a letter or digit (apimachinery validation IsValidLabelValue); usernames
    may end in '_' or '-' (``accounts.lifecycle``), so the binding's label is ``user_label``, coded with '.'."""
    spec = load(EXAMPLES / "lsst-ldf.yaml")
    for name in ("bob_", "bob-", "a-"):
        odd = Subject(name, "staff", "active", frozenset({Role.SECURITY}), frozenset())
        [bound] = [o for o in render_access(spec, [odd])["firefly"] if o["kind"] == "RoleBinding"]
        value = bound["metadata"]["labels"]["enclave/user"]
        assert re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value) and len(value) <= 63
        assert bound["subjects"][0]["name"] == name


def test_namespace_guards_and_notebook_limits() -> None:
    spec = load(EXAMPLES / "lsst-ldf.yaml")
    objects = render_access(spec, SUBJECTS)
    for ns, docs in objects.items():
        kinds = [(o["kind"], o["metadata"]["name"]) for o in docs if o["kind"] != "RoleBinding"]
        assert ("Namespace", ns) in kinds
        deny = next(o for o in docs if o["metadata"]["name"] == "default-deny")
        assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        dns = next(o for o in docs if o["metadata"]["name"] == "allow-dns")
        # Both transports: a DNS answer too large for UDP is asked again over TCP, which every DNS client must
        # support (RFC 7766, section 5), and a lookup with EDNS0 off truncates past 512 bytes.
        assert {(p["protocol"], p["port"]) for p in dns["spec"]["egress"][0]["ports"]} == {("UDP", 53), ("TCP", 53)}
        # Policies add up, so default-deny alone would cut the namespace's own pods off each other too.
        # In the notebook namespace not the chart's policed pods (notebook servers, hub, proxy): tests/access/
        # test_netpol.py evaluates that namespace's policies with the chart's.
        own = next(o for o in docs if o["metadata"]["name"] == "allow-same-namespace")["spec"]
        every = {} if ns != spec.notebooks.namespace else NOT_CHART_POLICED
        assert own["podSelector"] == every and own["ingress"][0] == {"from": [{"podSelector": every}]}
        assert own["egress"] == [{"to": [{"podSelector": every}]}]
        has_limits = ("LimitRange", "notebook-bounds") in kinds
        assert has_limits is (ns == spec.notebooks.namespace)
        # The chart's user-scheduler and image awaiter call the API server; default-deny cut them off it (review,
        # stop 48), so the notebook namespace alone lets those components, and only them, out on 443 and 6443.
        api = [o["spec"] for o in docs if o["metadata"]["name"] == "allow-chart-api-clients"]
        assert api == ([{"podSelector": {"matchExpressions": [{"key": "component", "operator": "In",
                                                               "values": ["user-scheduler", "image-puller"]}]},
                         "policyTypes": ["Egress"],
                         "egress": [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}]}]
                       if ns == spec.notebooks.namespace else [])
    docs = {o["kind"]: o for o in objects[spec.notebooks.namespace]}
    limits = docs["LimitRange"]["spec"]["limits"][0]
    assert limits["min"] == {"cpu": "500m", "memory": "512Mi"} and limits["max"] == {"cpu": "4", "memory": "8192Mi"}
    assert limits["default"] == {"cpu": "2", "memory": "4096Mi"}  # the default size, medium
    assert limits["defaultRequest"] == {"cpu": "1", "memory": "2048Mi"}
    hard = docs["ResourceQuota"]["spec"]["hard"]
    spawners = 3  # dev, ops, sci: active accounts that may spawn notebooks
    assert hard["pods"] == str(spawners + SERVICE_POD_ROOM)
    # One maximal notebook per spawner, plus the service pods at the LimitRange's default request and limit, which
    # a container stating no resources gets (LimitRanger): 3 x 4 + 10 x 1 cores, 3 x 8192 + 10 x 2048 MiB.
    assert hard["requests.cpu"] == "22" and hard["requests.memory"] == f"{spawners * 8192 + 10 * 2048}Mi"
    assert hard["limits.cpu"] == "32" and hard["limits.memory"] == f"{spawners * 8192 + 10 * 4096}Mi"


def test_an_empty_enclave_still_runs_its_services() -> None:
    spec = load(EXAMPLES / "lsst-ldf.yaml")
    hard = next(o for o in render_access(spec, [])[spec.notebooks.namespace]
                if o["kind"] == "ResourceQuota")["spec"]["hard"]
    # Ten service pods at the default size's request (1 core, 2048 MiB: the hub and proxy state none); at the
    # smallest request (0.5 core, 512 MiB) only two of four defaulted containers were admitted.
    assert hard["pods"] == str(SERVICE_POD_ROOM) and hard["requests.cpu"] == "10" and hard["limits.cpu"] == "20"
    assert hard["requests.memory"] == f"{10 * 2048}Mi"


def test_quota_is_capped_by_worker_capacity() -> None:
    spec = load(EXAMPLES / "minimal.yaml")  # 2 workers x 8 cores, 32 GiB
    many = [Subject(f"u{i}", "science", "active", frozenset({Role.SCIENCE_USER})) for i in range(100)]
    hard = next(o for o in render_access(spec, many)[spec.notebooks.namespace]
                if o["kind"] == "ResourceQuota")["spec"]["hard"]
    assert hard["requests.cpu"] == "16" and hard["requests.memory"] == f"{64 * 1024}Mi"
    assert hard["limits.cpu"] == "410"  # 100 x the 4-core bound + 10 service pods x the default 1-core limit


def test_from_database_to_files_and_cli(db: Database, spec: EnclaveSpec, admin: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    onboard(db, spec, "dev1", kind=AccountKind.STAFF, namespaces=["firefly"])
    onboard(db, spec, "dev2", kind=AccountKind.STAFF, namespaces=["firefly"])
    onboard(db, spec, "sci1")
    with db.session() as s:
        lifecycle.depart(s, ADMIN, "dev2", reason="left")
        subjects = storage.subjects(s)
    # as the service renders it: under the spec's vetting with nothing approved, no image is offered or pre-pulled
    objects = render_access(spec, subjects, service_room(spec, lambda image: False))
    bound = {o["subjects"][0]["name"] for docs in objects.values() for o in docs if o["kind"] == "RoleBinding"}
    assert bound == {"dev1"}  # root is sysadmin + developer with no namespace; dev2 departed; sci1 science

    monkeypatch.setenv("ENCLAVE_DB", db.url)
    from enclave.cli import app
    result = CliRunner().invoke(app, ["render", "access", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == sorted(f"{ns}.yaml" for ns in app_namespaces(spec))
    loaded = {p.stem: list(yaml.safe_load_all(p.read_text())) for p in (tmp_path / "out").iterdir()}
    assert loaded == objects
    validate_all(spec, loaded)
