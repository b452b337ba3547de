#!/usr/bin/env bash
# Runs pytest. Services the tests need (PostgreSQL, etcd) are started by the test fixtures themselves
# on loopback, in temporary directories, and stopped when the session ends.
set -euo pipefail
exec .venv/bin/pytest "$@"
