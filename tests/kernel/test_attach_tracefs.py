"""tracefs discovery: mounting it when missing, and the error a non-root user gets.

Each case runs in a private mount namespace (`unshare --mount`), so unmounting
tracefs there cannot disturb anything else running on the machine.
"""
import os
import shutil
import subprocess
import sys

import pytest

from ebpfpy.attach import tracefs

pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _in_private_namespace(python_code: str) -> subprocess.CompletedProcess:
    script = f"umount {tracefs.MOUNT_POINT} 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; " \
             f"exec {sys.executable} -c \"$0\""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, python_code],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


needs_unshare = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                   reason="needs root and unshare(1)")


def test_tracefs_found_and_read():
    root = tracefs.tracefs_root()
    assert os.path.isdir(os.path.join(root, "events"))
    assert tracefs.tracepoint_id("syscalls", "sys_enter_getpid") > 0
    assert ("syscalls", "sys_enter_getpid") in tracefs.available_events()


@needs_unshare
def test_tracefs_mounted_when_missing():
    proc = _in_private_namespace(
        "import os\n"
        "assert not os.path.exists('/sys/kernel/tracing/events'), 'still mounted'\n"
        "from ebpfpy.attach import tracefs\n"
        "print(tracefs.tracefs_root(), tracefs.tracepoint_id('sched', 'sched_switch'))\n"
    )
    assert proc.returncode == 0, proc.stderr
    root, tp_id = proc.stdout.split()
    assert root == tracefs.MOUNT_POINT
    assert int(tp_id) == tracefs.tracepoint_id("sched", "sched_switch")


@needs_unshare
def test_tracefs_missing_and_not_root_says_what_to_do():
    proc = _in_private_namespace(
        "import os\n"
        "from ebpfpy.attach import tracefs\n"
        "os.setegid(65534); os.seteuid(65534)  # after the imports: root's pyenv is not world-readable\n"
        "try:\n"
        "    tracefs.tracefs_root()\n"
        "except tracefs.TracefsError as exc:\n"
        "    print(exc)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "mount -t tracefs nodev /sys/kernel/tracing" in proc.stdout
    assert "root" in proc.stdout
