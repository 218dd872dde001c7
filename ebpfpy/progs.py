"""``Program``: a loaded BPF program owned through its fd.

``Program.load`` takes instructions as ``list[Insn]`` (from ``ebpfpy.isa``)
or raw bytes, and surfaces a rejection as ``BPFError`` with the verifier
log. The log of a successful load is kept when one was asked for
(``log_level``), because verifier statistics are useful while tuning.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ebpfpy.sys import bpf
from ebpfpy.sys.consts import AttachType, ProgType, lookup
from ebpfpy.sys.fd import FD, FdOwner, dup_fd, fd_number

Insns = bytes | bytearray | Iterable[Any]


def encode_insns(insns: Insns) -> bytes:
    """Bytes for ``insns``: bytes pass through; Insn-like objects are encoded."""
    if isinstance(insns, (bytes, bytearray, memoryview)):
        return bytes(insns)
    try:
        from ebpfpy.isa.insn import encode_all
    except ImportError:  # the ISA layer is optional for byte programs
        return b"".join(i.encode() for i in insns)
    return encode_all(insns)


class Program(FdOwner):
    """A loaded program: ``.fd``, ``.close()``, ``.test_run()``, ``.info()``, ``.pin()``."""

    def __init__(self, fd: FD, prog_type, *, name: str = "", verifier_log: str = "",
                 expected_attach_type: int | None = None) -> None:
        self._fd = fd
        try:
            self.prog_type = lookup(ProgType, prog_type)
        except ValueError:
            self.prog_type = prog_type
        self.name = name
        self.verifier_log = verifier_log
        self.expected_attach_type = expected_attach_type

    @classmethod
    def load(
        cls,
        prog_type,
        insns: Insns,
        license: str = "GPL",
        *,
        name: str = "",
        expected_attach_type=None,
        attach_btf_id: int | None = None,
        attach_btf_obj_fd=None,
        attach_prog_fd=None,
        log_level: int = 0,
        log_size: int = 0,
        kern_version: int = 0,
        flags: int = 0,
        prog_btf_fd=None,
        func_info: bytes = b"",
        func_info_rec_size: int = 0,
        line_info: bytes = b"",
        line_info_rec_size: int = 0,
        fd_array: Iterable | None = None,
    ) -> Program:
        """Load a program; ``BPFError`` (with ``.log``) when the verifier rejects it.

        Enum arguments accept members, ints or names ("tracepoint",
        "trace_fentry"). ``fd_array`` holds maps/fds for ``BPF_PSEUDO_MAP_IDX`` loads.
        """
        ptype = lookup(ProgType, prog_type)
        eat = lookup(AttachType, expected_attach_type) if expected_attach_type is not None else None
        fd, log = bpf.prog_load_with_log(
            ptype, encode_insns(insns), license, log_level=log_level, log_size=log_size, name=name,
            expected_attach_type=eat or 0, attach_btf_id=attach_btf_id or 0,
            attach_btf_obj_fd=fd_number(attach_btf_obj_fd) if attach_btf_obj_fd is not None else 0,
            attach_prog_fd=fd_number(attach_prog_fd) if attach_prog_fd is not None else 0,
            prog_btf_fd=fd_number(prog_btf_fd) if prog_btf_fd is not None else 0,
            func_info=func_info, func_info_rec_size=func_info_rec_size,
            line_info=line_info, line_info_rec_size=line_info_rec_size,
            kern_version=kern_version, prog_flags=flags,
            fd_array=[fd_number(f) for f in fd_array] if fd_array else None,
        )
        return cls(fd, ptype, name=name, verifier_log=log, expected_attach_type=eat)

    @classmethod
    def from_fd(cls, fd) -> Program:
        """Wrap an fd: an ``FD`` is taken over, an int is duplicated."""
        owned = fd if isinstance(fd, FD) else dup_fd(fd)
        info = bpf.prog_info(owned, xlated=False)
        return cls(owned, info.type, name=info.name)

    @classmethod
    def from_id(cls, prog_id: int) -> Program:
        return cls.from_fd(bpf.prog_get_fd_by_id(prog_id))

    @classmethod
    def from_pin(cls, path: str) -> Program:
        return cls.from_fd(bpf.obj_get(path))

    def __repr__(self) -> str:
        kind = self.prog_type.name.lower() if isinstance(self.prog_type, ProgType) else self.prog_type
        return f"<Program {kind} {self.name!r} {'closed' if self.closed else f'fd={self.fd}'}>"

    # -- kernel-side views ---------------------------------------------------

    def test_run(self, data_in: bytes = b"", *, ctx_in: bytes = b"", data_size_out: int | None = None,
                 ctx_size_out: int = 0, repeat: int = 0, flags: int = 0, cpu: int = 0) -> bpf.TestRunResult:
        """Run once (or ``repeat`` times) in the kernel via BPF_PROG_TEST_RUN."""
        return bpf.prog_test_run(self._fd, data_in=data_in, data_size_out=data_size_out, ctx_in=ctx_in,
                                 ctx_size_out=ctx_size_out, repeat=repeat, flags=flags, cpu=cpu)

    def info(self) -> bpf.ProgInfo:
        return bpf.prog_info(self._fd)

    def xlated(self) -> list:
        """The instructions as the kernel holds them after verification (map fds become ids/addresses)."""
        from ebpfpy.isa.insn import decode

        return decode(self.info().xlated)

    def pin(self, path: str) -> None:
        bpf.obj_pin(self._fd, path)

    # -- attaching (each returns an ebpfpy.links.Link: closing it detaches) ----------

    def attach_xdp(self, iface, flags=0):
        """XDP on a network interface (name or index) through a BPF link; ``flags``: ``XdpFlag``
        bits or a mode name (``"skb"``, ``"drv"``, ``"hw"``). See ``ebpfpy.links.attach_xdp``."""
        from ebpfpy.links import attach_xdp

        return attach_xdp(self, iface, flags)

    def attach_tcx(self, iface, direction: str = "ingress", *, before=None, after=None,
                   expected_revision: int = 0):
        """A SCHED_CLS program on an interface's tcx ``"ingress"`` or ``"egress"`` hook (6.6+),
        last, or ``before``/``after`` a program or link there (True: first/last)."""
        from ebpfpy.links import attach_tcx

        return attach_tcx(self, iface, direction, before=before, after=after, expected_revision=expected_revision)

    def attach_netkit(self, iface, side: str = "primary", *, before=None, after=None,
                      expected_revision: int = 0):
        """A SCHED_CLS program on a netkit pair (6.7+): ``iface`` the primary device, ``side``
        ``"primary"`` or ``"peer"`` (whose traffic it sees). See ``ebpfpy.links.attach_netkit``."""
        from ebpfpy.links import attach_netkit

        return attach_netkit(self, iface, side, before=before, after=after, expected_revision=expected_revision)

    def attach_cgroup(self, cgroup, attach_type=None):
        """A cgroup program on a cgroup v2 directory (path or fd); ``attach_type`` (an
        ``AttachType``, its name, or libbpf's short name: ``"egress"``, ``"sock_create"``,
        ``"sysctl"``, ``"dev"``...) defaults to the one the program was loaded for."""
        from ebpfpy.links import attach_cgroup

        return attach_cgroup(self, cgroup, attach_type)

    def attach_netfilter(self, pf="ipv4", hook="input", *, priority: int = 0, flags: int = 0,
                         defrag: bool = False):
        """A NETFILTER program as a hook function of the calling thread's network namespace
        (6.4+): ``pf`` an ``NfProto`` or ``"ipv4"``/``"ipv6"``, ``hook`` an ``NfHook`` or
        ``"prerouting"``, ``"input"``, ``"forward"``, ``"output"``, ``"postrouting"``; lower
        ``priority`` runs first. See ``ebpfpy.links.attach_netfilter``."""
        from ebpfpy.links import attach_netfilter

        return attach_netfilter(self, pf, hook, priority=priority, flags=flags, defrag=defrag)

    def attach_netns(self, netns=None, attach_type=None):
        """An SK_LOOKUP (or FLOW_DISSECTOR) program on a network namespace: a path, an
        ``ip netns`` name, an fd, or None for the calling thread's. See ``ebpfpy.links.attach_netns``."""
        from ebpfpy.links import attach_netns

        return attach_netns(self, netns, attach_type)

    def attach_sk_lookup(self, netns=None):
        """``attach_netns`` for an sk_lookup program (attach type BPF_SK_LOOKUP)."""
        from ebpfpy.links import attach_sk_lookup

        return attach_sk_lookup(self, netns)

    def attach_uprobe_multi(self, path: str, offsets, *, retprobe: bool = False, pid: int = -1,
                            cookies=None, ref_ctr_offsets=None):
        """uprobes (``retprobe``: uretprobes) at many file offsets of one binary with one
        uprobe_multi link (6.6+); the program must have been loaded with expected_attach_type
        ``trace_uprobe_multi``. By symbol names or wildcards: ``ebpfpy.attach.attach_uprobe_multi``."""
        from ebpfpy.links import attach_uprobe_multi

        return attach_uprobe_multi(self, path, offsets, retprobe=retprobe, pid=pid, cookies=cookies,
                                   ref_ctr_offsets=ref_ctr_offsets)
