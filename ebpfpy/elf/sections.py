"""libbpf's program section names -> program type, expected attach type, attach target.

One row per section prefix.  As in libbpf 1.x, a prefix ending in ``/`` takes
an argument (and also matches alone: ``kprobe``), any other name is exact.  ``probe`` turns the part after the prefix into a
probe string for ``ebpfpy.attach`` (bpftrace spelling: ``tracepoint:cat:name``),
or is None when the program is not attached automatically (``socket``,
``xdp``, ``perf_event``: they need a target the section cannot name).
``btf_target`` says how the attach BTF id is found for fentry-style programs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ebpfpy.sys.consts import AttachType, ProgType


@dataclass(frozen=True)
class SecDef:
    prefix: str          # "tracepoint/" (takes an argument) or "socket" (exact)
    prog_type: ProgType
    attach_type: int = 0
    probe: Callable[[str], str] | None = None
    btf_target: str | None = None  # "func" (fentry...), "btf_trace_" (tp_btf), "bpf_lsm_"


def _tp(arg: str) -> str:
    cat, _, name = arg.partition("/")
    return f"tracepoint:{cat}:{name}"


def _uprobe(kind: str) -> Callable[[str], str]:
    def probe(arg: str) -> str:
        path, _, func = arg.rpartition(":")
        return f"{kind}:{path}:{func}"
    return probe


def _usdt(arg: str) -> str:
    return "usdt:" + arg


SEC_DEFS = (
    SecDef("socket", ProgType.SOCKET_FILTER),
    SecDef("kprobe/", ProgType.KPROBE, 0, lambda a: f"kprobe:{a}"),
    SecDef("kretprobe/", ProgType.KPROBE, 0, lambda a: f"kretprobe:{a}"),
    SecDef("uprobe/", ProgType.KPROBE, 0, _uprobe("uprobe")),
    SecDef("uretprobe/", ProgType.KPROBE, 0, _uprobe("uretprobe")),
    SecDef("usdt/", ProgType.KPROBE, 0, _usdt),
    SecDef("tracepoint/", ProgType.TRACEPOINT, 0, _tp),
    SecDef("tp/", ProgType.TRACEPOINT, 0, _tp),
    SecDef("raw_tracepoint/", ProgType.RAW_TRACEPOINT, 0, lambda a: f"rawtracepoint:{a}"),
    SecDef("raw_tp/", ProgType.RAW_TRACEPOINT, 0, lambda a: f"rawtracepoint:{a}"),
    SecDef("raw_tracepoint.w/", ProgType.RAW_TRACEPOINT_WRITABLE, 0, lambda a: f"rawtracepoint:{a}"),
    SecDef("raw_tp.w/", ProgType.RAW_TRACEPOINT_WRITABLE, 0, lambda a: f"rawtracepoint:{a}"),
    SecDef("tp_btf/", ProgType.TRACING, AttachType.TRACE_RAW_TP, None, "btf_trace_"),
    SecDef("fentry/", ProgType.TRACING, AttachType.TRACE_FENTRY, None, "func"),
    SecDef("fexit/", ProgType.TRACING, AttachType.TRACE_FEXIT, None, "func"),
    SecDef("fmod_ret/", ProgType.TRACING, AttachType.MODIFY_RETURN, None, "func"),
    SecDef("lsm/", ProgType.LSM, AttachType.LSM_MAC, None, "bpf_lsm_"),
    SecDef("iter/", ProgType.TRACING, AttachType.TRACE_ITER, None, "bpf_iter_"),
    SecDef("perf_event", ProgType.PERF_EVENT),
    SecDef("xdp", ProgType.XDP, AttachType.XDP),
    SecDef("tc", ProgType.SCHED_CLS),
    SecDef("classifier", ProgType.SCHED_CLS),
    SecDef("action", ProgType.SCHED_ACT),
    SecDef("cgroup_skb/ingress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS),
    SecDef("cgroup_skb/egress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_EGRESS),
    SecDef("cgroup/skb", ProgType.CGROUP_SKB),
    SecDef("cgroup/sock", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE),
    SecDef("cgroup/dev", ProgType.CGROUP_DEVICE, AttachType.CGROUP_DEVICE),
    SecDef("sockops", ProgType.SOCK_OPS, AttachType.CGROUP_SOCK_OPS),
    SecDef("sk_skb/stream_parser", ProgType.SK_SKB, AttachType.SK_SKB_STREAM_PARSER),
    SecDef("sk_skb/stream_verdict", ProgType.SK_SKB, AttachType.SK_SKB_STREAM_VERDICT),
    SecDef("sk_msg", ProgType.SK_MSG, AttachType.SK_MSG_VERDICT),
    SecDef("flow_dissector", ProgType.FLOW_DISSECTOR, AttachType.FLOW_DISSECTOR),
    SecDef("syscall", ProgType.SYSCALL),
)


@dataclass(frozen=True)
class SectionKind:
    """What a program section name means."""
    section: str
    sec_def: SecDef
    arg: str  # the part after the prefix ("syscalls/sys_enter_write")

    @property
    def prog_type(self) -> ProgType:
        return self.sec_def.prog_type

    @property
    def attach_type(self) -> int:
        return int(self.sec_def.attach_type)

    @property
    def probe(self) -> str | None:
        """The ``ebpfpy.attach`` probe string, when the section names its own target."""
        if self.sec_def.probe is None or not self.arg:
            return None
        return self.sec_def.probe(self.arg)


def classify(section: str) -> SectionKind | None:
    """The row for a section name (exact names and ``prefix/arg`` forms), or None."""
    for d in SEC_DEFS:
        if d.prefix.endswith("/"):
            if section.startswith(d.prefix):
                return SectionKind(section, d, section[len(d.prefix):])
            if section == d.prefix[:-1]:  # "kprobe" alone: the target is given at attach time
                return SectionKind(section, d, "")
        elif section == d.prefix:
            return SectionKind(section, d, "")
    return None
