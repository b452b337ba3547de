"""Each HTCondor worker pod mounts the ConfigMap of its shape, and HTCondor reading that ConfigMap with the
pod's own environment sees the cores the pod owns (issue 18, "Worker config").

HTCondor's ``$ENV(name)`` expands to the empty string when the variable is unset (HTCondor manual,
"Configuration File Macros": https://htcondor.readthedocs.io/en/latest/admin-manual/introduction-to-configuration.html),
so the partitioned file, read by a whole-node pod (which sets no ENCLAVE_POD_CPUS), would say NUM_CPUS is empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from enclave.batch import render
from enclave.cluster import objects
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES
from tests.cluster.conftest import container_env


@pytest.fixture(scope="module")
def ldf() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


def _pod(spec: EnclaveSpec, whole: bool) -> dict[str, Any]:
    return objects.worker_pod(spec, name="p", node="kub-003", pool="user", cores=8, memory_mib=32768,
                              image="registry/htcondor:25", since=1_800_000_000.0, whole_node=whole)


def _files(pod: dict[str, Any], maps: list[dict[str, Any]], path: str) -> dict[str, str]:
    """The files the kubelet puts at ``path`` from a ConfigMap volume: the map's keys the volume projects (``items``:
    https://kubernetes.io/docs/concepts/storage/volumes/#configmap), by file name; with a ``subPath``, that one."""
    [container] = pod["spec"]["containers"]
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    [cm] = [m for m in maps if m["metadata"]["name"] == volume["configMap"]["name"]]
    assert cm["metadata"]["namespace"] == pod["metadata"]["namespace"]  # a pod mounts only its own namespace's maps
    items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in cm["data"]]
    files = {item["path"]: cm["data"][item["key"]] for item in items}
    return {mount["subPath"]: files[mount["subPath"]]} if "subPath" in mount else files


def _mounted(pod: dict[str, Any], maps: list[dict[str, Any]]) -> tuple[str, str]:
    """The one HTCondor file (name, text) where the image takes added configuration (/root/config): its
    update-config copies every *.conf there into config.d, so no other *.conf may be there."""
    [(name, text)] = [(n, t) for n, t in _files(pod, maps, objects.CONFIG_MOUNT).items() if n.endswith(".conf")]
    return name, text


def _env(pod: dict[str, Any]) -> dict[str, str]:
    """The pod's environment as the kubelet sets it (the downward API's fields filled in)."""
    return {k: v for k, v in container_env(pod).items() if v is not None}


def _read(file: tuple[str, str], env: dict[str, str], tmp_path: Path, knobs: list[str]) -> dict[str, str | None]:
    path = tmp_path / file[0]
    path.write_text(file[1])
    return render.read_back(path, knobs, subsystem="STARTD", env=env)


def test_one_config_map_per_pod_shape(ldf: EnclaveSpec) -> None:
    maps = objects.worker_config_maps(ldf)
    assert len({m["metadata"]["name"] for m in maps}) == 2
    assert _mounted(_pod(ldf, True), maps) != _mounted(_pod(ldf, False), maps)


def test_partitioned_pod_reads_its_own_cores_and_memory(ldf: EnclaveSpec, tmp_path: Path) -> None:
    pod = _pod(ldf, False)
    got = _read(_mounted(pod, objects.worker_config_maps(ldf)), _env(pod), tmp_path, ["NUM_CPUS", "MEMORY"])
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert got["NUM_CPUS"] == limits["cpu"] and f"{got['MEMORY']}Mi" == limits["memory"]


@pytest.mark.parametrize(("whole", "kind"), [(False, '"pod"'), (True, '"node"')])
def test_each_pod_shape_says_which_it_is(ldf: EnclaveSpec, tmp_path: Path, whole: bool, kind: str) -> None:
    """The broker gives a share back by deleting it and a whole worker by returning the node: the startd's
    EnclaveStartdKind tells them apart, so each shape mounts its own file."""
    pod = _pod(ldf, whole)
    got = _read(_mounted(pod, objects.worker_config_maps(ldf)), _env(pod), tmp_path, ["NUM_CPUS", "EnclaveStartdKind"])
    assert got["NUM_CPUS"] == "8" and got["EnclaveStartdKind"] == kind


def _as_the_image_reads(pod: dict[str, Any], file: tuple[str, str], tmp_path: Path,
                        knobs: list[str]) -> dict[str, str | None]:
    """What the startd reads in the HTCondor image (htcondor/htcondor build/docker/services): its start.sh writes
    01-env.conf from the environment (``printf "%s=%s\n"``: CONDOR_HOST, NUM_CPUS ``${NUM_CPUS:-1}``, MEMORY
    ``${MEMORY:-1024}``, RESERVED_DISK, USE_POOL_PASSWORD), then update-config copies /root/config/*.conf into
    /etc/condor/config.d, which HTCondor reads in lexical order (LOCAL_CONFIG_DIR)."""
    env = _env(pod)
    confd = tmp_path / "config.d"
    confd.mkdir()
    written = {"CONDOR_HOST": env.get("CONDOR_HOST", ""), "NUM_CPUS": env.get("NUM_CPUS", "1"),
               "MEMORY": env.get("MEMORY", "1024"), "RESERVED_DISK": "1024", "USE_POOL_PASSWORD": "no"}
    (confd / "01-env.conf").write_text("".join(f"{k}={v}\n" for k, v in written.items()))
    (confd / file[0]).write_text(file[1])
    main = tmp_path / "condor_config"
    main.write_text(f"LOCAL_CONFIG_DIR = {confd}\n")
    return render.read_back(main, knobs, subsystem="STARTD", env=env)


@pytest.mark.parametrize("whole", [False, True])
def test_in_the_htcondor_image_a_pod_offers_what_it_requests(ldf: EnclaveSpec, tmp_path: Path, whole: bool) -> None:
    """Each pod offers what it requests, not the 1 core and 1024 MiB the image's 01-env.conf says when the pod sets
    no NUM_CPUS or MEMORY, nor (a whole worker's) the whole machine HTCondor would detect."""
    pod = _pod(ldf, whole)
    got = _as_the_image_reads(pod, _mounted(pod, objects.worker_config_maps(ldf)), tmp_path, ["NUM_CPUS", "MEMORY"])
    requests = pod["spec"]["containers"][0]["resources"]["requests"]
    assert (got["NUM_CPUS"], f"{got['MEMORY']}Mi") == (requests["cpu"], requests["memory"]) == ("8", "32768Mi")


def test_supervisord_gives_condor_master_the_pods_grace(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """The images run condor_master under supervisord, which kills a program stopwaitsecs after its stop signal
    (10 s by default, supervisord.org "[program:x] Section Settings"): the startd's jobs, retiring on its graceful
    shutdown, would be killed with their master. The pod's own file stands over the image's, with the pod's
    grace; the image's program line is kept."""
    import configparser
    import subprocess

    for whole in (False, True):
        pod = _pod(ldf, whole)
        files = _files(pod, objects.worker_config_maps(ldf), "/root/config")
        # The image's start.sh runs /root/config/pre-exec.sh just before supervisord (build/docker/services/base):
        # run here with the paths mapped under tmp_path, it puts the pod's file where supervisord reads it.
        root = tmp_path / ("whole" if whole else "share")
        root.mkdir()
        (root / "config").mkdir()
        (root / "etc").mkdir()
        for name, text in files.items():
            (root / "config" / name).write_text(text)
        script = files["pre-exec.sh"].replace("/root/config", str(root / "config")).replace("/etc/", f"{root}/etc/")
        subprocess.run(["bash", "-c", script], check=True)
        text = (root / "etc" / "supervisord.conf").read_text()
        conf = configparser.ConfigParser()
        conf.read_string(text)
        program = conf["program:condor_master"]
        assert program["command"] == "/usr/sbin/condor_master -f" and program["user"] == "root"
        assert int(program["stopwaitsecs"]) == pod["spec"]["terminationGracePeriodSeconds"] == 600
        assert conf["supervisord"]["nodaemon"] == "true"


def test_a_pod_has_its_token_and_the_brokers_key_where_the_image_takes_them(ldf: EnclaveSpec) -> None:
    """The image's update-secrets copies /etc/condor/tokens-orig.d into tokens.d and passwords-orig.d into
    passwords.d (its README, "Configuring Access and Security"): the startd advertises with the token, and checks
    the broker's IDTOKEN with the key that signed it (HTCondor manual, "Daemon-to-Daemon Connections") — a key of the
    broker's own, never the pool's (POOL), which would make every pod the pool's superuser."""
    for whole in (False, True):
        pod = _pod(ldf, whole)
        mounts = {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        for path, key in (("/etc/condor/tokens-orig.d", "token"), ("/etc/condor/passwords-orig.d", "ENCLAVE")):
            secret = volumes[mounts[path]]["secret"]
            assert secret["secretName"] == objects.WORKER_SECRET and secret["items"] == [{"key": key, "path": key}]
        assert "/etc/condor/config.d" not in mounts  # the image's own files there stay visible


@pytest.mark.parametrize("whole", [False, True])
def test_a_new_pod_publishes_when_it_started(ldf: EnclaveSpec, tmp_path: Path, whole: bool) -> None:
    """The startd's EnclavePoolSince (``$(ENCLAVE_POOL_SINCE:0)``, ``render._startd_common``) is the pod's start, which
    the broker's cooldown counts from; without it a pod it just started read as labelled at 0 and could go back in the
    next cycle. A relabel later sets the knob at run time, as on a standalone startd."""
    pod = _pod(ldf, whole)
    got = _read(_mounted(pod, objects.worker_config_maps(ldf)), _env(pod), tmp_path,
                [render.SINCE_KNOB, "EnclavePoolSince"])
    assert got[render.SINCE_KNOB] == "1800000000" and got["EnclavePoolSince"] == "1800000000"


def test_without_the_pod_info_file_the_environment_holds(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """A pod made before the volume existed mounts the new ConfigMap (a ConfigMap volume follows the map) but has
    no file there: HTCondor still reads its config, the pool and since from the environment (``include ifexist``:
    "Unless the ifexist option is specified, the non-existence of the file is a fatal error", HTCondor manual,
    "Including Configuration from Elsewhere")."""
    name, text = _mounted(_pod(ldf, False), objects.worker_config_maps(ldf))
    assert render.POD_INFO_DIR in text
    got = _read((name, text.replace(render.POD_INFO_DIR, str(tmp_path / "nothing-here"))), _env(_pod(ldf, False)),
                tmp_path, [render.POOL_KNOB, render.SINCE_KNOB])
    assert (got[render.POOL_KNOB], got[render.SINCE_KNOB]) == ("user", "1800000000")
