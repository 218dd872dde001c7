"""Pure parts of the link types: libbpf's section names for them, the link_create attribute
layout, and pybpftrace's choice of one program on many uprobes (with a world of its own)."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import pytest

from ebpfpy.attach.provider import ProbeContext
from ebpfpy.bpftrace.emit import Env, compile_script
from ebpfpy.bpftrace.emit.world import SystemWorld
from ebpfpy.bpftrace.parser import parse
from ebpfpy.elf.sections import classify
from ebpfpy.sys.consts import AttachType, ProgFlag, ProgType
from ebpfpy.sys.layouts import LINK_CREATE

UM = AttachType.TRACE_UPROBE_MULTI


@pytest.mark.parametrize("section,ptype,attach,probe,target,flags", [
    ("uprobe.multi//bin/bash:s*", ProgType.KPROBE, UM, "uprobe:/bin/bash:s*", None, 0),
    ("uretprobe.multi//bin/bash:s*", ProgType.KPROBE, UM, "uretprobe:/bin/bash:s*", None, 0),
    ("uprobe.multi.s//bin/bash:sh_*", ProgType.KPROBE, UM, "uprobe:/bin/bash:sh_*", None, ProgFlag.SLEEPABLE),
    ("uretprobe.multi.s/libc:malloc", ProgType.KPROBE, UM, "uretprobe:libc:malloc", None, ProgFlag.SLEEPABLE),
    ("uprobe.multi", ProgType.KPROBE, UM, None, None, 0),
    ("uprobe.s//bin/bash:readline", ProgType.KPROBE, 0, "uprobe:/bin/bash:readline", None, ProgFlag.SLEEPABLE),
    ("uprobe//bin/bash:readline", ProgType.KPROBE, 0, "uprobe:/bin/bash:readline", None, 0),
    ("xdp", ProgType.XDP, AttachType.XDP, None, "iface", 0),
    ("xdp.frags", ProgType.XDP, AttachType.XDP, None, "iface", ProgFlag.XDP_HAS_FRAGS),
    ("xdp/devmap", ProgType.XDP, AttachType.XDP_DEVMAP, None, None, 0),
    ("xdp/cpumap", ProgType.XDP, AttachType.XDP_CPUMAP, None, None, 0),
    ("tcx/ingress", ProgType.SCHED_CLS, AttachType.TCX_INGRESS, None, "iface", 0),
    ("tcx/egress", ProgType.SCHED_CLS, AttachType.TCX_EGRESS, None, "iface", 0),
    ("tc/ingress", ProgType.SCHED_CLS, AttachType.TCX_INGRESS, None, "iface", 0),
    ("tc/egress", ProgType.SCHED_CLS, AttachType.TCX_EGRESS, None, "iface", 0),
    ("tc", ProgType.SCHED_CLS, 0, None, None, 0),
    ("netkit/primary", ProgType.SCHED_CLS, AttachType.NETKIT_PRIMARY, None, "iface", 0),
    ("netkit/peer", ProgType.SCHED_CLS, AttachType.NETKIT_PEER, None, "iface", 0),
    ("cgroup_skb/ingress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS, None, "cgroup", 0),
    ("cgroup_skb/egress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_EGRESS, None, "cgroup", 0),
    ("cgroup/skb", ProgType.CGROUP_SKB, 0, None, None, 0),
    ("cgroup/sock_create", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE, None, "cgroup", 0),
    ("cgroup/sock_release", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_RELEASE, None, "cgroup", 0),
    ("cgroup/sock", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE, None, "cgroup", 0),
    ("cgroup/post_bind4", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET4_POST_BIND, None, "cgroup", 0),
    ("cgroup/connect4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT, None, "cgroup", 0),
    ("cgroup/sendmsg_unix", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UNIX_SENDMSG, None, "cgroup", 0),
    ("cgroup/sysctl", ProgType.CGROUP_SYSCTL, AttachType.CGROUP_SYSCTL, None, "cgroup", 0),
    ("cgroup/getsockopt", ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_GETSOCKOPT, None, "cgroup", 0),
    ("cgroup/setsockopt", ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_SETSOCKOPT, None, "cgroup", 0),
    ("cgroup/dev", ProgType.CGROUP_DEVICE, AttachType.CGROUP_DEVICE, None, "cgroup", 0),
    ("sockops", ProgType.SOCK_OPS, AttachType.CGROUP_SOCK_OPS, None, "cgroup", 0),
    ("sk_lookup", ProgType.SK_LOOKUP, AttachType.SK_LOOKUP, None, "netns", 0),
    ("netfilter", ProgType.NETFILTER, AttachType.NETFILTER, None, None, 0),
])
def test_link_sections_classify_like_libbpf(section, ptype, attach, probe, target, flags):
    k = classify(section)
    assert (k.prog_type, k.attach_type, k.probe, k.link_target, k.prog_flags) == \
        (ptype, int(attach), probe, target, int(flags))


@pytest.mark.parametrize("section", ["tcx", "tcx/sideways", "xdp.frag", "cgroup/sysctlx", "uprobe.multix/a:b",
                                     "cgroup_skb", "netfilter/ipv4", "sk_lookup/x", "sk_lookupx"])
def test_near_misses_are_not_sections(section):
    assert classify(section) is None


def test_uprobe_multi_attribute_layout():
    """Offsets of union bpf_attr's link_create.uprobe_multi (include/uapi/linux/bpf.h, 6.9+);
    tests/kernel/test_links.py checks them against the running kernel's BTF."""
    buf, size = LINK_CREATE.pack(prog_fd=3, attach_type=int(UM), uprobe_multi_path=0x1000,
                                 uprobe_multi_offsets=0x2000, uprobe_multi_cnt=4, uprobe_multi_flags=1)
    assert size == 56  # up to flags: a pid of 0 (every process) is left out
    assert struct.unpack_from("<IiII QQQQ II", buf, 0) == (3, 0, int(UM), 0, 0x1000, 0x2000, 0, 0, 4, 1)
    _, size = LINK_CREATE.pack(prog_fd=3, uprobe_multi_pid=77)
    assert size == 60
    buf, size = LINK_CREATE.pack(prog_fd=3, target_ifindex=2, attach_type=int(AttachType.TCX_EGRESS),
                                 relative_fd=9, expected_revision=5)
    assert size == 32 and struct.unpack_from("<IIII IxxxxQ", buf, 0) == (3, 2, 47, 0, 9, 5)


def test_netfilter_attribute_layout():
    """link_create.netfilter {pf, hooknum, priority (signed), flags} at 16 (6.4+);
    tests/kernel/test_net_links_more.py checks the offsets against the running kernel's BTF."""
    buf, size = LINK_CREATE.pack(prog_fd=3, attach_type=int(AttachType.NETFILTER), netfilter_pf=10,
                                 netfilter_hooknum=3, netfilter_priority=-128, netfilter_flags=1)
    assert size == 32
    assert struct.unpack_from("<IiII IIiI", buf, 0) == (3, 0, 45, 0, 10, 3, -128, 1)
    _, size = LINK_CREATE.pack(prog_fd=3, attach_type=int(AttachType.NETFILTER), netfilter_pf=2,
                               netfilter_hooknum=1)
    assert size == 24  # a priority and flags of 0 are left out: the kernel reads them as 0


def test_netfilter_names():
    from ebpfpy.links import _NF_HOOKS, _NF_PROTOS, _nf_value
    from ebpfpy.sys.consts import NfHook, NfProto

    for text, want in (("ipv4", 2), ("IPV6", 10), ("NFPROTO_IPV6", 10), ("ip6", 10), (NfProto.IPV4, 2), (10, 10)):
        assert _nf_value(_NF_PROTOS, NfProto, text, "family") == want, text
    for text, want in (("input", 1), ("local_in", 1), ("NF_INET_LOCAL_OUT", 3), ("pre_routing", 0),
                       ("postrouting", 4), ("forward", 2), (NfHook.LOCAL_IN, 1), (4, 4)):
        assert _nf_value(_NF_HOOKS, NfHook, text, "hook") == want, text
    with pytest.raises(ValueError, match="unknown netfilter hook 'ingress'"):
        _nf_value(_NF_HOOKS, NfHook, "ingress", "hook")


# -- pybpftrace: one program, loaded for uprobe_multi, on all of a shared group's targets

@dataclass(frozen=True)
class FakeTarget:
    probe: str


class MultiProvider:
    """uprobe targets of made-up names; one program for several of them is a multi program."""

    def __init__(self, kind: str, multi: bool = True):
        self.kind = kind
        self.multi = multi

    def expand(self, rest: str, pid: int = -1) -> list:
        """``f*`` matches fa, fb and fc; any other name itself."""
        binary, _, name = rest.partition(":")
        names = [name[:-1] + c for c in "abc"] if name.endswith("*") else [name]
        return [FakeTarget(f"{self.kind}:{binary}:{n}") for n in names]

    def context(self, target) -> ProbeContext:
        return ProbeContext(ProgType.KPROBE, "pt_regs", retval=self.kind == "uretprobe", space="user")

    def multi_context(self, targets):
        if not self.multi or len(targets) < 2:
            return None
        return ProbeContext(ProgType.KPROBE, "pt_regs", retval=self.kind == "uretprobe", space="user",
                            expected_attach_type=UM)


class MultiWorld(SystemWorld):
    def __init__(self, multi: bool = True):
        self.providers = {kind: MultiProvider(kind, multi) for kind in ("uprobe", "uretprobe")}

    def possible_cpus(self):
        return [0, 1]

    def provider(self, spec):
        kind, _, rest = spec.partition(":")
        if kind in self.providers:
            return self.providers[kind], rest
        return super().provider(spec)


def compile_in(world, src: str):
    return compile_script(parse(src), Env(source=src, world=world))


def test_a_shared_uprobe_group_is_one_multi_program():
    script = compile_in(MultiWorld(), "uprobe:/bin/x:f* { @ = count(); }")
    [plan] = script.probes
    assert plan.expected_attach_type == UM
    assert [t.probe for t in plan.targets] == ["uprobe:/bin/x:fa", "uprobe:/bin/x:fb", "uprobe:/bin/x:fc"]
    assert plan.covers == tuple(t.probe for t in plan.targets)
    assert script.probe_count == 3


def test_probe_builtin_keeps_one_program_per_target():
    """``probe`` is patched into each target's copy: no multi program then (as bpftrace expands)."""
    script = compile_in(MultiWorld(), "uprobe:/bin/x:f* { @[probe] = count(); }")
    assert [p.probe for p in script.probes] == ["uprobe:/bin/x:fa", "uprobe:/bin/x:fb", "uprobe:/bin/x:fc"]
    assert all(p.expected_attach_type is None and not p.targets for p in script.probes)


def test_no_multi_without_the_kernel_or_across_kinds():
    script = compile_in(MultiWorld(multi=False), "uprobe:/bin/x:f* { @ = count(); }")
    assert len(script.probes) == 3 and not any(p.targets for p in script.probes)
    # uprobe and uretprobe targets may share code, but not one link: per target then
    script = compile_in(MultiWorld(), "uprobe:/bin/x:a, uretprobe:/bin/x:b { @ = count(); }")
    assert len(script.probes) == 2 and not any(p.targets for p in script.probes)


def test_mprog_placement():
    """before/after for tcx and netkit links: link_create flags and relative fd (bpf_mprog)."""
    from ebpfpy.links import Link, _placement
    from ebpfpy.sys.consts import BPF_F_AFTER, BPF_F_BEFORE, BPF_F_LINK
    from ebpfpy.sys.fd import FD

    assert _placement(None, None) == (0, 0, "")
    assert _placement(True, None) == (BPF_F_BEFORE, 0, " (first)")
    assert _placement(None, True) == (BPF_F_AFTER, 0, " (last)")
    assert _placement(7, None) == (BPF_F_BEFORE, 7, " (before prog fd 7)")

    class Prog:
        fd = 9
    assert _placement(None, Prog()) == (BPF_F_AFTER, 9, " (after prog fd 9)")
    link = Link(FD(os.dup(0)))
    with link:
        assert _placement(link, None) == (BPF_F_BEFORE | BPF_F_LINK, link.fd, f" (before link fd {link.fd})")
    for before, after in ((True, True), (False, None)):
        with pytest.raises(ValueError):
            _placement(before, after)


def test_netkit_link_info_layout():
    """bpf_link_info.netkit (and .tcx): {ifindex, attach_type} at 16."""
    from ebpfpy.sys.consts import LinkType
    from ebpfpy.sys.layouts import LINK_INFO_DETAILS

    raw = struct.pack("<III4xII", 13, 5, 9, 3, int(AttachType.NETKIT_PEER))
    assert LINK_INFO_DETAILS[LinkType.NETKIT].unpack_all(raw) == {"ifindex": 3, "attach_type": 55}
    assert LINK_INFO_DETAILS[LinkType.TCX] is LINK_INFO_DETAILS[LinkType.NETKIT]
