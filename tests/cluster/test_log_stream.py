"""A followed log whose connection breaks after the server answered 200: ``KubeCluster.pod_log`` raises an
``ExternalError`` from the iteration, as it does for a server that never answers (``kube._UNREACHED``)."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3

from enclave.cluster.kube import KubeCluster
from enclave.domain.logs import LogRequest
from enclave.errors import ExternalError
from tests.cluster.conftest import ApiServer, pod_obj


class _Breaking:
    """The connection under the log: one line, then ``failure`` (what the socket raises)."""

    closed = False  # asked by urllib3 before each read (urllib3/util/response.py, is_fp_closed)

    def __init__(self, failure: OSError) -> None:
        self.failure, self.sent = failure, False

    def read(self, amt: int | None = None) -> bytes:
        if self.sent:
            raise self.failure
        self.sent = True
        return b"line 1\n"


def _log_breaks_with(server: ApiServer, monkeypatch: pytest.MonkeyPatch, failure: OSError) -> None:
    server.pods[("firefly", "web-1")] = pod_obj("web-1", "kub-001", namespace="firefly")
    plain = server._resp

    def resp(status: int, payload: Any) -> urllib3.HTTPResponse:
        if not isinstance(payload, str):
            return plain(status, payload)
        return urllib3.HTTPResponse(body=_Breaking(failure), status=200,
                                    headers={"Content-Type": "text/plain"}, preload_content=False)

    monkeypatch.setattr(server, "_resp", resp)


# urllib3, the kubernetes client's transport, turns what the socket raises while a response is read into its own
# errors, both urllib3 HTTPErrors (.venv/lib/python3.11/site-packages/urllib3/response.py): a socket timeout
# (TimeoutError) into ReadTimeoutError "Read timed out." (:931-934), an OSError such as a reset into ProtocolError
# "Connection broken: ..." (:951-952).
@pytest.mark.parametrize("failure, said", [
    (ConnectionResetError(104, "Connection reset by peer"), "Connection broken"),
    (TimeoutError("timed out"), "Read timed out"),
])
def test_a_log_that_breaks_midstream_is_an_external_error(kube: KubeCluster, server: ApiServer,
                                                           monkeypatch: pytest.MonkeyPatch, failure: OSError,
                                                           said: str) -> None:
    _log_breaks_with(server, monkeypatch, failure)
    lines = kube.pod_log(LogRequest("firefly", "web-1", follow=True))  # answered 200: the stream had begun
    with pytest.raises(ExternalError, match=f"reading the log of pod firefly/web-1 failed.*{said}"):
        list(lines)
