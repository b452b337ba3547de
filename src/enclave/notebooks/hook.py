"""JupyterHub glue: the hub refuses what enclave refuses.

``configure(c)`` in jupyterhub_config.py installs these on KubeSpawner:
- ``profile_list`` as a callable, so each user sees only the images and sizes ``options_for`` allows;
- ``pre_spawn_hook``, which re-checks the submitted choice with ``validate`` (a REST API spawn never
  sees the form) and sets the account's uid/gid and home/workspace mounts;
- with notebook batch tokens (spec ``notebooks.batch_tokens``), ``after_pod_created_hook``, which mints the pod's
  HTCondor IDTOKEN and puts it in a Secret the pod owns — only for an account that holds ``batch.submit``.

Everything the hub needs from the outside (the spec, how to find an account, image vetting) is passed
in, so tests drive the real KubeSpawner with a plain lookup function.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from enclave.access.permissions import Permission
from enclave.batch import idtoken
from enclave.errors import EnclaveError, InputError, PermissionDenied, Problem, http_status
from enclave.notebooks.account import AccountLike
from enclave.notebooks.options import Choice, ImageVetter, Spawn, options_for, validate
from enclave.notebooks.profiles import (
    IMAGE_OPTION,
    TOKEN_INIT_CONTAINER,
    profile_list,
    spawner_settings,
    spec_image_keys,
    token_lifetime,
    token_secret,
    token_secret_of,
)
from enclave.spec.models import EnclaveSpec

AccountLookup = Callable[[str], AccountLike]
"""username → account; raises NotFound for an unknown user."""

Clock = Callable[[], datetime | None]


class SpawnRefused(Exception):
    """What the hub shows the user. JupyterHub displays ``jupyterhub_message`` on the spawn page."""

    def __init__(self, error: EnclaveError) -> None:
        super().__init__(str(error))
        self.status_code = http_status(error)
        self.jupyterhub_message = f"enclave refused this notebook: {error}"
        self.error = error


def choice_from_user_options(spec: EnclaveSpec, user_options: Mapping[str, Any] | None) -> Choice:
    """Translate KubeSpawner user_options ({'profile': size, 'image': choice key}) into a Choice.

    The key is read with the mapping the form and the values were made with (``spec_image_keys``: every image
    of the spec, vetted or not), so it names the image the user picked; an unvetted image's key resolves to that
    image, which ``validate`` refuses. An image may also arrive as the full reference (REST API callers); an
    unknown key is kept as given so that ``validate`` reports it rather than it being silently replaced by the
    default.
    """
    opts = dict(user_options or {})
    size = opts.get("profile") or None
    key = opts.get(IMAGE_OPTION) or None
    by_key = {v: k for k, v in spec_image_keys(spec).items()}
    image = by_key.get(key, key) if isinstance(key, str) else None
    cpu, memory = opts.get("cpu"), opts.get("memory_mib")
    try:
        cores = float(cpu) if cpu is not None else None
        if cores is not None and not math.isfinite(cores):
            raise ValueError(f"cpu {cores} is not finite")  # NaN passes every bound's comparison
        return Choice(image=image, size=str(size) if size is not None else None, cpu=cores,
                      memory_mib=int(memory) if memory is not None else None)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int() of JSON's 1e400, infinity
        raise InputError([Problem("user_options", f"cpu/memory_mib are not numbers: {exc}",
                                  "send numbers, or pick a named size")]) from exc


def make_profile_list(spec: EnclaveSpec, lookup: AccountLookup, *, vetted: ImageVetter | None = None,
                      clock: Clock = lambda: None) -> Callable[[Any], list[dict[str, Any]]]:
    def profiles(spawner: Any) -> list[dict[str, Any]]:
        try:
            account = lookup(spawner.user.name)
            return profile_list(spec, options_for(spec, account, vetted=vetted, now=clock()))
        except EnclaveError as error:
            raise SpawnRefused(error) from error

    return profiles


def make_pre_spawn_hook(spec: EnclaveSpec, lookup: AccountLookup, *, vetted: ImageVetter | None = None,
                        clock: Clock = lambda: None, pin: Callable[[str], str] | None = None
                        ) -> Callable[[Any], None]:
    def pre_spawn_hook(spawner: Any) -> None:
        try:
            account = lookup(spawner.user.name)
            spawn = validate(spec, account, choice_from_user_options(spec, spawner.user_options),
                             vetted=vetted, now=clock())
            # Launch the approved digest, not the tag: a tag re-pushed after vetting must not run.
            image = pin(spawn.image) if pin is not None else None
        except EnclaveError as error:
            spawner.log.warning("enclave refused spawn for %s: %s", spawner.user.name, error)
            raise SpawnRefused(error) from error
        apply(spawner, spec, spawn, image, token_secret=_token_secret(spawner, spec, spawn, account))

    return pre_spawn_hook


def may_submit(account: AccountLike) -> bool:
    """Whether ``account`` may submit batch jobs (``batch.submit``): a notebook token is a submitter's credential,
    and ``notebooks.spawn`` alone does not grant it (``access.permissions.ROLE_PERMISSIONS``)."""
    return Permission.BATCH_SUBMIT.value in account.permissions


def _token_secret(spawner: Any, spec: EnclaveSpec, spawn: Spawn, account: AccountLike) -> str | None:
    """The name of the Secret this spawn's pod will read its HTCondor token from, when the spec gives notebook pods
    tokens (``notebooks.batch_tokens``) and the account may have one (``may_submit``, not a queue super user's name);
    ``after_pod_created_hook`` makes it. A fresh name each spawn, so the Secret of a pod of the same name that is
    still being deleted (its garbage collection) is never the new pod's."""
    if not spec.notebooks.batch_tokens.enabled:
        return None
    if not may_submit(account):
        spawner.log.info("no HTCondor token for %s: the account may not submit batch jobs (%s)", spawn.username,
                         Permission.BATCH_SUBMIT.value)
        return None
    try:
        idtoken.notebook_subject(spec, spawn.username)
    except InputError as error:
        spawner.log.warning("no HTCondor token for %s: %s", spawn.username, error)
        return None
    return f"{spawner.pod_name}-htcondor-{secrets.token_hex(4)}"


def _name(container: Any) -> Any:
    return container.get("name") if isinstance(container, Mapping) else getattr(container, "name", None)


def apply(spawner: Any, spec: EnclaveSpec, spawn: Spawn, image: str | None = None, *,
          token_secret: str | None = None) -> None:
    """Set every trait of the accepted spawn on the spawner — image, resources, identity, mounts — and
    take the profile machinery out of the way, so KubeSpawner runs exactly what enclave validated and no
    profile default can replace it afterwards.

    Init containers are the exception: those the operator configured (``singleuser.initContainers``, KubeSpawner's
    ``init_containers``) are kept, and the token's copier (``TOKEN_INIT_CONTAINER``) is appended when the pod gets a
    token. A copier an earlier spawn of the same spawner left (JupyterHub keeps a spawner whose start failed) is
    dropped first, so a pod never waits for an earlier spawn's Secret; without either, the trait is left alone."""
    settings = spawner_settings(spec, spawn, image=image, token_secret=token_secret)
    ours = settings.pop("init_containers", [])
    for name, value in settings.items():
        setattr(spawner, name, value)
    configured = list(spawner.init_containers)
    kept = [c for c in configured if _name(c) != TOKEN_INIT_CONTAINER]
    if ours or len(kept) != len(configured):
        spawner.init_containers = [*kept, *ours]
    spawner.profile_list = []
    spawner.user_options = {}


def make_after_pod_created_hook(spec: EnclaveSpec, key_file: bytes, lookup: AccountLookup, *,
                                clock: Callable[[], float] = time.time
                                ) -> Callable[[Any, dict[str, Any]], Awaitable[None]]:
    """KubeSpawner's ``after_pod_created_hook``: mint the pod's HTCondor token (``idtoken.mint``, signed with the
    notebook key whose file holds ``key_file``) and create the Secret the pod mounts (``profiles.token_secret``).
    The pre-spawn hook gave the pod a token Secret only if its account may submit (``may_submit``); the account is
    looked up again here and, if it no longer may (demoted meanwhile), nothing is minted and the spawn fails.

    Why after the pod and not before: the Secret is owned by the pod, so Kubernetes deletes it with the pod however
    the pod ends (the hub stopping it, the culler, a departure through ``HubAdmin``, a node lost, the hub down), and
    an owner reference needs the pod's uid, which exists only once the pod does. KubeSpawner 7.0.0 makes its own
    per-pod Secret (internal_ssl) the same way: ``_start`` creates the pod, waits until the reflector shows its uid,
    then creates the Secret with ``make_owner_reference``, then awaits this hook (``maybe_future``) with the
    reflector's pod, a dict. Meanwhile the kubelet retries mounting the missing Secret; the init container that
    copies it runs once it is there. If the hook fails, ``_start`` stops the pod and the spawn fails: no pod runs
    without the token it was promised. Z2JH 4.1.0's hub Role may create secrets (templates/hub/rbac.yaml)."""
    tokens = spec.notebooks.batch_tokens

    async def after_pod_created_hook(spawner: Any, pod: dict[str, Any]) -> None:
        name = token_secret_of(pod)
        if name is None:  # no token for this account (_token_secret)
            return
        try:
            account = lookup(spawner.user.name)
            if not may_submit(account):
                raise PermissionDenied(f"account '{account.username}' may not submit batch jobs "
                                       f"({Permission.BATCH_SUBMIT.value}): no HTCondor token for its notebook",
                                       where=f"account {account.username}",
                                       fix="start the notebook again (it then gets no token), or ask a sysadmin "
                                           "for a role that may submit")
        except EnclaveError as error:
            spawner.log.warning("enclave refused the HTCondor token for %s: %s", spawner.user.name, error)
            raise SpawnRefused(error) from error
        # The issuer is the pool's TRUST_DOMAIN, $(CONDOR_HOST) in every rendered file (render._security), or the
        # pod's client never presents the token (condor_auth_passwd.cpp checkToken).
        token = idtoken.mint(key_file, key_name=tokens.key, issuer=spec.batch.central_manager,
                             subject=idtoken.notebook_subject(spec, spawner.user.name),
                             lifetime_s=token_lifetime(spec), now=clock(), scopes=("READ", "WRITE"))
        await spawner.api.create_namespaced_secret(pod["metadata"]["namespace"], token_secret(pod, name, token))
        spawner.log.info("HTCondor token for %s in Secret %s", spawner.user.name, name)

    return after_pod_created_hook
