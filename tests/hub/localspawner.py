"""The stand-in for KubeSpawner on a machine without a cluster: KubeSpawner's own options form, form parsing and
traits (so the hub shows and parses exactly what enclave's profile callable returns, and enclave's pre-spawn hook
sets the same traits it sets in production), with LocalProcessSpawner's process handling (start, poll, stop,
state) instead of a pod.

The pod's filesystem is emulated: every hostPath volume the hook mounts (home, workspace) is mapped back to its host
path, so the server runs in the account's real home directory and sees $HOME and $ENCLAVE_WORKSPACE there.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner, Spawner
from kubespawner import KubeSpawner


class LocalKubeSpawner(SimpleLocalProcessSpawner, KubeSpawner):  # type: ignore[misc]
    """MRO: start/poll/stop/get_state/load_state/user_env from the local spawner; options_form,
    options_from_form, profile_list and the pod traits from KubeSpawner."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # KubeSpawner defaults the port to 8888 (one pod, one address); local servers share the host.
        self.port = 0

    def _host_path(self, path: str) -> str:
        volumes = {v["name"]: v.get("hostPath", {}).get("path") for v in self.volumes or []}
        for mount in sorted(self.volume_mounts or [], key=lambda m: -len(m["mountPath"])):
            host = volumes.get(mount["name"])
            inside = mount["mountPath"].format(username=self.user.name)
            if host and (path == inside or path.startswith(inside.rstrip("/") + "/")):
                return host + path[len(inside):]
        return path

    async def start(self) -> Any:
        if self.working_dir:
            self.home_dir = self._host_path(self.working_dir)
        return await super().start()

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        return {k: self._host_path(v) if v.startswith("/") else v for k, v in env.items()}

    async def progress(self) -> Any:  # KubeSpawner's reads pod events from the cluster
        async for event in Spawner.progress(self):
            yield event

    async def delete_forever(self) -> None:  # KubeSpawner's deletes a PVC in the cluster
        return None
