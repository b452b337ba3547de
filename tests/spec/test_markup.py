"""User text is printed as written: rich markup in a spec key, a username or a submit file never styles,
mangles or crashes the output (rich raises MarkupError on a closing tag with nothing open)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.cli import app, report
from enclave.errors import InputError, Problem
from enclave.spec.defaults import EXAMPLES

HOSTILE = "[/bold] [red]x[/red] [link=file:///etc]y[/link]"
runner = CliRunner()


def test_error_printer_prints_markup_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    code = report(InputError([Problem(f"spec.yaml:3: pools.{HOSTILE}", f"unknown key '{HOSTILE}'", "remove it")]))
    err = capsys.readouterr().err
    assert code == 1
    assert f"pools.{HOSTILE}: unknown key '{HOSTILE}'" in " ".join(err.split())


def test_spec_key_with_markup_through_main(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from enclave.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "minimal.yaml").read_text() + '"[/bold]": 1\n')
    monkeypatch.setattr("sys.argv", ["enclave", "spec", "validate", str(bad)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    assert "unknown key '[/bold]'" in capsys.readouterr().err


def test_explain_prints_hostile_owner_and_file_name(tmp_path: Path) -> None:
    submit = tmp_path / "job[red].sub"  # an opening tag: would vanish from the line
    submit.write_text((EXAMPLES / "submit" / "user.sub").read_text())
    result = runner.invoke(app, ["batch", "explain", str(submit), "--owner", "[/bold]x", "--node", "condor-001"],
                           env={"COLUMNS": "300"})
    assert result.exception is None, repr(result.exception)
    out = " ".join(result.output.split())
    assert f"{submit} (queue 10) — owner [/bold]x" in out
