"""Stacks as map keys: one key per distinct stack of the depth asked for, as in bpftrace.

The kernel keeps (and compares, to hand out one id per distinct stack) only as many
frames as a stack map's value holds, so kstack(n)/ustack(n) need a map of depth n:
with one shared full-depth map, two stacks that differ below frame n became two keys
that print the same.
"""
import itertools
import os
import re
import subprocess
import sys

import pytest
from test_attach_common import compile_c

pytestmark = pytest.mark.kernel

CALLS = 5
_ENTRY = re.compile(r"^(@\w+)\[\n(.*?)\]: (\d+)$", re.M | re.S)


def entries(out: str) -> dict:
    """{map name: [(key text, count), ...]} of maps keyed by one stack."""
    found: dict = {}
    for name, key, count in _ENTRY.findall(out):
        found.setdefault(name, []).append((key, int(count)))
    return found


def test_limited_stacks_make_one_key_per_distinct_prefix(tmp_path):
    prog = compile_c("two_callers.c", str(tmp_path), "-O0")
    script = ("t:syscalls:sys_enter_getppid /pid == cpid/ "
              "{ @one[ustack(1)] = count(); @two[ustack(2)] = count(); @kone[kstack(1)] = count(); }")
    res = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", "-c", f"{prog} {CALLS}", "-e", script],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    maps = entries(res.stdout)
    assert [count for _, count in maps["@one"]] == [2 * CALLS], res.stdout
    if "@kone" in maps:  # 6.1 gives syscall tracepoints no kernel stack (their regs are the user's)
        assert [count for _, count in maps["@kone"]] == [2 * CALLS], res.stdout
    two = maps["@two"]
    assert sorted(count for _, count in two) == [CALLS, CALLS], res.stdout
    assert len({key for key, _ in two}) == 2  # the second frames differ: the two callers
    first_frames = {key.splitlines()[0] for key, _ in two}
    assert first_frames == {maps["@one"][0][0].splitlines()[0]}


@pytest.mark.parametrize("env", [{}, {"BPFTRACE_NO_USER_SYMBOLS": "1"}])
def test_stack_frames_indent_4_in_keys_and_8_in_values(tmp_path, env):
    prog = compile_c("two_callers.c", str(tmp_path), "-O0")
    script = ("t:syscalls:sys_enter_getppid /pid == cpid/ "
              "{ @[ustack(1)] = count(); @u = ustack(1); @k[kstack(1)] = kstack(1); }")
    res = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", "-c", f"{prog} 1", "-e", script],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, **env))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    frames = {}  # the line that opens each entry -> the indent of the frame after it
    for opener, frame in itertools.pairwise(lines):
        if opener in ("@[", "@k[", "@u: ", "]: "):
            frames[opener] = len(frame) - len(frame.lstrip(" "))
    expected = {"@[": 4, "@u: ": 8}
    if "@k[\n" in res.stdout:  # a kernel stack at all (see above)
        expected.update({"@k[": 4, "]: ": 8})
    assert frames == expected, res.stdout
