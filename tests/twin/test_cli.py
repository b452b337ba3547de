from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from enclave.cli import app

from .conftest import small_text

runner = CliRunner()


def _scenario(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    text = small_text().replace("visits_per_night: 120", "visits_per_night: 40").replace("duration_hours: 3",
                                                                                          "duration_hours: 2")
    path.write_text(text + f"spec: {Path(__file__).resolve().parents[2] / 'examples' / 'lsst-ldf.yaml'}\n")
    return path


def test_twin_run_writes_report_and_metrics(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["twin", "run", str(_scenario(tmp_path)), "--policy", "quotas", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["policy"] == "quotas" and metrics["prompt"]["visits"] == 40
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "clairvoyant bound" in html
    # The conservation line adds up every job the metrics count (metrics.conservation), those ended too.
    j = metrics["jobs"]
    assert (f"Jobs: {j['submitted']:,} submitted = {j['finished']:,} finished + {j['running']:,} running + "
            f"{j['queued']:,} queued + {j['held']:,} held + {j['ended']:,} ended by account transitions.") in html
    assert j["submitted"] == j["finished"] + j["running"] + j["queued"] + j["held"] + j["ended"]
    assert "prompt visits within deadline" in result.output


def test_twin_compare_puts_policies_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["twin", "compare", str(_scenario(tmp_path)), "-p", "static", "-p", "quotas",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "metrics.json").read_text())
    assert [r["policy"] for r in runs] == ["static", "quotas"]
    assert "static" in result.output and "quotas" in result.output


def test_unknown_policy_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["twin", "run", str(_scenario(tmp_path)), "--policy", "magic", "--out",
                                 str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "unknown policy" in str(result.exception) or "unknown policy" in result.output
    assert not (tmp_path / "x").exists()


def test_bad_seed_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from enclave.errors import InputError

    out = tmp_path / "neg"
    result = runner.invoke(app, ["twin", "run", str(_scenario(tmp_path)), "--seed", "-3", "--out", str(out)])
    assert isinstance(result.exception, InputError)
    assert "seed" in str(result.exception) and not out.exists()


def test_the_broker_refuses_a_spec_without_batch_only_nodes_and_compare_runs_the_rest(tmp_path: Path) -> None:
    import yaml

    from enclave.errors import SpecError

    ldf = Path(__file__).resolve().parents[2] / "examples" / "lsst-ldf.yaml"
    data = yaml.safe_load(ldf.read_text())
    data["cluster"]["node_groups"] = [g for g in data["cluster"]["node_groups"] if g["role"] != "batch-only"]
    spec = tmp_path / "pods-only.yaml"
    spec.write_text(yaml.safe_dump(data))
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(small_text().replace("duration_hours: 3", "duration_hours: 1")
                        + f"spec: {spec}\nlayout: {{batch: pods, pod_cores: 8}}\n")

    # Alone it is an error, before anything is simulated: shares of no batch-only cores would give back every pod.
    alone = runner.invoke(app, ["twin", "run", str(scenario), "-p", "broker", "--out", str(tmp_path / "b")])
    assert isinstance(alone.exception, SpecError) and "no batch-only node group" in str(alone.exception)
    # Beside other policies it is reported as not run, and their figures stand.
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["twin", "compare", str(scenario), "-p", "static", "-p", "broker", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["policy"] == "static"  # one run: one object
    assert "broker: not run" in result.output
