"""``ObjProgram``: one program of a BPF object, and the ways to attach it.

By section name (``attach()``: probes, BTF-typed programs, iterators, kprobe_multi,
links on interfaces, cgroups and network namespaces, ``ksyscall/``, ``usdt/PATH:PROVIDER:NAME``)
or explicitly, as libbpf's ``bpf_program__attach_usdt``, ``attach_ksyscall``, ``attach_iter``,
``attach_trace``/``attach_lsm``, ``attach_kprobe_multi_opts``, ``attach_netns``,
``attach_netkit`` and ``attach_netfilter``.  The object model and
the load order live in ``objfile.py``; this module never imports it at run time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ebpfpy.sys.consts import AttachType

from .reader import ObjectError
from .sections import SectionKind

if TYPE_CHECKING:
    from .objfile import BPFObject


class ObjProgram:
    """One program of an object: what the section says, and after load its ``Program``."""

    def __init__(self, obj: BPFObject, name: str, section: str, kind: SectionKind | None):
        self.obj = obj
        self.name = name
        self.section = section
        self.kind = kind
        self.program = None  # ebpfpy.progs.Program once loaded
        self.insns: bytes = b""  # the loaded instruction bytes (fds filled in)
        self.autoload = True  # set False before load() to skip this program
        self.iter_link = None  # the last iterator link attach()/attach_iter() made (iter/ programs)

    @property
    def instructions(self) -> list:
        """The loaded program as ``ebpfpy.isa`` instructions (map fds filled in)."""
        from ebpfpy.isa.insn import decode
        return decode(self.insns)

    @property
    def prog_type(self):
        return self.kind.prog_type if self.kind else None

    @property
    def probe(self) -> str | None:
        return self.kind.probe if self.kind else None

    @property
    def expected_attach_type(self):
        """The attach type the program was loaded with (None before load or without one)."""
        return self.program.expected_attach_type if self.program is not None else None

    @property
    def link_target(self) -> str | None:
        """``"iface"`` (xdp, tcx, netkit), ``"cgroup"`` (cgroup_skb/, cgroup/...) or ``"netns"`` (sk_lookup):
        what ``attach`` needs."""
        return self.kind.link_target if self.kind else None

    @property
    def fd(self) -> int:
        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        return self.program.fd

    def fileno(self) -> int:
        return self.fd

    def info(self):
        return self.program.info() if self.program is not None else None

    def test_run(self, *args, **kwargs):
        """BPF_PROG_TEST_RUN on the loaded program (see ``ebpfpy.progs.Program.test_run``)."""
        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        return self.program.test_run(*args, **kwargs)

    def pin(self, path: str) -> None:
        from ebpfpy.sys import bpf
        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        bpf.obj_pin(self.program, path)

    @property
    def attachable(self) -> bool:
        """True when the section alone says where to attach."""
        return self.probe is not None or (self.kind is not None and self.kind.sec_def.btf_target is not None)

    def attach(self, pid: int = -1, *, iface=None, cgroup=None, netns=None) -> list:
        """Attach by section name (``tracepoint/cat/name`` -> the tracepoint).

        BTF-typed programs (tp_btf, fentry, fexit, fmod_ret, lsm) were bound to their
        target at load time; BPF_RAW_TRACEPOINT_OPEN with no name attaches them.
        ``iter/TARGET`` programs get an iterator link over every object (task iterators with
        ``pid``: that process only); ``read_iter()`` reads it.  ``kprobe.multi/PATTERN``
        programs go on every function PATTERN matches with one kprobe_multi link.
        ``xdp``, ``tcx/ingress``/``tcx/egress`` (``tc/...``) and ``netkit/primary``/``netkit/peer``
        programs go on network interface ``iface`` (for netkit the pair's primary device),
        ``cgroup_skb/...`` and ``cgroup/...`` programs on cgroup v2 directory ``cgroup``,
        ``sk_lookup`` programs on network namespace ``netns`` (a path, an
        ``ip netns`` name or an fd), with BPF links (the hook is the section's).  ``netfilter``
        programs need a family, hook and priority: ``attach_netfilter``."""
        from ebpfpy.attach.provider import Attachment, attach
        if self.link_target is not None:
            return [self._attach_link(iface=iface, cgroup=cgroup, netns=netns)]
        if self.is_iter:
            task = self.kind.arg.startswith("task")  # task, task_file, task_vma: a pid filter
            return [Attachment(self.section, [self._iter(pid=max(pid, 0) if task else 0)])]
        if self.kind is not None and self.kind.sec_def.btf_target is not None:
            return [Attachment(self.section.replace("/", ":", 1), [self._trace()])]
        if self.kind is not None and self.kind.syscall:
            return self.attach_ksyscall(pid=pid)
        if self._usdt_target() is not None:
            return [self.attach_usdt(*self._usdt_target(), pid=pid)]
        if self.probe is None:
            how = ("attach_netfilter(pf, hook, priority=...)" if self.kind is not None
                   and self.kind.sec_def.attach_type == AttachType.NETFILTER else "attach it yourself")
            raise ObjectError(f"program {self.name!r} (section {self.section!r}) cannot be attached by its "
                              f"section name; {how}")
        if self.is_kprobe_multi:
            self._require_kprobe_multi()
        return attach(self, self.probe, pid=pid)

    @property
    def is_kprobe_multi(self) -> bool:
        """A ``kprobe.multi/PATTERN`` or ``kretprobe.multi/PATTERN`` program (one kprobe_multi link)."""
        return self.kind is not None and self.kind.sec_def.attach_type == AttachType.TRACE_KPROBE_MULTI

    def _require_kprobe_multi(self) -> None:
        from ebpfpy.attach.errors import ProbeUnavailableError
        from ebpfpy.attach.kprobe import require_kprobe_multi
        try:
            require_kprobe_multi()
        except ProbeUnavailableError as e:
            raise ProbeUnavailableError(f"program {self.name!r} (section {self.section!r}): {e}") from None

    def attach_kprobe_multi(self, pattern=None, *, retprobe: bool | None = None, cookies=None):
        """kprobes (``retprobe``: kretprobes) on many kernel functions with one kprobe_multi link, as
        libbpf's ``bpf_program__attach_kprobe_multi_opts``: ``pattern`` a glob (resolved as libbpf does:
        available_filter_functions, else kallsyms) or a list of function names (``cookies``: one
        each, for ``bpf_get_attach_cookie()``); both default to what the section says.  The program
        must be a ``kprobe.multi/`` or ``kretprobe.multi/`` one.  Returns the ``Link`` (also closed
        with the object)."""
        from ebpfpy.attach.errors import ProbeNotFoundError
        from ebpfpy.attach.kprobe import KprobeTarget, attach_multi_targets, kprobe_multi_symbols
        if not self.is_kprobe_multi:
            raise ObjectError(f"program {self.name!r} (section {self.section!r}) was not loaded for kprobe_multi "
                              "links (kprobe.multi/ or kretprobe.multi/ sections)")
        self._require_kprobe_multi()
        if not self.obj.loaded:
            self.obj.load()
        pattern = self.kind.arg if pattern is None else pattern
        if retprobe is None:
            retprobe = self.section.startswith("kretprobe")
        names = kprobe_multi_symbols(pattern) if isinstance(pattern, str) else list(pattern)
        if not names:
            raise ProbeNotFoundError(f"program {self.name!r}: no kernel function matches {pattern!r}")
        (att,) = attach_multi_targets(self, [KprobeTarget(n, 0, retprobe) for n in names],
                                      cookies=list(cookies) if cookies is not None else None)
        self.obj.attachments.append(att)
        return att.parts[0]

    def _attach_link(self, *, iface=None, cgroup=None, netns=None):
        from ebpfpy import links
        from ebpfpy.attach.provider import Attachment
        from ebpfpy.sys.consts import AttachType

        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        at = self.kind.attach_type
        if self.link_target == "iface":
            if iface is None:
                raise ObjectError(f"program {self.name!r} (section {self.section!r}) needs a network "
                                  "interface to attach to")
            if at == AttachType.XDP:
                link = links.attach_xdp(self, iface, flags=0)
            elif at in (AttachType.NETKIT_PRIMARY, AttachType.NETKIT_PEER):
                link = links.attach_netkit(self, iface, "peer" if at == AttachType.NETKIT_PEER else "primary")
            else:
                link = links.attach_tcx(self, iface, "egress" if at == AttachType.TCX_EGRESS else "ingress")
        elif self.link_target == "netns":
            if netns is None:
                raise ObjectError(f"program {self.name!r} (section {self.section!r}) needs a network "
                                  "namespace to attach to")
            link = links.attach_netns(self, netns, at)
        else:
            if cgroup is None:
                raise ObjectError(f"program {self.name!r} (section {self.section!r}) needs a cgroup to "
                                  "attach to")
            link = links.attach_cgroup(self, cgroup, at)
        return Attachment(f"{self.section}:{link.description}", [link])

    def attach_netns(self, netns=None):
        """An ``sk_lookup`` (or ``flow_dissector``) program on a network namespace, as libbpf's
        ``bpf_program__attach_netns``: ``netns`` a path (``/proc/PID/ns/net``,
        ``/run/netns/NAME``), an ``ip netns`` name, an fd, or None for the calling thread's.
        Loads the object first if needed; returns the ``Link`` (also closed with the object)."""
        from ebpfpy import links
        from ebpfpy.attach.provider import Attachment
        if not self.obj.loaded:
            self.obj.load()
        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        link = links.attach_netns(self, netns)  # the attach type it was loaded with
        self.obj.attachments.append(Attachment(f"{self.section}:{link.description}", [link]))
        return link

    def attach_netkit(self, iface, side: str | None = None, *, before=None, after=None,
                      expected_revision: int = 0):
        """A ``netkit/primary`` or ``netkit/peer`` program on a netkit pair, as libbpf's
        ``bpf_program__attach_netkit``: ``iface`` the primary device (name or index, in the
        calling thread's namespace), ``side`` ``"primary"``/``"peer"`` (default: the section's),
        ``before``/``after`` a program or link on that hook (True: first/last),
        ``expected_revision``: see ``ebpfpy.links.attach_netkit``. Loads the object first if
        needed; returns the ``Link`` (also closed with the object)."""
        from ebpfpy import links
        from ebpfpy.attach.provider import Attachment
        if not self.obj.loaded:
            self.obj.load()
        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        if side is None:
            at = self.kind.attach_type if self.kind is not None else None
            if at not in (AttachType.NETKIT_PRIMARY, AttachType.NETKIT_PEER):
                raise ObjectError(f"program {self.name!r} (section {self.section!r}) names no netkit side: "
                                  "pass side='primary' or 'peer'")
            side = "peer" if at == AttachType.NETKIT_PEER else "primary"
        link = links.attach_netkit(self, iface, side, before=before, after=after,
                                   expected_revision=expected_revision)
        self.obj.attachments.append(Attachment(f"{self.section}:{link.description}", [link]))
        return link

    def attach_netfilter(self, pf="ipv4", hook="input", *, priority: int = 0, flags: int = 0,
                         defrag: bool = False):
        """A ``netfilter`` program as a hook function of the calling thread's network namespace,
        as libbpf's ``bpf_program__attach_netfilter`` (the section names no hook): ``pf``
        ``"ipv4"``/``"ipv6"`` (or an ``NfProto``), ``hook`` ``"prerouting"``, ``"input"``,
        ``"forward"``, ``"output"``, ``"postrouting"`` (or an ``NfHook``), ``priority`` (lower
        runs first), ``defrag`` or ``flags`` BPF_F_NETFILTER_IP_DEFRAG.  Loads the object first if
        needed; returns the ``Link`` (also closed with the object)."""
        from ebpfpy import links
        from ebpfpy.attach.provider import Attachment
        if not self.obj.loaded:
            self.obj.load()
        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        link = links.attach_netfilter(self, pf, hook, priority=priority, flags=flags, defrag=defrag)
        self.obj.attachments.append(Attachment(f"{self.section}:{link.description}", [link]))
        return link

    def _trace(self, cookie: int = 0):
        from ebpfpy import links
        from ebpfpy.attach.errors import ProbeUnavailableError
        from ebpfpy.sys.errors import BPFError
        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        if self.kind is None or self.kind.sec_def.btf_target is None or self.is_iter:
            raise ObjectError(f"program {self.name!r} (section {self.section!r}) is not a tp_btf, fentry, "
                              "fexit, fmod_ret or lsm program")
        try:
            link = links.attach_tracing(self.program, cookie=cookie)
        except BPFError as e:
            raise ProbeUnavailableError(f"program {self.name!r}: cannot attach {self.section}: {e}") from None
        link.description = self.section
        return link

    def attach_trace(self, *, cookie: int = 0):
        """Attach a ``tp_btf/``, ``fentry/``, ``fexit/``, ``fmod_ret/`` or ``lsm/`` program to the
        kernel function, tracepoint or LSM hook it was loaded for (libbpf's ``bpf_program__attach_trace``
        and ``bpf_program__attach_lsm``): BPF_RAW_TRACEPOINT_OPEN, or BPF_LINK_CREATE with a
        ``cookie`` (``bpf_get_attach_cookie()``; 5.19+).  Loads the object first if needed; returns
        the ``Link`` (also closed with the object)."""
        from ebpfpy.attach.provider import Attachment
        if not self.obj.loaded:
            self.obj.load()
        link = self._trace(cookie)
        self.obj.attachments.append(Attachment(self.section.replace("/", ":", 1), [link]))
        return link

    @property
    def is_iter(self) -> bool:
        """An ``iter/TARGET`` (``iter.s/``) program: attached, it is read rather than triggered."""
        return self.kind is not None and self.kind.sec_def.attach_type == AttachType.TRACE_ITER

    def _iter(self, **target):
        from ebpfpy import links
        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        if not self.is_iter:
            raise ObjectError(f"program {self.name!r} (section {self.section!r}) is not an iterator")
        self.iter_link = links.attach_iter(self.program, **target)
        self.iter_link.description = f"{self.section} {self.iter_link.description}"
        return self.iter_link

    def attach_iter(self, *, map=None, tid: int = 0, pid: int = 0, pid_fd: int = 0):
        """An iterator link, as libbpf's ``bpf_program__attach_iter``: ``map`` for ``iter/bpf_map_elem``
        (an object map's name, a Map or an fd), ``tid``/``pid``/``pid_fd`` to walk one thread or
        process (task iterators, 6.1+); default every object.  Loads the object first if needed.
        Returns the ``Link`` (also closed with
        the object); ``read_iter()`` (or ``ebpfpy.links.read_iter(link)``) reads what one pass prints."""
        from ebpfpy.attach.provider import Attachment
        if not self.obj.loaded:
            self.obj.load()
        if isinstance(map, str):
            map = self.obj.maps[map]
        link = self._iter(map=map, tid=tid, pid=pid, pid_fd=pid_fd)
        self.obj.attachments.append(Attachment(self.section, [link]))
        return link

    def read_iter(self, link=None) -> str:
        """The text one pass of the iterator prints (BPF_ITER_CREATE and read to the end), through
        ``link`` or the last link attached; each call runs the program over the objects again."""
        from ebpfpy import links
        link = link or self.iter_link
        if link is None or link.closed:
            raise ObjectError(f"program {self.name!r}: no iterator link (attach_iter() first)")
        return links.read_iter(link).decode(errors="replace")

    @property
    def is_bare_usdt(self) -> bool:
        """A ``SEC("usdt")`` program: its target comes at attach time (``attach_usdt``)."""
        return self.kind is not None and self.kind.sec_def.prefix in ("usdt/", "usdt.s/") and not self.kind.arg

    def _usdt_target(self) -> tuple[str, str, str] | None:
        """(binary, provider, name) of a ``usdt/PATH:PROVIDER:NAME`` program of an object
        built with ``usdt.bpf.h``.  Without the header's maps the program reads pt_regs
        itself and attaches as a plain uprobe on the probe's address."""
        from .usdt import has_usdt_maps, split_target
        if self.kind is None or self.kind.sec_def.prefix not in ("usdt/", "usdt.s/") or not has_usdt_maps(self.obj):
            return None
        if self.is_bare_usdt:
            raise ObjectError(f"program {self.name!r} (section {self.section!r}) names no USDT probe: attach it "
                              "with attach_usdt(binary, provider, name)")
        target = split_target(self.kind.arg)
        if target is None:
            raise ObjectError(f"program {self.name!r}: section {self.section!r} is not usdt/PATH:PROVIDER:NAME")
        return target

    def attach_usdt(self, binary: str, provider: str, name: str, *, pid: int = -1, cookie: int = 0):
        """Attach to every site of USDT probe ``provider:name`` in ``binary``, as libbpf's
        ``bpf_program__attach_usdt``: the object's ``__bpf_usdt_specs`` map gets each site's
        argument spec, so ``bpf_usdt_arg()`` reads the arguments and ``bpf_usdt_cookie()``
        returns ``cookie``.  The attachment (also closed with the object) detaches the uprobes
        and frees the spec ids when closed."""
        from .usdt import attach_program
        if self.program is None:
            raise ObjectError(f"program {self.name!r} is not loaded")
        att = attach_program(self, binary, provider, name, pid=pid, cookie=cookie)
        self.obj.attachments.append(att)
        return att

    def attach_ksyscall(self, syscall: str | None = None, *, retprobe: bool | None = None,
                        pid: int = -1) -> list:
        """Attach to a syscall's kernel entry, as libbpf's ``bpf_program__attach_ksyscall``:
        a kprobe (``retprobe``: a kretprobe) on ``__x64_sys_NAME`` when the kernel has syscall
        wrappers, else on ``__se_sys_NAME``.  ``syscall`` and ``retprobe`` default to what a
        ``ksyscall/NAME`` or ``kretsyscall/NAME`` section says.  Needs kprobes: without them
        the ``ProbeUnavailableError`` names the program and the symbol."""
        from ebpfpy.attach.errors import ProbeUnavailableError
        from ebpfpy.attach.provider import attach

        from .system import syscall_symbol
        syscall = syscall or (self.kind.syscall if self.kind else None)
        if not syscall:
            raise ObjectError(f"program {self.name!r}: which syscall? (section {self.section!r} names none)")
        if retprobe is None:
            retprobe = self.section.startswith("kretsyscall")
        symbol = syscall_symbol(syscall)
        try:
            return attach(self, f"{'kretprobe' if retprobe else 'kprobe'}:{symbol}", pid=pid)
        except ProbeUnavailableError as e:
            raise ProbeUnavailableError(f"program {self.name!r}: cannot attach to syscall {syscall!r} "
                                        f"({symbol}): {e}") from None

    def close(self) -> None:
        if self.program is not None:
            self.program.close()
            self.program = None

    def __repr__(self) -> str:
        state = f"fd={self.program.fd}" if self.program is not None else "not loaded"
        return f"<ObjProgram {self.name} section={self.section!r} {state}>"
