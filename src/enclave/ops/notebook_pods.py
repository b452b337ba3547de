"""The notebook pods a rendered Zero-to-JupyterHub configuration will create, built by KubeSpawner itself.

`enclave render notebooks` writes Helm values, not pods; to hold notebooks to the same security checks
as every other workload, each profile × image choice is turned into the V1Pod that KubeSpawner's own
``make_pod`` produces from those values, its memory converted first as KubeSpawner's traits convert it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from enclave.errors import InputError, Problem
from enclave.ops.manifests import Located
from enclave.spec.document import parse_all, read_text

EXAMPLE_USER = "example-user"


def _fill(value: Any) -> Any:
    """Replace KubeSpawner's {username} template with an example user throughout."""
    if isinstance(value, str):
        return value.replace("{username}", EXAMPLE_USER)
    if isinstance(value, list):
        return [_fill(v) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v) for k, v in value.items()}
    return value


def _image(singleuser: Mapping[str, Any]) -> str:
    img = singleuser.get("image") or {}
    name, tag = str(img.get("name", "")), img.get("tag")
    if "@" in name or not tag:
        return name
    return f"{name}@{tag}" if str(tag).startswith("sha256:") else f"{name}:{tag}"


def _variants(singleuser: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, kubespawner overrides) for every profile and image choice; the defaults when none."""
    base: dict[str, Any] = {
        "image": _image(singleuser),
        "cpu_limit": (singleuser.get("cpu") or {}).get("limit"),
        "cpu_guarantee": (singleuser.get("cpu") or {}).get("guarantee"),
        "mem_limit": (singleuser.get("memory") or {}).get("limit"),
        "mem_guarantee": (singleuser.get("memory") or {}).get("guarantee"),
    }
    out: list[tuple[str, dict[str, Any]]] = []
    for profile in singleuser.get("profileList") or []:
        merged = {**base, **(profile.get("kubespawner_override") or {})}
        choices = ((profile.get("profile_options") or {}).get("image") or {}).get("choices") or {}
        if not choices:
            out.append((str(profile.get("slug", "profile")), merged))
        for key, choice in choices.items():
            out.append((f"{profile.get('slug', 'profile')}-{key}",
                        {**merged, **(choice.get("kubespawner_override") or {})}))
    return out or [("default", base)]


Pinner = Callable[[str], "str | None"]


def _kubespawner_bytes(value: Any, where: str) -> int | None:
    """A KubeSpawner memory setting as KubeSpawner passes it to ``make_pod``: its ``mem_limit`` and ``mem_guarantee``
    traits are JupyterHub's ``ByteSpecification`` (jupyterhub/spawner.py), which turns "2048M" into 2048 × 2^20 bytes
    (``UNIT_SUFFIXES``: K, M, G, T are powers of 1024), and kubespawner/spawner.py gives ``make_pod`` the converted
    ``self.mem_limit``/``self.mem_guarantee``. Passed as written, "2048M" would be a Kubernetes quantity, 2048 × 10^6.
    The installed JupyterHub's own trait converts it: KubeSpawner, which builds these pods, depends on JupyterHub."""
    from jupyterhub.traitlets import ByteSpecification
    from traitlets import TraitError

    if value is None:
        return None
    try:
        return int(ByteSpecification(None, allow_none=True).validate(None, value))
    except TraitError as exc:
        raise InputError([Problem(where, str(exc), "give memory as KubeSpawner reads it: bytes, or a number with "
                                  "K, M, G or T (powers of 1024), e.g. 2048M")]) from exc


def notebook_pods(values: Mapping[str, Any], where: str, namespace: str, pin: Pinner | None = None,
                  skipped: list[str] | None = None) -> list[Located]:
    """Pods (as plain dicts) KubeSpawner would create for the singleuser settings in Z2JH ``values``.

    With ``pin`` (vetting required) the image is replaced by its approved digest, as the pre-spawn hook
    does; a choice whose image is not approved is never started, so it yields no pod (it is added to
    ``skipped``)."""
    from kubernetes_asyncio.client import ApiClient  # KubeSpawner builds kubernetes_asyncio models
    from kubespawner.objects import make_pod

    su = _fill(dict(values.get("singleuser") or {}))
    storage = su.get("storage") or {}
    env = (values.get("hub") or {}).get("extraEnv") or {}
    namespace = str(env.get("ENCLAVE_NOTEBOOK_NAMESPACE", namespace))
    # Serialising needs no connection; building a real client would need an event loop for aiohttp.
    client = ApiClient.__new__(ApiClient)
    out: list[Located] = []
    for label, o in _variants(su):
        if pin is not None:
            pinned = pin(str(o["image"]))
            if pinned is None:
                if skipped is not None:
                    skipped.append(f"{where} profile {label}: {o['image']} is not vetted, so it is never started")
                continue
            o = {**o, "image": pinned}
        pod = make_pod(
            name=f"jupyter-{EXAMPLE_USER}-{label}"[:63].rstrip("-"),
            cmd=su.get("cmd") or ["jupyterhub-singleuser"], port=8888, image=o["image"],
            image_pull_policy=(su.get("image") or {}).get("pullPolicy"),
            node_selector=su.get("nodeSelector"), uid=o.get("uid", su.get("uid")), fs_gid=su.get("fsGid"),
            allow_privilege_escalation=su.get("allowPrivilegeEscalation", False),
            volumes=storage.get("extraVolumes"), volume_mounts=storage.get("extraVolumeMounts"),
            labels=su.get("extraLabels"), annotations=su.get("extraAnnotations"),
            cpu_limit=o.get("cpu_limit"), cpu_guarantee=o.get("cpu_guarantee"),
            mem_limit=_kubespawner_bytes(o.get("mem_limit"), f"{where} profile {label}: mem_limit"),
            mem_guarantee=_kubespawner_bytes(o.get("mem_guarantee"), f"{where} profile {label}: mem_guarantee"),
            service_account=su.get("serviceAccountName"),
        )
        obj: dict[str, Any] = client.sanitize_for_serialization(pod)
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "Pod")
        obj.setdefault("metadata", {})["namespace"] = namespace
        out.append((f"{where} (KubeSpawner pod for profile {label})", obj))
    return out


def pods_in(paths: Iterable[Path], namespace: str, pin: Pinner | None = None,
            skipped: list[str] | None = None) -> list[Located]:
    """Notebook pods for every Zero-to-JupyterHub values document found under ``paths``."""
    out: list[Located] = []
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml")) if root.is_dir() else [root]
        for f in files:
            for i, (doc, _) in enumerate(parse_all(read_text(f), str(f))):
                if isinstance(doc, dict) and isinstance(doc.get("singleuser"), dict) and "kind" not in doc:
                    out.extend(notebook_pods(doc, f"{f}#{i}", namespace, pin, skipped))
    return out
