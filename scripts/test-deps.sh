#!/usr/bin/env bash
# Installs what the tests need outside PyPI, once: Debian packages (real PostgreSQL, etcd, Chromium, Node.js) and
# JupyterHub's configurable-http-proxy (npm) for the real hub of tests/hub, into the project's .node/ (not
# globally). The Python side (jupyterhub, jupyter-server, jupyterhub-idle-culler) is in pyproject's dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."
CHP_VERSION=5  # configurable-http-proxy 5.x: the proxy JupyterHub 5-6 start by default
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -x .node/node_modules/.bin/configurable-http-proxy ]; then
  echo "installing configurable-http-proxy@${CHP_VERSION} (npm) into .node/"
  npm install --prefix .node --no-audit --no-fund --loglevel=error "configurable-http-proxy@${CHP_VERSION}" >/dev/null
fi
