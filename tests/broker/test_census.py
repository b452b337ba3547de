"""``enclave.broker.census.Census``: what a decision reads off its observation."""

from __future__ import annotations

import math

from enclave.broker.census import Census, down_nodes
from enclave.domain.capacity import Node, NodeState, Startd, StartdKind
from enclave.spec.models import NodeRole


def _startd(name: str, node: str, kind: StartdKind, *, draining: bool = False) -> Startd:
    return Startd(name, node, kind, "drp", 8, 32 * 1024, draining=draining)


def test_names_are_those_a_new_pod_could_take() -> None:
    # A new worker pod is named htcondor-<node>-<n> (``naming.POD_PREFIX``): every borrowed startd's name counts
    # (pods and whole workers alike), and a standalone one's only when it starts with the prefix, draining or not.
    # A name holding the prefix elsewhere ("my-htcondor-x") is not one, nor is a node's name.
    borrowed = [_startd("htcondor-kub-001-1", "kub-001", StartdKind.POD),
                _startd("kub-002", "kub-002", StartdKind.NODE)]
    standalone = [_startd("condor-001", "condor-001", StartdKind.STANDALONE),
                  _startd("my-htcondor-x", "condor-002", StartdKind.STANDALONE)]
    pod_like = [_startd("htcondor-kub-003-1", "condor-003", StartdKind.STANDALONE, draining=True),
                _startd("htcondor-kub-004-2", "condor-004", StartdKind.STANDALONE)]
    assert Census.of(borrowed + standalone + pod_like).names == {"htcondor-kub-001-1", "kub-002",
                                                                 "htcondor-kub-003-1", "htcondor-kub-004-2"}
    assert Census.of(standalone + borrowed).names == {"htcondor-kub-001-1", "kub-002"}
    # The range test stands for str.startswith: the prefix itself, and names just past it ("htcondor." comes after
    # every "htcondor-…", "htcondor" before), fall where startswith puts them.
    edges = [_startd(name, "condor-005", StartdKind.STANDALONE)
             for name in ("htcondor-", "htcondor", "htcondor.", "htcondor-~", "htcondor-\U0010ffff", "Htcondor-x")]
    assert Census.of(edges).names == {"htcondor-", "htcondor-~", "htcondor-\U0010ffff"}


def test_what_the_pass_tells_of_each_pools_startds() -> None:
    # Sizes of the standalone and of the borrowed startds not draining, each once; the latest since of the
    # borrowed ones, and their idle pods in order (a busy pod, a whole worker, a draining pod are not idle pods).
    startds = [Startd("condor-001", "condor-001", StartdKind.STANDALONE, "drp", 24, 128 * 1024, since=5.0),
               Startd("condor-002", "condor-002", StartdKind.STANDALONE, "drp", 16, 64 * 1024, since=7.0),
               Startd("condor-003", "condor-003", StartdKind.STANDALONE, "drp", 24, 128 * 1024),
               Startd("htcondor-kub-001-1", "kub-001", StartdKind.POD, "drp", 8, 32 * 1024, since=100.0),
               Startd("htcondor-kub-001-2", "kub-001", StartdKind.POD, "drp", 8, 32 * 1024, busy_cores=3,
                      since=300.0),
               Startd("kub-002", "kub-002", StartdKind.NODE, "drp", 48, 256 * 1024, since=200.0),
               Startd("htcondor-kub-003-1", "kub-003", StartdKind.POD, "drp", 4, 16 * 1024, since=900.0,
                      draining=True),
               Startd("htcondor-kub-003-2", "kub-003", StartdKind.POD, "drp", 16, 64 * 1024, since=250.0),
               # A standalone startd draining out of batch holds nothing for its pool.
               Startd("condor-004", "condor-004", StartdKind.STANDALONE, "drp", 32, 128 * 1024, draining=True)]
    census = Census.of(startds)
    held = census.holdings["drp"]
    assert (held.standalone, [s.name for s in census.standalone_draining]) == (24 + 16 + 24, ["condor-004"])
    assert held.standalone_sizes == {24, 16}
    assert held.lent_sizes == {8, 48, 16}
    assert held.lent_newest == 300.0  # the draining pod's 900 is not one of them
    assert [s.name for s in held.idle_pods] == ["htcondor-kub-001-1", "htcondor-kub-003-2"]
    # A cooldown's test (Cycle.cool's: now - since >= cooldown) on the latest tells for all of them.
    assert held.lent_all_cool(lambda since: 1200.0 - since >= 900.0)
    assert not held.lent_all_cool(lambda since: 1199.0 - since >= 900.0)
    assert Census.of(startds[:3]).holdings["drp"].lent_all_cool(lambda since: 0.0 - since >= 900.0)  # none borrowed
    # A NaN since passes no such test, and stays the latest whatever comes after it.
    nan = [*startds, Startd("htcondor-kub-004-1", "kub-004", StartdKind.POD, "drp", 8, 32 * 1024, since=math.nan),
           Startd("htcondor-kub-004-2", "kub-004", StartdKind.POD, "drp", 8, 32 * 1024, since=400.0)]
    assert not Census.of(nan).holdings["drp"].lent_all_cool(lambda since: 1e9 - since >= 900.0)


def test_the_ready_workers_names_and_room_in_their_order() -> None:
    workers = [Node("kub-002", "kub", NodeRole.WORKER, 48, 256 * 1024, NodeState.READY, 10.5, 0),
               Node("kub-001", "kub", NodeRole.WORKER, 48, 256 * 1024, NodeState.DRAINING, 1.0, 0),
               Node("kub-003", "kub", NodeRole.WORKER, 32, 128 * 1024, NodeState.READY, 0.25, 0)]
    census = Census.of([], workers)
    assert census.ready_names == ["kub-002", "kub-003"]
    assert census.ready_room == [37.5, 31.75]
    # Of the others, only a draining worker still has pods to move: not one HTCondor holds, nor one that is down.
    others = [*workers, Node("kub-004", "kub", NodeRole.WORKER, 48, 256 * 1024, NodeState.HTCONDOR, 2.0, 0),
              Node("kub-005", "kub", NodeRole.WORKER, 48, 256 * 1024, NodeState.DOWN, 6.0, 0)]
    assert [n.name for n in Census.of([], others).draining_workers] == ["kub-001"]


def test_down_nodes_are_those_whose_last_entry_says_down() -> None:
    def node(name: str, state: NodeState) -> Node:
        return Node(name, "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, state)

    assert down_nodes([node("condor-001", NodeState.READY), node("condor-002", NodeState.READY)]) == set()
    # Listed twice, a node is what its last entry says, as a map of the nodes by name reads them.
    assert down_nodes([node("condor-001", NodeState.DOWN), node("condor-002", NodeState.DOWN),
                       node("condor-001", NodeState.READY), node("condor-003", NodeState.DRAINING),
                       node("condor-003", NodeState.DOWN)]) == {"condor-002", "condor-003"}
