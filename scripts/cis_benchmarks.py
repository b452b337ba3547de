"""Restate kube-bench's CIS Kubernetes Benchmark item tables, one per benchmark version, and match items across
versions, for the security check's per-release benchmark (src/enclave/ops/data/cis-benchmarks.yaml).

    # a kube-bench clone (or the bare mirror the fetch tool leaves) at the commit to restate
    python scripts/cis_benchmarks.py /path/to/kube-bench[.git] [COMMIT] > src/enclave/ops/data/cis-benchmarks.yaml

Read from kube-bench (https://github.com/aquasecurity/kube-bench):
- ``cfg/config.yaml`` ``version_mapping``: Kubernetes minor → benchmark (only the upstream ``cis-*`` ones; the
  platform benchmarks — eks, gke, aks, rke, k3s … — are for other distributions).
- ``cfg/<benchmark>/{master,etcd,controlplane,node,policies}.yaml``: every check's ``id``, ``text`` (CIS's title
  followed by its assessment status in parentheses), ``audit`` and the ``bitmask`` a permission check compares
  with. The status is "(Automated)"/"(Manual)" from CIS 1.6 on; CIS 1.5.1 still said "(Scored)"/"(Not Scored)",
  which CIS renamed Automated/Manual in 1.6.0 — restated as such, the original word kept in ``status``.
  Each check's ``scored`` and ``type`` too (as ``scored`` and ``check_type``): kube-bench reports a check WARN
  whatever its test gives when its type is "manual" (INFO when "skip"), and WARN instead of FAIL when it is not
  scored (check/check.go ``run``) — so the word in the title does not say how kube-bench scores it: cis-1.8's
  5.2.5 says "(Automated)" but is ``type: "manual"``, ``scored: false``.
- each file's control (``id``, ``text``, ``type``: its node type) and groups (``id``, ``text``), under
  ``controls``, for kube-bench's ``--json`` shape (check/controls.go); an item's group is its id less the last
  number and its control the first number (checked here: "2.1" is in etcd.yaml's group "2").

Items are matched across versions (``lineage``: one row per item, its id in each benchmark that has it), from the
newest benchmark back, each older item joining the row of the newer one that has
1. the same title (status, permission digits, spacing and punctuation aside: "600 or more restrictive" and "644
   or more restrictive" are one item whose expected mode changed), in the same group when several have it, else
2. the same audit command, when exactly one item of the newer benchmark has it, or one of those that also tests
   the same flags and values (titles reworded between versions: "proxy kubeconfig file permissions" → "If proxy
   kubeconfig file exists ensure permissions"), else
3. a hand-made match in SAME (reworded and re-audited at once).
An item matching nothing starts its own row (a new item, or one withdrawn later).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# Items CIS reworded and kube-bench re-audited in one step, matched by hand: cis-1.9 1.1.13/1.1.14 name "the
# default administrative credential file" and read admin.conf and super-admin.conf (kubeadm ≥ 1.29 writes the
# latter) where cis-1.8 1.1.13/1.1.14 read admin.conf alone (cfg/cis-1.8/master.yaml, cfg/cis-1.9/master.yaml).
SAME = {("1.1.13", "cis-1.9"): "1.1.13", ("1.1.14", "cis-1.9"): "1.1.14"}  # (older id, newer benchmark) → id
FILES = ("master", "etcd", "controlplane", "node", "policies")
_STATUS = re.compile(r"\s*\((Automated|Manual|Scored|Not Scored)\)\s*$")
_TYPES = {"Automated": "Automated", "Scored": "Automated", "Manual": "Manual", "Not Scored": "Manual"}


def _show(repo: Path, commit: str, path: str) -> str:
    git_dir = repo / ".git" if (repo / ".git").exists() else repo
    return subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def _tested(check: dict[str, Any]) -> tuple[list[str], str | None]:
    """What the check tests (flag, path, compare op and value): the API-server items share one audit (ps)."""
    tests = check.get("tests") or {}
    flags, bitmask = [], None
    for item in tests.get("test_items") or []:
        compare = item.get("compare") or {}
        flags.append(" ".join(str(x) for x in (item.get("flag", ""), item.get("path", ""), compare.get("op", ""),
                                               compare.get("value", ""))))
        if compare.get("op") == "bitmask":
            bitmask = str(compare.get("value"))
    return flags, bitmask


def items(repo: Path, commit: str, bench: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in FILES:
        doc = yaml.safe_load(_show(repo, commit, f"cfg/{bench}/{name}.yaml"))
        for group in doc.get("groups") or []:
            for check in group.get("checks") or []:
                text = " ".join(str(check["text"]).split())
                m = _STATUS.search(text)
                if m is None:
                    raise SystemExit(f"{bench} {check['id']}: no (Automated|Manual) in {text!r}")
                flags, bitmask = _tested(check)
                row: dict[str, Any] = {"title": text[:m.start()], "type": _TYPES[m.group(1)]}
                if m.group(1) != row["type"]:
                    row["status"] = m.group(1)
                row["scored"] = bool(check.get("scored", False))  # Go's zero value when the cfg leaves it out
                if check.get("type"):
                    row["check_type"] = str(check["type"])
                if bitmask:
                    row["mode"] = bitmask
                row["_audit"] = " ".join(str(check.get("audit", "")).split())
                row["_flags"] = tuple(flags)
                out[str(check["id"])] = row
    return out


def controls(repo: Path, commit: str, bench: str) -> dict[str, dict[str, Any]]:
    """{control id: {text, node_type, groups: {group id: text}}} of cfg/<bench>'s files."""
    out: dict[str, dict[str, Any]] = {}
    for name in FILES:
        doc = yaml.safe_load(_show(repo, commit, f"cfg/{bench}/{name}.yaml"))
        groups: dict[str, str] = {}
        for group in doc.get("groups") or []:
            for check in group.get("checks") or []:
                item = str(check["id"])
                if item.rsplit(".", 1)[0] != str(group["id"]) or item.split(".")[0] != str(doc["id"]):
                    raise SystemExit(f"{bench} {item}: not in group {group['id']} of control {doc['id']}")
            groups[str(group["id"])] = " ".join(str(group["text"]).split())
        out[str(doc["id"])] = {"text": str(doc["text"]), "node_type": str(doc["type"]), "groups": groups}
    return out


def _title_key(title: str) -> str:
    """Permission digits, case, spacing and punctuation aside ("Network Policies" became "NetworkPolicies")."""
    return re.sub(r"[^a-z]", "", re.sub(r"\b[0-7]{3}\b", "NNN", title).lower())


def _group(item_id: str) -> str:
    return item_id.rsplit(".", 1)[0]


def _match(older_id: str, older: dict[str, Any], newer: dict[str, dict[str, Any]], taken: set[str]) -> str | None:
    if (older_id, newer_bench := str(older["_bench_next"])) in SAME:
        return SAME[(older_id, newer_bench)]
    key = _title_key(older["title"])
    by_title = [i for i, r in newer.items() if _title_key(r["title"]) == key and i not in taken]
    in_group = [i for i in by_title if _group(i) == _group(older_id)]  # 1.2.6 and 4.2.2 share a title
    if len(in_group) == 1 or len(by_title) == 1:
        return (in_group or by_title)[0]
    if not older["_audit"]:
        return None
    by_audit = [i for i, r in newer.items() if i not in taken and r["_audit"] == older["_audit"]]
    if len(by_audit) > 1:  # the API server's items all audit `ps`: what they test tells them apart
        by_audit = [i for i in by_audit if _digits(newer[i]["_flags"]) == _digits(older["_flags"])]
    return by_audit[0] if len(by_audit) == 1 else None


def _digits(flags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(re.sub(r"\b[0-7]{3}\b", "NNN", f) for f in flags)


def lineage(order: list[str], tables: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, str]]:
    """Rows of {benchmark: id}, matched from the newest benchmark back to the oldest."""
    rows: list[dict[str, str]] = [{order[-1]: i} for i in tables[order[-1]]]
    for newer, older in zip(reversed(order[1:]), reversed(order[:-1]), strict=True):
        row_of = {r[newer]: r for r in rows if newer in r}
        taken: set[str] = set()
        for item_id, item in tables[older].items():
            item["_bench_next"] = newer
            hit = _match(item_id, item, tables[newer], taken)
            if hit is not None:
                taken.add(hit)
                row_of[hit][older] = item_id
            else:
                rows.append({older: item_id})
    return rows


def _minor(v: str) -> tuple[int, int]:
    major, minor = v.split(".")
    return int(major), int(minor)


def main(argv: list[str]) -> None:
    repo = Path(argv[1])
    commit = argv[2] if len(argv) > 2 else "HEAD"
    commit = subprocess.run(["git", "--git-dir", str(repo / ".git" if (repo / ".git").exists() else repo),
                             "rev-parse", commit], check=True, capture_output=True, text=True).stdout.strip()
    mapping = {str(k): str(v) for k, v in yaml.safe_load(_show(repo, commit, "cfg/config.yaml"))
               ["version_mapping"].items() if re.fullmatch(r"\d+\.\d+", str(k)) and str(v).startswith("cis-")}
    mapping = dict(sorted(mapping.items(), key=lambda kv: _minor(kv[0])))
    order = list(dict.fromkeys(mapping.values()))  # oldest benchmark first, as the Kubernetes minors rise
    tables = {b: items(repo, commit, b) for b in order}
    rows = lineage(order, tables)
    out = {
        "source": f"https://github.com/aquasecurity/kube-bench/tree/{commit}/cfg",
        "commit": commit,
        "version_mapping": mapping,
        "benchmarks": {b: {i: {k: v for k, v in r.items() if not k.startswith("_")} for i, r in tables[b].items()}
                       for b in order},
        "lineage": [{b: row[b] for b in order if b in row} for row in rows],
        "controls": {b: controls(repo, commit, b) for b in order},
    }
    sys.stdout.write("# Generated by scripts/cis_benchmarks.py from kube-bench's cfg/ (see its docstring); "
                     "do not edit.\n")
    sys.stdout.write(yaml.safe_dump(out, sort_keys=False, width=200, allow_unicode=True))


if __name__ == "__main__":
    main(sys.argv)
