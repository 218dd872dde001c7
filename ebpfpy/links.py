"""``Link``: an attachment that ends when its owner closes it.

Two kinds exist. A *bpf link* (BPF_LINK_CREATE, BPF_RAW_TRACEPOINT_OPEN)
is a kernel object of its own; a *perf-event attachment* (the pre-5.15
``PERF_EVENT_IOC_SET_BPF``) lives as long as the perf event fd. ``Link``
hides the difference: it owns whatever fds hold the attachment, and
``close()`` releases them, which detaches the program. fd-based forms mean
a crashed process never leaves a probe behind.

BPF_LINK_CREATE targets here: perf events, tracing (BTF) targets, iterators (read through
BPF_ITER_CREATE), uprobe_multi (many uprobes of one binary in one link), kprobe_multi (many
kernel functions in one link), XDP, tcx and netkit on a network interface, cgroup hooks on a
cgroup v2 directory, netfilter hooks (no target: the caller's network namespace) and
sk_lookup (or flow dissector) programs on a network namespace.
"""
from __future__ import annotations

import errno as E
import os
import struct
from collections.abc import Sequence

from ebpfpy.sys import bpf, perf
from ebpfpy.sys.consts import (
    BPF_F_AFTER,
    BPF_F_BEFORE,
    BPF_F_KPROBE_MULTI_RETURN,
    BPF_F_LINK,
    BPF_F_NETFILTER_IP_DEFRAG,
    BPF_F_UPROBE_MULTI_RETURN,
    AttachType,
    NfHook,
    NfProto,
    XdpFlag,
    lookup,
)
from ebpfpy.sys.errors import ENOTSUPP, BPFError
from ebpfpy.sys.fd import FD, fd_number

_NO_PERF_LINK = (E.EINVAL, E.EOPNOTSUPP, ENOTSUPP)


class Link:
    """Owns a link fd and/or a perf event fd; closing detaches."""

    def __init__(self, fd: FD | None = None, *, perf_fd: FD | None = None,
                 kind: str = "link", prog=None, description: str = "") -> None:
        if fd is None and perf_fd is None:
            raise ValueError("a Link needs a link fd or a perf event fd")
        self._fd = fd
        self._perf_fd = perf_fd
        self.kind = kind  # "link" | "perf_event" (ioctl attach) | "perf_link"
        self.prog = prog  # kept so the program outlives its attachment in this process
        self.description = description

    @classmethod
    def from_id(cls, link_id: int) -> Link:
        return cls(bpf.link_get_fd_by_id(link_id))

    @classmethod
    def from_pin(cls, path: str) -> Link:
        return cls(bpf.obj_get(path))

    @property
    def fd(self) -> int:
        """The link fd, or for an ioctl attachment the perf event fd."""
        owner = self._fd or self._perf_fd
        return owner.fd

    def fileno(self) -> int:
        return self.fd

    @property
    def perf_fd(self) -> int | None:
        return self._perf_fd.fd if self._perf_fd is not None else None

    @property
    def is_bpf_link(self) -> bool:
        return self._fd is not None

    @property
    def closed(self) -> bool:
        return all(f is None or f.closed for f in (self._fd, self._perf_fd))

    def info(self) -> bpf.LinkInfo:
        if self._fd is None:
            raise TypeError("a perf-event attachment made with PERF_EVENT_IOC_SET_BPF has no link info")
        return bpf.link_info(self._fd)

    def pin(self, path: str) -> None:
        if self._fd is None:
            raise TypeError("only bpf links can be pinned")
        bpf.obj_pin(self._fd, path)

    def detach(self) -> None:
        """Detach now, even if the link is pinned elsewhere (BPF_LINK_DETACH)."""
        if self._fd is None:
            self.close()
        else:
            bpf.link_detach(self._fd)

    def close(self) -> None:
        for owner in (self._fd, self._perf_fd):
            if owner is not None:
                if owner is self._perf_fd and not owner.closed and self.kind == "perf_event":
                    try:
                        perf.disable(owner)
                    except BPFError:
                        pass
                owner.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fd}"
        return f"<Link {self.kind} {self.description} {state}>"


def _perf_link_supported() -> bool:
    from ebpfpy import features

    return features.has("perf_link")


def attach_perf_event(prog, perf_fd: FD, *, cookie: int = 0, description: str = "",
                      use_link: bool | None = None) -> Link:
    """Attach ``prog`` to an open perf event; the returned Link owns ``perf_fd``.

    Prefers BPF_LINK_CREATE (attach type BPF_PERF_EVENT, kernel 5.15+), which
    also carries a bpf_cookie; falls back to PERF_EVENT_IOC_SET_BPF + ENABLE.
    ``use_link`` forces one way (True: link or error, False: ioctl).
    """
    if not isinstance(perf_fd, FD):
        raise TypeError("attach_perf_event takes ownership of perf_fd: pass an FD")
    forced = use_link is True
    if use_link is None:
        use_link = _perf_link_supported()
    if use_link:
        try:
            link_fd = bpf.link_create(prog, perf_fd, AttachType.PERF_EVENT, bpf_cookie=cookie)
        except BPFError as exc:
            if forced or exc.errno not in _NO_PERF_LINK:
                raise
        else:
            return _enabled(Link(link_fd, perf_fd=perf_fd, kind="perf_link", prog=prog, description=description))
    if cookie:
        raise BPFError(E.EOPNOTSUPP, "PERF_EVENT_IOC_SET_BPF", detail="bpf_cookie needs BPF_LINK_CREATE")
    perf.set_bpf(perf_fd, fd_number(prog))
    return _enabled(Link(None, perf_fd=perf_fd, kind="perf_event", prog=prog, description=description))


def _enabled(link: Link) -> Link:
    """Enable the perf event under ``link``; on failure close the link (detaching) and re-raise."""
    try:
        perf.enable(link._perf_fd)
    except BPFError:
        link.close()
        raise
    return link


def attach_raw_tracepoint(prog, name: str) -> Link:
    """Attach a raw_tracepoint program to tracepoint ``name`` (e.g. "sys_enter")."""
    return Link(bpf.raw_tracepoint_open(name, prog), kind="link", prog=prog,
                description=f"raw_tracepoint:{name}")


def attach_tracing(prog, *, cookie: int = 0) -> Link:
    """Attach an fentry/fexit/fmod_ret/tp_btf program to the BTF target it was loaded for."""
    if cookie:
        return Link(bpf.link_create(prog, 0, prog.expected_attach_type, tracing_cookie=cookie),
                    prog=prog, description="tracing")
    return Link(bpf.raw_tracepoint_open(None, prog), prog=prog, description="tracing")


def _named(exc: BPFError, what: str) -> BPFError:
    exc.detail = f"{what}; {exc.detail}" if exc.detail else what
    return exc


def attach_uprobe_multi(prog, path: str, offsets: Sequence[int], *, retprobe: bool = False, pid: int = -1,
                        cookies: Sequence[int] | None = None, ref_ctr_offsets: Sequence[int] | None = None,
                        description: str = "") -> Link:
    """One uprobe_multi link (6.6+) for uprobes (``retprobe``: uretprobes) at file ``offsets`` of
    ``path``, only in process ``pid`` when given. ``prog`` must have been loaded as a kprobe program
    with expected_attach_type BPF_TRACE_UPROBE_MULTI (the kernel refuses others, and refuses such a
    program on a perf event). ``cookies`` (one per offset) are what bpf_get_attach_cookie() returns.
    Symbol names and wildcards: ``ebpfpy.attach.uprobe.attach_uprobe_multi``."""
    path = os.path.abspath(path)
    what = description or f"{'uretprobe' if retprobe else 'uprobe'}.multi:{path} ({len(offsets)} offsets)"
    try:
        fd = bpf.link_create_uprobe_multi(prog, path, list(offsets), ref_ctr_offsets=ref_ctr_offsets,
                                          cookies=cookies, flags=BPF_F_UPROBE_MULTI_RETURN if retprobe else 0,
                                          pid=max(pid, 0))
    except BPFError as exc:
        raise _named(exc, what) from None
    return Link(fd, prog=prog, description=what)


def attach_iter(prog, *, map=None, tid: int = 0, pid: int = 0, pid_fd: int = 0) -> Link:
    """An iterator link (BPF_TRACE_ITER) for a program loaded with attach type BPF_TRACE_ITER and the
    BTF id of ``bpf_iter_<target>``: ``map`` for ``bpf_map_elem`` iterators (a Map or an fd), ``tid``,
    ``pid`` or ``pid_fd`` to walk one thread or process only (task iterators, 6.1+); by default
    every object. Read its output with ``read_iter(link)`` (each read runs the program anew)."""
    if map is not None:
        info = struct.pack("<I", fd_number(map))
    elif tid or pid or pid_fd:
        info = struct.pack("<III", tid, pid, pid_fd)
    else:
        info = b""
    what = "iter" + (f" map fd {fd_number(map)}" if map is not None else "") + \
        "".join(f" {k}={v}" for k, v in (("tid", tid), ("pid", pid), ("pid_fd", pid_fd)) if v)
    try:
        fd = bpf.link_create_iter(prog, info)
    except BPFError as exc:
        raise _named(exc, what) from None
    return Link(fd, prog=prog, description=what)


def read_iter(link, chunk: int = 1 << 16) -> bytes:
    """Everything one pass of an iterator link prints (BPF_ITER_CREATE, read to the end)."""
    with bpf.iter_create(link) as fd:
        parts = []
        while data := os.read(fd.fd, chunk):
            parts.append(data)
    return b"".join(parts)


def attach_kprobe_multi(prog, symbols: Sequence[str] = (), *, addresses: Sequence[int] = (),
                        retprobe: bool = False, cookies: Sequence[int] | None = None,
                        description: str = "") -> Link:
    """One kprobe_multi link (5.18+, a kernel with fprobe) for kprobes (``retprobe``: kretprobes) on
    every kernel function named in ``symbols`` (or at ``addresses``). ``prog`` must have been loaded
    as a kprobe program with expected_attach_type BPF_TRACE_KPROBE_MULTI. Patterns:
    ``ebpfpy.attach.kprobe.kprobe_multi_symbols``."""
    what = description or f"{'kretprobe' if retprobe else 'kprobe'}.multi ({len(symbols) or len(addresses)} functions)"
    try:
        fd = bpf.link_create_kprobe_multi(prog, syms=list(symbols), addrs=list(addresses), cookies=cookies,
                                          flags=BPF_F_KPROBE_MULTI_RETURN if retprobe else 0)
    except BPFError as exc:
        raise _named(exc, what) from None
    return Link(fd, prog=prog, description=what)


def ifindex(iface) -> int:
    """The index of a network interface given by name (``"lo"``) or index (``1``, ``"1"``)."""
    import socket

    if isinstance(iface, int):
        return iface
    text = str(iface)
    if text.isdigit():
        if int(text) > 0x7FFF_FFFF:  # the kernel's ifindex is an int: no such interface can exist
            raise OSError(E.ENODEV, f"no network interface with index {text}")
        return int(text)
    try:
        return socket.if_nametoindex(text)
    except OSError:
        raise OSError(E.ENODEV, f"no network interface named {text!r}") from None


_XDP_MODES = {"skb": XdpFlag.SKB_MODE, "generic": XdpFlag.SKB_MODE, "drv": XdpFlag.DRV_MODE,
              "native": XdpFlag.DRV_MODE, "hw": XdpFlag.HW_MODE, "offload": XdpFlag.HW_MODE}


def attach_xdp(prog, iface, flags=0) -> Link:
    """Attach an XDP program to a network interface (name or index) with a BPF link (5.9+):
    the program stays attached while the link is open. ``flags``: ``XdpFlag`` bits, or a mode
    name (``"skb"``/``"generic"``, ``"drv"``/``"native"``, ``"hw"``); none lets the kernel pick
    the driver's mode where the driver has one, else the generic mode."""
    if isinstance(flags, str):
        try:
            flags = _XDP_MODES[flags.lower()]
        except KeyError:
            raise ValueError(f"unknown XDP mode {flags!r} (known: {', '.join(_XDP_MODES)})") from None
    index = ifindex(iface)
    what = f"xdp:{iface}"
    try:
        fd = bpf.link_create(prog, index, AttachType.XDP, flags=int(flags))
    except BPFError as exc:
        raise _named(exc, what) from None
    return Link(fd, prog=prog, description=what)


_TCX = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}


def _placement(before, after) -> tuple[int, int, str]:
    """link_create flags and relative fd placing a tcx or netkit program among those on the hook
    (bpf_mprog): ``before``/``after`` a program (``Program``, ``ObjProgram`` or an fd) or a
    ``Link`` (BPF_F_LINK: a program may be on a hook through several links, a link names one),
    or True for the first/last place. Neither: the last place, as the kernel does by default.
    Also the words for the description."""
    if before is not None and after is not None:
        raise ValueError("give before or after, not both")
    which, flag = ("before", BPF_F_BEFORE) if before is not None else ("after", BPF_F_AFTER)
    rel = before if before is not None else after
    if rel is None:
        return 0, 0, ""
    if rel is True:
        return flag, 0, f" ({'first' if which == 'before' else 'last'})"
    if rel is False:
        raise ValueError(f"{which}= takes a program, a link or True")
    if isinstance(rel, Link):
        return flag | BPF_F_LINK, rel.fd, f" ({which} link fd {rel.fd})"
    return flag, fd_number(rel), f" ({which} prog fd {fd_number(rel)})"


def _attach_mprog(prog, index: int, attach_type, what: str, refusals: dict, before, after,
                  expected_revision: int) -> Link:
    """BPF_LINK_CREATE on an ifindex for the hooks the kernel keeps as a program list (tcx,
    netkit), placed by ``before``/``after``; a refusal says what its errno means there."""
    flags, relative, where = _placement(before, after)
    try:
        fd = bpf.link_create(prog, index, attach_type, flags=flags, relative_fd=relative,
                             expected_revision=expected_revision)
    except BPFError as exc:
        why = refusals.get(exc.errno)
        raise _named(exc, f"{what} ({why})" if why else what) from None
    return Link(fd, prog=prog, description=what + where)


# what the kernel's program lists answer (kernel/bpf/mprog.c), for tcx and netkit alike
_MPROG_REFUSALS = {
    E.ESTALE: "the hook's programs changed since expected_revision",
    E.EEXIST: "the program is already on this hook",
    E.ENOENT: "the program or link named by before/after is not on this hook",
}


def attach_tcx(prog, iface, direction: str = "ingress", *, before=None, after=None,
               expected_revision: int = 0) -> Link:
    """Attach a SCHED_CLS program to a network interface's tcx hook (6.6+), ``direction``
    ``"ingress"`` or ``"egress"``, after the programs already there, or ``before``/``after`` a
    program or link on it (True: first/last). With ``expected_revision`` the kernel refuses
    (ESTALE) if the hook's program list changed since that revision."""
    try:
        attach_type = _TCX[direction]
    except KeyError:
        raise ValueError(f"tcx direction must be 'ingress' or 'egress', not {direction!r}") from None
    return _attach_mprog(prog, ifindex(iface), attach_type, f"tcx/{direction}:{iface}", _MPROG_REFUSALS,
                         before, after, expected_revision)


_NETKIT = {"primary": AttachType.NETKIT_PRIMARY, "peer": AttachType.NETKIT_PEER}

# what the kernel's netkit_dev_fetch answers (drivers/net/netkit.c): the errnos alone do not say
_NETKIT_REFUSALS = {
    **_MPROG_REFUSALS,
    E.EACCES: "that is a netkit peer: programs for either side attach on the primary's ifindex",
    E.ENXIO: "not a netkit device",
    E.ENODEV: "no such device in this network namespace, or the pair has no peer",
    E.EINVAL: "a kernel without netkit (CONFIG_NETKIT, 6.7+), or a program that is not sched_cls",
}


def attach_netkit(prog, iface, side: str = "primary", *, before=None, after=None,
                  expected_revision: int = 0) -> Link:
    """Attach a SCHED_CLS program to a netkit device pair (6.7+), as libbpf's
    ``bpf_program__attach_netkit``. ``iface`` is always the primary device (name or index, in the
    calling thread's network namespace), even for the peer's hook: the kernel takes programs for
    either side only through the primary, so a container holding the peer cannot change them.
    ``side`` ``"primary"`` runs the program on what the primary transmits (towards the peer),
    ``"peer"`` on what the peer transmits. The program
    returns ``NETKIT_NEXT`` (the next program, then the device's policy), ``NETKIT_PASS``,
    ``NETKIT_DROP`` or ``NETKIT_REDIRECT``. ``before``/``after`` (a program, a link, or True:
    first/last) and ``expected_revision`` as for tcx."""
    try:
        attach_type = _NETKIT[side]
    except KeyError:
        raise ValueError(f"netkit side must be 'primary' or 'peer', not {side!r}") from None
    return _attach_mprog(prog, ifindex(iface), attach_type, f"netkit/{side}:{iface}", _NETKIT_REFUSALS,
                         before, after, expected_revision)


# libbpf's names for the cgroup hooks (the part after ``cgroup/`` or ``cgroup_skb/`` in a section name)
CGROUP_ATTACH_TYPES: dict[str, AttachType] = {
    "ingress": AttachType.CGROUP_INET_INGRESS, "egress": AttachType.CGROUP_INET_EGRESS,
    "sock_create": AttachType.CGROUP_INET_SOCK_CREATE, "sock": AttachType.CGROUP_INET_SOCK_CREATE,
    "sock_release": AttachType.CGROUP_INET_SOCK_RELEASE,
    "post_bind4": AttachType.CGROUP_INET4_POST_BIND, "post_bind6": AttachType.CGROUP_INET6_POST_BIND,
    "bind4": AttachType.CGROUP_INET4_BIND, "bind6": AttachType.CGROUP_INET6_BIND,
    "connect4": AttachType.CGROUP_INET4_CONNECT, "connect6": AttachType.CGROUP_INET6_CONNECT,
    "connect_unix": AttachType.CGROUP_UNIX_CONNECT,
    "sendmsg4": AttachType.CGROUP_UDP4_SENDMSG, "sendmsg6": AttachType.CGROUP_UDP6_SENDMSG,
    "sendmsg_unix": AttachType.CGROUP_UNIX_SENDMSG,
    "recvmsg4": AttachType.CGROUP_UDP4_RECVMSG, "recvmsg6": AttachType.CGROUP_UDP6_RECVMSG,
    "recvmsg_unix": AttachType.CGROUP_UNIX_RECVMSG,
    "getpeername4": AttachType.CGROUP_INET4_GETPEERNAME, "getpeername6": AttachType.CGROUP_INET6_GETPEERNAME,
    "getpeername_unix": AttachType.CGROUP_UNIX_GETPEERNAME,
    "getsockname4": AttachType.CGROUP_INET4_GETSOCKNAME, "getsockname6": AttachType.CGROUP_INET6_GETSOCKNAME,
    "getsockname_unix": AttachType.CGROUP_UNIX_GETSOCKNAME,
    "sysctl": AttachType.CGROUP_SYSCTL, "getsockopt": AttachType.CGROUP_GETSOCKOPT,
    "setsockopt": AttachType.CGROUP_SETSOCKOPT, "dev": AttachType.CGROUP_DEVICE,
    "device": AttachType.CGROUP_DEVICE, "sockops": AttachType.CGROUP_SOCK_OPS,
}


def cgroup_attach_type(value) -> AttachType:
    """An attach type from a member, an int, a uapi name (``"cgroup_inet_egress"``) or libbpf's
    short name (``"egress"``, ``"sock_create"``, ``"sysctl"``, ``"dev"``)."""
    if isinstance(value, str) and value.lower() in CGROUP_ATTACH_TYPES:
        return CGROUP_ATTACH_TYPES[value.lower()]
    return lookup(AttachType, value)


def cgroup_dir(path: str) -> str:
    """A cgroup v2 directory: an absolute path as given, a relative one under the cgroup2 mount."""
    if os.path.isabs(path):
        return path
    from ebpfpy.bpffs import find_cgroup2

    root = find_cgroup2()
    if root is None:
        raise OSError(E.ENOENT, f"no cgroup v2 hierarchy is mounted (for cgroup {path!r})")
    return os.path.join(root, path)


def attach_cgroup(prog, cgroup, attach_type=None) -> Link:
    """Attach a cgroup program (skb, sock, sock_addr, sockopt, sysctl, device, sock_ops) to a
    cgroup v2 directory (a path, relative ones under the cgroup2 mount, or an open directory fd)
    with a BPF link (5.7+); it applies to the processes in that cgroup and its descendants.
    ``attach_type`` defaults to the one the program was loaded for."""
    if attach_type is None:
        attach_type = getattr(prog, "expected_attach_type", None)
        if attach_type is None:
            raise ValueError("attach_cgroup needs an attach_type (the program was loaded without one)")
    attach_type = cgroup_attach_type(attach_type)
    if isinstance(cgroup, (str, os.PathLike)):
        path = cgroup_dir(os.fspath(cgroup))
        dir_fd = FD(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    else:
        path, dir_fd = str(fd_number(cgroup)), None
    what = f"cgroup:{path}:{attach_type.name.lower()}"
    try:
        fd = bpf.link_create(prog, dir_fd if dir_fd is not None else cgroup, attach_type)
    except BPFError as exc:
        raise _named(exc, what) from None
    finally:
        if dir_fd is not None:
            dir_fd.close()  # the link holds the cgroup
    return Link(fd, prog=prog, description=what)


# netfilter: the names nft gives the families and hooks, besides the uapi's (NFPROTO_IPV4, NF_INET_LOCAL_IN)
_NF_PROTOS = {"ipv4": NfProto.IPV4, "ip": NfProto.IPV4, "inet4": NfProto.IPV4, "ipv6": NfProto.IPV6,
              "ip6": NfProto.IPV6, "inet6": NfProto.IPV6}
_NF_HOOKS = {"prerouting": NfHook.PRE_ROUTING, "input": NfHook.LOCAL_IN, "forward": NfHook.FORWARD,
             "output": NfHook.LOCAL_OUT, "postrouting": NfHook.POST_ROUTING}


# what the kernel's netfilter link checks mean (net/netfilter/nf_bpf_link.c)
_NF_REFUSALS = {
    E.EAFNOSUPPORT: "netfilter links take the ipv4 and ipv6 families only",
    E.EPROTO: "the hook must be one of prerouting, input, forward, output, postrouting",
    E.ERANGE: "the priority cannot be INT_MIN or INT_MAX, and with defrag must be above -400",
    E.EOPNOTSUPP: "unknown flags, or a kernel without CONFIG_NETFILTER_BPF_LINK",
}


def _nf_value(table: dict, enum_type, value, what: str) -> int:
    """A family or hook number from a member, an int, nft's name (``"input"``) or the uapi's
    (``"local_in"``, ``"NF_INET_LOCAL_IN"``): people come with either vocabulary. Ints pass
    unchecked, so the kernel's own refusal (and its explanation) stays reachable."""
    if isinstance(value, str):
        key = value.lower().replace("-", "_")
        if key.replace("_", "") in table:
            return table[key.replace("_", "")]
        try:
            return enum_type[key.upper().removeprefix("NFPROTO_").removeprefix("NF_INET_")]
        except KeyError:
            raise ValueError(f"unknown netfilter {what} {value!r} (known: {', '.join(table)})") from None
    return int(value)


def attach_netfilter(prog, pf=NfProto.IPV4, hook=NfHook.LOCAL_IN, *, priority: int = 0, flags: int = 0,
                     defrag: bool = False) -> Link:
    """Attach a NETFILTER program (loaded with expected_attach_type BPF_NETFILTER) as a hook
    function of the calling thread's network namespace (6.4+), as libbpf's
    ``bpf_program__attach_netfilter``: ``pf`` an ``NfProto`` (``"ipv4"``, ``"ipv6"``), ``hook`` an
    ``NfHook`` (``"prerouting"``, ``"input"``, ``"forward"``, ``"output"``, ``"postrouting"``, or
    ``"local_in"``...), ``priority`` its place among the hook's functions (lower runs first;
    iptables' filter table is at 0, conntrack at -200; the kernel refuses INT_MIN and INT_MAX).
    ``defrag`` (or ``flags`` BPF_F_NETFILTER_IP_DEFRAG, 6.6+) makes the program see reassembled
    packets, which needs a priority after defragmentation's (-400). The program's verdict is
    NF_ACCEPT or NF_DROP."""
    pf = _nf_value(_NF_PROTOS, NfProto, pf, "family")
    hook = _nf_value(_NF_HOOKS, NfHook, hook, "hook")
    if defrag:
        flags |= BPF_F_NETFILTER_IP_DEFRAG
    try:
        family = NfProto(pf).name.lower()
    except ValueError:
        family = str(pf)
    try:
        hook_name = NfHook(hook).name.lower()
    except ValueError:
        hook_name = str(hook)
    what = f"netfilter:{family}:{hook_name}:{priority}" + (f":flags={flags:#x}" if flags else "")
    try:
        fd = bpf.link_create_netfilter(prog, pf, hook, priority, flags)
    except BPFError as exc:
        why = _NF_REFUSALS.get(exc.errno)
        raise _named(exc, f"{what} ({why})" if why else what) from None
    return Link(fd, prog=prog, description=what)


def netns_fd(netns) -> tuple[FD | None, str]:
    """An open network namespace (an ``FD`` to close, or None when ``netns`` is the caller's fd)
    and its name for messages. ``netns``: an fd (int or object with ``fileno()``), a path (a
    ``/proc/PID/ns/net`` or ``ip netns``' ``/run/netns/NAME``), a bare name under ``/run/netns``,
    or None for the calling thread's own namespace (``/proc/thread-self/ns/net``: a thread that
    entered another namespace with setns attaches there, which ``/proc/self`` would not do)."""
    if netns is None:
        netns = "/proc/thread-self/ns/net"
    if isinstance(netns, (str, os.PathLike)):
        path = os.fspath(netns)
        if os.sep not in path:
            path = os.path.join("/run/netns", path)
        return FD(os.open(path, os.O_RDONLY | os.O_CLOEXEC)), path
    return None, f"fd {fd_number(netns)}"


def attach_netns(prog, netns=None, attach_type=None) -> Link:
    """Attach an SK_LOOKUP program (or a FLOW_DISSECTOR one) to a network namespace with a
    BPF link (5.9+), as libbpf's ``bpf_program__attach_netns``: ``netns`` a path, an
    ``ip netns`` name, an fd, or None for the calling thread's namespace (see ``netns_fd``).
    The attach type defaults to the one the program was loaded with (BPF_SK_LOOKUP, which the
    kernel requires of sk_lookup programs, or BPF_FLOW_DISSECTOR). sk_lookup programs run in
    order of attachment on every TCP connection request and UDP datagram that looks for a
    listening or unconnected socket, before the socket tables; an SK_PASS verdict with a socket
    chosen by ``bpf_sk_assign`` steers it there."""
    if attach_type is None:
        attach_type = getattr(prog, "expected_attach_type", None)
        if attach_type is None:
            attach_type = AttachType.SK_LOOKUP
    attach_type = lookup(AttachType, attach_type)
    owned, where = netns_fd(netns)
    what = f"{attach_type.name.lower()}:netns {where}"
    try:
        fd = bpf.link_create(prog, owned if owned is not None else netns, attach_type)
    except BPFError as exc:
        raise _named(exc, what) from None
    finally:
        if owned is not None:
            owned.close()  # the link holds the namespace
    return Link(fd, prog=prog, description=what)


def attach_sk_lookup(prog, netns=None) -> Link:
    """An sk_lookup program on a network namespace (``attach_netns`` with BPF_SK_LOOKUP)."""
    return attach_netns(prog, netns, AttachType.SK_LOOKUP)
