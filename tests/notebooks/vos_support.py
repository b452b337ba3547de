"""Pointing the real CADC ``vos`` client (PyPI ``vos`` 3.7 over ``cadcutils`` 1.6) at a VOSpace on loopback.

The client never needs the internet here, by two facts of its source:
- cadcutils/net/ws.py ``WsCapabilities._get_capability_url``: a resource ID is looked up in the registry file
  ``~/.config/cadc-registry/resource-caps`` (lines ``<resource ID> = <capabilities URL>``), read from that cache
  while it is younger than ``REG_REFRESH_INTERVAL`` (10 minutes; cadcutils/util/utils.py ``get_url_content``,
  which falls back to the cached file whatever its age when the network fails). The capabilities document it
  names is cached beside it, under ``<authority>/.<path>``.
- cadcutils/util/utils.py ``check_version`` asks PyPI once a day whether vos is current, caching the answer in
  ``~/.config/vos/caches/.pypi_versions.json``; a fresh cache file answers it offline.
Both paths derive from the home directory when cadcutils is imported, so a test gives each run its own home.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RESOURCE_ID = "ivo://enclave.local/vospace"
AUTHORITY = "enclave.local~vospace"


def write_registry(home: Path, url: str, resource_id: str = RESOURCE_ID) -> None:
    reg = home / ".config" / "cadc-registry"
    reg.mkdir(parents=True, exist_ok=True)
    (reg / "resource-caps").write_text(f"{resource_id} = {url}/capabilities\n")
    versions = home / ".config" / "vos" / "caches"
    versions.mkdir(parents=True, exist_ok=True)
    (versions / ".pypi_versions.json").write_text(json.dumps({"releases": {"3.7": []}}))


def use_home(monkeypatch: object, home: Path, url: str) -> None:
    """For the in-process Client: cadcutils fixed its cache paths at import, so move them to ``home``."""
    import cadcutils.net.ws as ws
    import cadcutils.util.utils as utils
    import vos.vos as vosmod
    from vos.node_cache import NodeCache

    write_registry(home, url)
    mp = monkeypatch
    mp.setattr(ws, "CACHE_LOCATION", str(home / ".config" / "cadc-registry"))  # type: ignore[attr-defined]
    mp.setattr(utils, "CADC_CACHE_DIR", str(home / ".config"))  # type: ignore[attr-defined]
    mp.setattr(vosmod, "nodeCache", NodeCache())  # type: ignore[attr-defined]
    mp.setattr(utils.check_version, "checked", ["vos"])  # type: ignore[attr-defined]
    mp.delenv("VOSPACE_WEBSERVICE", raising=False)  # type: ignore[attr-defined]
    mp.delenv("LOCAL_VOSPACE_WEBSERVICE", raising=False)  # type: ignore[attr-defined]


def vos_uri(path: str) -> str:
    return f"vos://{AUTHORITY}/{path.lstrip('/')}"


def run_tool(home: Path, tool: str, *args: str, token: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    """One of the vos command-line tools (vls, vcp, vmkdir, vrm, vmv) as a user runs it, with its own home."""
    exe = Path(sys.executable).parent / tool
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VOSPACE_", "LOCAL_VOSPACE"))}
    environ.update(env or {}, HOME=str(home))
    return subprocess.run([str(exe), "--token", token, *args], env=environ, capture_output=True, text=True,
                          timeout=120)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, valid for a day (the client then runs with --insecure)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file
