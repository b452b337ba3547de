"""Kubernetes version numbers and the release data file they are checked against."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from enclave.errors import InputError, NotFound, Problem
from enclave.spec.document import parse

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str, *, where: str = "version") -> Version:
        m = _VERSION.match(str(text).strip())
        if not m:
            raise InputError([Problem(where, f"{text!r} is not a Kubernetes version",
                                      "write it as MAJOR.MINOR.PATCH, e.g. 1.9.3 or v1.10.13")])
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    @property
    def minor_key(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def minor_name(self) -> str:
        return f"{self.major}.{self.minor}"

    def minors_after(self, other: Version) -> int:
        """How many minor releases this version is ahead of ``other`` (negative when behind)."""
        if self.major != other.major:
            raise InputError([Problem("version", f"v{other} and v{self} differ in major version",
                                      "enclave plans upgrades within Kubernetes 1.x only")])
        return self.minor - other.minor

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def v(self) -> str:
        return f"v{self}"


@dataclass(frozen=True)
class Release:
    minor: Version
    released: dt.date
    eol: dt.date
    latest_patch: Version
    source: str
    maintenance_from: dt.date | None = None

    def maintained_on(self, day: dt.date) -> bool:
        return self.released <= day <= self.eol


@dataclass(frozen=True)
class SkewPolicy:
    apiserver_max_spread: int
    kubelet_max_older: tuple[tuple[Version, int], ...]
    kube_proxy_max_older: tuple[tuple[Version, int], ...]
    controller_manager_max_older: int
    scheduler_max_older: int
    kubectl_max_distance: int
    kube_proxy_kubelet_max_distance: tuple[tuple[Version, int], ...] = ((Version(1, 0), 0),)

    @staticmethod
    def _lookup(table: tuple[tuple[Version, int], ...], version: Version) -> int:
        allowed = table[0][1]
        for start, minors in table:
            if version.minor_key >= start.minor_key:
                allowed = minors
        return allowed

    def kubelet_older(self, apiserver: Version) -> int:
        return self._lookup(self.kubelet_max_older, apiserver)

    def kube_proxy_older(self, apiserver: Version) -> int:
        return self._lookup(self.kube_proxy_max_older, apiserver)

    def kube_proxy_kubelet(self, kube_proxy: Version) -> int:
        """Keyed by kube-proxy's version, as the policy words it ("kube-proxy < 1.25 may only be …")."""
        return self._lookup(self.kube_proxy_kubelet_max_distance, kube_proxy)


@dataclass(frozen=True)
class ReleaseData:
    data_version: str
    releases: tuple[Release, ...]
    skew: SkewPolicy
    sources: dict[str, str]

    def release(self, version: Version) -> Release:
        for r in self.releases:
            if r.minor.minor_key == version.minor_key:
                return r
        known = f"{self.releases[0].minor.minor_name}–{self.releases[-1].minor.minor_name}"
        raise NotFound(f"Kubernetes {version.minor_name} is not in the release data (knows {known})",
                       where="ops/data/kubernetes-releases.yaml",
                       fix="add the release to the data file, or choose a version it knows")

    def maintained(self, day: dt.date) -> list[Release]:
        return [r for r in self.releases if r.maintained_on(day)]

    def newest_maintained(self, day: dt.date) -> Release:
        live = self.maintained(day)
        if not live:
            raise NotFound(f"no Kubernetes release in the data is maintained on {day}",
                           where=f"release data {self.data_version}",
                           fix="update src/enclave/ops/data/kubernetes-releases.yaml")
        return live[-1]


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InputError([Problem(where, f"{value!r} is not a date", "write dates as YYYY-MM-DD")]) from None


def _table(rows: Any, where: str) -> tuple[tuple[Version, int], ...]:
    if isinstance(rows, int):
        return ((Version(1, 0), rows),)
    return tuple((Version.parse(str(r["from"]), where=where), int(r["minors"])) for r in rows)


def parse_release_data(text: str, where: str = "kubernetes-releases.yaml") -> ReleaseData:
    """Parse release data; every row is checked so one bad edit is reported with its row."""
    try:
        raw, _ = parse(text, where)
        skew = raw["skew"]
        releases: list[Release] = []
        for i, row in enumerate(raw["releases"]):
            at = f"{where}: releases[{i}]"
            minor = Version.parse(str(row["minor"]), where=at)
            latest = Version.parse(str(row["latest_patch"]), where=at)
            if latest.minor_key != minor.minor_key:
                raise InputError([Problem(at, f"latest_patch {latest} is not in minor {minor.minor_name}",
                                          "give a patch release of the same minor")])
            released, eol = _date(row["released"], at), _date(row["eol"], at)
            if eol < released:
                raise InputError([Problem(at, "eol is before the release date", "check both dates")])
            mf = row.get("maintenance_from")
            releases.append(Release(minor, released, eol, latest, str(row.get("source", "")),
                                    _date(mf, at) if mf else None))
        releases.sort(key=lambda r: r.minor)
        for a, b in zip(releases, releases[1:], strict=False):
            if b.minor.minor_key != (a.minor.major, a.minor.minor + 1):
                raise InputError([Problem(where, f"release data jumps from {a.minor.minor_name} to "
                                                 f"{b.minor.minor_name}", "list every minor release")])
        return ReleaseData(
            data_version=str(raw["data_version"]),
            releases=tuple(releases),
            skew=SkewPolicy(
                apiserver_max_spread=int(skew["apiserver_max_spread"]),
                kubelet_max_older=_table(skew["kubelet_max_older"], f"{where}: skew"),
                kube_proxy_max_older=_table(skew["kube_proxy_max_older"], f"{where}: skew"),
                controller_manager_max_older=int(skew["controller_manager_max_older"]),
                scheduler_max_older=int(skew["scheduler_max_older"]),
                kubectl_max_distance=int(skew["kubectl_max_distance"]),
                kube_proxy_kubelet_max_distance=_table(skew.get("kube_proxy_kubelet_max_distance", 0),
                                                       f"{where}: skew"),
            ),
            sources={str(k): str(v) for k, v in (raw.get("sources") or {}).items()},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError([Problem(where, f"release data is malformed ({exc!r})",
                                  "compare it with the shipped kubernetes-releases.yaml")]) from None


@lru_cache(maxsize=1)
def release_data() -> ReleaseData:
    """The release data shipped with enclave."""
    text = resources.files("enclave.ops").joinpath("data/kubernetes-releases.yaml").read_text()
    return parse_release_data(text)


def target_version(text: str, data: ReleaseData | None = None, *, where: str = "--to") -> Version:
    """A requested target: MAJOR.MINOR.PATCH as given, or MAJOR.MINOR meaning that minor's latest patch."""
    v = Version.parse(text, where=where)
    if text.strip().lstrip("v").count(".") == 1:
        return (data or release_data()).release(v).latest_patch
    return v
