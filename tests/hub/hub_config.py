# jupyterhub_config.py of the test hub (tests/hub/conftest.py starts it). In Z2JH's order: first the rendered
# values' hub.services / hub.loadRoles as the chart passes them to JupyterHub (tests/hub/z2jh.py; the lifecycle
# service's token given as the documented install gives it, --set-file from the hub-token file) and hub.config over
# the chart's default (the values' enclave-token login, enclave.hub.auth.EnclaveTokenAuthenticator), then exactly
# what `enclave render notebooks` writes for production as extraConfig (HUB_CONFIG: enclave's check of that login,
# profile callable, pre-spawn hook and refresh settings), then what differs on a machine without a cluster: the
# local stand-in spawner, loopback ports.
import os
import sys
from pathlib import Path

import yaml

from enclave.notebooks.profiles import HUB_CONFIG, LIFECYCLE_SERVICE
from tests.hub import z2jh

c = get_config()  # noqa: F821  (JupyterHub's config loader defines it)
here = Path(os.environ["ENCLAVE_TEST_HUB_DIR"])
values = yaml.safe_load((here / "values.yaml").read_text())["hub"]
c.JupyterHub.services = z2jh.services(values, {LIFECYCLE_SERVICE: (here / "hub-token").read_text()})
for service in c.JupyterHub.services:
    if "command" in service and service["command"][0] == "python3":
        service["command"] = [sys.executable, *service["command"][1:]]  # the hub image's python3
c.JupyterHub.load_roles = z2jh.load_roles(values)
z2jh.apply_hub_config(c, z2jh.helm_merge({"config": z2jh.CHART_HUB_CONFIG}, values))  # the values' login
exec(HUB_CONFIG)

c.JupyterHub.spawner_class = "tests.hub.localspawner.LocalKubeSpawner"
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ["ENCLAVE_TEST_HUB_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["ENCLAVE_TEST_HUB_API_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['ENCLAVE_TEST_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ["ENCLAVE_TEST_CHP"]]
c.JupyterHub.db_url = f"sqlite:///{here / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(here / "cookie_secret")
c.JupyterHub.pid_file = str(here / "jupyterhub.pid")
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--ServerApp.allow_root=True"]  # the test machine runs as root; pods never do
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.KubeSpawner.namespace = "jupyter-lsst"
c.JupyterHub.allow_named_servers = True  # a site may allow them; a departure must stop those too
