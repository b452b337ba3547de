"""The Kyverno policy against Kyverno's own CRDs (kyverno/kyverno config/crds, tags v1.10.0–v1.16.0) and the
pods enclave itself starts."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from enclave.errors import InputError
from enclave.ops.admission import SUPPORTED_KYVERNO, allows, message_for, render_admission, validate_policy
from enclave.ops.images import ApprovedImage
from enclave.ops.manifests import load_manifests
from enclave.ops.notebook_pods import pods_in
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec
from tests.ops.test_cli import env, run  # noqa: F401  (the CLI harness and its per-test database)

REG = "registry.lsst.local"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


SYSTEM = {"htcondor-worker": f"{REG}/htcondor/execute@{_digest('worker')}",
          "hub": f"{REG}/jupyterhub/k8s-hub@{_digest('hub')}",
          "webdav": f"{REG}/enclave/webdav@{_digest('webdav')}"}
LAB = f"{REG}/lsstsqre/sciplat-lab@{_digest('lab')}"


def _spec(kyverno: str = "1.13", system: dict[str, str] | None = None) -> EnclaveSpec:
    raw = load(DEFAULT_SPEC).model_dump(mode="json")
    raw["registry"] |= {"kyverno_version": kyverno, "system_images": system or SYSTEM}
    return EnclaveSpec.model_validate(raw)


def _approved(image: str) -> ApprovedImage:
    repo, digest = image.split("@")
    return ApprovedImage(repository=repo, digest=digest, tag=None)


@pytest.mark.parametrize("version", SUPPORTED_KYVERNO)
def test_policy_renders_the_fields_of_that_kyverno(version: str) -> None:
    """Kyverno 1.13 deprecated spec.validationFailureAction / spec.failurePolicy ("Deprecated, use …" in the
    1.13 CRD) for validate.failureAction and webhookConfiguration.failurePolicy, which earlier CRDs lack."""
    policy = render_admission(_spec(version), [])[0]
    validate_policy(policy, version)
    minor = int(version.split(".")[1])
    if minor >= 13:
        assert "validationFailureAction" not in policy["spec"] and "failurePolicy" not in policy["spec"]
        assert policy["spec"]["webhookConfiguration"] == {"failurePolicy": "Fail"}
        assert all(r["validate"]["failureAction"] == "Enforce" for r in policy["spec"]["rules"])
    else:
        assert policy["spec"]["validationFailureAction"] == "Enforce"
        assert all("failureAction" not in r["validate"] for r in policy["spec"]["rules"])


def test_schemas_refuse_fields_a_version_lacks() -> None:
    new = render_admission(_spec("1.13"), [])[0]
    with pytest.raises(InputError, match="failureAction"):
        validate_policy(new, "1.12")  # no rule-level failureAction in the 1.12 CRD
    old = render_admission(_spec("1.10"), [])[0]
    old["spec"]["admission"] = True  # spec.admission appears in the 1.11 CRD
    validate_policy(old, "1.11")
    with pytest.raises(InputError, match="admission"):
        validate_policy(old, "1.10")


def test_no_approved_image_refuses_notebooks_with_how_to_and_admits_enclaves_own_pods() -> None:
    spec = _spec()
    policy = render_admission(spec, [])[0]
    nb = spec.notebooks.namespace
    assert not allows(policy, LAB, nb)
    assert "no notebook image is approved yet" in message_for(policy, nb)
    assert "enclave images approve" in message_for(policy, nb)
    assert allows(policy, SYSTEM["hub"], nb) and allows(policy, SYSTEM["webdav"], nb)
    assert allows(policy, SYSTEM["htcondor-worker"], "htcondor")
    assert not allows(policy, f"{REG}/htcondor/execute:25", "htcondor")  # a tag is never admitted
    assert allows(policy, "registry.k8s.io/kube-apiserver:v1.33.0", "kube-system")  # exempt
    approved = render_admission(spec, [_approved(LAB)])[0]
    assert allows(approved, LAB, nb) and "not an approved digest" in message_for(approved, nb)


# Kyverno's policy webhook refuses a rule that names `element` outside a foreach: validateElementInForEach
# (kyverno/kyverno pkg/engine/variables/vars.go, v1.13.0; the same in v1.10.0 and v1.16.0) finds each variable with
# RegexVariables and RegexVariableInit (pkg/engine/variables/regex/vars.go) in every leaf and key of the rule, and
# fails one starting with "element" (or "elementIndex") whose JSON path has no "/foreach/".
_VARIABLES = re.compile(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})")
_INITIAL = re.compile(r"^\{\{(\{[^{}]*\}|[^{}])*\}\}")


def _element_outside_foreach(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items()
                for p in _element_outside_foreach(k, path) + _element_outside_foreach(v, f"{path}/{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _element_outside_foreach(v, f"{path}/{i}")]
    if not isinstance(node, str):
        return []
    found = []
    for m in _VARIABLES.finditer(node):
        v = m.group(0) if _INITIAL.match(m.group(0)) else m.group(0)[1:]
        name = v.replace("{{", "").replace("}}", "").strip()
        if (name.startswith("element") or name == "elementIndex") and "/foreach/" not in path:
            found.append(f"{name} at {path}")
    return found


@pytest.mark.parametrize("version", SUPPORTED_KYVERNO)
def test_kyverno_would_take_the_policy_element_only_inside_foreach(version: str) -> None:
    for approved in ([], [_approved(LAB)]):
        for rule in render_admission(_spec(version), approved)[0]["spec"]["rules"]:
            assert _element_outside_foreach(rule) == [], rule["name"]
    # the restatement finds what Kyverno refused before this fix: the image named in the rule's own message
    assert _element_outside_foreach({"validate": {"message": "image {{ element.image }} is refused"}}) == [
        "element.image at /validate/message"]


def test_the_refusal_names_the_image_as_kyverno_joins_it() -> None:
    # getDenyMessage (pkg/engine/handlers/validation/validate_resource.go, v1.13.0): the rule's message, "; ", the
    # true deny conditions' messages, with variables substituted for the element.
    spec = _spec()
    policy = render_admission(spec, [_approved(LAB)])[0]
    said = message_for(policy, "htcondor", "evil.example/x:1")
    assert said.startswith("security staff approve an image") and said.endswith(
        "; image evil.example/x:1 is neither an approved digest from registry.lsst.local nor one of enclave's own "
        "images (registry.system_images)")


def test_an_approved_digest_is_admitted_under_any_tag() -> None:
    # Kubernetes keeps the image string as written and Kyverno's AnyNotIn compares strings as wildcard patterns
    # (anyin.go anyKeyExistsInArray, v1.13.0); name:tag@digest is a valid reference (distribution/reference
    # regexp.go ReferenceRegexp) pulled by its digest, so the tagged form of an approved digest runs.
    spec = _spec()
    nb = spec.notebooks.namespace
    policy = render_admission(spec, [_approved(LAB)])[0]
    repo, digest = LAB.split("@")
    assert allows(policy, f"{repo}:w_2018_25@{digest}", nb) and allows(policy, LAB, nb)
    assert not allows(policy, f"{repo}:w_2018_25@{_digest('other')}", nb)
    assert not allows(policy, f"{repo}:w_2018_25", nb) and not allows(policy, f"{REG}/other:w@{digest}", nb)
    # a wildcard in the pod's image is matched against the list too (the key as the pattern): Kyverno admits
    # it, and no such image can be pulled (no reference grammar takes "*")
    assert allows(policy, f"{REG}/lsstsqre/*", nb)


def test_system_images_must_be_pinned() -> None:
    with pytest.raises(ValidationError):
        _spec(system={"hub": f"{REG}/jupyterhub/k8s-hub:4.0.0"})
    with pytest.raises(ValidationError):
        _spec("1.9")


def test_the_broker_starts_its_worker_by_the_pinned_digest() -> None:
    from enclave.cluster.kube import KubeCluster

    cluster = KubeCluster(_spec(), None)  # type: ignore[arg-type]
    assert cluster.image == SYSTEM["htcondor-worker"]


def _containers(pod_spec: dict[str, Any]) -> list[str]:
    return [c["image"] for key in ("initContainers", "containers") for c in pod_spec.get(key) or []]


# Zero-to-JupyterHub 4.1.0 jupyterhub/values.yaml: the images the chart runs when the values do not name others
# ("set-by-chartpress" tags are the chart's version).
CHART_DEFAULTS = {
    ("proxy", "chp", "image"): "quay.io/jupyterhub/configurable-http-proxy:4.6.3",
    ("scheduling", "userScheduler", "image"): "registry.k8s.io/kube-scheduler:v1.30.8",
    ("scheduling", "userPlaceholder", "image"): "registry.k8s.io/pause:3.10",
    ("prePuller", "hook", "image"): "quay.io/jupyterhub/k8s-image-awaiter:4.1.0",
    ("prePuller", "pause", "image"): "registry.k8s.io/pause:3.10",
    ("singleuser", "networkTools", "image"): "quay.io/jupyterhub/k8s-network-tools:4.1.0",
}


def _get(values: dict[str, Any], *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return default
        values = values[key]
    return values


def _chart_image(values: dict[str, Any], *path: str) -> str:
    """``{{ name }}:{{ tag }}`` of the image at ``path``, as every Z2JH 4.1.0 template writes it."""
    image = _get(values, *path)
    return f"{image['name']}:{image['tag']}" if image else CHART_DEFAULTS[path]


def _chart_pods(values: dict[str, Any]) -> dict[str, list[str]]:
    """The containers' images of every pod the Z2JH 4.1.0 chart runs from ``values`` in the notebook namespace,
    following its templates: hub/deployment.yaml, proxy/deployment.yaml, scheduling/user-scheduler/deployment.yaml
    (scheduling.userScheduler.enabled, default true), scheduling/user-placeholder/statefulset.yaml, the image
    pullers (image-puller/_helpers-daemonset.tpl: the metadata-block init container when
    singleuser.cloudMetadata.blockWithIptables, default true; singleuser.image; each profile choice's
    kubespawner_override.image; prePuller.pause.image as the main container) and the hook's awaiter Job
    (image-puller/job.yaml)."""
    pods = {"hub": [_chart_image(values, "hub", "image")], "proxy": [_chart_image(values, "proxy", "chp", "image")],
            "user-placeholder": [_chart_image(values, "scheduling", "userPlaceholder", "image")]}
    if _get(values, "scheduling", "userScheduler", "enabled", default=True):
        pods["user-scheduler"] = [_chart_image(values, "scheduling", "userScheduler", "image")]
    hook = _get(values, "prePuller", "hook", "enabled", default=True)
    if hook or _get(values, "prePuller", "continuous", "enabled", default=True):
        block = _get(values, "singleuser", "cloudMetadata", "blockWithIptables", default=True)
        choices = [c["kubespawner_override"]["image"] for p in _get(values, "singleuser", "profileList", default=[])
                   for o in p.get("profile_options", {}).values() for c in o["choices"].values()
                   if "image" in c.get("kubespawner_override", {})]
        pods["image-puller"] = ([_chart_image(values, "singleuser", "networkTools", "image")] if block else []) + [
            _chart_image(values, "singleuser", "image"), *choices, _chart_image(values, "prePuller", "pause", "image")]
    if hook:
        pods["hook-image-awaiter"] = [_chart_image(values, "prePuller", "hook", "image")]
    return pods


def test_the_chart_runs_only_what_the_policy_admits_once_an_image_is_approved() -> None:
    """With one lab image approved, every pod the chart runs from the rendered values is admitted: its own images
    pinned from the spec, the default image and the pre-pullers' with the approved digest, and no privileged
    metadata-blocking init container (whose default image quay.io/jupyterhub/k8s-network-tools is not mirrored)."""
    from enclave.notebooks.profiles import z2jh_values
    from enclave.ops.images import pinner

    spec = load(DEFAULT_SPEC)
    lab = spec.notebooks.images[0]
    approved = [ApprovedImage(repository=lab.rsplit(":", 1)[0], digest=_digest("lab"), tag=lab.rsplit(":", 1)[1])]
    pin = pinner(approved)
    values = z2jh_values(spec, lambda image: pin(image) is not None, pin)
    policy = render_admission(spec, approved)[0]
    pods = _chart_pods(values)
    assert "image-puller" in pods and "hook-image-awaiter" in pods  # one image: pre-pulled (§13.4)
    for name, images in pods.items():
        for image in images:
            assert allows(policy, image, spec.notebooks.namespace), (name, image)
    assert f"{lab}@{_digest('lab')}" in pods["image-puller"]
    # the chart's defaults are what the policy would refuse without the spec's pins
    assert not allows(policy, CHART_DEFAULTS[("proxy", "chp", "image")], spec.notebooks.namespace)


def _rendered_pods(out: Path, spec: EnclaveSpec) -> dict[str, tuple[str, list[str]]]:
    """Every pod `render all` defines, as (namespace, container images): the deploy bundle's Deployments, the hub
    of the Zero-to-JupyterHub values (the chart writes its container image as ``{{ .Values.hub.image.name }}:
    {{ .Values.hub.image.tag }}``, templates/hub/deployment.yaml), and the HTCondor worker pod the broker starts
    (cluster.objects.worker_pod with the image KubeCluster takes)."""
    from enclave.cluster import objects
    from enclave.cluster.kube import KubeCluster

    pods: dict[str, tuple[str, list[str]]] = {}
    for where, obj in load_manifests([out / "deploy"], strict=False):
        if obj.get("kind") == "Deployment":
            pods[f"{where} {obj['metadata']['name']}"] = (obj["metadata"]["namespace"],
                                                          _containers(obj["spec"]["template"]["spec"]))
    values = [d for f in sorted((out / "notebooks").rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
              if isinstance(d, dict) and "hub" in d and "singleuser" in d]
    assert len(values) == 1
    pods |= {name: (spec.notebooks.namespace, images) for name, images in _chart_pods(values[0]).items()}
    worker = objects.worker_pod(spec, name="htcondor-worker-0", node="kub-node-001", pool="prompt", cores=4,
                                memory_mib=8192, image=KubeCluster(spec, None).image,  # type: ignore[arg-type]
                                since=0.0)
    pods["htcondor-worker"] = (worker["metadata"]["namespace"], _containers(worker["spec"]))
    return pods


@pytest.mark.usefixtures("env")
def test_render_all_on_the_shipped_spec_admits_enclaves_own_pods_and_refuses_notebooks(tmp_path: Path) -> None:
    """`enclave render all` on src/enclave/examples/lsst-ldf.yaml with no approved image: the policy admits every
    pod of enclave's own (each pinned from registry.system_images) and refuses notebook pods, saying how to
    approve an image."""
    spec = load(DEFAULT_SPEC)
    out = tmp_path / "out"
    r = run("render", "all", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "lacks" not in r.output  # nothing of enclave's own is left unpinned
    policy = yaml.safe_load((out / "admission" / "kyverno-vetted-images.yaml").read_text())
    validate_policy(policy)
    assert policy["metadata"]["annotations"]["enclave.lsst.io/approved-digests"] == "0"
    pods = _rendered_pods(out, spec)
    assert {"hub", "htcondor-worker"} < set(pods) and len(pods) >= 4  # + the API and WebDAV Deployments
    for name, (namespace, images) in pods.items():
        assert images, name
        for image in images:
            assert image in spec.registry.system_images.values(), (name, image)  # pinned from the spec
            assert allows(policy, image, namespace), (name, image, namespace)
    notebooks = pods_in([out / "notebooks"], spec.notebooks.namespace)  # as KubeSpawner would build them
    assert notebooks
    for where, pod in notebooks:
        assert not any(allows(policy, image, spec.notebooks.namespace) for image in _containers(pod["spec"])), where
    message = message_for(policy, spec.notebooks.namespace)
    assert "no notebook image is approved yet" in message and "enclave images approve" in message


def test_hub_pin_keeps_its_tag_for_the_chart() -> None:
    """Z2JH renders hub.image as name:tag, so a pinned hub is split into name and tag@digest (the pod's image is
    then the pin itself); a pin without a tag cannot be rendered and is refused with the form to use."""
    from enclave.notebooks.profiles import hub_image

    tagged = f"{REG}/enclave/hub:z2jh-4.1.0@{_digest('hub')}"
    image = hub_image(_spec(system={**SYSTEM, "hub": tagged}))
    assert image == {"name": f"{REG}/enclave/hub", "tag": f"z2jh-4.1.0@{_digest('hub')}"}
    assert f"{image['name']}:{image['tag']}" == tagged
    with pytest.raises(InputError, match="repository:tag@sha256"):
        hub_image(_spec())  # SYSTEM's hub has no tag


@pytest.mark.usefixtures("env")
def test_render_all_names_own_images_not_pinned(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_SPEC.read_text())
    del raw["registry"]["system_images"]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    r = run("render", "all", "--out", str(tmp_path / "out"), "--spec", str(spec_file))
    assert r.exit_code == 0
    said = " ".join(r.output.split())
    assert "registry.system_images lacks enclave, htcondor-worker, hub, webdav" in said
    # and the chart's own images (Z2JH 4.1.0's proxy, user-scheduler, placeholders' and pullers' pause, awaiter)
    assert "registry.system_images lacks proxy, user-scheduler, pause, image-awaiter: the JupyterHub chart's" in said
