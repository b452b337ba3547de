"""The `enclave` program: the command line (``enclave.cli``) and `enclave serve`, the API front end's launcher
(``enclave.api.launch``). The one module where the two front ends meet, so neither imports the other."""

from __future__ import annotations

from enclave.api.launch import serve
from enclave.cli import app, run

app.command("serve")(serve)


def main() -> None:
    run(app)
