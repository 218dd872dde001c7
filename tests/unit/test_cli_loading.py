"""The `ebpfpy` group loads its subcommands lazily, and a broken one fails loudly."""
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import ebpfpy.cli
from ebpfpy.cli import main


def test_importing_the_group_loads_no_subcommand():
    code = "import sys, ebpfpy.cli; print(sorted(m for m in sys.modules if m.startswith('ebpfpy.cli.')))"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "[]"


def test_every_subcommand_loads():
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        assert isinstance(main.get_command(ctx, name), click.Command), name


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["no-such-thing"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_a_module_that_fails_to_import_raises(tmp_path, monkeypatch):
    (tmp_path / "ebpfpy_broken_cli_module.py").write_text("import ebpfpy_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(ebpfpy.cli.SUBCOMMANDS, "broken", "ebpfpy_broken_cli_module:broken")
    result = CliRunner().invoke(main, ["broken"])
    assert isinstance(result.exception, ModuleNotFoundError), result.output
    assert result.exception.name == "ebpfpy_no_such_dependency"
    with pytest.raises(ModuleNotFoundError):
        main.main(["broken"], standalone_mode=False)


def test_a_missing_attribute_raises(monkeypatch):
    monkeypatch.setitem(ebpfpy.cli.SUBCOMMANDS, "broken", "ebpfpy.cli.isa:no_such_command")
    result = CliRunner().invoke(main, ["broken"])
    assert isinstance(result.exception, AttributeError), result.output
