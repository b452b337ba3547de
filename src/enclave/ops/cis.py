"""The CIS Kubernetes Benchmark versions kube-bench ships, and which one fits a cluster.

data/cis-benchmarks.yaml is restated from kube-bench's cfg/ by scripts/cis_benchmarks.py: every benchmark's items
(number, title, Automated/Manual, the mode a permission item expects, kube-bench's `scored` and check `type`),
the items matched across versions (``lineage``), kube-bench's ``version_mapping`` (cfg/config.yaml) from
Kubernetes minor to benchmark, and each benchmark's controls files and groups (``controls``).

The benchmark is chosen as kube-bench chooses it (cmd/common.go ``getBenchmarkVersion`` and
``mapToBenchmarkVersion``, cmd/util.go ``decrementVersion``): ``--benchmark`` wins; else the cluster's minor is
looked up and, when absent, lowered one minor at a time until a mapped one is found — so a release newer than the
mapping gets the newest benchmark. kube-bench gives up for a release older than every mapped minor ("unable to
find a matching Benchmark Version"); enclave takes the oldest benchmark then and says so in the report's note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from enclave.errors import InputError, Problem
from enclave.ops.versions import Version

NAME = "CIS Kubernetes Benchmark"


@dataclass(frozen=True)
class Item:
    id: str
    type: str  # Automated | Manual (CIS 1.5's Scored / Not Scored restated; the word CIS used is in ``status``)
    title: str
    mode: str | None = None  # the bitmask a permission item compares with (kube-bench `op: bitmask`)
    status: str = ""
    scored: bool = True  # kube-bench's `scored`
    check_type: str = ""  # kube-bench's check `type`: "manual" (always WARN), "skip" (always INFO) or none

    @property
    def fails(self) -> bool:
        """Whether kube-bench reports a failed test as FAIL (not WARN): a scored check of no manual or skip type
        (check/check.go run: `type: manual` is WARN whatever the test, an unscored failure WARN)."""
        return self.scored and self.check_type not in ("manual", "skip")


@dataclass(frozen=True)
class Control:
    """One kube-bench controls file (cfg/<benchmark>/master.yaml …): its id, text, node type and groups."""

    id: str
    text: str
    node_type: str
    groups: Mapping[str, str]  # group id ("1.1") → text


@dataclass(frozen=True)
class Chosen:
    """The benchmark a run reports: its kube-bench name (cis-1.12), where it comes from and why it was chosen."""

    version: str
    source: str
    note: str = ""
    name: str = NAME
    written_for: tuple[str, ...] = ()  # the Kubernetes minors kube-bench maps to it


@dataclass(frozen=True)
class Catalogue:
    source: str
    mapping: Mapping[str, str]  # Kubernetes minor "1.33" → "cis-1.12"
    benchmarks: Mapping[str, Mapping[str, Item]]
    lineage: tuple[Mapping[str, str], ...]
    controls: Mapping[str, Mapping[str, Control]]  # benchmark → control id ("1") → its file's control

    @property
    def oldest(self) -> str:
        return next(iter(self.benchmarks))

    def choose(self, kubernetes: Version | None, override: str | None = None) -> Chosen:
        if override:
            if override not in self.benchmarks:
                raise InputError([Problem("--benchmark", f"unknown benchmark {override!r}",
                                          f"use one of {', '.join(self.benchmarks)} (kube-bench cfg/)")])
            return self._chosen(override, f"chosen with --benchmark {override}")
        if kubernetes is None:
            newest = list(self.benchmarks)[-1]
            return self._chosen(newest, "no Kubernetes version known: the newest benchmark")
        minor = kubernetes.minor
        while minor >= 0:  # kube-bench decrementVersion: one minor lower until a mapped one
            found = self.mapping.get(f"{kubernetes.major}.{minor}")
            if found:
                return self._chosen(found, "" if minor == kubernetes.minor else
                                    f"Kubernetes {kubernetes.minor_name} is not in kube-bench's version_mapping; "
                                    f"{found} is the benchmark of {kubernetes.major}.{minor}, the nearest release "
                                    "below it, as kube-bench chooses")
            minor -= 1
        oldest = self.oldest
        return self._chosen(oldest, f"Kubernetes {kubernetes.minor_name} is older than every CIS benchmark kube-bench "
                                    f"ships (kube-bench refuses it); {oldest}, written for "
                                    f"{', '.join(self._minors(oldest))}, is used as the closest")

    def _minors(self, bench: str) -> tuple[str, ...]:
        return tuple(m for m, b in self.mapping.items() if b == bench)

    def _chosen(self, bench: str, note: str) -> Chosen:
        return Chosen(bench, f"{self.source}/{bench}", note, written_for=self._minors(bench))

    def item(self, bench: str, item_id: str) -> Item | None:
        return self.benchmarks.get(bench, {}).get(item_id)

    def follow(self, anchor: str, item_id: str, bench: str) -> Item | None:
        """The item of ``bench`` that is ``anchor``'s ``item_id`` (renumbered or reworded), or None when that
        benchmark lacks it."""
        for row in self.lineage:
            if row.get(anchor) == item_id:
                found = row.get(bench)
                return self.item(bench, found) if found else None
        return None


def _item(item_id: str, raw: Mapping[str, Any]) -> Item:
    return Item(str(item_id), str(raw["type"]), str(raw["title"]), str(raw["mode"]) if raw.get("mode") else None,
                str(raw.get("status", "")), bool(raw["scored"]), str(raw.get("check_type", "")))


def parse_catalogue(text: str, where: str = "cis-benchmarks.yaml") -> Catalogue:
    try:
        raw = yaml.safe_load(text)
        benchmarks = {str(b): {str(i): _item(i, r) for i, r in items.items()}
                      for b, items in raw["benchmarks"].items()}
        controls = {str(b): {str(i): Control(str(i), str(c["text"]), str(c["node_type"]),
                                             {str(g): str(t) for g, t in c["groups"].items()})
                             for i, c in by_id.items()} for b, by_id in raw["controls"].items()}
        return Catalogue(str(raw["source"]), {str(k): str(v) for k, v in raw["version_mapping"].items()},
                         benchmarks, tuple({str(k): str(v) for k, v in row.items()} for row in raw["lineage"]),
                         controls)
    except (KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise InputError([Problem(where, f"not a CIS benchmark catalogue ({exc})",
                                  "regenerate it with scripts/cis_benchmarks.py")]) from None


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    return parse_catalogue(resources.files("enclave.ops").joinpath("data/cis-benchmarks.yaml").read_text())
