"""``BPFObject``: a clang-built BPF object file, loaded the way libbpf loads it.

Opening reads the ELF and works out programs, maps and global variables
(nothing touches the kernel); ``load()`` loads the BTF, creates the maps
(global data and ``.kconfig`` values included), applies CO-RE relocations
against the running kernel, resolves kfuncs, links each program with its
subprograms and loads it; ``attach_all()`` attaches every program
whose section names its target.  Everything owns its fds: ``close()`` (or the
context manager) releases them all.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from ebpfpy.btf import BTF, Kind, vmlinux
from ebpfpy.sys.consts import MapType

from . import core
from .externs import (
    KCONFIG_SEC,
    fix_kconfig_btf,
    fix_ksyms_btf,
    kconfig_externs,
    kconfig_image,
    kconfig_size,
    ksym_externs,
    resolve_ksyms,
)
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
    NO_BTF_TYPES,
    PIN_BY_NAME,
    GlobalVar,
    MapSpec,
    all_maps,
    check_pinned,
    global_vars,
    internal_map_name,
    kernel_max_entries,
)
from .reader import ObjectError, RawObject, read_object
from .sanitize import downgrade, fix_datasecs, static_hidden_subprograms
from .sections import SectionKind, classify

DEFAULT_PIN_ROOT = "/sys/fs/bpf"


class LoadError(ObjectError):
    """A program or map the kernel refused; ``.log`` holds the verifier log, if any."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


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
        """``"iface"`` (xdp, tcx) or ``"cgroup"`` (cgroup_skb/, cgroup/...): what ``attach`` needs."""
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

    def attach(self, pid: int = -1, *, iface=None, cgroup=None) -> list:
        """Attach by section name (``tracepoint/cat/name`` -> the tracepoint).

        BTF-typed programs (tp_btf, fentry, fexit, lsm) were bound to their
        target at load time; BPF_RAW_TRACEPOINT_OPEN with no name attaches them.
        ``xdp`` and ``tcx/ingress``/``tcx/egress`` (``tc/...``) programs go on network
        interface ``iface``, ``cgroup_skb/...`` and ``cgroup/...`` programs on cgroup v2
        directory ``cgroup``, with BPF links (the hook is the section's)."""
        from ebpfpy.attach.provider import Attachment, attach
        if self.link_target is not None:
            return [self._attach_link(iface=iface, cgroup=cgroup)]
        if self.kind is not None and self.kind.sec_def.btf_target is not None:
            from ebpfpy.sys import bpf
            link = bpf.raw_tracepoint_open(None, self.fd)
            return [Attachment(self.section.replace("/", ":", 1), [link])]
        if self.kind is not None and self.kind.syscall:
            return self.attach_ksyscall(pid=pid)
        if self._usdt_target() is not None:
            return [self.attach_usdt(*self._usdt_target(), pid=pid)]
        if self.probe is None:
            raise ObjectError(f"program {self.name!r} (section {self.section!r}) cannot be attached by its "
                              "section name; attach it yourself")
        return attach(self, self.probe, pid=pid)

    def _attach_link(self, *, iface=None, cgroup=None):
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
            else:
                link = links.attach_tcx(self, iface, "egress" if at == AttachType.TCX_EGRESS else "ingress")
        else:
            if cgroup is None:
                raise ObjectError(f"program {self.name!r} (section {self.section!r}) needs a cgroup to "
                                  "attach to")
            link = links.attach_cgroup(self, cgroup, at)
        return Attachment(f"{self.section}:{link.description}", [link])

    def _usdt_target(self) -> tuple[str, str, str] | None:
        """(binary, provider, name) of a ``usdt/PATH:PROVIDER:NAME`` program of an object
        built with ``usdt.bpf.h``.  Without the header's maps the program reads pt_regs
        itself and attaches as a plain uprobe on the probe's address."""
        from .usdt import has_usdt_maps, split_target
        if self.kind is None or self.kind.sec_def.prefix not in ("usdt/", "usdt.s/") or not has_usdt_maps(self.obj):
            return None
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


class Globals(MutableMapping):
    """Global variables by name: the initial image before load, the map value after.

    Integers (and enums, bools) read and write as ``int``; ``char`` arrays as
    ``bytes`` (NUL padded); anything else as raw ``bytes`` of the variable's size.
    ``value(name)`` reads any variable typed through BTF (structs as dicts, arrays as
    lists, ``char`` arrays as ``str``); assigning a dict, list, ``str`` or float writes
    it typed, checked against the variable's type (``ebpfpy.elf.typedvalues``), and
    ``set_text(name, text)`` reads command-line text by the type first.
    """

    def __init__(self, obj: BPFObject):
        self._obj = obj

    def _var(self, name: str) -> GlobalVar:
        try:
            return self._obj._vars[name]
        except KeyError:
            known = ", ".join(self._obj._vars) or "none"
            raise KeyError(f"{self._obj.path}: no global variable {name!r} (it has: {known})") from None

    def _codec(self, var: GlobalVar):
        btf = self._obj.btf
        t = btf[btf.resolve(var.type_id)]
        if t.kind in (Kind.INT, Kind.ENUM, Kind.ENUM64) and var.size in (1, 2, 4, 8):
            signed = bool(getattr(t, "signed", False))
            return "int", signed
        return "bytes", False

    def _image(self, var: GlobalVar) -> bytes:
        spec = self._obj.map_specs[self._obj._data_map_name(var.section)]
        m = self._obj.maps.get(spec.name) if self._obj.loaded else None
        if m is not None:
            from ebpfpy.sys import bpf
            return bpf.map_lookup_elem(m, struct.pack("<I", 0), spec.value_size)
        return bytes(spec.data)

    def __getitem__(self, name: str):
        var = self._var(name)
        raw = self._image(var)[var.offset:var.offset + var.size]
        kind, signed = self._codec(var)
        if kind == "int":
            return int.from_bytes(raw, "little", signed=signed)
        return raw

    def value(self, name: str):
        """The variable decoded by its BTF type, as ``ebpfpy run`` prints it."""
        from ebpfpy.btf import values
        var = self._var(name)
        return values.decode(self._obj.btf, var.type_id, self._image(var)[var.offset:var.offset + var.size])

    def type_name(self, name: str) -> str:
        return self._obj.btf.describe(self._var(name).type_id)

    def set_text(self, name: str, text: str) -> None:
        """Set a variable from command-line text, read by the variable's type."""
        from .typedvalues import parse_text
        var = self._var(name)
        self[name] = _Typed(parse_text(self._obj.btf, var.type_id, text, name))

    def __setitem__(self, name: str, value) -> None:
        var = self._var(name)
        kind, signed = self._codec(var)
        if isinstance(value, _Typed) or isinstance(value, (dict, list, tuple, str, float)):
            from .typedvalues import encode
            raw = encode(self._obj.btf, var.type_id, getattr(value, "value", value), name)
        elif (isinstance(value, int) and not isinstance(value, bool)) or kind == "int":
            raw = int(value).to_bytes(var.size, "little", signed=signed and int(value) < 0)
        else:
            raw = bytes(value)
            if len(raw) > var.size:
                raise ValueError(f"{name}: {len(raw)} bytes do not fit in {var.size}")
            raw = raw.ljust(var.size, b"\0")
        obj = self._obj
        spec = obj.map_specs[obj._data_map_name(var.section)]
        if not obj.loaded:
            spec.data[var.offset:var.offset + var.size] = raw
            return
        if spec.readonly:
            raise ObjectError(f"{name} is in {var.section}, which is frozen after load")
        image = bytearray(self._image(var))
        image[var.offset:var.offset + var.size] = raw
        from ebpfpy.sys import bpf
        bpf.map_update_elem(obj.maps[spec.name], struct.pack("<I", 0), bytes(image))

    def __delitem__(self, name: str) -> None:
        raise TypeError("global variables cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._obj._vars)

    def __len__(self) -> int:
        return len(self._obj._vars)

    def section_of(self, name: str) -> str:
        return self._var(name).section


class _Typed:
    """A value already read by its type (``set_text``): always encoded through BTF."""

    def __init__(self, value):
        self.value = value


class Maps(dict):
    """Loaded maps by name; global-data maps also answer to their section name
    (``obj.maps[".data"]`` as well as libbpf's ``obj.maps["myprog.data"]``)."""

    def __init__(self, obj: BPFObject):
        super().__init__()
        self._obj = obj

    def __missing__(self, key: str):
        for spec in self._obj.map_specs.values():
            if spec.is_global_data and spec.section == key and spec.name in self:
                return self[spec.name]
        state = "" if self._obj.loaded else " (the object is not loaded yet: see map_specs)"
        raise KeyError(f"no map {key!r}{state}")

    def __eq__(self, other) -> bool:
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]


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
            self._create_maps(pin_root)
            self._load_programs(target_btf)
            for spec in self.map_specs.values():  # program arrays: their initial programs
                if spec.map_type == MapType.PROG_ARRAY and spec.init_slots and spec.name in self.maps:
                    self._fill_slots(spec, self.programs)
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

    def _create_maps(self, pin_root: str) -> None:
        if self._kconfig:
            image = kconfig_image(self.btf, self._kconfig, self.path)
            self.map_specs[internal_map_name(self.name, KCONFIG_SEC)].data[:] = image
        from ebpfpy.maps import Map
        from ebpfpy.sys import bpf
        created = []
        for spec in self.map_specs.values():
            pin_path = os.path.join(pin_root, spec.name) if spec.pinning == PIN_BY_NAME else None
            codecs = self._codecs(spec)
            if pin_path and os.path.exists(pin_path):
                pinned = Map.from_pin(pin_path, **codecs)
                check_pinned(pinned, spec, pin_path)
                self.maps[spec.name] = pinned
                continue
            max_entries = kernel_max_entries(spec)
            inner = self._create_map(spec.inner) if spec.inner is not None else None
            try:
                fd = self._create_map(spec, inner_map_fd=inner)
            finally:
                if inner is not None:
                    inner.close()  # only a template: the kernel keeps what it needs
            # exactly what the object asked for (no Map.create defaults), as libbpf creates it
            m = Map._owning(fd, spec.map_type, spec.key_size, spec.value_size, max_entries,
                            name=spec.name, flags=spec.flags, **codecs)
            self.maps[spec.name] = m
            created.append(spec)
            if spec.is_global_data:
                bpf.map_update_elem(m, struct.pack("<I", 0), bytes(spec.data))
                if spec.readonly:
                    bpf.map_freeze(m)
            if pin_path:
                bpf.obj_pin(m, pin_path)
        for spec in created:  # maps of maps: their initial inner maps, now that all exist
            if spec.inner is not None:
                self._fill_slots(spec, self.maps)

    def _create_map(self, spec: MapSpec, inner_map_fd=None):
        """One map as libbpf creates it: with BTF key/value types where the type allows,
        again without them if the kernel refuses those."""
        from ebpfpy.sys import bpf
        from ebpfpy.sys.errors import BPFError
        max_entries = kernel_max_entries(spec)
        args = {"name": spec.name, "flags": spec.flags, "map_extra": spec.map_extra,
                "numa_node": spec.numa_node, "inner_map_fd": inner_map_fd or 0}
        typed = spec.map_type not in NO_BTF_TYPES and (spec.btf_value_type_id or spec.btf_key_type_id)
        if self.btf_fd is not None and typed:
            try:
                return bpf.map_create(spec.map_type, spec.key_size, spec.value_size, max_entries,
                                      btf_fd=self.btf_fd, btf_key_type_id=spec.btf_key_type_id,
                                      btf_value_type_id=spec.btf_value_type_id, **args)
            except BPFError:
                pass  # like libbpf: retry without type info
        try:
            return bpf.map_create(spec.map_type, spec.key_size, spec.value_size, max_entries, **args)
        except BPFError as e:
            hint = " (it has no max_entries)" if not max_entries else ""
            raise LoadError(f"{self.path}: creating map {spec.name!r} failed: "
                            f"{e.strerror} [{e.errno_name}]{hint}") from None

    def _fill_slots(self, spec: MapSpec, sources: dict) -> None:
        """``.values = {[i] = &x}``: slot i of a map of maps (or program array) holds x's fd."""
        from ebpfpy.sys import bpf
        from ebpfpy.sys.errors import BPFError
        for index, name in sorted(spec.init_slots.items()):
            target = sources.get(name)
            if target is None or getattr(target, "program", target) is None:
                if spec.map_type == MapType.PROG_ARRAY:
                    continue  # a program not loaded (autoload off): its slot stays empty
                raise LoadError(f"{self.path}: map {spec.name!r}: initial value #{index} names {name!r}, "
                                "which is not loaded")
            fd = target.program.fd if hasattr(target, "program") else target.fd
            key = index.to_bytes(spec.key_size, "little")
            try:
                bpf.map_update_elem(self.maps[spec.name], key, struct.pack("<I", fd))
            except BPFError as e:
                raise LoadError(f"{self.path}: map {spec.name!r}: setting initial value #{index} ({name!r}) "
                                f"failed: {e.strerror} [{e.errno_name}]") from None

    def _codecs(self, spec: MapSpec) -> dict:
        """key=/value= codecs from the map's BTF types: ``obj.maps["events"][pid]`` gives a
        dict of the struct's members.  Global-data maps stay raw (``globals`` is their view)."""
        from ebpfpy.btf import values
        from ebpfpy.maps import Codec
        out = {}
        if self.btf is None or spec.is_global_data:
            return out
        btf = self.btf
        for which, tid, size in (("key", spec.btf_key_type_id, spec.key_size),
                                 ("value", spec.btf_value_type_id, spec.value_size)):
            if tid and btf.size_of(tid) == size:
                out[which] = Codec(size, lambda v, t=tid: values.encode(btf, t, v),
                                   lambda b, t=tid: values.decode(btf, t, b))
        return out

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
            if d.btf_target == "func":
                return spec.find(arg, Kind.FUNC)
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
                last = relo or next((ln for ln in reversed(log.strip().splitlines()) if ln.strip()), "")
                hint = f" (verifier: {last.strip()})" if last else ""
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
    def attach_all(self, pid: int = -1, *, iface=None, cgroup=None) -> list:
        """Attach every loaded program whose section names its target, and with ``iface``
        (a network interface) the xdp and tcx programs, with ``cgroup`` (a cgroup v2 directory)
        the cgroup ones; returns the attachments."""
        if not self.loaded:
            self.load()
        given = {"iface": iface is not None, "cgroup": cgroup is not None}
        out = []
        try:
            for prog in self.programs.values():
                if prog.program is None:
                    continue
                if prog.link_target is not None:
                    if given[prog.link_target]:
                        out += prog.attach(pid=pid, iface=iface, cgroup=cgroup)
                elif prog.attachable:
                    out += prog.attach(pid=pid)
        except BaseException:
            for a in out:
                a.close()
            raise
        self.attachments += out
        return out

    def pin_programs(self, directory: str) -> list[str]:
        """Pin each loaded program at ``directory/<name>`` (bpftool prog loadall's layout)."""
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
