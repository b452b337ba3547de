"""The notebook namespace's service pods: what the rendered Zero-to-JupyterHub 4.1.0 values run there, at what
resources, and what the namespace's quota leaves them (``profiles.service_room``, ``access.render.notebook_limits``).

The chart's defaults the count rests on (jupyterhub/values.yaml at 4.1.0): ``scheduling.userScheduler.enabled: true``
with ``replicas: 2``; ``prePuller.hook.enabled`` and ``prePuller.continuous.enabled`` run the hook-image-puller and
continuous-image-puller DaemonSets on the nodes ``singleuser.nodeSelector`` picks (templates/image-puller/
_helpers-daemonset.tpl) and the hook-image-awaiter Job; ``scheduling.userPlaceholder.replicas: 0``.
"""

from __future__ import annotations

from enclave.access.render import render_access
from enclave.notebooks.profiles import service_room, z2jh_values
from enclave.spec import EnclaveSpec
from enclave.spec.models import NodeRole


def _quantity_mib(text: str) -> float:
    assert text.endswith("Mi"), f"{text}: a Kubernetes quantity in Mi (M would be 10^6 bytes)"
    return float(text[:-2])


def _cores(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_every_service_container_states_resources_within_the_limit_range(ldf: EnclaveSpec) -> None:
    """A container that states none would get the LimitRange's defaultRequest, the default notebook's 1 core and
    2 GiB (LimitRanger), on every node for a puller that only pulls images."""
    values = z2jh_values(ldf)
    bounds = ldf.notebooks.bounds
    for where in (values["hub"], values["proxy"]["chp"], values["scheduling"]["userScheduler"],
                  values["prePuller"], values["prePuller"]["hook"]):
        req, lim = where["resources"]["requests"], where["resources"]["limits"]
        assert (_cores(req["cpu"]), _quantity_mib(req["memory"])) == (bounds.min_cpu, bounds.min_memory_mib)
        assert bounds.min_cpu <= _cores(lim["cpu"]) <= bounds.max_cpu
        assert bounds.min_memory_mib <= _quantity_mib(lim["memory"]) <= bounds.max_memory_mib


def test_the_quota_leaves_room_for_every_service_pod(ldf: EnclaveSpec) -> None:
    workers = sum(g.count for g in ldf.groups(NodeRole.WORKER))
    assert z2jh_values(ldf)["prePuller"]["continuous"]["enabled"] is True  # LDF's 2 images fit the cache
    room = service_room(ldf)
    # hub + proxy, 2 user-schedulers, a continuous and a hook puller per worker, the awaiter
    assert room.pods == 2 + 2 + 2 * workers + 1
    assert (room.cpu, room.memory_mib) == (room.pods * ldf.notebooks.bounds.min_cpu,
                                           room.pods * ldf.notebooks.bounds.min_memory_mib)
    hard = next(o for o in render_access(ldf, [], room)[ldf.notebooks.namespace]
                if o["kind"] == "ResourceQuota")["spec"]["hard"]
    assert hard["pods"] == str(room.pods)
    # Without pre-pulling (more images than a node's cache holds) only the hub, proxy and user-schedulers run.
    many = ldf.model_copy(update={"notebooks": ldf.notebooks.model_copy(update={"images": [
        f"registry.lsst.local/lab:{i}" for i in range(ldf.storage.cached_images_per_node + 1)]})})
    assert service_room(many).pods == 4
