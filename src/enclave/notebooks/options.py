"""Spawner options (seed §5 AA1 step 7): which images and sizes an account may pick, and the check
of a submitted choice. Pure: no database, no Kubernetes; the caller passes the account and the clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from enclave.errors import InputError, PermissionDenied, Problem
from enclave.notebooks.account import AccountLike, require_notebook_access
from enclave.spec.checks import IMAGE_RE
from enclave.spec.models import EnclaveSpec

ImageVetter = Callable[[str], bool]
"""Answers 'has security vetted this image?' (seed §10). The registry-vetting code in enclave.ops
provides the real one; ``spec_vetter`` is the fallback that trusts the spec's own list."""

_EPS = 1e-9


def registry_of(image: str) -> str | None:
    m = IMAGE_RE.match(image)
    return m.group("registry") if m else None


def spec_vetter(spec: EnclaveSpec) -> ImageVetter:
    """Vetting by the spec alone: an image is acceptable if the spec lists it and, when vetting is
    required, it comes from the local registry (the spec checks already insist on that)."""
    listed = frozenset(spec.notebooks.images)

    def vetted(image: str) -> bool:
        if image not in listed:
            return False
        return not spec.registry.vetting_required or registry_of(image) == spec.registry.host

    return vetted


@dataclass(frozen=True)
class Limit:
    """The most one notebook may take: the spec's bounds (seed §13.2–13.3)."""

    max_cpu: float
    max_memory_mib: int


def limit_for(spec: EnclaveSpec) -> Limit:
    b = spec.notebooks.bounds
    return Limit(max_cpu=b.max_cpu, max_memory_mib=b.max_memory_mib)


@dataclass(frozen=True)
class SizeOption:
    name: str
    cpu_request: float
    cpu_limit: float
    memory_request_mib: int
    memory_limit_mib: int
    description: str
    default: bool
    label: str = field(init=False)
    """What the spawner's options page shows."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.name}: {self.cpu_request:g}–{self.cpu_limit:g} CPU, "
                           f"{_gib(self.memory_request_mib)}–{_gib(self.memory_limit_mib)} GiB"
                           + (f" ({self.description})" if self.description else ""))


def _gib(mib: int) -> str:
    return f"{mib / 1024:g}"


@dataclass(frozen=True)
class Options:
    """What the 'Spawner Options' page offers one account."""

    username: str
    images: tuple[str, ...]
    sizes: tuple[SizeOption, ...]
    default_image: str
    default_size: str
    limit: Limit
    withheld_images: tuple[str, ...]
    """Listed in the spec but not (yet) vetted: shown to operators, never offered to users."""


@dataclass(frozen=True)
class Choice:
    """A submitted choice. Either a named size, or an explicit cpu/memory (AA1: 'how much CPU and RAM')."""

    image: str | None = None
    size: str | None = None
    cpu: float | None = None
    memory_mib: int | None = None


@dataclass(frozen=True)
class Spawn:
    """An accepted choice: everything the spawner needs to build the pod."""

    username: str
    uid: int
    gid: int
    image: str
    size: str
    cpu_request: float
    cpu_limit: float
    memory_request_mib: int
    memory_limit_mib: int
    home_path: str
    workspace_path: str


def _fits(spec_size: SizeOption, limit: Limit) -> bool:
    return spec_size.cpu_limit <= limit.max_cpu + _EPS and spec_size.memory_limit_mib <= limit.max_memory_mib


def options_for(spec: EnclaveSpec, account: AccountLike, *, vetted: ImageVetter | None = None,
                now: datetime | None = None) -> Options:
    """The images and sizes this account may pick. Refuses departed and expired accounts outright."""
    require_notebook_access(account, now)
    is_vetted = vetted or spec_vetter(spec)
    nb = spec.notebooks
    images = tuple(i for i in nb.images if is_vetted(i))
    withheld = tuple(i for i in nb.images if i not in images)
    if not images:
        raise PermissionDenied(
            "no notebook image is vetted yet, so none can be offered",
            where="notebooks.images",
            fix="have security vet at least one image of the local registry (seed §10)",
        )
    limit = limit_for(spec)
    all_sizes = [
        SizeOption(name, s.cpu_request, s.cpu_limit, s.memory_request_mib, s.memory_limit_mib, s.description,
                   default=False)
        for name, s in nb.sizes.items()
    ]
    fitting = [s for s in all_sizes if _fits(s, limit)]
    if not fitting:
        raise PermissionDenied(
            f"account '{account.username}' may use at most {limit.max_cpu:g} CPU and {limit.max_memory_mib} MiB, "
            "and no notebook size is that small",
            where=f"account {account.username}",
            fix="define a size within notebooks.bounds in notebooks.sizes",
        )
    default = nb.default_size if any(s.name == nb.default_size for s in fitting) else fitting[0].name
    sizes = tuple(SizeOption(s.name, s.cpu_request, s.cpu_limit, s.memory_request_mib, s.memory_limit_mib,
                             s.description, default=s.name == default) for s in fitting)
    return Options(username=account.username, images=images, sizes=sizes, default_image=images[0],
                   default_size=default, limit=limit, withheld_images=withheld)


def validate(spec: EnclaveSpec, account: AccountLike, choice: Choice, *, vetted: ImageVetter | None = None,
             now: datetime | None = None) -> Spawn:
    """Accept a submitted choice or refuse it with a reason a person can act on.

    Order matters: the account is checked first (an expired account learns that, not that its image
    is wrong), then the image, then the size.
    """
    require_notebook_access(account, now)
    is_vetted = vetted or spec_vetter(spec)
    nb = spec.notebooks
    image = choice.image or next((i for i in nb.images if is_vetted(i)), None) or nb.images[0]
    if image not in nb.images:
        raise InputError([Problem(
            where="image", what=f"image '{image}' is not offered on this enclave",
            fix=f"choose one of: {', '.join(i for i in nb.images if is_vetted(i)) or '(none vetted yet)'}",
        )])
    if not is_vetted(image):
        raise PermissionDenied(
            f"image '{image}' has not been vetted by security",
            where="image",
            fix="choose a vetted image, or ask security to vet this one in the local registry (seed §10)",
        )
    cpu_req, cpu_lim, mem_req, mem_lim, size_name = _resolve_size(spec, choice)
    b = nb.bounds
    too_big: list[Problem] = []
    if cpu_lim > b.max_cpu + _EPS:
        too_big.append(Problem("cpu", f"{cpu_lim:g} CPU is too big: a notebook may use at most {b.max_cpu:g}",
                               f"pick at most {b.max_cpu:g} CPU (seed §13.2)"))
    if mem_lim > b.max_memory_mib:
        too_big.append(Problem("memory", f"{mem_lim} MiB is too big: a notebook may use at most {b.max_memory_mib} "
                               "MiB", f"pick at most {b.max_memory_mib} MiB (seed §13.3)"))
    if cpu_req < b.min_cpu - _EPS:
        too_big.append(Problem("cpu", f"{cpu_req:g} CPU is too small: a notebook gets at least {b.min_cpu:g}",
                               f"pick at least {b.min_cpu:g} CPU (seed §13.2)"))
    if mem_req < b.min_memory_mib:
        too_big.append(Problem("memory", f"{mem_req} MiB is too small: a notebook gets at least "
                               f"{b.min_memory_mib} MiB", f"pick at least {b.min_memory_mib} MiB (seed §13.3)"))
    if too_big:
        raise InputError(too_big)
    return Spawn(username=account.username, uid=account.uid, gid=account.gid, image=image, size=size_name,
                 cpu_request=cpu_req, cpu_limit=cpu_lim, memory_request_mib=mem_req, memory_limit_mib=mem_lim,
                 home_path=account.home_path, workspace_path=account.workspace_path)


def _resolve_size(spec: EnclaveSpec, choice: Choice) -> tuple[float, float, int, int, str]:
    nb = spec.notebooks
    if choice.cpu is None and choice.memory_mib is None:
        name = choice.size or nb.default_size
        size = nb.sizes.get(name)
        if size is None:
            raise InputError([Problem("size", f"size '{name}' is not defined",
                                      f"choose one of: {', '.join(nb.sizes)}")])
        return size.cpu_request, size.cpu_limit, size.memory_request_mib, size.memory_limit_mib, name
    if choice.cpu is None or choice.memory_mib is None:
        raise InputError([Problem("size", "an explicit size needs both cpu and memory",
                                  "give both cpu and memory_mib, or pick a named size")])
    if not math.isfinite(choice.cpu) or choice.cpu <= 0 or choice.memory_mib <= 0:
        raise InputError([Problem("size", f"cpu {choice.cpu} / memory {choice.memory_mib} MiB is not a size",
                                  "give positive numbers")])
    if choice.size is not None:
        raise InputError([Problem("size", "both a named size and an explicit cpu/memory were given",
                                  "give one or the other")])
    # An explicit choice is guaranteed, not burstable: what the user asked for is what they get.
    return choice.cpu, choice.cpu, choice.memory_mib, choice.memory_mib, "custom"
