"""The attach commands of bpf(): raw tracepoints, BPF_LINK_CREATE in its forms, iterators, detach.

Thin as the rest of the layer: the ``Link`` objects that own these fds live in
``ebpfpy.links``. ``ebpfpy.sys.bpf`` re-exports every name.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence

from ebpfpy.sys.bpf_call import AttrMemory, bpf_call, bpf_call_fd
from ebpfpy.sys.consts import AttachType, Cmd
from ebpfpy.sys.fd import FD, fd_number
from ebpfpy.sys.layouts import ITER_CREATE, LINK_CREATE, LINK_DETACH, RAW_TP


def raw_tracepoint_open(name: str | None, prog_fd) -> FD:
    """Attach to a raw tracepoint (or, with name None, a tracing program's BTF target)."""
    mem = AttrMemory()
    attr, size = RAW_TP.pack(name=mem.cstr(name), prog_fd=fd_number(prog_fd))
    return bpf_call_fd(Cmd.RAW_TRACEPOINT_OPEN, attr, size)


def link_create(prog_fd, target_fd, attach_type: int, *, flags: int = 0, target_btf_id: int = 0,
                bpf_cookie: int = 0, tracing_cookie: int = 0, relative_fd: int = 0,
                expected_revision: int = 0) -> FD:
    """BPF_LINK_CREATE for perf events (``bpf_cookie``), tracing/iter targets, and the
    fd/ifindex targets: cgroups (a cgroup directory fd), XDP, tcx and netkit (an ifindex as
    ``target_fd``; ``relative_fd``/``expected_revision`` place a tcx/netkit program among others)."""
    if bpf_cookie and attach_type != AttachType.PERF_EVENT:
        raise ValueError("bpf_cookie is only for BPF_PERF_EVENT links")
    if attach_type == AttachType.PERF_EVENT:
        extra = {"bpf_cookie": bpf_cookie}
    elif relative_fd or expected_revision:
        extra = {"relative_fd": fd_number(relative_fd), "expected_revision": expected_revision}
    else:
        extra = {"target_btf_id": target_btf_id, "tracing_cookie": tracing_cookie}
    attr, size = LINK_CREATE.pack(
        prog_fd=fd_number(prog_fd), target_fd=fd_number(target_fd) if target_fd is not None else 0,
        attach_type=int(attach_type), flags=flags, **extra,
    )
    return bpf_call_fd(Cmd.LINK_CREATE, attr, size)


def link_create_uprobe_multi(prog_fd, path: str, offsets: Sequence[int], *,
                             ref_ctr_offsets: Sequence[int] | None = None, cookies: Sequence[int] | None = None,
                             flags: int = 0, pid: int = 0) -> FD:
    """BPF_LINK_CREATE with attach type BPF_TRACE_UPROBE_MULTI (6.6+): one link for uprobes at
    every file offset of ``path`` (``flags`` BPF_F_UPROBE_MULTI_RETURN: uretprobes), only in
    process ``pid`` when non-zero (0: every process; passed as given otherwise, so a feature probe
    can send an invalid one). ``ref_ctr_offsets`` and ``cookies`` have one entry per offset."""
    n = len(offsets)
    if not n:
        raise ValueError("uprobe_multi needs at least one offset")
    for name, seq in (("ref_ctr_offsets", ref_ctr_offsets), ("cookies", cookies)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} needs one entry per offset ({len(seq)} != {n})")
    mem = AttrMemory()
    attr, size = LINK_CREATE.pack(
        prog_fd=fd_number(prog_fd), attach_type=int(AttachType.TRACE_UPROBE_MULTI), flags=0,
        uprobe_multi_path=mem.cstr(path), uprobe_multi_offsets=mem.put(struct.pack(f"<{n}Q", *offsets)),
        uprobe_multi_ref_ctr_offsets=mem.put(struct.pack(f"<{n}Q", *ref_ctr_offsets)) if ref_ctr_offsets else 0,
        uprobe_multi_cookies=mem.put(struct.pack(f"<{n}Q", *cookies)) if cookies else 0,
        uprobe_multi_cnt=n, uprobe_multi_flags=flags, uprobe_multi_pid=pid & 0xFFFFFFFF,
    )
    return bpf_call_fd(Cmd.LINK_CREATE, attr, size)


def link_create_iter(prog_fd, iter_info: bytes = b"") -> FD:
    """BPF_LINK_CREATE with attach type BPF_TRACE_ITER: an iterator link; ``iter_info`` is a
    ``union bpf_iter_link_info`` (a map fd for ``bpf_map_elem`` iterators, a tid/pid for task
    iterators), empty for the default (every object)."""
    mem = AttrMemory()
    attr, size = LINK_CREATE.pack(prog_fd=fd_number(prog_fd), target_fd=0, attach_type=int(AttachType.TRACE_ITER),
                                  flags=0, iter_info=mem.put(iter_info), iter_info_len=len(iter_info))
    return bpf_call_fd(Cmd.LINK_CREATE, attr, size)


def iter_create(link_fd) -> FD:
    """BPF_ITER_CREATE: a new read-only fd over an iterator link; each read runs the program."""
    attr, size = ITER_CREATE.pack(link_fd=fd_number(link_fd), flags=0)
    return bpf_call_fd(Cmd.ITER_CREATE, attr, size)


def link_create_kprobe_multi(prog_fd, *, syms: Sequence[str] = (), addrs: Sequence[int] = (),
                             cookies: Sequence[int] | None = None, flags: int = 0) -> FD:
    """BPF_LINK_CREATE with attach type BPF_TRACE_KPROBE_MULTI (5.18+): one link for kprobes
    on every kernel function in ``syms`` (names) or ``addrs`` (addresses), not both;
    ``flags`` BPF_F_KPROBE_MULTI_RETURN: kretprobes. ``cookies``: one per function."""
    n = len(syms) or len(addrs)
    if not n or (syms and addrs):
        raise ValueError("kprobe_multi needs symbols or addresses (one of the two)")
    if cookies is not None and len(cookies) != n:
        raise ValueError(f"cookies needs one entry per function ({len(cookies)} != {n})")
    mem = AttrMemory()
    sym_ptrs = struct.pack(f"<{n}Q", *(mem.cstr(s) for s in syms)) if syms else b""
    attr, size = LINK_CREATE.pack(
        prog_fd=fd_number(prog_fd), attach_type=int(AttachType.TRACE_KPROBE_MULTI), flags=0,
        kprobe_multi_flags=flags, kprobe_multi_cnt=n, kprobe_multi_syms=mem.put(sym_ptrs),
        kprobe_multi_addrs=mem.put(struct.pack(f"<{n}Q", *addrs)) if addrs else 0,
        kprobe_multi_cookies=mem.put(struct.pack(f"<{n}Q", *cookies)) if cookies else 0,
    )
    return bpf_call_fd(Cmd.LINK_CREATE, attr, size)


def link_create_netfilter(prog_fd, pf: int, hooknum: int, priority: int, flags: int = 0) -> FD:
    """BPF_LINK_CREATE with attach type BPF_NETFILTER (6.4+): a netfilter hook function for
    family ``pf`` (NFPROTO_IPV4/IPV6) at hook ``hooknum`` (NF_INET_*) with ``priority`` (signed:
    lower runs first; the kernel refuses INT_MIN and INT_MAX), in the caller's network namespace.
    There is no target fd: the namespace is the calling thread's."""
    attr, size = LINK_CREATE.pack(
        prog_fd=fd_number(prog_fd), attach_type=int(AttachType.NETFILTER), netfilter_pf=pf,
        netfilter_hooknum=hooknum, netfilter_priority=priority, netfilter_flags=flags,
    )
    return bpf_call_fd(Cmd.LINK_CREATE, attr, size)


def link_detach(link_fd) -> None:
    attr, size = LINK_DETACH.pack(link_fd=fd_number(link_fd))
    bpf_call(Cmd.LINK_DETACH, attr, size)

