"""Plain renderings of an upgrade plan (text for people, dict for JSON and the API)."""

from __future__ import annotations

from typing import Any

from enclave.ops.removed_apis import ApiFinding
from enclave.ops.upgrade import Plan


def plan_to_dict(plan: Plan, findings: list[ApiFinding] | None = None) -> dict[str, Any]:
    return {
        "today": plan.today.isoformat(),
        "release_data": plan.data_version,
        "current": str(min(plan.current.apiservers)),
        "target": str(plan.target),
        "maintained": [{"minor": r.minor.minor_name, "latest_patch": str(r.latest_patch),
                        "released": r.released.isoformat(), "eol": r.eol.isoformat()} for r in plan.maintained],
        "components": [{"component": r.component, "current": r.current, "target": r.target} for r in plan.table],
        "steps": [{
            "number": s.number, "from": str(s.source), "to": str(s.target), "kind": s.kind,
            "maintained": s.maintained, "eol": s.release.eol.isoformat(),
            "phases": [{"name": p.name, "ok": p.ok,
                        "checks": [{"rule": c.rule, "ok": c.ok, "detail": c.detail} for c in p.checks]}
                       for p in s.phases],
            "commands": {k: list(v) for k, v in s.commands.items()},
            "kubeadm_skew": list(s.kubeadm_skew),
            "required": list(s.required),
            "notes": list(s.notes),
        } for s in plan.steps],
        "pinning": {k: list(v) for k, v in plan.pinning.items()},
        "removed_apis": [{"where": f.where, "name": f.name, "api": f.api, "kind": f.kind, "status": f.status,
                          "release": f.release, "replacement": f.replacement} for f in findings or []],
        "notes": list(plan.notes),
    }


def _command_sections(commands: dict[str, tuple[str, ...]]) -> list[str]:
    """Every section of a step's commands, in the order the step gives them: the repository to point the
    packages at is prose, each package manager's lines are commands (one manager per host)."""
    out: list[str] = []
    for section, body in commands.items():
        if section == "repository":
            out.extend(f"        repository: {line}" for line in body)
            continue
        out.append(f"        {section}:")
        out.extend(f"          $ {line}" for line in body)
    return out


def plan_to_text(plan: Plan, findings: list[ApiFinding] | None = None, *, commands: bool = False) -> str:
    lines = [f"Upgrade plan {min(plan.current.apiservers)} → {plan.target} "
             f"(release data {plan.data_version}, as of {plan.today})", ""]
    lines.append("Maintained releases today: " + ", ".join(
        f"{r.minor.minor_name} (latest {r.latest_patch}, end of life {r.eol})" for r in plan.maintained))
    lines.append("")
    lines.append("Components that change (kubeadm upgrade plan style):")
    w = max(len(r.component) for r in plan.table)
    cw = max(len(r.current) for r in plan.table)
    lines.append(f"  {'COMPONENT'.ljust(w)}   {'CURRENT'.ljust(cw)}   TARGET")
    for r in plan.table:
        lines.append(f"  {r.component.ljust(w)}   {r.current.ljust(cw)}   {r.target}")
    lines.append("")
    lines.append(f"Steps ({len(plan.steps)}; one minor at a time, skew policy checked after every phase):")
    for s in plan.steps:
        status = "maintained" if s.maintained else f"end of life {s.release.eol}: pass through"
        checks = sum(len(p.checks) for p in s.phases)
        ok = "all skew checks pass" if s.ok else \
            "SKEW VIOLATION kubeadm's add-on timing causes (see notes)" if s.kubeadm_skew else "SKEW VIOLATION"
        lines.append(f"  {s.number:2d}. {s.source} → {s.target}  [{s.kind}; {status}; {checks} checks, {ok}]")
        lines.extend(f"        REQUIRED FIRST: {r}" for r in s.required)
        lines.extend(f"        ! {n}" for n in s.notes)
        if commands:
            for p in s.phases:
                lines.append(f"        - {p.name}")
            lines.extend(_command_sections(s.commands))
    lines.append("")
    lines.append("Stop automatic updates of Kubernetes packages (seed §8):")
    for manager, snippet in plan.pinning.items():
        lines.append(f"  {manager}:")
        lines.extend(f"    {line}" for line in snippet)
    if findings is not None:
        lines.append("")
        if findings:
            lines.append(f"APIs removed or deprecated on the way ({len(findings)}):")
            lines.extend(f"  {f}" for f in findings)
        else:
            lines.append("No scanned object uses an API removed or deprecated on the way.")
    if plan.notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in plan.notes)
    return "\n".join(lines)
