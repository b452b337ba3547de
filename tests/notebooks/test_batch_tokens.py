"""Notebook pods' HTCondor tokens through the real KubeSpawner: the hooks ``enclave.hub.configure`` installs build the
pod (pre_spawn_hook, then KubeSpawner's own manifest) and make its token Secret (after_pod_created_hook, called as
KubeSpawner 7.0.0's ``_start`` calls it: with the reflector's pod, a dict that has its uid), against a recording
stand-in for KubeSpawner's Kubernetes client. The token's claims are held against the commons schedd's rendered
config, read back by HTCondor's parser; that the token is HTCondor's own to the byte is tests/batch/test_idtoken.py."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from traitlets.config import Config

from enclave.batch import render
from enclave.errors import InputError
from enclave.hub import configure, notebook_key
from enclave.notebooks import profiles
from enclave.spec import EnclaveSpec
from enclave.spec.models import BatchTokens
from tests.batch.conftest import NOTEBOOK_SCHEDD
from tests.notebooks.conftest import NOW, FakeAccount, make_account
from tests.notebooks.test_hub import User, kubeconfig, schema_version, spawner  # noqa: F401  (kubeconfig: a fixture)

KEY = bytes(range(64))
POD_UID = "3f1c6a52-9d0e-4c1b-8a57-2b1e0c9d7f10"


def with_tokens(spec: EnclaveSpec, **tokens: object) -> EnclaveSpec:
    notebooks = spec.notebooks.model_copy(update={"batch_tokens": BatchTokens.model_validate(
        {"enabled": True, **tokens})})
    return spec.model_copy(update={"notebooks": notebooks})


class RecordingApi:
    """The calls KubeSpawner's client (``spawner.api``, kubernetes_asyncio's CoreV1Api) gets from the hook."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.secrets: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def create_namespaced_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.secrets.append((namespace, body))
        return body


SUBMITTER = frozenset({"notebooks.spawn", "batch.submit"})
"""A developer's or science user's permissions (``access.permissions.ROLE_PERMISSIONS``)."""

def spawn_only(account: FakeAccount) -> FakeAccount:
    """``account`` with a role that may spawn notebooks but not submit (none of enclave's roles today; a site's)."""
    return dataclasses.replace(account, permissions=frozenset({"notebooks.spawn"}))


SITE_INIT = {"name": "site-setup", "image": "registry.example/site-setup:1", "command": ["true"]}
"""An init container the operator configured (Z2JH ``singleuser.initContainers``: KubeSpawner's ``init_containers``)."""


def spawn(spec: EnclaveSpec, account: FakeAccount, *, api: RecordingApi | None = None,
          init_containers: list[dict[str, Any]] | None = None, lookup: Any = None
          ) -> tuple[dict[str, Any], RecordingApi, Config]:
    """A KubeSpawner configured by ``configure``: the pod it builds after its pre_spawn_hook, then its
    after_pod_created_hook called with that pod as the reflector shows it once created (uid and namespace set).
    ``init_containers``: what the operator configured; ``lookup``: the hooks' account lookup, ``account``'s unless
    given."""
    from kubernetes_asyncio.client import ApiClient

    c = Config()
    if init_containers is not None:
        c.KubeSpawner.init_containers = init_containers
    configure(c, spec=spec, lookup=lookup or {account.username: account}.__getitem__, vetted=lambda i: True,
              key_file=KEY)
    recording = api or RecordingApi()

    async def run() -> dict[str, Any]:
        from kubespawner import KubeSpawner

        s = KubeSpawner(_mock=True, user=User(account.username), config=c)
        s.api = recording
        s.user_options = {"profile": "small"}
        s.pre_spawn_hook(s)
        await s.load_user_options()
        async with ApiClient() as client:
            pod: dict[str, Any] = client.sanitize_for_serialization(await s.get_pod_manifest())
        created = {**pod, "metadata": {**pod["metadata"], "uid": POD_UID, "namespace": s.namespace}}
        if s.after_pod_created_hook is not None:
            await s.after_pod_created_hook(s, created)
        return pod

    return asyncio.run(run()), recording, c


@pytest.fixture()
def alice(tmp_path: Path) -> FakeAccount:
    return make_account(tmp_path, "alice", 40001, permissions=SUBMITTER)


def _segment(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return value


def claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return _segment(head), _segment(body)


def test_the_pod_copies_its_token_as_the_account(kubeconfig: None, ldf: EnclaveSpec,  # noqa: F811
                                                 alice: FakeAccount) -> None:
    """HTCondor reads a token only when the reading uid owns the file and it is 0600 (secure_file.cpp
    ``read_secure_file``): the init container copies it as the account (uid and gid 40001) into the directory the
    client is pointed at, in memory."""
    pod, _, _ = spawn(with_tokens(ldf), alice)
    kubernetes_validate.validate(pod, schema_version(ldf), strict=True)
    [init] = pod["spec"]["initContainers"]
    [notebook] = pod["spec"]["containers"]
    assert init["command"] == ["install", "-m", "0600", "-t", "/var/run/htcondor/tokens.d",
                               "/var/run/secrets/htcondor/token"]
    assert init["securityContext"]["runAsUser"] == 40001 and init["securityContext"]["runAsGroup"] == 40001
    assert init["securityContext"]["allowPrivilegeEscalation"] is False
    assert init["image"] == notebook["image"]
    # As much as the notebook asks (profile small), so within the namespace's LimitRange and no extra quota.
    assert init["resources"] == {"requests": {"cpu": "500m", "memory": "1024Mi"},
                                 "limits": {"cpu": "1", "memory": "2048Mi"}}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["htcondor-tokens"]["emptyDir"]["medium"] == "Memory"
    assert volumes["htcondor-token"]["secret"]["secretName"].startswith("jupyter-alice-htcondor-")
    mounts = {m["mountPath"]: m for m in init["volumeMounts"]}
    assert mounts["/var/run/secrets/htcondor"]["name"] == "htcondor-token"
    assert mounts["/var/run/htcondor/tokens.d"]["name"] == "htcondor-tokens"
    assert {"name": "htcondor-tokens", "mountPath": "/var/run/htcondor/tokens.d", "readOnly": True} in \
        notebook["volumeMounts"]
    env = {e["name"]: e.get("value") for e in notebook["env"]}
    assert env["_CONDOR_SEC_TOKEN_DIRECTORY"] == "/var/run/htcondor/tokens.d"


def test_the_init_container_runs_the_approved_digest(kubeconfig: None, ldf: EnclaveSpec,  # noqa: F811
                                                     alice: FakeAccount) -> None:
    from enclave.notebooks.hook import make_pre_spawn_hook

    digest = "sha256:" + "ab" * 32

    async def run() -> Any:
        s = spawner("alice")
        s.user_options = {"profile": "small"}
        make_pre_spawn_hook(with_tokens(ldf), {"alice": alice}.__getitem__, vetted=lambda i: True,
                            clock=lambda: NOW, pin=lambda i: i.rsplit(":", 1)[0] + "@" + digest)(s)
        return s

    s = asyncio.run(run())
    assert s.image.endswith(f"@{digest}")
    assert [i["image"] for i in s.init_containers] == [s.image]


def test_the_secret_holds_a_token_the_commons_schedd_takes(kubeconfig: None, ldf: EnclaveSpec,  # noqa: F811
                                                          alice: FakeAccount, tmp_path: Path) -> None:
    """The Secret the pod mounts, owned by the pod (Kubernetes deletes it with the pod), holding a token whose key is
    the one the commons schedd holds, whose issuer is its TRUST_DOMAIN (checkToken), whose ``sub`` is the account
    in its UID_DOMAIN (the job's Owner, qmgmt.cpp), limited to READ and WRITE (submitting is WRITE: schedd.cpp
    registers QMGMT_WRITE_CMD there), and valid as long as a server may live (the culler's --max-age)."""
    spec = with_tokens(ldf)
    pod, api, _ = spawn(spec, alice)
    [(namespace, secret)] = api.secrets
    kubernetes_validate.validate(secret, schema_version(ldf), strict=True)
    assert namespace == "jupyter-lsst" == secret["metadata"]["namespace"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "htcondor-token")
    assert secret["metadata"]["name"] == volume["secret"]["secretName"]
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": POD_UID,
         "blockOwnerDeletion": True, "controller": False}]
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert token.endswith("\n") and token.count("\n") == 1
    header, body = claims(token.strip())

    schedd = render.write([render.submit_host(spec, NOTEBOOK_SCHEDD)], tmp_path)[0]
    got = render.read_back(schedd, ["TRUST_DOMAIN", "UID_DOMAIN", render.NOTEBOOK_KEY_KNOB], subsystem="SCHEDD")
    assert header == {"alg": "HS256", "kid": Path(got[render.NOTEBOOK_KEY_KNOB] or "").name}
    assert body["iss"] == got["TRUST_DOMAIN"]
    assert body["sub"] == f"alice@{got['UID_DOMAIN']}"
    assert body["scope"] == "condor:/READ condor:/WRITE"
    assert body["exp"] - body["iat"] == ldf.notebooks.max_age_seconds == 864000


def test_a_shorter_lifetime_from_the_spec(kubeconfig: None, ldf: EnclaveSpec, alice: FakeAccount) -> None:  # noqa: F811
    _, api, _ = spawn(with_tokens(ldf, lifetime_seconds=3600), alice)
    _, body = claims(base64.b64decode(api.secrets[0][1]["data"]["token"]).decode().strip())
    assert body["exp"] - body["iat"] == 3600


def test_no_secret_no_pod(kubeconfig: None, ldf: EnclaveSpec, alice: FakeAccount) -> None:  # noqa: F811
    """The hook raises when the Secret cannot be created, so nothing is left believing the pod has its token. (What
    KubeSpawner then does — 7.0.0's ``_start`` stops the pod and re-raises, failing the spawn — is KubeSpawner's and
    is not run here: this test calls the hook directly, not ``_start``.)"""
    with pytest.raises(RuntimeError, match="forbidden"):
        spawn(with_tokens(ldf), alice, api=RecordingApi(fail=RuntimeError("secrets is forbidden")))


def _no_token(pod: dict[str, Any], api: RecordingApi) -> None:
    assert not [i for i in pod["spec"].get("initContainers") or [] if i["name"] == profiles.TOKEN_INIT_CONTAINER]
    assert not any(v["name"].startswith("htcondor") for v in pod["spec"]["volumes"])
    assert profiles.TOKEN_ENV not in {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert api.secrets == []


def test_no_token_for_an_account_that_may_not_submit(kubeconfig: None, ldf: EnclaveSpec,  # noqa: F811
                                                     tmp_path: Path) -> None:
    """A token is a submitter's credential: an account whose roles allow notebooks but not ``batch.submit`` gets a
    notebook without one — no Secret, no token volume, no copier."""
    pod, api, _ = spawn(with_tokens(ldf), spawn_only(make_account(tmp_path, "bob", 40003)))
    assert not pod["spec"].get("initContainers")
    _no_token(pod, api)


def test_no_token_for_an_account_demoted_before_its_pod_exists(kubeconfig: None, ldf: EnclaveSpec,  # noqa: F811
                                                               alice: FakeAccount) -> None:
    """The hook that mints looks the account up again: one that lost ``batch.submit`` after the pre-spawn hook gets
    no token, and the spawn fails (KubeSpawner stops the pod)."""
    from enclave.notebooks.hook import SpawnRefused

    accounts = {"alice": alice}
    demoted = spawn_only(alice)

    def lookup(name: str) -> FakeAccount:
        account = accounts[name]
        accounts[name] = demoted  # the pre-spawn hook sees alice as she was, the after-pod hook as demoted
        return account

    api = RecordingApi()
    with pytest.raises(SpawnRefused, match="may not submit batch jobs"):
        spawn(with_tokens(ldf), alice, api=api, lookup=lookup)
    assert api.secrets == []


def test_the_operators_init_containers_are_kept(kubeconfig: None, ldf: EnclaveSpec,  # noqa: F811
                                                alice: FakeAccount) -> None:
    """The token's copier is appended to the init containers the operator configured, not put in their place; and
    without tokens the operator's stay as they were."""
    pod, _, _ = spawn(with_tokens(ldf), alice, init_containers=[SITE_INIT])
    assert [i["name"] for i in pod["spec"]["initContainers"]] == ["site-setup", profiles.TOKEN_INIT_CONTAINER]
    assert pod["spec"]["initContainers"][0]["image"] == SITE_INIT["image"]
    pod, api, _ = spawn(ldf, alice, init_containers=[SITE_INIT])
    assert [i["name"] for i in pod["spec"]["initContainers"]] == ["site-setup"]
    _no_token(pod, api)


def test_a_spawner_spawned_again_has_one_copier(kubeconfig: None, ldf: EnclaveSpec,  # noqa: F811
                                                alice: FakeAccount) -> None:
    """JupyterHub keeps a spawner whose start failed and runs the pre-spawn hook on it again: the new spawn's copier
    replaces the old one (whose Secret is another's), and a spawn without a token drops it."""
    from enclave.notebooks.hook import make_pre_spawn_hook

    async def run() -> list[tuple[list[Any], str | None]]:
        s = spawner("alice")
        s.init_containers = [SITE_INIT]
        hooks = [make_pre_spawn_hook(with_tokens(ldf), {"alice": account}.__getitem__, vetted=lambda i: True,
                                     clock=lambda: NOW) for account in (alice, alice, spawn_only(alice))]
        seen: list[tuple[list[Any], str | None]] = []
        for hook in hooks:
            s.user_options = {"profile": "small"}
            hook(s)
            seen.append((list(s.init_containers), profiles.token_secret_of({"spec": {"volumes": s.volumes}})))
        return seen

    (_, first), (second, secret), (third, none) = asyncio.run(run())
    assert [i["name"] for i in second] == ["site-setup", profiles.TOKEN_INIT_CONTAINER]
    assert first and secret and first != secret  # a fresh Secret name each spawn
    assert third == [SITE_INIT] and none is None


def test_no_token_for_a_queue_super_users_name(kubeconfig: None, ldf: EnclaveSpec, tmp_path: Path) -> None:  # noqa: F811
    """An account named condor (or root) would be a queue super user with its token (QUEUE_SUPER_USERS' bare
    entries are in the schedd's UID_DOMAIN): its notebook starts without one."""
    pod, api, _ = spawn(with_tokens(ldf), make_account(tmp_path, "condor", 40002))
    assert "initContainers" not in pod["spec"] or pod["spec"]["initContainers"] == []
    assert not any(v["name"].startswith("htcondor") for v in pod["spec"]["volumes"])
    assert api.secrets == []


def test_without_batch_tokens_nothing_changes(kubeconfig: None, ldf: EnclaveSpec,  # noqa: F811
                                             alice: FakeAccount) -> None:
    pod, api, c = spawn(ldf, alice)
    assert "after_pod_created_hook" not in c.KubeSpawner
    assert not pod["spec"].get("initContainers")
    assert "_CONDOR_SEC_TOKEN_DIRECTORY" not in {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert api.secrets == []


def test_the_hub_mounts_the_key_where_it_reads_it(ldf: EnclaveSpec) -> None:
    hub = profiles.z2jh_values(with_tokens(ldf))["hub"]
    path = Path(hub["extraEnv"]["ENCLAVE_NOTEBOOK_KEY"])
    [mount] = [m for m in hub["extraVolumeMounts"] if m["name"] == "enclave-notebook-key"]
    [volume] = [v for v in hub["extraVolumes"] if v["name"] == "enclave-notebook-key"]
    assert str(path.parent) == mount["mountPath"] and mount["readOnly"] is True
    # A Secret volume holds one file per key of the Secret, named as the key.
    assert volume["secret"]["secretName"] == "enclave-notebook-key" and path.name == "key"
    assert volume["secret"]["defaultMode"] == 0o440
    assert "ENCLAVE_NOTEBOOK_KEY" not in profiles.z2jh_values(ldf)["hub"]["extraEnv"]
    assert not [v for v in profiles.z2jh_values(ldf)["hub"]["extraVolumes"] if v["name"] == "enclave-notebook-key"]


def test_the_hub_refuses_to_start_without_its_key(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the notebook signing key"):
        notebook_key({"ENCLAVE_NOTEBOOK_KEY": str(tmp_path / "missing")})
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(InputError, match="is empty"):
        notebook_key({"ENCLAVE_NOTEBOOK_KEY": str(tmp_path / "empty")})
    (tmp_path / "key").write_bytes(KEY)
    assert notebook_key({"ENCLAVE_NOTEBOOK_KEY": str(tmp_path / "key")}) == KEY
