"""API routers, one module per concept."""

from __future__ import annotations

from fastapi import APIRouter

from enclave.api.routes import accounts, broker, journal, logs, notebooks, ops, pools, system, tokens, twin

ROUTERS: tuple[APIRouter, ...] = tuple(m.router for m in (system, accounts, tokens, notebooks, pools, broker, twin,
                                                          journal, ops, logs))
