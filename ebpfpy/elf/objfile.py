"""``BPFObject``: a clang-built BPF object file, loaded the way libbpf loads it.

Opening reads the ELF and works out programs, maps and global variables
(nothing touches the kernel); ``load()`` loads the BTF, creates the maps
(global data and ``.kconfig`` values included), applies CO-RE relocations
against the running kernel, resolves kfuncs, links each program with its
subprograms and loads it; ``attach_all()`` attaches every program
whose section names its target.  Everything owns its fds: ``close()`` (or the
context manager) releases them all.

This module is the object model and the load order; the pieces live beside it:
``program.py`` (``ObjProgram`` and its attach methods), ``mapload.py`` (map creation,
initial slots, inner maps), ``globalvars.py`` (``obj.globals``).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ebpfpy.btf import BTF, Kind, vmlinux
from ebpfpy.sys.consts import AttachType, MapType

from . import core, mapload
from .externs import (
    KCONFIG_SEC,
    fix_kconfig_btf,
    fix_ksyms_btf,
    kconfig_externs,
    kconfig_size,
    ksym_externs,
    resolve_ksyms,
)
from .globalvars import Globals
from .link import (
    LinkedProgram,
    Linker,
    encode_func_info,
    encode_line_info,
    fill_map_fds,
    functions,
)
from .mapdefs import (
    BPF_F_MMAPABLE,
    BPF_F_RDONLY_PROG,
    MapSpec,
    all_maps,
    global_vars,
    internal_map_name,
)
from .mapload import Maps
from .program import ObjProgram
from .reader import LoadError, ObjectError, RawObject, read_object
from .sanitize import downgrade, fix_datasecs, static_hidden_subprograms
from .sections import classify

__all__ = ["DEFAULT_PIN_ROOT", "BPFObject", "Globals", "LoadError", "Maps", "ObjProgram", "load_object"]

DEFAULT_PIN_ROOT = "/sys/fs/bpf"


_TRAMPOLINES = (AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT, AttachType.MODIFY_RETURN, AttachType.LSM_MAC)


def _trampoline_hint(prog: ObjProgram) -> str:
    """Why an fentry/fexit/fmod_ret/lsm program was refused when the kernel has no BPF trampolines."""
    from ebpfpy import features
    if prog.kind.attach_type not in _TRAMPOLINES or features.has("fentry"):
        return ""
    return f" (this kernel has no BPF trampolines for {prog.section.split('/')[0]} programs: " \
           f"{features.reason('fentry')})"


# The statistics the verifier appends to every log, failed or not: never the reason for a refusal.
_VERIFIER_STATS = ("processed ", "verification time ", "stack depth ")


def _verifier_reason(log: str) -> str:
    """The last line of a refused program's verifier log that says why (``R1 invalid mem access
    'scalar'``), skipping the statistics the kernel prints after it."""
    lines = [ln.strip() for ln in log.strip().splitlines() if ln.strip()]
    return next((ln for ln in reversed(lines) if not ln.startswith(_VERIFIER_STATS)), lines[-1] if lines else "")


class BPFObject:
    def __init__(self, raw: RawObject):
        self.raw = raw
        self.path = raw.path
        self.name = raw.name
        self.license = raw.license
        self.kern_version = raw.kern_version
        self.ext = raw.ext
        self._kconfig = kconfig_externs(raw, raw.btf)
        self._ksyms = ksym_externs(raw, raw.btf)
        self.btf = self._kernel_ready_btf()
        self.map_specs: dict[str, MapSpec] = {}
        for m in self._map_specs():
            if m.name in self.map_specs:
                raise ObjectError(f"{self.path}: two maps named {m.name!r}")
            self.map_specs[m.name] = m
        self._vars = global_vars(raw, self.btf)
        self.globals = Globals(self)
        kmap = internal_map_name(raw.name, KCONFIG_SEC)
        self._extern_refs = {e.name: (kmap, e.offset) for e in self._kconfig}
        code = {i: bytearray(s.data) for i, s in raw.sections.items() if s.is_code}
        self.programs: dict[str, ObjProgram] = {}
        for fn in Linker(raw, code, list(self.map_specs.values()), self.ext).entry_points():
            self.programs[fn.name] = ObjProgram(self, fn.name, fn.section.name, classify(fn.section.name))
        self.maps: Maps = Maps(self)
        self.btf_fd = None
        self.loaded = False
        self.attachments: list[Any] = []
        self.poisoned: dict[int, dict[int, core.Poison]] = {}
        self.usdt_manager = None  # ebpfpy.elf.usdt.UsdtManager, made by the first USDT attach
        self.inner_map_fds: dict[str, Any] = {}  # set_inner_map_fd: map of maps -> template

    def _kernel_ready_btf(self) -> BTF | None:
        """The object's BTF with the fix-ups the kernel needs (DATASEC sizes and offsets,
        extern variables and functions made acceptable), type ids unchanged."""
        btf = self.raw.btf
        if btf is None:
            return None
        btf = fix_datasecs(self.raw, btf)
        btf = static_hidden_subprograms(self.raw, btf)
        if self._ksyms:
            btf = fix_ksyms_btf(btf)
        if self._kconfig:
            btf = fix_kconfig_btf(btf, self._kconfig)
        return btf

    def _map_specs(self) -> list[MapSpec]:
        maps = all_maps(self.raw)
        if self._kconfig:
            size = kconfig_size(self._kconfig)
            maps.append(MapSpec(
                internal_map_name(self.name, KCONFIG_SEC), MapType.ARRAY, 4, size, 1,
                BPF_F_MMAPABLE | BPF_F_RDONLY_PROG, btf_value_type_id=self.btf.find(KCONFIG_SEC, Kind.DATASEC),
                section=KCONFIG_SEC, shndx=-1, data=bytearray(size),  # filled in at load
            ))
        return maps

    def _data_map_name(self, section: str) -> str:
        for m in self.map_specs.values():
            if m.is_global_data and m.section == section:
                return m.name
        raise KeyError(section)

    def __repr__(self) -> str:
        return f"<BPFObject {self.path} programs={list(self.programs)} maps={list(self.map_specs)}>"

    # -- load -------------------------------------------------------------------------------
    def load(self, *, pin_root: str = DEFAULT_PIN_ROOT, target_btf: BTF | None = None) -> BPFObject:
        """Load BTF, maps and programs into the kernel (everything or nothing)."""
        if self.loaded:
            raise ObjectError(f"{self.path} is already loaded")
        try:
            self._load_btf()
            mapload.create_maps(self, pin_root)
            self._load_programs(target_btf)
            for spec in self.map_specs.values():  # program arrays: their initial programs
                if spec.map_type == MapType.PROG_ARRAY and spec.init_slots and spec.name in self.maps:
                    mapload.fill_slots(self, spec, self.programs)
        except BaseException:
            self.close()
            raise
        self.loaded = True
        return self

    def _load_btf(self) -> None:
        from ebpfpy.sys import bpf
        from ebpfpy.sys.errors import BPFError
        if self.btf is None:
            return
        for make in (lambda: self.btf, lambda: downgrade(self.btf)):
            try:
                self.btf_fd = bpf.btf_load(make().data)
                return
            except BPFError:
                continue
        self.btf_fd = None  # like libbpf: carry on without BTF (maps and programs lose type info)

    # -- maps of maps ----------------------------------------------------------------------
    def set_inner_map_fd(self, name: str, inner) -> None:
        """Before load: create map of maps ``name`` with template ``inner`` (a ``Map`` or an
        fd, still yours) instead of its declared inner definition, as libbpf's
        ``bpf_map__set_inner_map_fd`` (a map of maps declared without ``__array(values, ...)``
        needs it)."""
        mapload.set_inner_map_fd(self, name, inner)

    def create_inner_map(self, name: str, *, map_name: str | None = None):
        """A new ``Map`` shaped to go in a slot of map of maps ``name`` (yours to close)."""
        return mapload.create_inner_map(self, name, map_name=map_name)

    def _relocated_code(self, target_btf: BTF | None) -> dict[int, bytearray]:
        """Code per section with CO-RE applied; instructions poisoned for relocations the
        kernel cannot satisfy are recorded in ``self.poisoned`` (section index -> slot -> Poison)."""
        code = {i: bytearray(s.data) for i, s in self.raw.sections.items() if s.is_code}
        self.poisoned = {}
        if self.ext is None or not any(self.ext.core_relos.values()):
            return code
        if self.btf is None:
            raise ObjectError(f"{self.path}: CO-RE relocations without .BTF")
        target = target_btf or vmlinux()
        funcs = functions(self.raw, code)
        for idx, sec in self.raw.sections.items():
            relos = self.ext.core_relos.get(sec.name)
            if relos and idx in code:
                bad = core.apply(code[idx], relos, self.btf, target, f"{self.path}: {sec.name}",
                                 _namer(funcs.get(idx, [])))
                if bad:
                    self.poisoned[idx] = {p.slot: p for p in bad}
        return code

    def _explain_poison(self, name: str, lp: LinkedProgram, log: str) -> tuple[str, str]:
        """When the verifier reached a poisoned instruction: (the relocation, as one line;
        the log with that instruction shown as libbpf shows it).  ("", log) otherwise."""
        import re
        hits = list(re.finditer(rf"^(\d+): \(85\) call unknown#{core.POISON_HELPER}\n", log, re.MULTILINE))
        if not hits:
            return "", log
        m = hits[-1]
        insn = int(m.group(1))
        origin = lp.origin(insn)
        p = self.poisoned.get(origin[0], {}).get(origin[1]) if origin else None
        if p is None and origin is not None:  # the second half of a poisoned LD_IMM64
            p = self.poisoned.get(origin[0], {}).get(origin[1] - 1)
        if p is None:
            return f"insn #{insn} is an instruction poisoned by an unresolved CO-RE relocation", log
        fixed = (log[:m.start()] + f"{insn}: <invalid CO-RE relocation>\n"
                 f"failed to resolve CO-RE relocation {p.spec}\n" + log[m.end():])
        fixed = fixed.replace(f"invalid func unknown#{core.POISON_HELPER}\n", "", 1)
        return p.message(name, insn), fixed

    def link(self, target_btf: BTF | None = None) -> dict[str, LinkedProgram]:
        """Programs with subprograms appended and CO-RE applied (map fds not yet filled in)."""
        code = self._relocated_code(target_btf)
        ksyms = resolve_ksyms(self._ksyms, self.btf, target_btf or vmlinux(), self.path) if self._ksyms else {}
        linker = Linker(self.raw, code, list(self.map_specs.values()), self.ext, self._extern_refs, ksyms)
        return {fn.name: linker.link(fn) for fn in linker.entry_points()}

    def _attach_btf_id(self, prog: ObjProgram) -> int:
        d = prog.kind.sec_def if prog.kind else None
        if d is None or d.btf_target is None:
            return 0
        spec = vmlinux()
        arg = prog.kind.arg
        try:
            if d.btf_target == "func":  # the first FUNC of that name, as kfunc probes resolve it
                from ebpfpy.attach.errors import ProbeNotFoundError
                from ebpfpy.attach.fentry import func_btf_id
                try:
                    return func_btf_id(arg)
                except ProbeNotFoundError:
                    raise KeyError(arg) from None
            if d.btf_target == "btf_trace_":
                return spec.find("btf_trace_" + arg, Kind.TYPEDEF)
            return spec.find(d.btf_target + arg, Kind.FUNC)
        except KeyError:
            raise ObjectError(f"{self.path}: program {prog.name!r}: the kernel has no BTF for {arg!r}") from None

    def _load_programs(self, target_btf: BTF | None) -> None:
        from ebpfpy.progs import Program
        from ebpfpy.sys.errors import BPFError
        linked = self.link(target_btf)
        fds = {name: m.fd for name, m in self.maps.items()}
        for name, prog in self.programs.items():
            if not prog.autoload:
                continue
            if prog.kind is None:
                raise ObjectError(f"{self.path}: program {name!r} is in section {prog.section!r}, which names "
                                  "no known program type (set autoload = False to skip it)")
            lp = linked[name]
            insns = fill_map_fds(lp.code, lp.map_refs, fds)
            btf_args = {}
            if self.btf_fd is not None and lp.func_info:
                btf_args = {"prog_btf_fd": self.btf_fd,
                                "func_info": encode_func_info(lp.func_info), "func_info_rec_size": 8,
                                "line_info": encode_line_info(lp.line_info), "line_info_rec_size": 16}
            try:
                prog.program = Program.load(
                    prog.kind.prog_type, bytes(insns), self.license, name=name,
                    expected_attach_type=prog.kind.attach_type or None,
                    attach_btf_id=self._attach_btf_id(prog) or None,
                    kern_version=self.kern_version, flags=prog.kind.prog_flags, **btf_args)
            except BPFError as e:
                log = getattr(e, "log", "") or ""
                relo, log = self._explain_poison(name, lp, log)
                last = relo or _verifier_reason(log)
                hint = f" (verifier: {last})" if last else _trampoline_hint(prog)
                raise LoadError(f"{self.path}: loading program {name!r} failed: "
                                f"{e.strerror} [{e.errno_name}]{hint}", log) from None
            prog.insns = bytes(insns)
            self._bind_rodata(prog.program)

    def _bind_rodata(self, program) -> None:
        """Like libbpf: tie every read-only data map to each program (BPF_PROG_BIND_MAP),
        so tools that read a program's metadata from its .rodata find it."""
        from ebpfpy.sys import bpf
        from ebpfpy.sys.errors import BPFError
        for spec in self.map_specs.values():
            if not (spec.is_global_data and spec.readonly):
                continue
            m = self.maps[spec.name]
            try:
                bpf.prog_bind_map(program, m)
            except BPFError:
                return  # an old kernel without the command: harmless, as in libbpf

    # -- attach / pin / close ------------------------------------------------------------
    def attach_all(self, pid: int = -1, *, iface=None, cgroup=None, netns=None) -> list:
        """Attach every loaded program whose section names its target, and with ``iface``
        (a network interface) the xdp, tcx and netkit programs (for netkit: the pair's primary),
        with ``cgroup`` (a cgroup v2 directory) the cgroup ones, with ``netns`` (a network
        namespace) the sk_lookup ones; returns the attachments."""
        if not self.loaded:
            self.load()
        given = {"iface": iface is not None, "cgroup": cgroup is not None, "netns": netns is not None}
        out = []
        try:
            for prog in self.programs.values():
                if prog.program is None:
                    continue
                if prog.link_target is not None:
                    if given[prog.link_target]:
                        out += prog.attach(pid=pid, iface=iface, cgroup=cgroup, netns=netns)
                elif prog.attachable:
                    out += prog.attach(pid=pid)
        except BaseException:
            for a in out:
                a.close()
            raise
        self.attachments += out
        return out

    def pin_programs(self, directory: str) -> list[str]:
        """Pin each loaded program at ``directory/<name>`` (bpftool prog loadall's layout).
        ``directory`` must be on bpffs (made when missing), as libbpf checks: elsewhere the
        kernel refuses the pin with EPERM, as if a privilege were missing."""
        from ebpfpy import bpffs

        if not bpffs.on_bpffs(directory):
            raise ObjectError(f"{directory}: not on a BPF filesystem (pins live on bpffs, e.g. under {bpffs.BPFFS})")
        os.makedirs(directory, exist_ok=True)
        paths = []
        for prog in self.programs.values():
            if prog.program is not None:
                path = os.path.join(directory, prog.name)
                prog.pin(path)
                paths.append(path)
        return paths

    def close(self) -> None:
        for a in self.attachments:
            try:
                a.close()
            except OSError:
                pass
        self.attachments = []
        self.usdt_manager = None
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()
        self.maps = Maps(self)
        if self.btf_fd is not None:
            self.btf_fd.close()
            self.btf_fd = None
        self.loaded = False

    def __enter__(self) -> BPFObject:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _namer(funcs: list) -> Callable[[int], str]:
    """slot -> name of the function holding it (for CO-RE error messages)."""
    def name_at(slot: int) -> str:
        return next((f.name for f in funcs if f.start <= slot < f.start + f.count), "?")
    return name_at


def load_object(path: str) -> BPFObject:
    """Open a clang-built BPF object (nothing is loaded into the kernel until ``.load()``)."""
    return BPFObject(read_object(path))
