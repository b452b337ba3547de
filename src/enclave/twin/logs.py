"""Pod logs on the twin (AA2/AA3): the simulated pods have no processes to write logs, so a pod's "log" is its
events as the simulation knows them, one line each, as ``kubectl logs --timestamps`` would print them.

The twin's pods in an application namespace are the notebook servers in the spec's notebook namespace, named as
KubeSpawner names a server pod (``jupyter-{username}``; the twin's sessions are anonymous, so
``jupyter-session-{i}``) with KubeSpawner's one container, ``notebook``. A session that ended, or a pod the twin
does not simulate, is not found, as an ended pod is not on a cluster. A followed log ends at the twin's present.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from enclave.domain.logs import LogRequest
from enclave.errors import InputError, NotFound, Problem
from enclave.twin.sim import Sim

POD_PREFIX = "jupyter-session-"
CONTAINER = "notebook"
"""KubeSpawner's ``container_name`` default (kubespawner/spawner.py)."""


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class TwinLogs:
    sim: Sim

    def pods(self) -> list[str]:
        """The notebook server pods there are now: placed or waiting for room."""
        return [f"{POD_PREFIX}{i}" for i in sorted({*self.sim.nb_node, *self.sim.nb_pending})]

    def _session(self, request: LogRequest) -> int:
        namespace = self.sim.spec.notebooks.namespace
        index = request.pod.removeprefix(POD_PREFIX)
        where = f"pod {request.namespace}/{request.pod}"
        if request.namespace != namespace or not index.isdigit() or request.pod not in self.pods():
            raise NotFound(f"there is no {where} in the twin", where=where,
                           fix=f"the twin's pods are the notebook servers in {namespace}: "
                               f"{', '.join(self.pods()[:3]) or 'none now'} …")
        if request.container not in (None, CONTAINER):
            raise InputError([Problem("--container", f"container {request.container} is not valid for pod "
                                                     f"{request.pod}", f"the twin's notebook pods run {CONTAINER}")])
        return int(index)

    def events(self, i: int) -> list[tuple[float, str]]:
        sim, sessions = self.sim, self.sim.wl.sessions
        out = [(sessions.t[i], f"spawn requested: {sessions.cpu[i]:g} CPU, {sessions.memory_mib[i]} MiB")]
        node = sim.nb_node.get(i)
        if node is not None:
            out.append((sim.now, f"running on node {node.name}"))
        else:
            out.append((sim.now, "Pending: FailedScheduling: no node has room for it"))
        return out

    def pod_log(self, request: LogRequest) -> Iterator[str]:
        i = self._session(request)
        lines = self.events(i)
        if request.since_seconds is not None:
            lines = [(t, text) for t, text in lines if t >= self.sim.now - request.since_seconds]
        if request.tail_lines is not None:
            lines = lines[len(lines) - request.tail_lines:] if request.tail_lines else []
        epoch = self.sim.sc.start_epoch
        return iter([f"{_stamp(epoch + t)} {text}" for t, text in lines])
