"""How the `ebpfpy` group reports failures: one `ERROR:` line and exit status 1 for what a user can
cause or meet, click's usage error (exit status 2) for a bad command line, a traceback for bugs.
tests/kernel/test_privileges.py walks every subcommand as user nobody."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import ebpfpy.cli
from ebpfpy.cli import error_line, main
from ebpfpy.sys.errors import BPFError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def command(monkeypatch, tmp_path):
    """Register a subcommand `boom` that raises what the test puts in ``raise_``."""
    box = {}
    module = tmp_path / "ebpfpy_test_boom.py"
    module.write_text("import click\n\n@click.command()\ndef boom():\n    raise BOX['exc']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("ebpfpy_test_boom")
    mod.BOX = box
    monkeypatch.setitem(ebpfpy.cli.SUBCOMMANDS, "boom", "ebpfpy_test_boom:boom")

    def run(exc):
        box["exc"] = exc
        return CliRunner().invoke(main, ["boom"])

    yield run
    sys.modules.pop("ebpfpy_test_boom", None)


def test_user_errors_are_one_line(command):
    log = "0: (b7) r0 = 0\n1: (95) exit\nR0 !read_ok"
    cases = [
        (BPFError(errno.EPERM, "BPF_PROG_GET_NEXT_ID", detail="needs CAP_SYS_ADMIN"),
         "ERROR: BPF_PROG_GET_NEXT_ID failed: Operation not permitted [EPERM] (needs CAP_SYS_ADMIN)"),
        (BPFError(errno.EACCES, "BPF_PROG_LOAD", log=log), "ERROR: BPF_PROG_LOAD failed: Permission denied [EACCES]"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.o"), "ERROR: x.o: No such file or directory"),
        (click.ClickException("can't dump map"), "ERROR: can't dump map"),
    ]
    for exc, line in cases:
        result = command(exc)
        assert result.exit_code == 1, result.output
        assert result.output == line + "\n"


def test_a_library_error_class_is_a_user_error(command):
    from ebpfpy.attach.errors import ProbeNotFoundError
    from ebpfpy.isa.errors import ISAError

    assert command(ProbeNotFoundError("tracepoint not found: a:b")).output == "ERROR: tracepoint not found: a:b\n"
    assert command(ISAError("line 2: bad")).output == "ERROR: line 2: bad\n"


def test_bugs_keep_their_traceback(command):
    result = command(RuntimeError("a bug"))
    assert isinstance(result.exception, RuntimeError)
    result = command(KeyError("a bug"))
    assert isinstance(result.exception, KeyError)


def test_usage_errors_are_clicks(command):
    result = CliRunner().invoke(main, ["prog", "show", "x"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith("Error: Invalid value for 'PROG_ID'")


def test_error_line():
    assert error_line(OSError(errno.EPIPE, "Broken pipe")) == "Broken pipe"
    assert error_line(ValueError("first\nsecond")) == "first"
    assert error_line(ValueError("")) == "ValueError"


def test_broken_pipe_is_quiet():
    """`ebpfpy ... | head`: no ERROR line and no 'Exception ignored' when the reader goes away."""
    code = "import sys; from ebpfpy.cli import main; sys.exit(main(prog_name='ebpfpy'))"
    proc = subprocess.Popen([sys.executable, "-c", code, "btf", "dump", "--format", "raw"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert stderr == ""


def test_version_without_installed_metadata(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"main, version {ebpfpy.__version__}\n"
