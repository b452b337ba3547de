"""API routers, one module per concept. A router whose concept is not installed yet is left out, the same way
``enclave.cli`` leaves out the commands of a missing concept; any other import error is a bug and raises."""

from __future__ import annotations

import importlib

from fastapi import APIRouter

MODULES = ("system", "accounts", "tokens", "notebooks", "pools", "broker", "twin", "journal", "ops")
CONCEPT_OF = {"system": "api", "tokens": "access", "pools": "broker"}


def _load() -> tuple[list[APIRouter], list[str]]:
    routers: list[APIRouter] = []
    missing: list[str] = []
    for name in MODULES:
        module_name = f"enclave.api.routes.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            concept = CONCEPT_OF.get(name, name)
            if exc.name and (exc.name.startswith(f"enclave.{concept}") or exc.name == module_name):
                missing.append(name)
                continue
            raise
        routers.append(module.router)
    return routers, missing


ROUTERS, MISSING = _load()
