"""JupyterHub glue: the hub refuses what enclave refuses.

``configure(c)`` in jupyterhub_config.py installs two things on KubeSpawner:
- ``profile_list`` as a callable, so each user sees only the images and sizes ``options_for`` allows;
- ``pre_spawn_hook``, which re-checks the submitted choice with ``validate`` (a REST API spawn never
  sees the form) and sets the account's uid/gid and home/workspace mounts.

Everything the hub needs from the outside (the spec, how to find an account, image vetting) is passed
in, so tests drive the real KubeSpawner with a plain lookup function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from enclave.errors import EnclaveError, InputError, Problem, http_status
from enclave.notebooks.account import AccountLike
from enclave.notebooks.options import Choice, ImageVetter, Spawn, options_for, validate
from enclave.notebooks.profiles import IMAGE_OPTION, profile_list, spawner_settings, spec_image_keys
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
        return Choice(image=image, size=str(size) if size is not None else None,
                      cpu=float(cpu) if cpu is not None else None,
                      memory_mib=int(memory) if memory is not None else None)
    except (TypeError, ValueError) as exc:
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
        apply(spawner, spec, spawn, image)

    return pre_spawn_hook


def apply(spawner: Any, spec: EnclaveSpec, spawn: Spawn, image: str | None = None) -> None:
    """Set every trait of the accepted spawn on the spawner — image, resources, identity, mounts — and
    take the profile machinery out of the way, so KubeSpawner runs exactly what enclave validated and no
    profile default can replace it afterwards."""
    for name, value in spawner_settings(spec, spawn).items():
        setattr(spawner, name, value)
    if image is not None:
        spawner.image = image
    spawner.profile_list = []
    spawner.user_options = {}
