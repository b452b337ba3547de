"""Developers read their services' pod logs (seed §5, AA2/AA3: "kubectl logs" without an ssh hop). Pure.

A request is what ``kubectl logs NAMESPACE POD -c CONTAINER --since --tail -f`` asks of the API server's pod log
endpoint (``GET /api/v1/namespaces/{namespace}/pods/{name}/log``, PodLogOptions:
https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#get-read-log-of-the-specified-pod).
The live cluster (``enclave.cluster.kube.KubeCluster.pod_log``) and the twin (``enclave.twin.logs``) answer it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from enclave.errors import Problem

# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/: namespace and container names are
# DNS-1123 labels (at most 63), pod names DNS-1123 subdomains (at most 253). Checked before anything is asked, so
# no name can change the request's path.
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_SECONDS = 10 * 365 * 86400
MAX_LINES = 1_000_000


@dataclass(frozen=True)
class LogRequest:
    namespace: str
    pod: str
    container: str | None = None
    """Defaults to the pod's only container; a pod with several needs one named (the API server says which)."""
    since_seconds: int | None = None
    tail_lines: int | None = None
    follow: bool = False

    def problems(self) -> list[Problem]:
        """PodLogOptions' own rules (kubernetes pkg/apis/core/validation ValidatePodLogOptions: sinceSeconds
        "must be greater than 0", tailLines must not be negative) and the name rules above."""
        out = []
        if not DNS1123_LABEL.match(self.namespace):
            out.append(Problem("namespace", f"{self.namespace!r} is not a namespace name",
                               "give a DNS-1123 label, e.g. firefly"))
        if not DNS1123_SUBDOMAIN.match(self.pod):
            out.append(Problem("pod", f"{self.pod!r} is not a pod name", "give the pod's name as `kubectl get pods` "
                                                                         "shows it"))
        if self.container is not None and not DNS1123_LABEL.match(self.container):
            out.append(Problem("--container", f"{self.container!r} is not a container name", "give a DNS-1123 label"))
        if self.since_seconds is not None and not 0 < self.since_seconds <= MAX_SECONDS:
            out.append(Problem("--since", f"{self.since_seconds} s is not a time back",
                               f"give seconds in 1 … {MAX_SECONDS}"))
        if self.tail_lines is not None and not 0 <= self.tail_lines <= MAX_LINES:
            out.append(Problem("--tail", f"{self.tail_lines} is not a number of lines", f"give 0 … {MAX_LINES}"))
        return out

    def recorded(self) -> dict[str, object]:
        """What the journal keeps of a read: every option that shapes what was read."""
        return {"namespace": self.namespace, "pod": self.pod, "container": self.container,
                "since_seconds": self.since_seconds, "tail_lines": self.tail_lines, "follow": self.follow}


class LogSource(Protocol):
    def pod_log(self, request: LogRequest) -> Iterator[str]:
        """The log's lines (without their newline), oldest first; raises NotFound or InputError as the API
        server would (no such pod; a container to choose or not in the pod)."""
        ...
