"""`pybpftrace -l/-lv 'kfunc:...'` where fentry works (the 6.1/6.12 guests; skipped without fentry).

bpftrace prints a kfunc's BTF parameters, then its return value, four spaces in:
``    struct file * file`` ... ``    ssize_t retval``.
"""
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.fentry]


def _list(flag, pattern):
    proc = subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", flag, pattern],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_kfunc_listing_and_params():
    assert _list("-l", "kfunc:vfs_read") == ["kfunc:vfs_read"]
    assert "kretfunc:vfs_read" in _list("-l", "kretfunc:vfs_rea*")
    assert _list("-lv", "kfunc:vfs_read") == [
        "kfunc:vfs_read", "    struct file * file", "    char * buf", "    size_t count",
        "    loff_t * pos", "    ssize_t retval"]


def test_wildcard_kind_includes_kfunc():
    lines = _list("-l", "*:vfs_read")
    assert "kfunc:vfs_read" in lines
