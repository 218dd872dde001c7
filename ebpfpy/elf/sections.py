"""libbpf's program section names -> program type, expected attach type, attach target.

One row per section prefix.  As in libbpf 1.x, a prefix ending in ``/`` takes
an argument (and also matches alone: ``kprobe``), any other name is exact.  ``probe``
turns the part after the prefix into a probe string for ``ebpfpy.attach`` (bpftrace
spelling: ``tracepoint:cat:name``), or is None when the program is not attached
automatically (``socket``, ``xdp``, ``perf_event``: they need a target the section
cannot name).
``btf_target`` says how the attach BTF id is found for fentry-style programs.
``link_target`` says what a BPF link attaches a program to when the section cannot
name it: ``"iface"`` (XDP, tcx, netkit: a network interface), ``"cgroup"`` (a cgroup v2
directory) or ``"netns"`` (sk_lookup: a network namespace), given at attach time
(``ObjProgram.attach(iface=..., cgroup=..., netns=...)``).
``prog_flags`` are BPF_PROG_LOAD flags the section implies: sleepable (``.s``)
and XDP fragments (``xdp.frags``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ebpfpy.sys.consts import AttachType, ProgFlag, ProgType


@dataclass(frozen=True)
class SecDef:
    prefix: str          # "tracepoint/" (takes an argument) or "socket" (exact)
    prog_type: ProgType
    attach_type: int = 0
    probe: Callable[[str], str] | None = None
    btf_target: str | None = None  # "func" (fentry...), "btf_trace_" (tp_btf), "bpf_lsm_"
    link_target: str | None = None  # "iface" (xdp, tcx, netkit), "cgroup", "netns": named at attach time
    prog_flags: int = 0  # ProgFlag.SLEEPABLE (".s"), ProgFlag.XDP_HAS_FRAGS ("xdp.frags")


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


def _ksyscall(kind: str) -> Callable[[str], str]:
    """``ksyscall/openat`` -> a kprobe on the kernel's entry for that syscall
    (``__x64_sys_openat`` with syscall wrappers, else ``__se_sys_openat``), as libbpf picks it."""
    def probe(arg: str) -> str:
        from .system import syscall_symbol
        return f"{kind}:{syscall_symbol(arg)}"
    return probe


_SLEEPABLE = ProgFlag.SLEEPABLE

SEC_DEFS = (
    SecDef("socket", ProgType.SOCKET_FILTER),
    SecDef("kprobe/", ProgType.KPROBE, 0, lambda a: f"kprobe:{a}"),
    SecDef("kretprobe/", ProgType.KPROBE, 0, lambda a: f"kretprobe:{a}"),
    SecDef("uprobe/", ProgType.KPROBE, 0, _uprobe("uprobe")),
    SecDef("uretprobe/", ProgType.KPROBE, 0, _uprobe("uretprobe")),
    SecDef("uprobe.s/", ProgType.KPROBE, 0, _uprobe("uprobe"), prog_flags=_SLEEPABLE),
    SecDef("uretprobe.s/", ProgType.KPROBE, 0, _uprobe("uretprobe"), prog_flags=_SLEEPABLE),
    # one uprobe_multi link for every function PATTERN matches: uprobe.multi/PATH:PATTERN
    SecDef("uprobe.multi/", ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI, _uprobe("uprobe")),
    SecDef("uretprobe.multi/", ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI, _uprobe("uretprobe")),
    SecDef("uprobe.multi.s/", ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI, _uprobe("uprobe"),
           prog_flags=_SLEEPABLE),
    SecDef("uretprobe.multi.s/", ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI, _uprobe("uretprobe"),
           prog_flags=_SLEEPABLE),
    # one kprobe_multi link for every kernel function PATTERN matches (5.18+, fprobe)
    SecDef("kprobe.multi/", ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, lambda a: f"kprobe:{a}"),
    SecDef("kretprobe.multi/", ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, lambda a: f"kretprobe:{a}"),
    SecDef("usdt/", ProgType.KPROBE, 0, _usdt),
    SecDef("usdt.s/", ProgType.KPROBE, 0, _usdt, prog_flags=_SLEEPABLE),
    SecDef("ksyscall/", ProgType.KPROBE, 0, _ksyscall("kprobe")),
    SecDef("kretsyscall/", ProgType.KPROBE, 0, _ksyscall("kretprobe")),
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
    SecDef("fentry.s/", ProgType.TRACING, AttachType.TRACE_FENTRY, None, "func", prog_flags=_SLEEPABLE),
    SecDef("fexit.s/", ProgType.TRACING, AttachType.TRACE_FEXIT, None, "func", prog_flags=_SLEEPABLE),
    SecDef("fmod_ret.s/", ProgType.TRACING, AttachType.MODIFY_RETURN, None, "func", prog_flags=_SLEEPABLE),
    SecDef("lsm.s/", ProgType.LSM, AttachType.LSM_MAC, None, "bpf_lsm_", prog_flags=_SLEEPABLE),
    SecDef("iter.s/", ProgType.TRACING, AttachType.TRACE_ITER, None, "bpf_iter_", prog_flags=_SLEEPABLE),
    SecDef("perf_event", ProgType.PERF_EVENT),
    SecDef("xdp", ProgType.XDP, AttachType.XDP, link_target="iface"),
    SecDef("xdp.frags", ProgType.XDP, AttachType.XDP, link_target="iface", prog_flags=ProgFlag.XDP_HAS_FRAGS),
    SecDef("xdp/devmap", ProgType.XDP, AttachType.XDP_DEVMAP),
    SecDef("xdp.frags/devmap", ProgType.XDP, AttachType.XDP_DEVMAP, prog_flags=ProgFlag.XDP_HAS_FRAGS),
    SecDef("xdp/cpumap", ProgType.XDP, AttachType.XDP_CPUMAP),
    SecDef("xdp.frags/cpumap", ProgType.XDP, AttachType.XDP_CPUMAP, prog_flags=ProgFlag.XDP_HAS_FRAGS),
    SecDef("tc/ingress", ProgType.SCHED_CLS, AttachType.TCX_INGRESS, link_target="iface"),  # tcx, as in libbpf
    SecDef("tc/egress", ProgType.SCHED_CLS, AttachType.TCX_EGRESS, link_target="iface"),
    SecDef("tcx/ingress", ProgType.SCHED_CLS, AttachType.TCX_INGRESS, link_target="iface"),
    SecDef("tcx/egress", ProgType.SCHED_CLS, AttachType.TCX_EGRESS, link_target="iface"),
    # netkit (6.7+): the iface is the pair's primary device, for the peer's hook too
    SecDef("netkit/primary", ProgType.SCHED_CLS, AttachType.NETKIT_PRIMARY, link_target="iface"),
    SecDef("netkit/peer", ProgType.SCHED_CLS, AttachType.NETKIT_PEER, link_target="iface"),
    SecDef("tc", ProgType.SCHED_CLS),
    SecDef("classifier", ProgType.SCHED_CLS),
    SecDef("action", ProgType.SCHED_ACT),
    SecDef("cgroup_skb/ingress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS, link_target="cgroup"),
    SecDef("cgroup_skb/egress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_EGRESS, link_target="cgroup"),
    SecDef("cgroup/skb", ProgType.CGROUP_SKB),
    *(SecDef(f"cgroup/{name}", ptype, attach, link_target="cgroup") for name, ptype, attach in (
        ("sock_create", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE),
        ("sock_release", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_RELEASE),
        ("sock", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE),
        ("post_bind4", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET4_POST_BIND),
        ("post_bind6", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET6_POST_BIND),
        ("bind4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_BIND),
        ("bind6", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET6_BIND),
        ("connect4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT),
        ("connect6", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET6_CONNECT),
        ("connect_unix", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UNIX_CONNECT),
        ("sendmsg4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP4_SENDMSG),
        ("sendmsg6", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP6_SENDMSG),
        ("sendmsg_unix", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UNIX_SENDMSG),
        ("recvmsg4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP4_RECVMSG),
        ("recvmsg6", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP6_RECVMSG),
        ("recvmsg_unix", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UNIX_RECVMSG),
        ("getpeername4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_GETPEERNAME),
        ("getpeername6", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET6_GETPEERNAME),
        ("getpeername_unix", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UNIX_GETPEERNAME),
        ("getsockname4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_GETSOCKNAME),
        ("getsockname6", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET6_GETSOCKNAME),
        ("getsockname_unix", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UNIX_GETSOCKNAME),
        ("sysctl", ProgType.CGROUP_SYSCTL, AttachType.CGROUP_SYSCTL),
        ("getsockopt", ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_GETSOCKOPT),
        ("setsockopt", ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_SETSOCKOPT),
        ("dev", ProgType.CGROUP_DEVICE, AttachType.CGROUP_DEVICE),
    )),
    SecDef("sockops", ProgType.SOCK_OPS, AttachType.CGROUP_SOCK_OPS, link_target="cgroup"),
    SecDef("sk_skb/stream_parser", ProgType.SK_SKB, AttachType.SK_SKB_STREAM_PARSER),
    SecDef("sk_skb/stream_verdict", ProgType.SK_SKB, AttachType.SK_SKB_STREAM_VERDICT),
    SecDef("sk_msg", ProgType.SK_MSG, AttachType.SK_MSG_VERDICT),
    SecDef("flow_dissector", ProgType.FLOW_DISSECTOR, AttachType.FLOW_DISSECTOR),
    # a network namespace (given at attach time), as libbpf's bpf_program__attach_netns
    SecDef("sk_lookup", ProgType.SK_LOOKUP, AttachType.SK_LOOKUP, link_target="netns"),
    # the family, hook and priority are the caller's (libbpf's bpf_program__attach_netfilter)
    SecDef("netfilter", ProgType.NETFILTER, AttachType.NETFILTER),
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
    def link_target(self) -> str | None:
        """``"iface"``, ``"cgroup"`` or ``"netns"``: what a link attaches this program to, given at attach time."""
        return self.sec_def.link_target

    @property
    def prog_flags(self) -> int:
        return int(self.sec_def.prog_flags)

    @property
    def syscall(self) -> str | None:
        """The syscall a ``ksyscall/NAME`` or ``kretsyscall/NAME`` program is for."""
        return (self.arg or None) if self.sec_def.prefix in ("ksyscall/", "kretsyscall/") else None

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
