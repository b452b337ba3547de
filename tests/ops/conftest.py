"""Fixtures for ops tests: a real etcd on loopback and a kubeadm-like /etc/kubernetes tree."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enclave.ops.etcd import EtcdServer

KUBE_VERSION = "v1.9.3"


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A real etcd member on free loopback ports in a temporary directory, stopped after the test."""
    server = EtcdServer(tmp_path / "etcd-src" / "data")
    server.data_dir.parent.mkdir(parents=True)
    with server:
        yield server


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
          ca: bool) -> bytes:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    issuer_name, issuer_key = issuer or (cn, key)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _static_pod(name: str, command: list[str]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system", "labels": {"component": name}},
            "spec": {"hostNetwork": True, "priorityClassName": "system-node-critical",
                     "containers": [{"name": name, "image": f"registry.lsst.local/{name}:{KUBE_VERSION}",
                                     "command": command}]}}


def make_kubernetes_tree(root: Path) -> Path:
    """Write what `kubeadm init` leaves in /etc/kubernetes: PKI, kubeconfigs, static-pod manifests."""
    pki = root / "pki"
    (pki / "etcd").mkdir(parents=True)
    cas: dict[str, tuple[str, ec.EllipticCurvePrivateKey]] = {}
    for rel, cn in (("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca")):
        k = _key()
        (pki / f"{rel}.key").write_bytes(_pem_key(k))
        (pki / f"{rel}.crt").write_bytes(_cert(cn, k, None, True))
        cas[rel] = (cn, k)
    for rel, cn, ca in (("apiserver", "kube-apiserver", "ca"),
                        ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "ca"),
                        ("front-proxy-client", "front-proxy-client", "front-proxy-ca"),
                        ("etcd/server", "kub-master-001", "etcd/ca"), ("etcd/peer", "kub-master-001", "etcd/ca"),
                        ("etcd/healthcheck-client", "kube-etcd-healthcheck-client", "etcd/ca"),
                        ("apiserver-etcd-client", "kube-apiserver-etcd-client", "etcd/ca")):
        k = _key()
        (pki / f"{rel}.key").write_bytes(_pem_key(k))
        (pki / f"{rel}.crt").write_bytes(_cert(cn, k, cas[ca], False))
    sa = _key()
    (pki / "sa.key").write_bytes(_pem_key(sa))
    (pki / "sa.pub").write_bytes(sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    for p in pki.rglob("*.key"):
        p.chmod(0o600)
    ca_crt = base64.b64encode((pki / "ca.crt").read_bytes()).decode()
    for conf, user in (("admin.conf", "kubernetes-admin"), ("kubelet.conf", "system:node:kub-master-001"),
                       ("controller-manager.conf", "system:kube-controller-manager"),
                       ("scheduler.conf", "system:kube-scheduler")):
        k = _key()
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": f"{user}@lsst-ldf",
            "clusters": [{"name": "lsst-ldf", "cluster": {"server": "https://kub-master-001:6443",
                                                          "certificate-authority-data": ca_crt}}],
            "contexts": [{"name": f"{user}@lsst-ldf", "context": {"cluster": "lsst-ldf", "user": user}}],
            "users": [{"name": user, "user": {
                "client-certificate-data": base64.b64encode(_cert(user, k, cas["ca"], False)).decode(),
                "client-key-data": base64.b64encode(_pem_key(k)).decode()}}],
        }
        (root / conf).write_text(yaml.safe_dump(kubeconfig))
        (root / conf).chmod(0o600)
    manifests = root / "manifests"
    manifests.mkdir()
    (manifests / "kube-apiserver.yaml").write_text(yaml.safe_dump(_static_pod("kube-apiserver", [
        "kube-apiserver", "--anonymous-auth=false", "--authorization-mode=Node,RBAC",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt", "--etcd-servers=https://127.0.0.1:2379"])))
    (manifests / "etcd.yaml").write_text(yaml.safe_dump(_static_pod("etcd", [
        "etcd", "--client-cert-auth=true", "--data-dir=/var/lib/etcd"])))
    return root


@pytest.fixture
def kubernetes_tree(tmp_path: Path) -> Path:
    return make_kubernetes_tree(tmp_path / "etc-kubernetes")
