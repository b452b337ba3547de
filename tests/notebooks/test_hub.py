"""JupyterHub integration with the real KubeSpawner (offline) and kubernetes-validate."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from enclave.cli import app
from enclave.hub import configure
from enclave.notebooks.hook import SpawnRefused, make_pre_spawn_hook, make_profile_list
from enclave.notebooks.profiles import image_keys, render, spec_image_keys, spec_profile_list, z2jh_values
from enclave.spec import EnclaveSpec
from tests.notebooks.conftest import NOW, FakeAccount, make_account

LAB = "registry.lsst.local/lsstsqre/sciplat-lab"
W18 = f"{LAB}:w_2018_25"
R16 = "registry.lsst.local/lsstsqre/sciplat-lab:r16_0"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: hub, user: {token: offline}}]
contexts: [{name: offline, context: {cluster: offline, user: hub, namespace: jupyter-lsst}}]
current-context: offline
"""


def schema_version(spec: EnclaveSpec) -> str:
    """The spec's Kubernetes version if kubernetes-validate has its schema, else the oldest it has (1.9
    schemas are not shipped; Pod fields used here are unchanged since)."""
    major, minor = (int(x) for x in spec.cluster.kubernetes_version.lstrip("v").split(".")[:2])
    return f"{major}.{minor}.0" if (major, minor) >= (1, 25) else "1.25.0"


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # KubeSpawner loads a client config at construction; an offline kubeconfig is the narrowest
    # replacement (no request is made to build a pod manifest).
    # kubernetes_asyncio reads $KUBECONFIG once, when first imported (another suite may have imported it
    # already), and KubeSpawner caches the loaded config: point both at the offline file explicitly.
    from kubernetes_asyncio.config import kube_config
    from kubespawner.clients import load_config

    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(KUBECONFIG)
    old = os.environ.get("KUBECONFIG")
    old_default = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    os.environ["KUBECONFIG"] = str(path)
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    load_config.cache_clear()
    yield
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = old_default
    load_config.cache_clear()
    if old is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = old


class User:
    def __init__(self, name: str) -> None:
        self.name = name
        self.id = 1
        self.url = f"/user/{name}/"


def spawner(name: str) -> Any:
    from kubespawner import KubeSpawner

    return KubeSpawner(_mock=True, user=User(name))


def pod_for(spec: EnclaveSpec, account: FakeAccount, user_options: dict[str, Any],
            vetted: Any = None, pin: Any = None) -> dict[str, Any]:
    from kubernetes_asyncio.client import ApiClient

    lookup = {account.username: account}.__getitem__

    async def build() -> Any:
        # KubeSpawner wants a running event loop from construction on, as inside the hub.
        s = spawner(account.username)
        s.profile_list = make_profile_list(spec, lookup, vetted=vetted, clock=lambda: NOW)
        s.user_options = user_options
        make_pre_spawn_hook(spec, lookup, vetted=vetted, clock=lambda: NOW, pin=pin)(s)
        await s.load_user_options()
        async with ApiClient() as api:
            return api.sanitize_for_serialization(await s.get_pod_manifest())

    manifest: dict[str, Any] = asyncio.run(build())
    return manifest


@pytest.fixture()
def alice(tmp_path: Path) -> FakeAccount:
    return make_account(tmp_path, "alice", 40001)


def test_pod_from_profile_has_account_identity_mounts_and_resources(kubeconfig: None, ldf: EnclaveSpec,
                                                                   alice: FakeAccount) -> None:
    pod = pod_for(ldf, alice, {"profile": "large", "image": image_keys(ldf.notebooks.images)[R16]})
    kubernetes_validate.validate(pod, schema_version(ldf), strict=True)
    c = pod["spec"]["containers"][0]
    assert c["image"] == R16
    assert c["resources"]["limits"] == {"cpu": 4.0, "memory": 8192 * 1024**2}
    assert c["resources"]["requests"] == {"cpu": 2.0, "memory": 4096 * 1024**2}
    assert c["securityContext"]["runAsUser"] == 40001 and c["securityContext"]["runAsGroup"] == 40001
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["fsGroup"] == 40001
    # The workspace is the home volume's subPath, not a hostPath of its own, which the kubelet would follow
    # through a symlink the user put in its place (review, stop 48; ``profiles.workspace_subpath``).
    mounts = [(m["name"], m["mountPath"], m.get("subPath")) for m in c["volumeMounts"]]
    assert mounts == [("home", "/home/alice", None), ("home", "/workspace", "workspace")]
    vols = {v["name"]: v["hostPath"]["path"] for v in pod["spec"]["volumes"]}
    assert vols == {"home": alice.home_path}
    assert pod["spec"]["nodeSelector"] == {"lsst.io/commons": "true"}


def test_default_profile_and_minimal_spec_validate(kubeconfig: None, minimal: EnclaveSpec,
                                                   alice: FakeAccount) -> None:
    pod = pod_for(minimal, alice, {})
    kubernetes_validate.validate(pod, schema_version(minimal), strict=True)
    assert pod["spec"]["containers"][0]["image"] == "registry.example.org/lab:1.0"


@pytest.mark.parametrize(("options", "message"), [
    ({"profile": "huge"}, "size 'huge' is not defined"),
    ({"profile": "small", "image": "docker.io/evil/miner:latest"}, "is not offered"),
    ({"cpu": 16, "memory_mib": 4096}, "too big"),
    ({"cpu": "lots", "memory_mib": 1}, "are not numbers"),
    # JSON's 1e400 is infinity: int() raised OverflowError past the hook's refusal, and NaN passes every bound
    # (review, stop 48).
    ({"cpu": 2, "memory_mib": float("inf")}, "are not numbers"),
    ({"cpu": float("nan"), "memory_mib": 4096}, "are not numbers"),
])
def test_hook_refuses_what_enclave_refuses(kubeconfig: None, ldf: EnclaveSpec, alice: FakeAccount,
                                           options: dict[str, Any], message: str) -> None:
    with pytest.raises(SpawnRefused, match=message) as info:
        pod_for(ldf, alice, options)
    assert "enclave refused this notebook" in info.value.jupyterhub_message


def test_a_workspace_replaced_by_a_symlink_mounts_nothing_outside_the_home(kubeconfig: None, ldf: EnclaveSpec,
                                                                          alice: FakeAccount) -> None:
    """Review, stop 48: from a notebook a user may replace ~/workspace with a symlink to /; the pod's workspace was
    a hostPath of that path, which the kubelet follows (kubernetes/website#8065). It is now the home volume's
    subPath: the pod names no host path but the home, and the kubelet refuses a subPath that leads out of its
    volume (CVE-2017-1002101)."""
    ws = Path(alice.workspace_path)
    if ws.exists():
        ws.rmdir()
    ws.symlink_to("/")
    pod = pod_for(ldf, alice, {})
    assert [v["hostPath"]["path"] for v in pod["spec"]["volumes"] if "hostPath" in v] == [alice.home_path]
    [workspace] = [m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["mountPath"] == "/workspace"]
    assert (workspace["name"], workspace["subPath"]) == ("home", "workspace")


def test_hook_refuses_unvetted_image_and_lapsed_accounts(kubeconfig: None, ldf: EnclaveSpec,
                                                         alice: FakeAccount) -> None:
    key = image_keys(ldf.notebooks.images)[W18]
    with pytest.raises(SpawnRefused, match="not been vetted") as info:
        pod_for(ldf, alice, {"profile": "small", "image": key}, vetted=lambda i: i == R16)
    assert info.value.status_code == 403
    for status in ("expired", "departed"):
        alice.status = status
        with pytest.raises(SpawnRefused, match=status if status == "departed" else "expired"):
            pod_for(ldf, alice, {"profile": "small"})


def test_profile_list_is_narrowed_per_account(kubeconfig: None, ldf: EnclaveSpec, alice: FakeAccount) -> None:
    async def make() -> Any:
        return spawner("alice")

    profiles = make_profile_list(ldf, {"alice": alice}.__getitem__, vetted=lambda i: i == R16, clock=lambda: NOW)(
        asyncio.run(make()))
    assert [p["slug"] for p in profiles] == ["small", "medium", "large"]
    for p in profiles:
        assert [c["display_name"] for c in p["profile_options"]["image"]["choices"].values()] == [R16]


def test_approved_digest_is_launched_not_the_tag(kubeconfig: None, ldf: EnclaveSpec, alice: FakeAccount) -> None:
    digest = "sha256:" + "cd" * 32
    pod = pod_for(ldf, alice, {"profile": "small", "image": image_keys(ldf.notebooks.images)[R16]},
                  pin=lambda image: image.rsplit(":", 1)[0] + "@" + digest)
    kubernetes_validate.validate(pod, schema_version(ldf), strict=True)
    c = pod["spec"]["containers"][0]
    assert c["image"] == f"registry.lsst.local/lsstsqre/sciplat-lab@{digest}"
    # Pinning must not lose the chosen size.
    assert c["resources"]["limits"] == {"cpu": 1.0, "memory": 2048 * 1024**2}


def test_custom_size_reaches_the_pod(kubeconfig: None, ldf: EnclaveSpec, alice: FakeAccount) -> None:
    pod = pod_for(ldf, alice, {"cpu": 3, "memory_mib": 6144})
    kubernetes_validate.validate(pod, schema_version(ldf), strict=True)
    r = pod["spec"]["containers"][0]["resources"]
    assert r["limits"] == {"cpu": 3.0, "memory": 6144 * 1024**2} and r["requests"] == r["limits"]


def test_configure_installs_hooks_on_a_jupyterhub_config(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    from traitlets.config import Config

    c = Config()
    configure(c, spec=ldf, lookup={"alice": alice}.__getitem__, vetted=lambda i: True)
    assert c.KubeSpawner.namespace == "jupyter-lsst"
    assert callable(c.KubeSpawner.pre_spawn_hook) and callable(c.KubeSpawner.profile_list)


def test_rendered_values_and_cli(tmp_path: Path, ldf: EnclaveSpec) -> None:
    values = z2jh_values(ldf)
    su = values["singleuser"]
    assert su["profileList"] == spec_profile_list(ldf)
    assert su["image"] == {"name": "registry.lsst.local/lsstsqre/sciplat-lab", "tag": "w_2018_25"}
    assert su["memory"] == {"guarantee": "2048M", "limit": "4096M"}
    # Culling is enclave's own hub service (tests/hub/test_values.py), so Z2JH's built-in culler stays off.
    assert values["cull"] == {"enabled": False}
    assert values["prePuller"]["hook"]["enabled"] is True  # 2 images ≤ 5 cache slots
    big = ldf.model_copy(update={"notebooks": ldf.notebooks.model_copy(update={"images": [
        f"registry.lsst.local/lab:{i}" for i in range(6)]})})
    assert z2jh_values(big)["prePuller"]["hook"]["enabled"] is False
    assert {p.name for p in render(ldf, tmp_path / "a")} == {"values.yaml", "profile_list.yaml",
                                                            "jupyterhub_config.py"}
    result = CliRunner().invoke(app, ["render", "notebooks", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    loaded = yaml.safe_load((tmp_path / "b" / "values.yaml").read_text())
    # The command renders under the spec's vetting with what the database approved (nothing here): no choice to
    # offer or pre-pull, the rest as the pure rendering.
    nothing = z2jh_values(ldf, lambda image: False, lambda image: None)
    assert nothing["singleuser"]["profileList"] == [] and nothing["prePuller"]["hook"]["enabled"] is False
    assert loaded == yaml.safe_load(yaml.safe_dump(nothing))
    assert "configure(c)" in (tmp_path / "b" / "jupyterhub_config.py").read_text()


def test_every_rendered_profile_builds_a_valid_non_root_pod(tmp_path: Path, ldf: EnclaveSpec) -> None:
    # enclave.ops turns rendered values into the pods KubeSpawner's make_pod would create; every
    # profile × image choice must validate, and without the hook a pod runs as nobody, never as root.
    from enclave.ops.notebook_pods import pods_in

    render(ldf, tmp_path)
    pods = pods_in([tmp_path], ldf.notebooks.namespace)
    assert len(pods) == len(ldf.notebooks.sizes) * len(ldf.notebooks.images)
    for where, pod in pods:
        kubernetes_validate.validate(pod, schema_version(ldf), strict=True)
        ctx = pod["spec"]["containers"][0]["securityContext"]
        assert ctx["runAsUser"] == 65534 and ctx["allowPrivilegeEscalation"] is False, where


def test_spawner_options_page_offers_only_what_enclave_allows(kubeconfig: None, ldf: EnclaveSpec,
                                                               alice: FakeAccount) -> None:
    # AA1 step 7: the 'Spawner Options' page, rendered by KubeSpawner from enclave's per-account list.
    async def page() -> str:
        s = spawner("alice")
        s.profile_list = make_profile_list(ldf, {"alice": alice}.__getitem__, vetted=lambda i: i == R16,
                                           clock=lambda: NOW)
        form = s.options_form
        html: str = await form(s) if callable(form) else form
        return html

    html = asyncio.run(page())
    assert R16 in html and W18 not in html
    for size in ("small", "medium", "large"):
        assert f'value="{size}"' in html


DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
"""Kubernetes' IsDNS1123Label (apimachinery pkg/util/validation/validation.go: dns1123LabelFmt, at most
DNS1123LabelMaxLength = 63 characters): what a container's name must be."""
LONG_IMAGES = [
    f"{LAB}:exp_w_2024_10_nosudo",  # 66 characters of pre-puller container name before keys were bounded
    f"{LAB}:exp_w_2024_10_nosudo_a",  # differs from the next one only past any prefix a key keeps
    f"{LAB}:exp_w_2024_10_nosudo_b",
    "registry.lsst.local/lsstsqre/" + "n" * 100 + ":" + "T" * 128,  # a tag is at most 128 characters (OCI)
    W18,
    "mirror.example.org/lsstsqre/sciplat-lab:w_2018_25",  # the same last component as W18
    "registry.lsst.local/lsstsqre/Sciplat_Lab:W.2018.25",  # and once more after lower-casing
]


def puller_containers(values: dict[str, Any]) -> dict[str, str]:
    """Container name → image of the pre-puller's profile-list containers, as Zero-to-JupyterHub 4.1.0 names them
    (templates/image-puller/_helpers-daemonset.tpl: ``range $k, $container := .Values.singleuser.profileList`` —
    ``$k`` is the list index — then each option's choices with a kubespawner_override.image:
    ``image-pull-profile-{{ $k }}-option-{{ $option }}-{{ $choice }}``)."""
    names = {}
    for k, profile in enumerate(values["singleuser"]["profileList"]):
        for option, option_spec in profile.get("profile_options", {}).items():
            for choice, choice_spec in option_spec.get("choices", {}).items():
                image = choice_spec.get("kubespawner_override", {}).get("image")
                if image:
                    names[f"image-pull-profile-{k}-option-{option}-{choice}"] = image
    return names


def test_pre_puller_container_names_are_dns_labels_for_the_longest_image_names(kubeconfig: None, ldf: EnclaveSpec,
                                                                              alice: FakeAccount) -> None:
    """Every pre-puller container name is a DNS label (else `helm install` fails on the DaemonSet), for image names
    as long as a reference may be and a profile list of a hundred sizes; each choice key still names one image,
    the one the hook then launches."""
    size = ldf.notebooks.sizes[ldf.notebooks.default_size]
    sizes = {f"size-{i}": size for i in range(100)}
    spec = ldf.model_copy(update={"notebooks": ldf.notebooks.model_copy(update={
        "images": LONG_IMAGES, "sizes": sizes, "default_size": "size-0"})})
    names = puller_containers(z2jh_values(spec, vetted=lambda image: True))
    assert len(names) == len(sizes) * len(LONG_IMAGES)
    for name in names:
        assert len(name) <= 63 and DNS_LABEL.fullmatch(name), (name, len(name))
    keys = image_keys(LONG_IMAGES)
    assert len(set(keys.values())) == len(LONG_IMAGES)
    assert image_keys([W18, R16])[W18] == "sciplat-lab-w-2018-25"  # a short name keeps its readable key
    # ... unless another image of the list reads the same: then each of them gets a hash of its own reference
    assert keys[W18] == "sciplat-lab-w-2018-" + hashlib.sha256(W18.encode()).hexdigest()[:8]
    assert keys[LONG_IMAGES[0]].startswith("sciplat-lab-exp-w-")
    long = LONG_IMAGES[3]
    pod = pod_for(spec, alice, {"profile": "size-99", "image": keys[long]}, vetted=lambda image: True)
    assert pod["spec"]["containers"][0]["image"] == long


SAME_NAME = ["registry.lsst.local/a/lab:v1", "registry.lsst.local/b/lab:v1", "registry.lsst.local/c/lab:v1"]
"""Three images whose last path component is the same; the unvetted one is listed first."""


def with_images(spec: EnclaveSpec, images: list[str]) -> EnclaveSpec:
    return spec.model_copy(update={"notebooks": spec.notebooks.model_copy(update={"images": images})})


def form_choices(spec: EnclaveSpec, account: FakeAccount, vetted: Any) -> dict[str, str]:
    """Choice key → image of the 'Spawner Options' form the hub gives ``account`` (every size offers the same)."""
    async def make() -> Any:
        return spawner(account.username)

    profiles = make_profile_list(spec, {account.username: account}.__getitem__, vetted=vetted, clock=lambda: NOW)(
        asyncio.run(make()))
    return choices_of(profiles)


def choices_of(profiles: list[dict[str, Any]]) -> dict[str, str]:
    per_profile = [{key: c["kubespawner_override"]["image"] for key, c in p["profile_options"]["image"]["choices"]
                    .items()} for p in profiles]
    assert all(c == per_profile[0] for c in per_profile)
    return per_profile[0]


def test_each_offered_key_launches_the_image_it_was_offered_for(kubeconfig: None, ldf: EnclaveSpec,
                                                                 alice: FakeAccount) -> None:
    """An unvetted image listed first, sharing its last path component with the vetted ones: the form and the
    values offer the vetted ones only, and the key of each launches that image — the hook reads keys made over the
    same list as the form's. (Keys made over the vetted subset offered c as lab-v1-2, which the hook, keying every
    image of the spec, read as b: the wrong vetted image, launched without an error.)"""
    spec = with_images(ldf, SAME_NAME)
    unvetted, b, c = SAME_NAME

    def vetted(image: str) -> bool:
        return image != unvetted

    form = form_choices(spec, alice, vetted)
    assert sorted(form.values()) == [b, c]
    assert choices_of(z2jh_values(spec, vetted)["singleuser"]["profileList"]) == form

    def launched(key: str) -> str:
        try:
            pod = pod_for(spec, alice, {"profile": "small", "image": key}, vetted=vetted)
        except SpawnRefused as refused:
            return f"refused: {refused.error}"
        image: str = pod["spec"]["containers"][0]["image"]
        return image

    assert {key: launched(key) for key in form} == form
    with pytest.raises(SpawnRefused, match=f"image '{unvetted}' has not been vetted"):
        pod_for(spec, alice, {"profile": "small", "image": spec_image_keys(spec)[unvetted]}, vetted=vetted)


def test_keys_do_not_change_when_vetting_changes(kubeconfig: None, ldf: EnclaveSpec, alice: FakeAccount) -> None:
    """Whichever images are vetted, each keeps its key in the values, the form and so the pre-puller's container
    names (a saved choice stays valid, the puller's DaemonSet is not renamed), and keys do not follow the spec's
    order; an image whose last path component no other image has keeps its readable key."""
    images = [*SAME_NAME, W18, R16]
    spec = with_images(ldf, images)
    keys = spec_image_keys(spec)
    assert len(set(keys.values())) == len(images)
    assert keys[W18] == "sciplat-lab-w-2018-25" and keys[R16] == "sciplat-lab-r16-0"
    assert all(len(key) <= 27 and DNS_LABEL.fullmatch(key) for key in keys.values())
    assert spec_image_keys(with_images(ldf, images[::-1])) == keys
    for n in range(1, len(images) + 1):
        for chosen in itertools.combinations(images, n):
            def vetted(image: str, chosen: tuple[str, ...] = chosen) -> bool:
                return image in chosen

            expected = {keys[image]: image for image in chosen}
            values = z2jh_values(spec, vetted)
            assert choices_of(values["singleuser"]["profileList"]) == expected, chosen
            assert form_choices(spec, alice, vetted) == expected, chosen
            assert set(puller_containers(values)) == {f"image-pull-profile-{k}-option-image-{keys[image]}"
                                                      for k in range(len(spec.notebooks.sizes)) for image in chosen}
