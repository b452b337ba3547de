"""The enclave's nodes and startds as the spec lays them out, before any demand moves them.

Used as the starting point of a broker run and as the *static partition* baseline: every batch-only node
runs one startd, labelled so that each pool holds its guaranteed share (rounded to whole nodes, largest
remainders first), and what the guarantees leave over goes to the default pool.
"""

from __future__ import annotations

from enclave.batch.policy import static_labels
from enclave.domain.capacity import Node, Observed, Startd, StartdKind
from enclave.spec.models import EnclaveSpec, NodeRole, node_name


def nodes_of(spec: EnclaveSpec, now: float = 0.0) -> tuple[Node, ...]:
    return tuple(
        Node(name=node_name(g.name, i), group=g.name, role=g.role, cores=g.cores,
             memory_mib=int(g.memory_gib * 1024), since=now)
        for g in spec.cluster.node_groups for i in range(1, g.count + 1)
    )


def initial_state(spec: EnclaveSpec, now: float = 0.0) -> Observed:
    """Every node ready, one standalone startd per batch-only node, labelled as the rendered execute configs
    start them (``enclave.batch.policy.static_labels``)."""
    nodes = nodes_of(spec, now)
    labels = static_labels(spec)
    startds = tuple(Startd(name=n.name, node=n.name, kind=StartdKind.STANDALONE, pool=labels[n.name],
                           cores=n.cores, memory_mib=n.memory_mib, since=now)
                    for n in nodes if n.role == NodeRole.BATCH_ONLY)
    return Observed(now=now, nodes=nodes, startds=startds)
