"""Manifest entries that are not the objects the Kubernetes schema says they are. The API server refuses such an
object, so no check can judge it: each is reported where it is, never skipped into a pass nor a traceback.

Every expected text is the schema's (Kubernetes API reference, "Workload Resources",
https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/): a Deployment's `spec` is a DeploymentSpec,
whose `template` is a PodTemplateSpec, whose `spec` is a PodSpec; a CronJob's `spec.jobTemplate` is a
JobTemplateSpec; a PodSpec's `containers` and `initContainers` are lists of Container objects, its `volumes` a list
of Volume objects, a Container's `env` a list of EnvVar objects (pod-v1); a Role's `rules` a list of PolicyRule
objects (role-v1); a List's `items` are whole Kubernetes objects (apiVersion and kind)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.cli import app
from enclave.errors import InputError
from enclave.ops import security
from enclave.ops.manifests import NOT_AN_OBJECT_FIX, load_manifests, parse_manifests
from enclave.ops.security import CheckResult, node_config_from_manifests, run_check

_, CHECKS = security.shipped_checks()
BY_ID = {c.id: c for c in CHECKS}
UNJUDGED = "the API server refuses such an object, so nothing in it can be checked"
GOOD_CONTAINER = """\
    - name: ok
      image: registry.local/app@sha256:1111111111111111111111111111111111111111111111111111111111111111
      securityContext: {privileged: false}
"""


def _check(cid: str, text: str) -> CheckResult:
    return run_check(BY_ID[cid], objects=parse_manifests(text, "m.yaml"))


def _findings(result: CheckResult) -> list[tuple[str, str]]:
    return [(f.where, f.detail) for f in result.findings]


# A List's `items` are whole objects, each with its own apiVersion and kind (Kubernetes API conventions, "Lists and
# Simple kinds": https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#lists-and-simple-kinds),
# so an item that is not one is a broken manifest, never another tool's file to skip: refused as a top-level
# document named explicitly is, in a directory too.
LIST_WITH_A_BAD_ITEM = f"""\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {{name: p, namespace: apps}}
  spec:
    containers:
{GOOD_CONTAINER}- "Pod/apps/q"
- metadata: {{name: r, namespace: apps}}
  spec: {{containers: [{{name: c, image: nginx, securityContext: {{privileged: true}}}}]}}
"""
ITEM_PROBLEMS = [("#0.items[1]", "the List's item is a string, not a Kubernetes object"),
                 ("#0.items[2]", "the List's item has no apiVersion and no kind, so it is not a Kubernetes object")]


def _problems(raised: pytest.ExceptionInfo[InputError]) -> list[tuple[str, str, str]]:
    return [(p.where, p.what, p.fix) for p in raised.value.problems]


def test_a_list_item_that_is_no_object_is_a_problem_in_a_file() -> None:
    with pytest.raises(InputError) as raised:
        parse_manifests(LIST_WITH_A_BAD_ITEM, "m.yaml")
    assert _problems(raised) == [(f"m.yaml{at}", what, NOT_AN_OBJECT_FIX) for at, what in ITEM_PROBLEMS]


def test_a_list_item_that_is_no_object_is_a_problem_in_a_directory_not_a_note(tmp_path: Path) -> None:
    """Inside a directory such an item was a note and the List's other items were checked, so the benchmark
    passed an item it never read (the mapping without kind runs a privileged container)."""
    (tmp_path / "list.yaml").write_text(LIST_WITH_A_BAD_ITEM)
    (tmp_path / "helm-values.yaml").write_text("hub:\n  image: x\n")  # another tool's file: still only a note
    for strict in (True, False):
        notes: list[str] = []
        with pytest.raises(InputError) as raised:
            load_manifests([tmp_path], strict=strict, notes=notes)
        assert _problems(raised) == [(f"{tmp_path / 'list.yaml'}{at}", what, NOT_AN_OBJECT_FIX)
                                     for at, what in ITEM_PROBLEMS]
        assert notes == ([f"{tmp_path / 'helm-values.yaml'}#0 skipped: it has no apiVersion and no kind, so it is "
                          "not a Kubernetes object"] if strict else [])


def test_a_top_level_document_and_a_list_item_are_refused_by_one_rule() -> None:
    with pytest.raises(InputError) as raised:
        parse_manifests("metadata: {name: r}\n---\napiVersion: v1\nkind: List\nitems: [{apiVersion: v1}]\n",
                        "m.yaml")
    assert _problems(raised) == [
        ("m.yaml#0", "has no apiVersion and no kind, so it is not a Kubernetes object", NOT_AN_OBJECT_FIX),
        ("m.yaml#1.items[0]", "the List's item has no kind, so it is not a Kubernetes object", NOT_AN_OBJECT_FIX)]


def test_security_check_fails_on_a_list_item_it_cannot_judge_in_a_directory(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path / "home"))
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "list.yaml").write_text(LIST_WITH_A_BAD_ITEM)
    r = CliRunner().invoke(app, ["security", "check", "--manifests", str(manifests), "--only", "POD-01"])
    assert r.exit_code == 1, r.output
    assert isinstance(r.exception, InputError)
    shown = str(r.exception)
    assert (f"{manifests / 'list.yaml'}#0.items[1]: the List's item is a string, not a Kubernetes object — fix: "
            f"{NOT_AN_OBJECT_FIX}") in shown
    assert f"{manifests / 'list.yaml'}#0.items[2]: the List's item has no apiVersion and no kind" in shown


def test_a_workload_spec_that_is_a_string_is_a_finding_not_a_traceback() -> None:
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec: "x"
"""
    for cid in ("POD-01", "POD-02", "POD-03"):  # a container, a volume and a pod check
        result = _check(cid, text)
        assert (result.status, _findings(result)) == ("fail", [
            ("m.yaml#0 Deployment/apps/web spec", f"cannot be judged: it is a string, not a DeploymentSpec object; "
                                                  f"{UNJUDGED}")]), cid


@pytest.mark.parametrize(("kind", "spec", "at", "why"), [
    ("Deployment", "spec: {template: [x]}", "spec.template", "is a list, not a PodTemplateSpec object"),
    ("Deployment", "spec: {template: {spec: x}}", "spec.template.spec", "is a string, not a PodSpec object"),
    ("CronJob", "spec: {schedule: '@daily', jobTemplate: x}", "spec.jobTemplate",
     "is a string, not a JobTemplateSpec object"),
    ("PodTemplate", "template: 7", "template", "is a number, not a PodTemplateSpec object"),
    ("Pod", "spec: [x]", "spec", "is a list, not a PodSpec object"),
])
def test_a_template_or_pod_spec_that_is_no_mapping_is_a_finding(kind: str, spec: str, at: str, why: str) -> None:
    text = f"apiVersion: v1\nkind: {kind}\nmetadata: {{name: w, namespace: apps}}\n{spec}\n"
    result = _check("POD-03", text)
    assert (result.status, _findings(result)) == (
        "fail", [(f"m.yaml#0 {kind}/apps/w {at}", f"cannot be judged: it {why}; {UNJUDGED}")])


def test_a_container_that_is_no_mapping_is_a_finding_beside_the_good_ones() -> None:
    text = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: p, namespace: apps}}
spec:
  initContainers: [nginx]
  containers:
{GOOD_CONTAINER}"""
    result = _check("POD-01", text)  # the good container is not privileged: only the string fails
    assert (result.status, _findings(result)) == (
        "fail", [("m.yaml#0 Pod/apps/p initContainers[0]",
                  f"cannot be judged: it is a string, not a Container object; {UNJUDGED}")])
    assert result.checked[1:] == ("m.yaml#0 Pod/apps/p containers[0](ok): false",)


def test_a_container_list_that_is_no_list_is_a_finding() -> None:
    text = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: d, namespace: apps}
spec:
  template:
    spec:
      containers: {name: c, image: nginx}
"""
    result = _check("IMG-03", text)  # unscored: a warning, still not a pass
    assert (result.status, _findings(result)) == (
        "warn", [("m.yaml#0 DaemonSet/apps/d containers",
                  f"cannot be judged: it is a mapping, not a list of Container objects; {UNJUDGED}")])


def test_a_volume_that_is_no_mapping_is_a_finding() -> None:
    text = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: p, namespace: apps}}
spec:
  volumes: [scratch, {{name: tmp, emptyDir: {{}}}}]
  containers:
{GOOD_CONTAINER}"""
    result = _check("POD-02", text)
    assert (result.status, _findings(result)) == (
        "fail", [("m.yaml#0 Pod/apps/p volumes[0]",
                  f"cannot be judged: it is a string, not a Volume object; {UNJUDGED}")])


def test_an_rbac_rule_that_is_no_mapping_is_a_finding() -> None:
    text = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: apps}
rules: ["get pods"]
"""
    result = _check("RBAC-02", text)
    assert (result.status, _findings(result)) == (
        "fail", [("m.yaml#0 Role/apps/r rules[0]",
                  f"cannot be judged: it is a string, not a PolicyRule object; {UNJUDGED}")])


def test_an_etcd_env_entry_that_is_no_envvar_refuses_the_node() -> None:
    text = """\
apiVersion: v1
kind: Pod
metadata: {name: etcd, namespace: kube-system}
spec:
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.5.0-0
    command: [etcd, --client-cert-auth=true]
    env: [ETCD_AUTO_TLS=true]
"""
    with pytest.raises(InputError) as raised:
        node_config_from_manifests(parse_manifests(text, "etcd.yaml"))
    assert [(p.where, p.what) for p in raised.value.problems] == [
        ("etcd.yaml#0 Pod/kube-system/etcd containers[0](etcd) env[0]", "is a string, not an EnvVar object; the "
         "kubelet refuses such a static pod, so the node cannot be judged")]


def test_a_static_pod_whose_spec_is_no_mapping_refuses_the_node() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: kube-apiserver, namespace: kube-system}\nspec: x\n"
    with pytest.raises(InputError) as raised:
        node_config_from_manifests(parse_manifests(text, "apiserver.yaml"))
    assert [(p.where, p.what) for p in raised.value.problems] == [
        ("apiserver.yaml#0 Pod/kube-system/kube-apiserver spec", "is a string, not a PodSpec object; the kubelet "
         "refuses such a static pod, so the node cannot be judged")]


def test_security_check_command_fails_on_a_workload_it_cannot_judge(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`enclave security check --manifests` on a Deployment whose spec is a string ended in an AttributeError."""
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path / "home"))
    manifest = tmp_path / "web.yaml"
    manifest.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: apps}\nspec: x\n")
    r = CliRunner().invoke(app, ["security", "check", "--manifests", str(manifest), "--only", "IMG-01"])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code == 8
    assert "[FAIL] IMG-01" in r.stdout
    assert (f"{manifest}#0 Deployment/apps/web spec: cannot be judged: it is a string, not a DeploymentSpec object"
            in r.stdout)
