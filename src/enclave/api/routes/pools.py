"""Pools and nodes: the spec's shares and limits next to what the backend reports now."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel

from enclave.api.deps import Caller, ServiceDep
from enclave.api.snapshot import NodeView, PoolView
from enclave.errors import NotFound
from enclave.spec.models import Pool as PoolSpec
from enclave.spec.summary import pool_capacity

router = APIRouter(tags=["pools and nodes"])


class Pool(BaseModel):
    name: str
    spec: PoolSpec
    guaranteed_cores: int
    max_cores: int
    now: PoolView | None
    """Supply and demand in the latest observation (None before the first)."""


class Nodes(BaseModel):
    observed_at: datetime | None
    """Backend clock of the observation, ISO 8601 UTC."""
    nodes: list[NodeView]


@router.get("/pools", summary="Each batch pool: spec shares, guaranteed and maximum cores, current supply and demand")
def pools(caller: Caller, service: ServiceDep) -> list[Pool]:
    snap = service.history.latest()
    limits = {p.name: p for p in pool_capacity(service.spec)}
    return [Pool(name=name, spec=pool, guaranteed_cores=limits[name].guaranteed_cores,
                 max_cores=limits[name].max_cores, now=snap.pools.get(name) if snap else None)
            for name, pool in service.spec.pools.items()]


@router.get("/nodes", summary="Every node: state, Kubernetes load and the startds it runs")
def nodes(caller: Caller, service: ServiceDep) -> Nodes:
    snap = service.history.latest()
    return Nodes(observed_at=datetime.fromtimestamp(round(snap.now), UTC) if snap else None,
                 nodes=list(snap.nodes) if snap else [])


@router.get("/nodes/{name}", summary="One node")
def node(name: str, caller: Caller, service: ServiceDep) -> NodeView:
    snap = service.history.latest()
    for n in snap.nodes if snap else ():
        if n.name == name:
            return n
    raise NotFound(f"no node named {name!r} in the latest observation", where="node",
                   fix="GET /api/v1/nodes lists every node")
