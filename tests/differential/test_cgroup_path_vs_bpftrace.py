"""cgroup_path() (issue #12) against bpftrace 0.17 on this machine's own cgroup hierarchies.

A cgroup id is its directory's inode, looked for in every mounted hierarchy: the output
depends on what is mounted here, so the reference is bpftrace 0.17 run side by side, on
the root cgroup (in every hierarchy), on a fresh cgroup of ours in the v2 hierarchy (in
one), on an id no hierarchy has, through filters (a literal; a non-literal one matches
nothing in 0.17) and in every place the value can go (printf, print, a variable, a map).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.bpftrace, pytest.mark.kernel, pytest.mark.cgroup]


@pytest.fixture
def cgroup():
    from ebpfpy.bpffs import find_cgroup2

    path = os.path.join(find_cgroup2(), f"ebpfpy-cgpath-{os.getpid()}", "inner")
    os.makedirs(path)
    try:
        yield path
    finally:
        os.rmdir(path)
        os.rmdir(os.path.dirname(path))


def _run(cmd: list, fmt: str = "text") -> tuple:
    res = subprocess.run([*cmd, "-f", fmt] if fmt != "text" else cmd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYBPFTRACE_COMPAT": "0.17"})
    err = "".join(line + "\n" for line in res.stderr.splitlines() if "RLIMIT_MEMLOCK" not in line)
    return res.stdout, err, res.returncode


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cgroup_path_is_bpftraces(cgroup, fmt):
    script = (f'BEGIN {{ $i = cgroupid("{cgroup}"); printf("[%s]\\n", cgroup_path($i)); '
              'printf("[%s]\\n", cgroup_path(1)); printf("[%s]\\n", cgroup_path(1, "c*")); '
              'printf("[%s]\\n", cgroup_path(1, "unified")); printf("[%s]\\n", cgroup_path(123456789)); '
              '$f = "u*"; printf("[%s]\\n", cgroup_path(1, $f)); print(cgroup_path($i)); '
              '$v = cgroup_path($i, "uni*"); printf("%s\\n", $v); @p = cgroup_path($i); @q[1] = cgroup_path(1); exit(); }')
    ours = _run([sys.executable, "-m", "ebpfpy.bpftrace", "-e", script], fmt)
    theirs = _run(["bpftrace", "-e", script], fmt)
    assert ours == theirs
    assert "unified:/" + os.path.relpath(cgroup, os.path.dirname(os.path.dirname(cgroup))) in ours[0]
    if fmt == "json":  # 0.17 leaves the values unquoted (so the lines are not JSON): kept in 0.17 mode
        assert '{"type": "value", "data": unified:/' in ours[0]
        modern = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", "--compat=0.26", "-f", "json", "-e",
                                 'begin { print(cgroup_path(1, "unified")); }'], capture_output=True, text=True,
                                timeout=120)
        assert json.loads(modern.stdout.splitlines()[1]) == {"type": "value", "data": "unified:/"}


@pytest.mark.parametrize("script, message", [
    ('BEGIN { printf("%s\\n", cgroup_path("x")); }', "cgroup_path() only supports integer arguments (string provided)"),
    ('BEGIN { printf("%d\\n", cgroup_path(1)); }', "printf: %d specifier expects a value of type integer"),
])
def test_cgroup_path_errors_are_bpftraces(script, message):
    ours = _run([sys.executable, "-m", "ebpfpy.bpftrace", "-e", script])
    assert ours == _run(["bpftrace", "-e", script]) and message in ours[1]


def test_a_map_key_is_refused_before_running():
    """bpftrace 0.17 attaches, then stops with "invalid mapkey argument type" and aborts; we say
    it at the key, in bpftrace's error form, and attach nothing."""
    out, err, rc = _run([sys.executable, "-m", "ebpfpy.bpftrace", "-e", "BEGIN { @[cgroup_path(1)] = count(); }"])
    assert rc == 1 and out == ""
    assert err.startswith("stdin:1:9-25: ERROR: invalid mapkey argument type\n")
