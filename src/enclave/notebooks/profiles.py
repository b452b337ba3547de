"""JupyterHub configuration derived from the spec: a KubeSpawner ``profile_list``, Zero-to-JupyterHub
style Helm values, and the per-account spawner settings (uid/gid, home and workspace mounts).

Pure functions returning plain dicts; ``hook.py`` applies them to a live KubeSpawner and ``cli.py``
writes them to files.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from enclave.access.render import ServiceRoom, cpu_quantity
from enclave.batch import idtoken
from enclave.errors import InputError, Problem
from enclave.notebooks.options import ImageVetter, Options, SizeOption, Spawn, spec_vetter
from enclave.outdir import output_dir
from enclave.spec.models import EnclaveSpec, NodeRole

IMAGE_OPTION = "image"
"""The name of the profile option that picks the image (a key of ``user_options``)."""

HOME_MOUNT = "/home/{username}"
NOBODY = 65534
WORKSPACE_MOUNT = "/workspace"


PULLER_CONTAINER = "image-pull-profile-{profile}-option-{option}-{choice}"
"""The pre-puller's container for each image choice of the profile list: Zero-to-JupyterHub 4.1.0
templates/image-puller/_helpers-daemonset.tpl, ``image-pull-profile-{{ $k }}-option-{{ $option }}-{{ $choice }}``
ranging over ``singleuser.profileList`` (a list, so ``$k`` is the profile's index) and each option's ``choices``
(``$choice``: the choice key). A container name is a DNS label, 63 characters at most (Kubernetes' IsDNS1123Label)."""
CHOICE_KEY_MAX = 63 - len(PULLER_CONTAINER.format(profile="999", option=IMAGE_OPTION, choice=""))
"""The longest choice key whose pre-puller container name is a DNS label for the first thousand profiles (one per
size): 27 characters."""
_HASH_CHARS = 8


def _readable(image: str) -> str:
    """The image's last path component as a DNS label: what a choice key says when nothing else needs saying."""
    return re.sub(r"[^a-z0-9]+", "-", image.rsplit("/", 1)[-1].lower()).strip("-") or "image"


def _hashed(readable: str, image: str) -> str:
    """A readable prefix and a hash of the whole image reference: names that image alone, at most
    ``CHOICE_KEY_MAX`` characters."""
    digest = hashlib.sha256(image.encode()).hexdigest()[:_HASH_CHARS]
    return f"{readable[:CHOICE_KEY_MAX - _HASH_CHARS - 1].rstrip('-')}-{digest}"


def image_keys(images: Iterable[str]) -> dict[str, str]:
    """A stable, readable choice key per image (KubeSpawner keys choices by name, not by value), lower-case
    letters, digits and inner hyphens, at most ``CHOICE_KEY_MAX`` characters (the pre-puller names a container
    after it: ``PULLER_CONTAINER``).

    The key is the image's last path component (``_readable``) where that is short enough and no other image of
    ``images`` has the same one; otherwise, for every image sharing it, a prefix and a hash of the whole reference
    (``_hashed``). So a key depends on the image and on the set of ``images``, never on their order or on which of
    them are vetted. Pass the spec's full list (``spec_image_keys``) wherever a key is made or read — the values,
    each user's form, the pre-spawn hook — so a key names the same image in all of them and does not change when
    an image is vetted or withdrawn; keys of a subset would give an image another's key (a user picking one vetted
    image would be launched another)."""
    unique = list(dict.fromkeys(images))
    readable = {image: _readable(image) for image in unique}
    hashed = {image for image in unique if len(readable[image]) > CHOICE_KEY_MAX}
    while True:
        keys = {image: _hashed(readable[image], image) if image in hashed else readable[image] for image in unique}
        owners: dict[str, list[str]] = {}
        for image, key in keys.items():
            owners.setdefault(key, []).append(image)
        shared = {image for group in owners.values() if len(group) > 1 for image in group if image not in hashed}
        if not shared:
            break
        hashed |= shared  # a readable key another image also has, or another's hashed key: hash it too
    clashes = sorted(key for key, group in owners.items() if len(group) > 1)
    if clashes:  # two references with the same prefix and the same 32-bit hash
        raise InputError([Problem("notebooks.images", f"images {', '.join(owners[clashes[0]])} would share the "
                                  f"choice key {clashes[0]}", "list the image under another name or tag")])
    return keys


def spec_image_keys(spec: EnclaveSpec) -> dict[str, str]:
    """The choice key of every image the spec lists, vetted or not: the one mapping the values, each user's
    profile list and the pre-spawn hook use."""
    return image_keys(spec.notebooks.images)


def mem(mib: int) -> str:
    """A KubeSpawner ByteSpecification ('M' is MiB there)."""
    return f"{mib}M"


def _profile(size: SizeOption, images: tuple[str, ...], default_image: str, keys: dict[str, str]
             ) -> dict[str, Any]:
    return {
        "display_name": size.label,
        "slug": size.name,
        "description": size.description or f"{size.cpu_limit:g} CPU, {size.memory_limit_mib / 1024:g} GiB at most",
        "default": size.default,
        "kubespawner_override": {
            "cpu_guarantee": size.cpu_request,
            "cpu_limit": size.cpu_limit,
            "mem_guarantee": mem(size.memory_request_mib),
            "mem_limit": mem(size.memory_limit_mib),
        },
        "profile_options": {
            IMAGE_OPTION: {
                "display_name": "Image",
                "choices": {
                    keys[image]: {
                        "display_name": image,
                        "default": image == default_image,
                        "kubespawner_override": {"image": image},
                    }
                    for image in images
                },
            }
        },
    }


def profile_list(spec: EnclaveSpec, options: Options) -> list[dict[str, Any]]:
    """The KubeSpawner profile_list for one account: only what ``options_for`` allowed it, each image under its
    key among all the spec's images (``spec_image_keys``), as in the values and the hook."""
    keys = spec_image_keys(spec)
    return [_profile(size, options.images, options.default_image, keys) for size in options.sizes]


def spec_profile_list(spec: EnclaveSpec, vetted: ImageVetter | None = None) -> list[dict[str, Any]]:
    """The profile_list for the enclave as a whole (every size, every vetted image, keyed as in
    ``spec_image_keys``); what goes into the Helm values. The hook narrows it per account at spawn time."""
    is_vetted = vetted or spec_vetter(spec)
    nb = spec.notebooks
    images = tuple(i for i in nb.images if is_vetted(i))
    sizes = [SizeOption(n, s.cpu_request, s.cpu_limit, s.memory_request_mib, s.memory_limit_mib, s.description,
                        default=n == nb.default_size) for n, s in nb.sizes.items()]
    if not images:
        return []
    keys = spec_image_keys(spec)
    return [_profile(s, images, images[0], keys) for s in sizes]


def node_selector(spec: EnclaveSpec) -> dict[str, str]:
    """Labels every worker group shares: notebooks run on the commons workers and nowhere else."""
    groups = [g for g in spec.groups(NodeRole.WORKER) if g.count > 0]
    if not groups:
        return {}
    common = dict(groups[0].labels)
    for g in groups[1:]:
        common = {k: v for k, v in common.items() if g.labels.get(k) == v}
    return common


TOKEN_VOLUME, TOKENS_VOLUME = "htcondor-token", "htcondor-tokens"
TOKEN_SECRET_MOUNT = "/var/run/secrets/htcondor"
TOKENS_DIR = "/var/run/htcondor/tokens.d"
"""A notebook pod's HTCondor SEC_TOKEN_DIRECTORY (``_CONDOR_SEC_TOKEN_DIRECTORY``): the copy of its token that the
account owns, mode 0600 (``idtoken.copy_container``), in memory, read-only to the notebook."""
TOKEN_FILE = "token"
"""The key of the pod's token Secret (``token_secret``), and the file the init container copies."""
TOKEN_ENV = "_CONDOR_SEC_TOKEN_DIRECTORY"
TOKEN_INIT_CONTAINER = "htcondor-token"
"""The init container that copies the token (``_token_plumbing``): the hook keeps the operator's init containers
(``singleuser.initContainers``) and replaces only this one (``hook.apply``)."""


def _token_plumbing(spawn: Spawn, image: str, secret: str) -> dict[str, Any]:
    """What carries the token Secret ``secret`` into the notebook: its volume and an in-memory emptyDir, the init
    container that copies it as the account (``idtoken.copy_container``), the mount and the environment. The init
    container asks what the notebook container asks: a pod's effective request is the larger of its init
    containers' and the sum of its containers' (Kubernetes, "Init Containers": "Resource sharing within
    containers"), so it costs no quota, and it stays within the notebook namespace's LimitRange
    (``access.render.notebook_limits``), which bounds every container, init containers included."""
    resources = {"requests": {"cpu": cpu_quantity(spawn.cpu_request), "memory": f"{spawn.memory_request_mib}Mi"},
                 "limits": {"cpu": cpu_quantity(spawn.cpu_limit), "memory": f"{spawn.memory_limit_mib}Mi"}}
    context = {"runAsUser": spawn.uid, "runAsGroup": spawn.gid, "runAsNonRoot": True,
               "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {
        "volumes": [{"name": TOKEN_VOLUME, "secret": {"secretName": secret}},
                    {"name": TOKENS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
        "volume_mounts": [{"name": TOKENS_VOLUME, "mountPath": TOKENS_DIR, "readOnly": True}],
        "environment": {TOKEN_ENV: TOKENS_DIR},
        "init_containers": [idtoken.copy_container(
            name=TOKEN_INIT_CONTAINER, image=image, security_context=context, resources=resources,
            secret_volume=TOKEN_VOLUME, secret_mount=TOKEN_SECRET_MOUNT, files=[TOKEN_FILE],
            tokens_volume=TOKENS_VOLUME, tokens_dir=TOKENS_DIR)],
    }



def workspace_subpath(spawn: Spawn) -> str:
    """The workspace as a subPath of the home volume, not a hostPath of its own. It lies in the user's home, which
    they may change from a notebook: replaced by a symlink, a hostPath is followed by the kubelet to wherever it
    points, the host's / included, on the next spawn (kubernetes/website#8065; the volumes page warns of hostPath's
    symlinks). A subPath is resolved inside its volume and refused if it leads out (the CVE-2017-1002101 fix,
    kubernetes#61044; its symlink-exchange race, CVE-2021-25741, is fixed from 1.19.15, 1.20.11, 1.21.5, 1.22.2)."""
    sub = Path(spawn.workspace_path).relative_to(spawn.home_path).as_posix()
    if sub in ("", ".") or sub.startswith(".."):
        raise ValueError(f"the workspace {spawn.workspace_path} is not inside the home {spawn.home_path}")
    return sub

def spawner_settings(spec: EnclaveSpec, spawn: Spawn, *, image: str | None = None,
                     token_secret: str | None = None) -> dict[str, Any]:
    """KubeSpawner traits for one accepted spawn: who the container runs as and what it mounts. ``image``: the image
    to run, ``spawn.image`` unless given (its approved digest); ``token_secret``: the Secret with the pod's HTCondor
    token (``token_secret``), whose copy the notebook then finds (``_token_plumbing``). ``init_containers`` is
    there only with a token, and holds only the token's copier: the operator's init containers
    (``singleuser.initContainers``) are kept beside it by ``hook.apply``, and without a token left alone.

    Home is the account's jhome directory (seed §5: the same home as on lsst-dev); the File Workspace
    is also mounted on its own so tools find it at a fixed place. Containers are immutable (§6): the
    root filesystem is not where user software goes, so privilege escalation and capabilities are off.
    """
    home = HOME_MOUNT.format(username=spawn.username)
    run = image or spawn.image
    tokens = _token_plumbing(spawn, run, token_secret) if token_secret else {}
    return {
        "uid": spawn.uid,
        "gid": spawn.gid,
        "fs_gid": spawn.gid,
        "supplemental_gids": [spawn.gid],
        "allow_privilege_escalation": False,
        "container_security_context": {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True},
        "volumes": [
            {"name": "home", "hostPath": {"path": spawn.home_path, "type": "Directory"}},
            *tokens.get("volumes", []),
        ],
        "volume_mounts": [
            {"name": "home", "mountPath": home},
            {"name": "home", "mountPath": WORKSPACE_MOUNT, "subPath": workspace_subpath(spawn)},
            *tokens.get("volume_mounts", []),
        ],
        **({"init_containers": tokens["init_containers"]} if tokens else {}),
        "working_dir": home,
        "environment": {"HOME": home, "ENCLAVE_WORKSPACE": WORKSPACE_MOUNT, **tokens.get("environment", {})},
        "node_selector": node_selector(spec),
        "image": run,
        "cpu_guarantee": spawn.cpu_request,
        "cpu_limit": spawn.cpu_limit,
        "mem_guarantee": mem(spawn.memory_request_mib),
        "mem_limit": mem(spawn.memory_limit_mib),
    }


def token_lifetime(spec: EnclaveSpec) -> int:
    """Seconds a notebook pod's token is valid: the spec's ``batch_tokens.lifetime_seconds``, else the longest a
    server lives (``max_age_seconds``: the culler stops it then, ``culler_command``)."""
    nb = spec.notebooks
    return nb.batch_tokens.lifetime_seconds or nb.max_age_seconds


def token_secret_of(pod: dict[str, Any]) -> str | None:
    """The name of the token Secret ``pod`` mounts (``_token_plumbing``), None when it mounts none."""
    for volume in pod.get("spec", {}).get("volumes") or []:
        if volume.get("name") == TOKEN_VOLUME and "secret" in volume:
            name: str = volume["secret"]["secretName"]
            return name
    return None


def token_secret(pod: dict[str, Any], name: str, token: str) -> dict[str, Any]:
    """The Secret ``name`` holding ``pod``'s token, owned by the pod: Kubernetes' garbage collector deletes it once the
    pod is gone ("Owners and Dependents": a dependent whose owners are all gone is deleted), whoever deletes the pod
    and whether or not the hub is running. The owner reference is KubeSpawner's own for its pods' Secrets and Services
    (kubespawner/objects.py ``make_owner_reference``: apiVersion v1, kind Pod, blockOwnerDeletion, not controller)."""
    meta = pod["metadata"]
    owner = {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"],
             "blockOwnerDeletion": True, "controller": False}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": meta["namespace"], "ownerReferences": [owner],
                         "labels": {"app.kubernetes.io/name": "enclave",
                                    "app.kubernetes.io/component": "notebook-token"}},
            "data": {TOKEN_FILE: base64.b64encode(f"{token}\n".encode()).decode("ascii")}}


HUB_CONFIG = """\
# Written by `enclave render notebooks`: the hub asks enclave before every spawn.
from enclave.hub import configure
configure(c)
"""

HUB_AUTHENTICATOR = "enclave.hub.auth.EnclaveTokenAuthenticator"
"""The hub's login in the rendered values (``hub.config.JupyterHub.authenticator_class``): user name and an enclave
token with scope notebooks.spawn as the password, enclave admitting the account (docs/notebooks.md). Without it
Zero-to-JupyterHub 4.1.0's default applies, ``authenticator_class: dummy`` (values.yaml ``hub.config``): JupyterHub's
DummyAuthenticator, any user name with any password. A site with its own login sets a class built on
``enclave.hub.auth.EnclaveAdmission`` there instead; ``enclave.hub.configure`` refuses to start a hub with any
other (``require_enclave_admission``)."""


def _split_tag(ref: str) -> tuple[str, str | None]:
    """A reference without its digest as (name, tag): the tag follows the last ":" after the last "/" (a ":" before
    it is a registry's port), None when there is none."""
    name, sep, tag = ref.rpartition(":")
    return (name, tag) if sep and "/" not in tag else (ref, None)


def _image_name_tag(image: str) -> dict[str, str]:
    """The chart's {name, tag} whose ``name:tag`` (as the chart writes an image) is ``image``: a digest rides in the
    tag (``_chart_pin``); a digest without a tag is split at its own colon, which writes it back the same."""
    ref, at, digest = image.partition("@")
    name, tag = _split_tag(ref)
    if tag is not None:
        return {"name": name, "tag": f"{tag}{at}{digest}"}
    if at:
        name, _, tag = image.rpartition(":")
        return {"name": name, "tag": tag}
    return {"name": image, "tag": "latest"}


HUB_SPEC_MOUNT = "/etc/enclave"
LIFECYCLE_SERVICE = "enclave-lifecycle"
LIFECYCLE_TOKEN_VALUE = f"hub.services.{LIFECYCLE_SERVICE}.apiToken"
"""Where the lifecycle service's token goes: the values key the operator sets at install, from the file that also
makes enclave's Secret (``helm upgrade --install … --set-file hub.services.enclave-lifecycle.apiToken=hub-token``),
and the key of the chart's Secret that holds it. Z2JH gives every hub.services entry the token of that key, the
values' ``apiToken`` or else one it generates (templates/hub/_helpers-passwords.tpl ``get_api_token``;
files/hub/jupyterhub_config.py sets the service's ``api_token`` from it), so enclave's token is the service's one."""
LIFECYCLE_SCOPES = ("read:servers", "delete:servers", "tokens")
"""What enclave's lifecycle transitions do on the hub, and nothing more (JupyterHub's scopes,
https://jupyterhub.readthedocs.io/en/stable/rbac/scopes.html#available-scopes): ``read:servers`` to see a user's
servers (GET /users/{name}), ``delete:servers`` to stop them (DELETE /users/{name}/server), ``tokens`` to list
and revoke the user's hub tokens (GET, DELETE /users/{name}/tokens[/{id}]). No ``admin:users``: it never
creates, renames or deletes hub users."""

CULLER_SERVICE = "idle-culler"
CULLER_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")
"""The scopes jupyterhub-idle-culler's README lists as required (section "Permissions",
https://github.com/jupyterhub/jupyterhub-idle-culler#permissions); ``admin:users`` only with --cull-users,
which enclave does not pass (hub users are enclave's accounts, not temporary ones)."""

CULL_EVERY_MAX_SECONDS = 600
"""Z2JH's default ``cull.every`` (https://z2jh.jupyter.org/en/stable/resources/reference.html#cull-every)."""


def culler_command(spec: EnclaveSpec, python: str = "python3") -> list[str]:
    """The idle culler as a hub-managed service (jupyterhub-idle-culler README, "As a hub managed service"):
    ``--timeout`` stops a server idle that long, ``--max-age`` one that old even if active, ``--cull-every`` is how
    often it looks. The culler's own default interval is half the timeout (``IdleCuller.cull_every``); enclave
    looks every 10 minutes at most, as Z2JH does, so a server outlives its timeout by at most that."""
    nb = spec.notebooks
    every = max(1, min(CULL_EVERY_MAX_SECONDS, nb.idle_cull_seconds // 2))
    return [python, "-m", "jupyterhub_idle_culler", f"--timeout={nb.idle_cull_seconds}",
            f"--cull-every={every}", f"--max-age={nb.max_age_seconds}"]


def hub_services(spec: EnclaveSpec, python: str = "python3") -> dict[str, Any]:
    """Z2JH ``hub.services`` and ``hub.loadRoles`` (https://z2jh.jupyter.org/en/stable/resources/reference.html
    #hub-services, #hub-loadroles; Z2JH's images/hub/jupyterhub_config.py appends each to JupyterHub's ``services`` and
    ``load_roles`` with its key as the name, and gives a service the token its chart Secret holds): the idle
    culler, run by the hub, and the lifecycle service enclave's control plane calls after depart, expire and
    demote; each with a role holding only the scopes it needs."""
    return {
        "services": {
            CULLER_SERVICE: {"command": culler_command(spec, python), "display": False},
            LIFECYCLE_SERVICE: {"display": False},
        },
        "loadRoles": {
            CULLER_SERVICE: {"description": "stop idle and old notebook servers (spec notebooks.idle_cull_seconds,"
                                            " max_age_seconds)",
                             "scopes": list(CULLER_SCOPES), "services": [CULLER_SERVICE]},
            LIFECYCLE_SERVICE: {"description": "enclave: stop the servers and revoke the hub tokens of an account "
                                               "that departed, expired or was demoted (seed §4)",
                                "scopes": list(LIFECYCLE_SCOPES), "services": [LIFECYCLE_SERVICE]},
        },
    }
CONTROL_PLANE_NAMESPACE = "enclave"
CONTROL_PLANE_PODS = {"app.kubernetes.io/name": "enclave", "app.kubernetes.io/component": "enclave-api"}
"""Where enclave's control plane runs and its API pods' labels (what `render deploy` makes: cluster.deploy, which
this package may not import; tests/deploy/test_bundle.py holds the two together)."""
HUB_API_PORT = 8081
"""The hub container's port (Z2JH 4.1.0 templates/hub/deployment.yaml, ``http``)."""


def hub_ingress() -> list[dict[str, Any]]:
    """Z2JH's ``hub.networkPolicy.ingress``: enclave's API pods may call the hub's API. The chart's own rule admits
    only pods labelled ``hub.jupyter.org/network-access-hub`` in the hub's namespace (templates/hub/netpol.yaml;
    ``interNamespaceAccessLabels: ignore`` by default) and appends these rules to it. The namespace is picked by
    ``kubernetes.io/metadata.name``, which `render deploy` also sets on its Namespace for clusters before 1.21."""
    return [{"ports": [{"port": HUB_API_PORT, "protocol": "TCP"}],
             "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": CONTROL_PLANE_NAMESPACE}},
                       "podSelector": {"matchLabels": dict(CONTROL_PLANE_PODS)}}]}]


HUB_DATABASE_SECRET = "enclave-database"
"""Secret (key ``url``) with the enclave database URL, in the notebook namespace; `render deploy` makes it."""
NOTEBOOK_KEY_SECRET = "enclave-notebook-key"
"""Secret (key ``key``) with the HTCondor signing key notebook tokens are signed with (spec
``notebooks.batch_tokens``), in the notebook namespace; the operator makes it (docs/deploy.md)."""
NOTEBOOK_KEY_MOUNT = "/etc/enclave-notebook-key"
NOTEBOOK_KEY_PATH = f"{NOTEBOOK_KEY_MOUNT}/key"
NOTEBOOK_KEY_ENV = "ENCLAVE_NOTEBOOK_KEY"
"""Where the hub reads the key (``enclave.hub.notebook_key``): the values set it to ``NOTEBOOK_KEY_PATH``."""
NOTEBOOK_KEY_MODE = 0o440
"""The key file's mode in the hub: the chart's hub runs as uid 1000 with fsGroup 1000 (Z2JH 4.1.0 values.yaml
``hub.podSecurityContext``), and a Secret volume's files belong to root and the pod's fsGroup, so group-read is
what the hub needs and nothing else in its pod is readable by others."""


def _hub_key(spec: EnclaveSpec) -> dict[str, Any]:
    """The hub's notebook key: the Secret's volume, its mount and where the hub finds it, with batch tokens on."""
    if not spec.notebooks.batch_tokens.enabled:
        return {"env": {}, "volumes": [], "mounts": []}
    return {"env": {NOTEBOOK_KEY_ENV: NOTEBOOK_KEY_PATH},
            "volumes": [{"name": NOTEBOOK_KEY_SECRET,
                         "secret": {"secretName": NOTEBOOK_KEY_SECRET, "defaultMode": NOTEBOOK_KEY_MODE}}],
            "mounts": [{"name": NOTEBOOK_KEY_SECRET, "mountPath": NOTEBOOK_KEY_MOUNT, "readOnly": True}]}


HUB_TAG = "z2jh-4.1.0"


def _chart_pin(spec: EnclaveSpec, role: str, example: str) -> dict[str, str] | None:
    """An image the Zero-to-JupyterHub chart runs, pinned by the spec (``registry.system_images[role]``), as the
    chart's {name, tag}; None when the spec does not pin it. The chart writes every such container's image as
    ``{{ …image.name }}:{{ …image.tag }}`` (templates/hub/deployment.yaml, proxy/deployment.yaml, …, Z2JH 4.1.0),
    so the pin is given as repository:tag@sha256:<digest> and the tag field carries ``tag@sha256:<digest>``: the
    pod's image is then the pinned string itself, which the admission policy admits; the runtime pulls by the
    digest."""
    pinned = spec.registry.system_images.get(role)
    if pinned is None:
        return None
    ref, digest = pinned.split("@", 1)
    name, tag = _split_tag(ref)
    if not name or tag is None:
        raise InputError([Problem(f"registry.system_images.{role}", f"{pinned} has no tag",
                                  "the Zero-to-JupyterHub chart renders its images as name:tag; give it as "
                                  f"repository:tag@sha256:<digest>, e.g. {example}@{digest}")])
    return _image_name_tag(pinned)


def hub_image(spec: EnclaveSpec) -> dict[str, str]:
    """The hub image `enclave render deploy` defines (hub.Dockerfile): Z2JH's hub with enclave installed, as
    Z2JH's ``hub.image`` {name, tag}, by the spec's digest when it pins one (``_chart_pin``)."""
    return (_chart_pin(spec, "hub", f"{spec.registry.host}/enclave/hub:{HUB_TAG}")
            or {"name": f"{spec.registry.host}/enclave/hub", "tag": HUB_TAG})


CHART_IMAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    "proxy": (("proxy", "chp", "image"),),
    "user-scheduler": (("scheduling", "userScheduler", "image"),),
    "pause": (("scheduling", "userPlaceholder", "image"), ("prePuller", "pause", "image")),
    "image-awaiter": (("prePuller", "hook", "image"),),
}
"""The other images the chart runs in the notebook namespace, by their role in ``registry.system_images`` and
where the values name them (Z2JH 4.1.0 values.yaml: quay.io/jupyterhub/configurable-http-proxy:4.6.3,
registry.k8s.io/kube-scheduler, registry.k8s.io/pause:3.10 for the user placeholders and the pullers'
main container, quay.io/jupyterhub/k8s-image-awaiter for the pre-pull hook's Job). Under vetting the admission
policy admits none of their defaults: the site mirrors each into its registry and pins it here. The
block-cloud-metadata init container's k8s-network-tools is not among them: the values turn it off
(``CLOUD_METADATA``)."""

CLOUD_METADATA = {"blockWithIptables": False}
"""Z2JH 4.1.0 adds to every user pod, and to every puller, a privileged init container running as root with
NET_ADMIN that blocks the cloud metadata address with iptables (files/hub/jupyterhub_config.py,
``singleuser.cloudMetadata.blockWithIptables``, default true). Notebook containers run unprivileged (seed §6),
which the security benchmark checks; the chart's singleuser NetworkPolicy already refuses egress to that address
(``singleuser.networkPolicy.egressAllowRules.cloudMetadataServer``: false by default), and an on-premises
enclave has no metadata server."""


def chart_images(spec: EnclaveSpec) -> dict[str, Any]:
    """Values pinning each chart image the spec pins (``CHART_IMAGES``), nested as the chart reads them."""
    values: dict[str, Any] = {}
    for role, paths in CHART_IMAGES.items():
        pinned = _chart_pin(spec, role, f"{spec.registry.host}/jupyterhub/{role}:<tag>")
        if pinned is None:
            continue
        for path in paths:
            node = values
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = dict(pinned)
    return values


def unpinned_chart_images(spec: EnclaveSpec) -> list[str]:
    """Roles of ``CHART_IMAGES`` the spec does not pin: under vetting, those pods are refused."""
    return [role for role in CHART_IMAGES if role not in spec.registry.system_images]


def hub_build_ref(spec: EnclaveSpec) -> str:
    """What `docker build -t` names the hub image (the pin without its digest)."""
    image = hub_image(spec)
    return f"{image['name']}:{image['tag'].split('@', 1)[0]}"


def hub_values(spec: EnclaveSpec) -> dict[str, Any]:
    """What the hub needs to ask enclave: enclave's login (``HUB_AUTHENTICATOR``), the image with enclave's hook, the
    spec (ConfigMap ``enclave-spec``) and the database URL from a Secret — the hook reads accounts and vetted
    images from enclave's database — and with notebook batch tokens the signing key (``_hub_key``).
    Z2JH's hub.image, hub.extraEnv (valueFrom allowed), hub.extraVolumes/extraVolumeMounts
    (https://z2jh.jupyter.org/en/stable/resources/reference.html#hub)."""
    key = _hub_key(spec)
    return {
        "image": hub_image(spec),
        # The chart applies hub.config before the extraConfig entries (files/hub/jupyterhub_config.py), and Helm
        # merges these keys into its defaults: JupyterHub.admin_access stays, authenticator_class is enclave's.
        "config": {"JupyterHub": {"authenticator_class": HUB_AUTHENTICATOR}},
        "extraConfig": {"enclave": HUB_CONFIG},
        "extraEnv": {
            "ENCLAVE_NOTEBOOK_NAMESPACE": spec.notebooks.namespace,
            "ENCLAVE_SPEC": f"{HUB_SPEC_MOUNT}/enclave.yaml",
            "ENCLAVE_DB": {"valueFrom": {"secretKeyRef": {"name": HUB_DATABASE_SECRET, "key": "url"}}},
            **key["env"],
        },
        **hub_services(spec),
        "networkPolicy": {"ingress": hub_ingress()},
        "resources": service_resources(spec),
        "extraVolumes": [{"name": "enclave-spec", "configMap": {"name": "enclave-spec"}}, *key["volumes"]],
        "extraVolumeMounts": [{"name": "enclave-spec", "mountPath": HUB_SPEC_MOUNT, "readOnly": True},
                              *key["mounts"]],
    }


# The pods Z2JH 4.1.0 runs in the notebook namespace with the values below (jupyterhub/values.yaml): the hub and its
# proxy, the user-scheduler (scheduling.userScheduler.enabled, replicas 2), and when pre-pulling the continuous and
# the hook image-puller DaemonSets (on the nodes singleuser.nodeSelector picks: templates/image-puller/
# _helpers-daemonset.tpl) and the hook-image-awaiter Job. user-placeholder runs 0 replicas.
_HUB_PODS, _USER_SCHEDULERS = 2, 2


def service_resources(spec: EnclaveSpec) -> dict[str, Any]:
    """Each service container's resources: the notebook namespace's LimitRange would give a container that states
    none the default notebook's request (``access.render.notebook_limits``), a core and gigabytes per node for a
    puller that only pulls. Requested at the LimitRange's minimum, limited at the default size's limit."""
    nb = spec.notebooks
    default = nb.sizes[nb.default_size]
    # Kubernetes quantities (Mi: 2^20 bytes), not KubeSpawner's byte strings (``mem``, where M is 2^20 too): a
    # container's "512M" would be 10^6-byte megabytes, under the LimitRange's 512Mi minimum.
    return {"requests": {"cpu": cpu_quantity(nb.bounds.min_cpu), "memory": f"{nb.bounds.min_memory_mib}Mi"},
            "limits": {"cpu": cpu_quantity(default.cpu_limit), "memory": f"{default.memory_limit_mib}Mi"}}


def _pre_pulls(spec: EnclaveSpec, profiles: list[dict[str, Any]]) -> bool:
    """Pre-pulling every image only helps while they all fit in a node's image cache (§13.4); beyond that the puller
    would evict what users are running from."""
    return bool(profiles) and 0 < len(profiles[0]["profile_options"][IMAGE_OPTION]["choices"]) \
        <= spec.storage.cached_images_per_node


def service_room(spec: EnclaveSpec, vetted: ImageVetter | None = None) -> ServiceRoom:
    """What the notebook namespace's quota must leave the pods the rendered values run there, each container at
    ``service_resources`` (a puller pod's init containers run one at a time, so it counts one container)."""
    nb = spec.notebooks
    nodes = sum(g.count for g in spec.groups(NodeRole.WORKER))
    pods = _HUB_PODS + _USER_SCHEDULERS + (2 * nodes + 1 if _pre_pulls(spec, spec_profile_list(spec, vetted)) else 0)
    default = nb.sizes[nb.default_size]
    return ServiceRoom(pods, pods * nb.bounds.min_cpu, pods * nb.bounds.min_memory_mib, pods * default.cpu_limit,
                       pods * default.memory_limit_mib)


ImagePin = Callable[[str], "str | None"]
"""image → its approved ``repository@sha256:<digest>``, or None (``enclave.ops.images.pinner``)."""


def admissible(image: str, pin: ImagePin | None) -> str:
    """``image`` as the admission policy admits it: ``repository:tag@digest`` with its approved digest when
    ``pin`` knows one (the policy admits an approved digest under any tag), the approved ``repository@digest``
    for an image without a tag, else the image as it is."""
    pinned = pin(image) if pin is not None and "@" not in image else None
    if pinned is None:
        return image
    return f"{image}@{pinned.split('@', 1)[1]}" if _split_tag(image)[1] is not None else pinned


def _pin_choices(profiles: list[dict[str, Any]], pin: ImagePin) -> None:
    """Each choice's image written with its approved digest (``admissible``): the pre-puller runs every choice's
    image as written (templates/image-puller/_helpers-daemonset.tpl, ``kubespawner_override.image``), where the
    admission policy refuses a bare tag. The hook pins again at spawn; the digest it finds is this one."""
    for profile in profiles:
        for choice in profile["profile_options"][IMAGE_OPTION]["choices"].values():
            override = choice["kubespawner_override"]
            override["image"] = admissible(override["image"], pin)


def _merge(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def z2jh_values(spec: EnclaveSpec, vetted: ImageVetter | None = None, pin: ImagePin | None = None) -> dict[str, Any]:
    """Helm values in the shape of the Zero-to-JupyterHub chart.

    uid/gid and the exact home path differ per account, so the values carry the templated defaults and
    the hub's pre-spawn hook (``enclave.notebooks.hook``) sets the account's own. Under vetting, ``vetted`` and
    ``pin`` (the approved digests) keep to the approved images and write them with their digests, so what the
    chart runs without the hook (the default image, the pre-pullers) is admitted.
    """
    nb = spec.notebooks
    st = spec.storage
    default = nb.sizes[nb.default_size]
    profiles = spec_profile_list(spec, vetted)
    default_image = profiles[0]["profile_options"][IMAGE_OPTION]["choices"] if profiles else {}
    first = next((c["display_name"] for c in default_image.values() if c.get("default")), nb.images[0])
    pull = _pre_pulls(spec, profiles)
    if pin is not None:
        _pin_choices(profiles, pin)
    resources = service_resources(spec)
    home_tpl = f"{st.home_root.rstrip('/')}/{{username}}"
    return _merge({
        "hub": hub_values(spec),
        "singleuser": {
            "image": _image_name_tag(admissible(first, pin)),
            "cloudMetadata": dict(CLOUD_METADATA),
            "cpu": {"guarantee": default.cpu_request, "limit": default.cpu_limit},
            "memory": {"guarantee": mem(default.memory_request_mib), "limit": mem(default.memory_limit_mib)},
            # Per-account uid/gid are set by the pre-spawn hook; if it were ever missing, the pod runs as
            # nobody, which can write neither home nor workspace: failing closed, never as root.
            "uid": NOBODY,
            "fsGid": NOBODY,
            "nodeSelector": node_selector(spec),
            "allowPrivilegeEscalation": False,
            "storage": {
                "type": "none",
                "extraVolumes": [
                    {"name": "home", "hostPath": {"path": home_tpl, "type": "Directory"}},
                ],
                "extraVolumeMounts": [  # the workspace as a subPath of home: ``workspace_subpath``
                    {"name": "home", "mountPath": HOME_MOUNT},
                    {"name": "home", "mountPath": WORKSPACE_MOUNT, "subPath": st.workspace_subdir},
                ],
            },
            "profileList": profiles,
        },
        # The culler runs as enclave's own hub service (hub.services.idle-culler, with its role), so Z2JH's
        # built-in one, which would run a second culler, is off.
        "cull": {"enabled": False},
        "proxy": {"chp": {"resources": resources}},
        "scheduling": {"userScheduler": {"resources": resources}},
        "prePuller": {"resources": resources, "hook": {"enabled": pull, "resources": resources},
                      "continuous": {"enabled": pull}},
    }, chart_images(spec))


def render(spec: EnclaveSpec, out: Path, vetted: ImageVetter | None = None, pin: ImagePin | None = None) -> list[Path]:
    """Write values.yaml, profile_list.yaml and jupyterhub_config.py into ``out``."""
    output_dir(out)
    values = z2jh_values(spec, vetted, pin)
    header = ("# Zero-to-JupyterHub values rendered by `enclave render notebooks` from the enclave spec.\n"
              "# uid/fsGid are nobody (65534) on purpose: the pre-spawn hook sets each account's own.\n"
              f"# Install with --set-file {LIFECYCLE_TOKEN_VALUE}=<render deploy's directory>/hub-token\n"
              "# (the enclave-lifecycle service's token, which enclave's control plane presents).\n")
    files = {
        out / "values.yaml": header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True),
        out / "profile_list.yaml": yaml.safe_dump(values["singleuser"]["profileList"], sort_keys=False,
                                                  allow_unicode=True),
        out / "jupyterhub_config.py": HUB_CONFIG,
    }
    for path, text in files.items():
        path.write_text(text)
    return list(files)
