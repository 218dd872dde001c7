"""pybpftrace leaves nothing in the kernel, however it ends: exit(), SIGINT, SIGTERM or SIGKILL.

The tracer runs as a child process with one probe of each kind available
here (BEGIN/END, tracepoint, uprobe and uretprobe on a test binary,
profile, interval). While it runs, its ``/proc/PID/fdinfo`` tells which
programs, maps and links it holds (by kernel id, so tests running in
parallel do not confuse us); after it has gone, none of those ids may still
exist, and no uprobe/kprobe event may remain in tracefs.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from test_attach_common import compile_c, dynamic_events

from ebpfpy.sys import bpf
from ebpfpy.sys.errors import BPFError

pytestmark = [pytest.mark.kernel, pytest.mark.uprobes]

PYBPFTRACE = [sys.executable, "-m", "ebpfpy.bpftrace"]

SCRIPT = """
BEGIN { @begin = 1; }
tracepoint:syscalls:sys_enter_getpid { @tp = count(); }
uprobe:{target}:work { @u = count(); }
uretprobe:{target}:work { @ur = count(); }
profile:hz:49 { @prof = count(); }
interval:ms:50 { @ticks = count(); }
END { @end = 1; }
"""
EXIT_AFTER = "interval:ms:400 { exit(); }\n"

GETTERS = {"prog": bpf.prog_get_fd_by_id, "map": bpf.map_get_fd_by_id, "link": bpf.link_get_fd_by_id}


def spawn(args, **kwargs):
    """Popen with a watchdog: a hung run is killed after 60 s instead of hanging the suite."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    watchdog = threading.Timer(60, proc.kill)  # Popen.kill does nothing once the process is reaped
    watchdog.daemon = True
    watchdog.start()
    return proc


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return compile_c("uprobe_target.c", str(tmp_path_factory.mktemp("pybpftrace_teardown")), "-O2")


def held_ids(pid: int) -> dict:
    """Kernel ids of the bpf objects process ``pid`` holds fds for, from /proc/PID/fdinfo."""
    ids = {"prog": set(), "map": set(), "link": set()}
    fdinfo = f"/proc/{pid}/fdinfo"
    for name in os.listdir(fdinfo):
        try:
            with open(os.path.join(fdinfo, name)) as fh:
                fields = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
        except OSError:
            continue
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "link_id" in fields:
            ids["link"].add(int(fields["link_id"]))
        elif "map_id" in fields:
            ids["map"].add(int(fields["map_id"]))
        elif "prog_id" in fields:
            ids["prog"].add(int(fields["prog_id"]))
    return ids


def exists(kind: str, obj_id: int) -> bool:
    try:
        fd = GETTERS[kind](obj_id)
    except BPFError:
        return False
    fd.close()
    return True


def wait_all_gone(ids: dict, timeout: float = 10.0) -> list:
    """Objects still alive after ``timeout`` (the kernel frees some of them from a work queue)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [(kind, i) for kind, group in ids.items() for i in group if exists(kind, i)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def start(target, extra: str = ""):
    script = SCRIPT.replace("{target}", target) + extra
    proc = spawn([*PYBPFTRACE, "-e", script])
    first = proc.stdout.readline()
    assert first == "Attaching 7 probes...\n" or first == "Attaching 8 probes...\n", proc.stderr.read()
    ids = held_ids(proc.pid)
    # trigger the uprobes and the tracepoint while attached
    subprocess.run([target, "3"], check=True, capture_output=True)
    os.getpid()
    return proc, ids


def assert_clean(ids: dict) -> None:
    assert ids["prog"] and ids["map"], f"nothing found in fdinfo: {ids}"
    assert wait_all_gone(ids) == []
    assert all(not text.strip() for text in dynamic_events().values())


def test_exit_builtin(target):
    proc, ids = start(target, EXIT_AFTER)
    assert len(ids["prog"]) == 8
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "@u: 3" in out and "@ur: 3" in out and "@end: 1" in out and "@begin: 1" in out
    assert_clean(ids)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_orderly_signals(target, sig):
    proc, ids = start(target)
    time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "@end: 1" in out and "@u: 3" in out and "@ticks: " in out
    assert err == ""
    assert_clean(ids)


def test_sigkill(target):
    proc, ids = start(target)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert_clean(ids)


def test_c_child_is_not_left_behind(target):
    """SIGINT during -c: the command is ended too, and the tracer's objects go."""
    proc = spawn([*PYBPFTRACE, "-c", "/bin/sleep 30", "-e", "interval:ms:50 { @t = count(); }"])
    assert proc.stdout.readline() == "Attaching 1 probe...\n"
    ids = held_ids(proc.pid)
    children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
    assert len(children) == 1
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not os.path.exists(f"/proc/{children[0]}") or "Z" in open(f"/proc/{children[0]}/stat").read().split()[2]
    assert_clean(ids)
