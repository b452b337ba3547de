"""The small rules the profile list and the spawner settings stand on, each from the source it follows."""

from __future__ import annotations

import pytest

from enclave.notebooks.options import Spawn
from enclave.notebooks.profiles import (
    TOKEN_VOLUME,
    _split_tag,
    node_selector,
    spec_profile_list,
    token_secret_of,
    workspace_subpath,
)
from enclave.spec import EnclaveSpec
from enclave.spec.models import NodeGroup


def test_the_profile_list_marks_the_specs_default_size_and_only_it(ldf: EnclaveSpec) -> None:
    # KubeSpawner's profile_list: the profile with "default": True is preselected in the form (kubespawner
    # spawner.py, profile_list help); lsst-ldf's notebooks.default_size is medium.
    profiles = spec_profile_list(ldf)
    assert [p["slug"] for p in profiles if p["default"]] == [ldf.notebooks.default_size] == ["medium"]


def test_a_size_without_a_description_says_its_limits(ldf: EnclaveSpec) -> None:
    sizes = {**ldf.notebooks.sizes, "small": ldf.notebooks.sizes["small"].model_copy(update={"description": ""})}
    spec = ldf.model_copy(update={"notebooks": ldf.notebooks.model_copy(update={"sizes": sizes})})
    small = next(p for p in spec_profile_list(spec) if p["slug"] == "small")
    assert small["description"] == "1 CPU, 2 GiB at most"  # lsst-ldf's small: cpu_limit 1, 2048 MiB


def test_notebooks_run_where_every_worker_group_with_nodes_is_labelled(ldf: EnclaveSpec) -> None:
    assert node_selector(ldf) == {"lsst.io/commons": "true"}  # lsst-ldf's one worker group, kub
    kub = next(g for g in ldf.cluster.node_groups if g.name == "kub")
    more = NodeGroup(**{**kub.model_dump(), "name": "kub-gpu", "labels": {"lsst.io/commons": "true", "gpu": "yes"}})
    none = NodeGroup(**{**kub.model_dump(), "name": "kub-later", "count": 0, "labels": {"other": "x"}})
    spec = ldf.model_copy(update={"cluster": ldf.cluster.model_copy(
        update={"node_groups": [*ldf.cluster.node_groups, more, none]})})
    # The labels both groups with nodes share; a group with no nodes narrows nothing.
    assert node_selector(spec) == {"lsst.io/commons": "true"}
    # No worker with nodes: no selector to give (and no notebook to place).
    empty = ldf.model_copy(update={"cluster": ldf.cluster.model_copy(update={"node_groups": [
        g if g.name != "kub" else NodeGroup(**{**g.model_dump(), "count": 0}) for g in ldf.cluster.node_groups]})})
    assert node_selector(empty) == {}


def _spawn(home: str, workspace: str) -> Spawn:
    return Spawn("alice", 1001, 1001, "img", "small", 0.5, 1, 1024, 2048, home, workspace)


def test_the_workspace_is_a_subpath_strictly_inside_the_home() -> None:
    assert workspace_subpath(_spawn("/jhome/alice", "/jhome/alice/workspace")) == "workspace"
    for outside in ("/jhome/alice", "/jhome/bob/workspace", "/jhome/alice/../bob"):
        with pytest.raises(ValueError, match="not inside the home|is not in the subpath"):
            workspace_subpath(_spawn("/jhome/alice", outside))


def test_a_tag_follows_the_last_colon_after_the_last_slash() -> None:
    # Docker's reference grammar (distribution/reference, reference.go): a ':' before a '/' is the registry's port.
    assert _split_tag("registry.local:5000/lsst/lab:w_2018_25") == ("registry.local:5000/lsst/lab", "w_2018_25")
    assert _split_tag("registry.local:5000/lsst/lab") == ("registry.local:5000/lsst/lab", None)
    assert _split_tag("lab") == ("lab", None)


def test_the_token_secret_is_the_one_the_token_volume_mounts() -> None:
    pod = {"spec": {"volumes": [{"name": "other", "secret": {"secretName": "not-it"}},
                                {"name": TOKEN_VOLUME, "emptyDir": {}},
                                {"name": TOKEN_VOLUME, "secret": {"secretName": "tokens-alice"}}]}}
    assert token_secret_of(pod) == "tokens-alice"
    assert token_secret_of({"spec": {"volumes": [{"name": "other", "secret": {"secretName": "x"}}]}}) is None
    assert token_secret_of({}) is None
