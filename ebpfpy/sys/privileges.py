"""Why the kernel said no: the cause of an EPERM/EACCES (or ENOSYS) and what fixes it.

A bare "Operation not permitted" from bpf() or perf_event_open() has half a dozen possible
causes: a missing capability (which one depends on the command, the program or map type and
the PMU), ``kernel.unprivileged_bpf_disabled``, ``kernel.perf_event_paranoid``, kernel lockdown,
a user namespace (capabilities there do not count), a seccomp filter. The functions here look at
this process's effective capabilities and those settings and return one clause naming the cause
and the fix; ``ebpfpy.sys.bpf`` and ``ebpfpy.sys.perf`` put it in the ``BPFError``'s detail.
Only called on the error path: nothing here runs when calls succeed.

docs/privileges.md lists what each feature needs, as measured.
"""
from __future__ import annotations

import errno as E
import os
import struct

from ebpfpy.sys.consts import MapType, ProgType, type_name

# Capability numbers (include/uapi/linux/capability.h).
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

CAP_NAMES = {CAP_DAC_OVERRIDE: "CAP_DAC_OVERRIDE", CAP_DAC_READ_SEARCH: "CAP_DAC_READ_SEARCH",
             CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_SYS_ADMIN: "CAP_SYS_ADMIN", CAP_PERFMON: "CAP_PERFMON",
             CAP_BPF: "CAP_BPF"}

def _types(enum, names: str) -> frozenset[int]:
    return frozenset(int(enum[n]) for n in names.split())


# Program types the kernel loads only for CAP_PERFMON (kernel/bpf/syscall.c, is_perfmon_prog_type)
# or CAP_NET_ADMIN (is_net_admin_prog_type), besides CAP_BPF; and the two any process may load
# when unprivileged bpf() is allowed at all.
PERFMON_PROG_TYPES = _types(ProgType, "KPROBE TRACEPOINT PERF_EVENT RAW_TRACEPOINT RAW_TRACEPOINT_WRITABLE "
                                      "TRACING LSM STRUCT_OPS EXT")
NET_ADMIN_PROG_TYPES = _types(ProgType, "SCHED_CLS SCHED_ACT XDP LWT_IN LWT_OUT LWT_XMIT LWT_SEG6LOCAL SK_SKB "
                                        "SK_MSG FLOW_DISSECTOR CGROUP_DEVICE CGROUP_SOCK CGROUP_SOCK_ADDR "
                                        "CGROUP_SOCKOPT CGROUP_SYSCTL SOCK_OPS EXT NETFILTER")
UNPRIVILEGED_PROG_TYPES = _types(ProgType, "SOCKET_FILTER CGROUP_SKB")
# Map types (kernel/bpf/syscall.c, map_create) that need CAP_NET_ADMIN, and those any process may
# create when unprivileged bpf() is allowed; every other type needs CAP_BPF.
NET_ADMIN_MAP_TYPES = _types(MapType, "SOCKMAP SOCKHASH DEVMAP DEVMAP_HASH XSKMAP")
UNPRIVILEGED_MAP_TYPES = _types(MapType, "ARRAY PERCPU_ARRAY PROG_ARRAY PERF_EVENT_ARRAY CGROUP_ARRAY "
                                         "ARRAY_OF_MAPS HASH PERCPU_HASH HASH_OF_MAPS RINGBUF USER_RINGBUF "
                                         "CGROUP_STORAGE PERCPU_CGROUP_STORAGE")
# Commands that need CAP_SYS_ADMIN whatever else the process has.
SYS_ADMIN_COMMANDS = frozenset({"PROG_GET_NEXT_ID", "MAP_GET_NEXT_ID", "LINK_GET_NEXT_ID", "BTF_GET_NEXT_ID",
                                "PROG_GET_FD_BY_ID", "MAP_GET_FD_BY_ID", "LINK_GET_FD_BY_ID",
                                "BTF_GET_FD_BY_ID", "ENABLE_STATS"})


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _status_field(name: str) -> str | None:
    for line in (_read("/proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return None


def effective_capabilities() -> int:
    """This process's effective capability set, as a bit mask (CapEff)."""
    value = _status_field("CapEff")
    return int(value, 16) if value else 0


def has_capability(cap: int, caps: int | None = None) -> bool:
    return bool((effective_capabilities() if caps is None else caps) >> cap & 1)


def sysctl(name: str) -> str | None:
    """A kernel setting by its sysctl name (``kernel.perf_event_paranoid``), None when absent."""
    return _read("/proc/sys/" + name.replace(".", "/"))


def lockdown() -> str | None:
    """The kernel lockdown mode (none, integrity, confidentiality), None when unknown."""
    text = _read("/sys/kernel/security/lockdown")
    if not text or "[" not in text:
        return None
    return text.split("[", 1)[1].split("]", 1)[0]


def seccomp_filtered() -> bool:
    return _status_field("Seccomp") == "2"


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the initial one, where its
    capabilities do not count for bpf() and perf_event_open()."""
    text = _read("/proc/self/uid_map")
    return bool(text) and text.split() != ["0", "0", "4294967295"]


def _names(caps) -> str:
    return " and ".join(CAP_NAMES[c] for c in caps)


def _fix(needed: list[int]) -> str:
    return f"run as root or with {_names(needed)}"


def _elsewhere(have: str) -> str:
    """The clause for a denial although the capabilities are there."""
    reasons = []
    if in_user_namespace():
        reasons.append("this process runs in a user namespace, whose capabilities do not count for BPF")
    mode = lockdown()
    if mode and mode != "none":
        reasons.append(f"kernel lockdown is '{mode}'")
    if seccomp_filtered():
        reasons.append("a seccomp filter is active (containers block bpf() and perf_event_open() by default)")
    if not reasons:
        reasons.append("so capabilities are not the cause: an LSM (SELinux, AppArmor, BPF LSM) or a kernel "
                       "restriction refused it")
    return f"{have}; {'; '.join(reasons)}"


def _missing(needed: list[int], caps: int) -> list[int]:
    """The capabilities of ``needed`` the process lacks (CAP_SYS_ADMIN stands in for CAP_BPF,
    CAP_PERFMON and CAP_NET_ADMIN, as in the kernel)."""
    if caps >> CAP_SYS_ADMIN & 1:
        return []
    return [c for c in needed if not caps >> c & 1]


def _u32(attr, offset: int) -> int | None:
    if attr is None or len(attr) < offset + 4:
        return None
    return struct.unpack_from("<I", attr, offset)[0]


def explain_bpf(command: str, code: int, attr=None) -> str:
    """The cause of a failed bpf() ``command`` (``PROG_LOAD``, no ``BPF_`` prefix) with errno ``code``,
    and its fix, as one clause; "" when there is nothing to add. ``attr`` is the attribute buffer
    (its first u32 is the program or map type for PROG_LOAD and MAP_CREATE).

    Only EPERM is about privileges: EACCES from PROG_LOAD is the verifier's verdict, and EPERM
    from map operations can also mean a read-only fd or a frozen map, so those get no clause
    unless the process is kept out of bpf() altogether."""
    if code == E.ENOSYS:
        return ("the kernel has no bpf() system call (CONFIG_BPF_SYSCALL is off)"
                + (", or a seccomp filter refuses it" if seccomp_filtered() else ""))
    if code != E.EPERM:
        return ""
    caps = effective_capabilities()
    if command in SYS_ADMIN_COMMANDS:
        what = "listing and opening BPF objects by id" if command != "ENABLE_STATS" else "BPF run-time statistics"
        if not caps >> CAP_SYS_ADMIN & 1:
            return f"{what} needs CAP_SYS_ADMIN (CAP_BPF is not enough): run as root or with CAP_SYS_ADMIN"
        return _elsewhere("the process has CAP_SYS_ADMIN")
    needed = [CAP_BPF]
    what = "bpf()"
    kind = _u32(attr, 0)
    if command == "PROG_LOAD" and kind is not None:
        what = f"loading {type_name(ProgType, kind).lower()} programs"
        if kind in UNPRIVILEGED_PROG_TYPES:
            needed = []
        if kind in PERFMON_PROG_TYPES:
            needed.append(CAP_PERFMON)
        if kind in NET_ADMIN_PROG_TYPES:
            needed.append(CAP_NET_ADMIN)
    elif command == "MAP_CREATE" and kind is not None:
        what = f"creating {type_name(MapType, kind).lower()} maps"
        if kind in UNPRIVILEGED_MAP_TYPES:
            needed = []
        elif kind in NET_ADMIN_MAP_TYPES:
            needed = [CAP_NET_ADMIN]
    elif command == "BTF_LOAD":
        what = "loading BTF"
    bpf_capable = bool(caps >> CAP_BPF & 1 or caps >> CAP_SYS_ADMIN & 1)
    disabled = sysctl("kernel.unprivileged_bpf_disabled")
    if not bpf_capable and disabled not in (None, "0"):
        # The bpf() system call's first check, for every command: nothing else matters until it passes.
        both = needed if CAP_BPF in needed else [CAP_BPF, *needed]
        also = f"; {what} also needs {_names(both[1:])}" if len(both) > 1 else ""
        return f"kernel.unprivileged_bpf_disabled={disabled} keeps processes without CAP_BPF out of bpf(){also}: " \
               f"{_fix(both)}"
    if command not in ("PROG_LOAD", "MAP_CREATE", "BTF_LOAD"):
        return ""
    if _missing(needed, caps):
        return f"{what} needs {_names(needed)}, which this process lacks: {_fix(needed)}"
    return _elsewhere(f"the process has {_names(needed)}" if needed else "unprivileged bpf() is allowed")


def _pmu_name(pmu_type: int) -> str | None:
    """The name of a dynamic PMU (kprobe, uprobe, ...) from its type number."""
    root = "/sys/bus/event_source/devices"
    try:
        names = os.listdir(root)
    except OSError:
        return None
    for name in names:
        if _read(os.path.join(root, name, "type")) == str(pmu_type):
            return name
    return None


def explain_perf(code: int, pmu_type: int, pid: int, cpu: int) -> str:
    """The cause of a failed perf_event_open() and its fix, as one clause ("" for other errors)."""
    if code == E.ENOSYS:
        return "the kernel has no perf_event_open() system call (CONFIG_PERF_EVENTS is off)"
    if code not in (E.EPERM, E.EACCES):
        return ""
    caps = effective_capabilities()
    mode = lockdown()
    if mode == "confidentiality":
        return "kernel lockdown is 'confidentiality', which forbids perf events that read kernel data"
    pmu = {0: "hardware", 1: "software", 2: "tracepoint", 3: "hw_cache", 4: "raw", 5: "breakpoint"}.get(
        pmu_type) or _pmu_name(pmu_type) or f"type {pmu_type}"
    if pmu in ("kprobe", "uprobe"):
        if not caps >> CAP_SYS_ADMIN & 1:
            return (f"{pmu}s through the {pmu} PMU need CAP_SYS_ADMIN (CAP_PERFMON is not enough on this "
                    "kernel): run as root or with CAP_SYS_ADMIN")
        return _elsewhere("the process has CAP_SYS_ADMIN")
    if caps >> CAP_PERFMON & 1 or caps >> CAP_SYS_ADMIN & 1:
        return _elsewhere("the process has CAP_PERFMON")
    paranoid = sysctl("kernel.perf_event_paranoid")
    scope = "system-wide" if pid == -1 else "kernel"
    setting = f" (kernel.perf_event_paranoid={paranoid})" if paranoid is not None else ""
    return f"{scope} {pmu} events need CAP_PERFMON{setting}: run as root or with CAP_PERFMON"


def explain_path(path: str, code: int, what: str) -> str:
    """Why ``path`` (in tracefs, bpffs, ...) cannot be read, and the capability that fixes it."""
    if code not in (E.EPERM, E.EACCES):
        return os.strerror(code)
    mode = lockdown()
    if code == E.EPERM and mode and mode != "none":
        return f"kernel lockdown ('{mode}') forbids reading {what}"
    parent = path
    while parent not in ("", "/"):
        try:
            st = os.stat(parent)
        except PermissionError:
            parent = os.path.dirname(parent)
            continue
        except OSError:
            break
        owner = "root" if st.st_uid == 0 else f"uid {st.st_uid}"
        return (f"permission denied: {parent} is mode {st.st_mode & 0o7777:04o}, owned by {owner}; "
                f"run as root or with CAP_DAC_READ_SEARCH")
    return "permission denied: run as root or with CAP_DAC_READ_SEARCH"
