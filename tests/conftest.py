"""Skip tests whose kernel feature or tool is missing, by probing, not by version.

A test declares what it needs with a marker (see pyproject.toml); here each
marker maps to one probe. Kernel features are probed by `ebpfpy.features`,
which tries the feature once and caches the answer, so the same suite runs on
this machine's 6.18 kernel and in the 6.1 qemu guest (tests/vm/run).
"""
import os
import shutil
import threading

import pytest


def _feature(name):
    def probe():
        try:
            from ebpfpy import features
        except ImportError as exc:
            return False, f"ebpfpy.features unavailable: {exc}"
        if features.has(name):
            return True, ""
        return False, features.reason(name) or f"kernel lacks {name}"

    return probe


def _tool(*names):
    def probe():
        for name in names:
            if shutil.which(name):
                return True, ""
        return False, f"{names[0]} is not installed"

    return probe


def _root_tool(name):
    def probe():
        if os.geteuid() != 0:
            return False, f"{name} comparison needs root"
        return _tool(name)()

    return probe


def _netns():
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    return _tool("ip")()


def _cgroup2():
    from ebpfpy.bpffs import find_cgroup2

    root = find_cgroup2()
    if root is None:
        return False, "no cgroup v2 hierarchy is mounted"
    if not os.access(root, os.W_OK):
        return False, f"cannot create cgroups under {root}"
    return True, ""


# marker -> probe returning (available, reason)
REQUIREMENTS = {
    "kernel": _feature("bpf"),
    "kprobes": _feature("kprobes"),
    "fentry": _feature("fentry"),
    "iter": _feature("iter"),
    "kprobe_multi": _feature("kprobe_multi"),
    "btf": _feature("btf"),
    "ringbuf": _feature("ringbuf"),
    "uprobes": _feature("uprobes"),
    "uprobe_multi": _feature("uprobe_multi"),
    "tcx": _feature("tcx"),
    "netkit": _feature("netkit"),
    "netfilter_link": _feature("netfilter_link"),
    "net": lambda: _netns(),
    "cgroup": lambda: _cgroup2(),
    "bpftrace": _root_tool("bpftrace"),
    "clang": _tool("clang-19"),
}

_answers = {}


def _available(marker):
    if marker not in _answers:
        _answers[marker] = REQUIREMENTS[marker]()
    return _answers[marker]


def pytest_runtest_setup(item):
    for marker in item.iter_markers():
        if marker.name in REQUIREMENTS:
            ok, reason = _available(marker.name)
            if not ok:
                pytest.skip(f"needs {marker.name}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    """Cancel the watchdog timers tests start beside their subprocesses (each kills a hung
    run after a minute): left running, one may wake while the interpreter shuts down."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
            thread.join(timeout=5)


@pytest.fixture(autouse=True, scope="module")
def bpftrace_017_mode():
    """The suite pins bpftrace 0.17's behaviour and compares with the installed bpftrace 0.17, so
    pybpftrace runs in 0.17 mode (``PYBPFTRACE_COMPAT=0.17``, which every child process inherits;
    see ebpfpy/bpftrace/compat.py). A test of today's language passes ``--compat=0.26`` (or
    ``compat="0.26"``), which beats the environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYBPFTRACE_COMPAT", "0.17")
        yield


@pytest.fixture(scope="session")
def workload(tmp_path_factory) -> str:
    """tests/progs/workload.c built once: the deterministic command the differential tests
    trace under ``-c`` (rounds of openat, read, nanosleep, getpid, kill ...)."""
    import subprocess
    from pathlib import Path

    if not shutil.which("gcc"):  # the qemu guests have no compiler
        pytest.skip("gcc is not installed (the workload is built at test time)")
    source = Path(__file__).resolve().parent / "progs" / "workload.c"
    binary = tmp_path_factory.mktemp("workload") / "workload"
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(source)], check=True)
    return str(binary)
