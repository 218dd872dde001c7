"""The README's examples run as written."""
import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def _python_blocks():
    with open(README) as fh:
        return re.findall(r"```python\n(.*?)```", fh.read(), re.S)


@pytest.mark.kernel
def test_python_tour_counts_getpid_exactly():
    block = _python_blocks()[0]
    proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "1000"
    assert "call 0x1" in proc.stdout


@pytest.mark.kernel
def test_first_command_counts_the_syscalls_of_a_command():
    line = next(text for text in open(README) if text.startswith("pip install . && pybpftrace"))
    script = re.search(r"-e '([^']*)'", line).group(1)
    command = re.search(r"-c '([^']*)'", line).group(1)
    # as a user runs it: in the default language (0.26), not the 0.17 of this directory's conftest
    env = {k: v for k, v in os.environ.items() if k != "PYBPFTRACE_COMPAT"}
    proc = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", "-c", command, "-e", script],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"Attached \d+ probes\n", proc.stderr), proc.stderr
    assert proc.stdout.startswith(open("/etc/hostname").read())
    counts = dict(re.findall(r"^@\[(tracepoint:syscalls:sys_enter_\w+)\]: (\d+)$", proc.stdout, re.M))
    assert int(counts["tracepoint:syscalls:sys_enter_execve"]) == 1
    assert int(counts["tracepoint:syscalls:sys_enter_openat"]) >= 1
