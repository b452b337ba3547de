"""Pools and nodes: the spec's shares and limits next to what the backend reports now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from enclave.api.deps import Caller, ServiceDep
from enclave.api.plain import plain
from enclave.errors import NotFound
from enclave.spec.summary import pool_capacity

router = APIRouter(tags=["pools and nodes"])


@router.get("/pools", summary="Each batch pool: spec shares, guaranteed and maximum cores, current supply and demand")
def pools(caller: Caller, service: ServiceDep) -> list[dict[str, Any]]:  # noqa: B008
    snap = service.history.latest()
    limits = {p.name: p for p in pool_capacity(service.spec)}
    out = []
    for name, pool in service.spec.pools.items():
        out.append({
            "name": name, "spec": pool.model_dump(mode="json"),
            "guaranteed_cores": limits[name].guaranteed_cores, "max_cores": limits[name].max_cores,
            "now": plain(snap.pools.get(name)) if snap else None,
        })
    return out


@router.get("/nodes", summary="Every node: state, Kubernetes load and the startds it runs")
def nodes(caller: Caller, service: ServiceDep) -> dict[str, Any]:  # noqa: B008
    snap = service.history.latest()
    return {"observed_at": snap.now if snap else None, "nodes": plain(snap.nodes) if snap else []}


@router.get("/nodes/{name}", summary="One node")
def node(name: str, caller: Caller, service: ServiceDep) -> dict[str, Any]:  # noqa: B008
    snap = service.history.latest()
    for n in snap.nodes if snap else ():
        if n.name == name:
            result: dict[str, Any] = plain(n)
            return result
    raise NotFound(f"no node named {name!r} in the latest observation", where="node",
                   fix="GET /api/v1/nodes lists every node")
