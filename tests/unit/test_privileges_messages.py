"""ebpfpy.sys.privileges: which cause and which fix a refusal names, for each situation.

The process's capabilities and the kernel settings are replaced by fakes, so every branch runs
here without root; tests/kernel/test_privileges.py checks the same messages for real as nobody.
"""
from __future__ import annotations

import errno
import os
import struct

import pytest

from ebpfpy.sys import privileges as P
from ebpfpy.sys.consts import MapType, ProgType


def caps(*numbers: int) -> int:
    return sum(1 << n for n in numbers)


@pytest.fixture
def machine(monkeypatch):
    """A fake process and kernel: set .caps, .settings, .lockdown, .seccomp, .userns."""

    class Machine:
        def __init__(self):
            self.caps = 0
            self.settings = {"kernel.unprivileged_bpf_disabled": "2", "kernel.perf_event_paranoid": "2"}
            self.lockdown = None
            self.seccomp = False
            self.userns = False

    m = Machine()
    monkeypatch.setattr(P, "effective_capabilities", lambda: m.caps)
    monkeypatch.setattr(P, "sysctl", lambda name: m.settings.get(name))
    monkeypatch.setattr(P, "lockdown", lambda: m.lockdown)
    monkeypatch.setattr(P, "seccomp_filtered", lambda: m.seccomp)
    monkeypatch.setattr(P, "in_user_namespace", lambda: m.userns)
    return m


def attr(kind: int) -> bytes:
    return struct.pack("<I", kind) + bytes(60)


def test_unprivileged_bpf_disabled_comes_first(machine):
    text = P.explain_bpf("MAP_CREATE", errno.EPERM, attr(MapType.ARRAY))
    assert text.startswith("kernel.unprivileged_bpf_disabled=2 keeps processes without CAP_BPF out of bpf()")
    assert text.endswith("run as root or with CAP_BPF")
    text = P.explain_bpf("PROG_LOAD", errno.EPERM, attr(ProgType.TRACEPOINT))
    assert "loading tracepoint programs also needs CAP_PERFMON" in text
    assert text.endswith("run as root or with CAP_BPF and CAP_PERFMON")


def test_missing_capability_per_program_and_map_type(machine):
    machine.caps = caps(P.CAP_BPF)
    assert P.explain_bpf("PROG_LOAD", errno.EPERM, attr(ProgType.KPROBE)) == (
        "loading kprobe programs needs CAP_BPF and CAP_PERFMON, which this process lacks: "
        "run as root or with CAP_BPF and CAP_PERFMON")
    assert "CAP_NET_ADMIN" in P.explain_bpf("PROG_LOAD", errno.EPERM, attr(ProgType.XDP))
    assert "CAP_NET_ADMIN" in P.explain_bpf("MAP_CREATE", errno.EPERM, attr(MapType.SOCKMAP))
    machine.settings["kernel.unprivileged_bpf_disabled"] = "0"
    machine.caps = 0
    assert "creating lru_hash maps needs CAP_BPF" in P.explain_bpf("MAP_CREATE", errno.EPERM, attr(MapType.LRU_HASH))
    assert P.explain_bpf("BTF_LOAD", errno.EPERM).startswith("loading BTF needs CAP_BPF")


def test_listing_by_id_needs_cap_sys_admin(machine):
    machine.caps = caps(P.CAP_BPF, P.CAP_PERFMON)
    for command in ("PROG_GET_NEXT_ID", "MAP_GET_FD_BY_ID", "BTF_GET_NEXT_ID"):
        text = P.explain_bpf(command, errno.EPERM, attr(0))
        assert text == ("listing and opening BPF objects by id needs CAP_SYS_ADMIN (CAP_BPF is not enough): "
                        "run as root or with CAP_SYS_ADMIN")


def test_capabilities_present_points_elsewhere(machine):
    machine.caps = caps(P.CAP_BPF, P.CAP_PERFMON)
    assert "an LSM" in P.explain_bpf("PROG_LOAD", errno.EPERM, attr(ProgType.TRACEPOINT))
    machine.seccomp = True
    assert "seccomp filter" in P.explain_bpf("PROG_LOAD", errno.EPERM, attr(ProgType.TRACEPOINT))
    machine.userns = True
    assert "user namespace" in P.explain_bpf("PROG_LOAD", errno.EPERM, attr(ProgType.TRACEPOINT))
    machine.lockdown = "integrity"
    assert "kernel lockdown is 'integrity'" in P.explain_bpf("PROG_LOAD", errno.EPERM, attr(ProgType.TRACEPOINT))
    machine.caps = caps(P.CAP_SYS_ADMIN)  # stands in for CAP_BPF and CAP_PERFMON, as in the kernel
    assert "which this process lacks" not in P.explain_bpf("PROG_LOAD", errno.EPERM, attr(ProgType.KPROBE))


def test_errors_that_are_not_about_privileges_get_no_clause(machine):
    machine.caps = caps(P.CAP_BPF, P.CAP_PERFMON)
    assert P.explain_bpf("PROG_LOAD", errno.EACCES, attr(ProgType.KPROBE)) == ""  # the verifier's EACCES
    assert P.explain_bpf("PROG_LOAD", errno.EINVAL, attr(ProgType.KPROBE)) == ""
    assert P.explain_bpf("MAP_UPDATE_ELEM", errno.EPERM, attr(0)) == ""  # frozen map, read-only fd
    assert "CONFIG_BPF_SYSCALL" in P.explain_bpf("MAP_CREATE", errno.ENOSYS, attr(MapType.ARRAY))


def test_perf_event_open(machine, monkeypatch):
    monkeypatch.setattr(P, "_pmu_name", lambda t: {8: "uprobe", 9: "kprobe"}.get(t))
    assert P.explain_perf(errno.EACCES, 8, 123, -1) == (
        "uprobes through the uprobe PMU need CAP_SYS_ADMIN (CAP_PERFMON is not enough on this kernel): "
        "run as root or with CAP_SYS_ADMIN")
    assert P.explain_perf(errno.EACCES, 2, -1, 0) == (
        "system-wide tracepoint events need CAP_PERFMON (kernel.perf_event_paranoid=2): "
        "run as root or with CAP_PERFMON")
    assert P.explain_perf(errno.EACCES, 1, 0, -1).startswith("kernel software events need CAP_PERFMON")
    machine.caps = caps(P.CAP_PERFMON)
    assert P.explain_perf(errno.EACCES, 2, -1, 0).startswith("the process has CAP_PERFMON; ")
    machine.lockdown = "confidentiality"
    assert "lockdown" in P.explain_perf(errno.EACCES, 2, -1, 0)
    assert P.explain_perf(errno.EINVAL, 2, -1, 0) == ""
    assert "CONFIG_PERF_EVENTS" in P.explain_perf(errno.ENOSYS, 2, -1, 0)


def test_unreadable_path_names_mode_and_capability(tmp_path, machine):
    private = tmp_path / "private"
    (private / "events").mkdir(parents=True)
    private.chmod(0o700)
    text = P.explain_path(str(private / "events" / "id"), errno.EACCES, "tracefs")
    if os.geteuid() == 0:  # root stats through 0700: the file's own missing entry is reported
        assert "CAP_DAC_READ_SEARCH" in text
    else:
        assert text == (f"permission denied: {private} is mode 0700, owned by uid {os.getuid()}; "
                        "run as root or with CAP_DAC_READ_SEARCH")
    machine.lockdown = "confidentiality"
    assert P.explain_path(str(private), errno.EPERM, "tracefs") == \
        "kernel lockdown ('confidentiality') forbids reading tracefs"


def test_reading_this_process():
    assert isinstance(P.effective_capabilities(), int)
    assert P.has_capability(P.CAP_BPF, caps(P.CAP_BPF)) and not P.has_capability(P.CAP_BPF, 0)
    assert P.sysctl("kernel.no_such_setting_here") is None
    assert P.lockdown() in (None, "none", "integrity", "confidentiality")
