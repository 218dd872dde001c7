"""tools/count_getpid.py: a tracepoint program counts a child's getpid() calls exactly."""
import importlib.util
import os
import subprocess
import sys

import pytest

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "count_getpid.py")

pytestmark = pytest.mark.kernel


def test_tool_reports_exact_count():
    res = subprocess.run([sys.executable, TOOL, "2500"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "2500 getpid() calls counted (expected 2500" in res.stdout


@pytest.mark.parametrize("n", [0, 1, 777])
def test_count_child_in_process(n):
    spec = importlib.util.spec_from_file_location("count_getpid", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fds = set(os.listdir("/proc/self/fd"))
    pid, count, kind = mod.count_child(n)
    assert pid > 0 and count == n and kind in ("perf_link", "perf_event")
    assert set(os.listdir("/proc/self/fd")) == fds
