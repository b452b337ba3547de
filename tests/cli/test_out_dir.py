"""An --out that cannot be a directory is refused by name, before any work (review, stop 48: a traceback, after a
twin run's whole simulation, or with part of `render all` written)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.errors import InputError
from enclave.main import app
from enclave.outdir import check_output_dir, output_dir
from enclave.spec.defaults import EXAMPLES


def test_output_dir_makes_a_missing_directory_and_refuses_a_file(tmp_path: Path) -> None:
    made = output_dir(tmp_path / "a" / "b")
    assert made.is_dir()
    (tmp_path / "afile").write_text("")
    for bad in (tmp_path / "afile", tmp_path / "afile" / "below"):
        for refuse in (output_dir, check_output_dir):
            with pytest.raises(InputError) as refused:
                refuse(bad)
            assert refused.value.problems[0].where == str(bad) and "not a file" in refused.value.problems[0].fix
    check_output_dir(tmp_path / "new" / "deeper")  # may be made later: nothing made now
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("args", [["twin", "run", "one-night-instant"],
                                  ["render", "condor", "--spec", str(EXAMPLES / "minimal.yaml")]])
def test_commands_refuse_a_file_as_out(tmp_path: Path, args: list[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("kept")
    result = CliRunner().invoke(app, [*args, "--out", str(afile)])  # the program reports it (exit 1): cli.report
    assert isinstance(result.exception, InputError) and result.exception.problems[0].where == str(afile)
    assert "cannot be the output directory" in str(result.exception)
    assert afile.read_text() == "kept"
