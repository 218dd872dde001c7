"""The guest's Python must end the way it does on a full system.

CPython stops a daemon thread that wakes while the interpreter shuts down by
calling pthread_exit, and glibc unwinds that thread with libgcc_s, which it
dlopens (so `ldd` never lists it). An initramfs without it aborted pytest with
status 134 after a green guest run, depending on when a leftover watchdog timer
woke. Runs on the host too, where it is trivially true.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

# Daemon threads that keep releasing and retaking the GIL, so some of them are
# between the two when the main thread finishes and the interpreter finalises.
SPINNERS = """
import threading, time

def spin():
    while True:
        time.sleep(0.0002)

for _ in range(8):
    threading.Thread(target=spin, daemon=True).start()
time.sleep(0.05)
"""


def test_daemon_threads_woken_during_shutdown_exit_cleanly():
    for _ in range(5):
        result = subprocess.run([sys.executable, "-c", SPINNERS], capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stderr) == (0, "")
