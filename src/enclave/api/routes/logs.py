"""Developers' pod logs (AA2/AA3): ``GET /namespaces/{namespace}/pods/{pod}/log``, the Kubernetes path and query
names of the pod log endpoint (container, sinceSeconds, tailLines, follow:
https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#get-read-log-of-the-specified-pod).
One call of ``LogService.read``: the check (logs.read in that namespace), the journal entry of the read or of its
refusal, and the lines, streamed as text/plain."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from enclave.access.permissions import Permission
from enclave.api.deps import Caller, Logs
from enclave.domain.logs import MAX_LINES, MAX_SECONDS, LogRequest
from enclave.errors import PermissionDenied

router = APIRouter(tags=["logs"])


@router.get("/namespaces/{namespace}/pods/{pod}/log", response_class=StreamingResponse,
            summary="A pod's log, for accounts with logs.read in that namespace (journaled, refusals too)",
            responses={200: {"content": {"text/plain": {}}, "description": "The log's lines."}})
def pod_log(caller: Caller, logs: Logs, namespace: str = Path(max_length=63), pod: str = Path(max_length=253),
            container: str | None = Query(None, max_length=63),
            since_seconds: int | None = Query(None, alias="sinceSeconds", ge=1, le=MAX_SECONDS),
            tail_lines: int | None = Query(None, alias="tailLines", ge=0, le=MAX_LINES),
            follow: bool = False) -> StreamingResponse:
    refusal = None
    try:
        caller.need_scope(Permission.LOGS_READ)
    except PermissionDenied as exc:
        refusal = exc
    request = LogRequest(namespace, pod, container=container, since_seconds=since_seconds, tail_lines=tail_lines,
                         follow=follow)
    lines = logs.read(caller.username, request, token_refusal=refusal)
    return StreamingResponse((f"{line}\n" for line in lines), media_type="text/plain; charset=utf-8")
