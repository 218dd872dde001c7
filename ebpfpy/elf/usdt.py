"""The user-space half of libbpf's ``usdt.bpf.h``: spec maps, spec ids, uprobes with cookies.

A program built with ``usdt.bpf.h`` does not know where its arguments are: ``bpf_usdt_arg()``
looks up a *spec* (per argument: a constant, a register, or memory at register + offset,
with the width and signedness to apply) in the object's ``__bpf_usdt_specs`` array, under
the spec id it finds in its BPF cookie (or, on kernels without cookies, in
``__bpf_usdt_ip_to_spec_id`` under the probe's address).  libbpf's ``usdt.c`` fills those
maps at attach time from the binary's ``.note.stapsdt`` notes; so do we, reusing the note
and argument parsers of ``ebpfpy.attach.usdt``.

The spec layout is read from the object's own BTF (``struct __bpf_usdt_spec``), not
hard-coded: the header changed between libbpf releases (1.7 packs an index register and a
scale next to ``arg_type`` for SIB operands like ``8@-8(%rbp,%rax,8)``), and the object was
built against whichever header the system had.  A SIB operand is refused, as libbpf refuses
it, when the object's header has no ``BPF_USDT_ARG_SIB``.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ebpfpy.btf import BTF, Kind

from .reader import ObjectError

if TYPE_CHECKING:
    from ebpfpy.attach.provider import Attachment
    from ebpfpy.attach.usdt import UsdtArg, UsdtProbe

    from .objfile import BPFObject
    from .program import ObjProgram

SPECS_MAP = "__bpf_usdt_specs"
IP_MAP = "__bpf_usdt_ip_to_spec_id"
INTERNAL_MAPS = frozenset({SPECS_MAP, IP_MAP})
_ARG_TYPES = ("BPF_USDT_ARG_CONST", "BPF_USDT_ARG_REG", "BPF_USDT_ARG_REG_DEREF")
_SIB = "BPF_USDT_ARG_SIB"


@dataclass(frozen=True)
class SpecLayout:
    """What the object's ``usdt.bpf.h`` says a spec looks like."""

    btf: BTF
    spec_type: int  # struct __bpf_usdt_spec
    max_args: int  # BPF_USDT_MAX_ARG_CNT: the length of its args[] array
    arg_types: dict[str, int]  # enumerator name -> value (enum __bpf_usdt_arg_type)
    arg_members: frozenset[str]  # member names of struct __bpf_usdt_arg_spec

    def encode(self, args: list[dict], cookie: int) -> bytes:
        return _encode(self.btf, self.spec_type, {"args": args, "usdt_cookie": cookie, "arg_cnt": len(args)})


def _encode(btf: BTF, tid: int, value: dict) -> bytes:
    from ebpfpy.btf import values
    return values.encode(btf, tid, value)


def has_usdt_maps(obj: BPFObject) -> bool:
    """Whether the object includes ``usdt.bpf.h`` (its two maps are there)."""
    return SPECS_MAP in obj.map_specs and IP_MAP in obj.map_specs


def spec_layout(obj: BPFObject) -> SpecLayout:
    """The spec layout from the object's BTF (the specs map's value type)."""
    btf = obj.btf
    spec = obj.map_specs.get(SPECS_MAP)
    if btf is None or spec is None or not spec.btf_value_type_id:
        raise ObjectError(f"{obj.path}: no {SPECS_MAP} map with BTF: was the object built with usdt.bpf.h and -g?")
    tid = btf.resolve(spec.btf_value_type_id)
    members = {m.name: m for m in btf.members(tid)}
    try:
        arr = btf[btf.resolve(members["args"].type)]
        arg_tid = btf.resolve(arr.type)
        arg_members = {m.name: m for m in btf.members(arg_tid)}
        enum = btf[btf.resolve(arg_members["arg_type"].type)]
        if enum.kind not in (Kind.ENUM, Kind.ENUM64):
            raise KeyError("arg_type")
    except (KeyError, AttributeError) as e:
        raise ObjectError(f"{obj.path}: struct __bpf_usdt_spec is not usdt.bpf.h's (no {e})") from None
    arg_types = dict(enum.values)
    missing = [n for n in _ARG_TYPES if n not in arg_types]
    if missing or arr.kind != Kind.ARRAY:
        raise ObjectError(f"{obj.path}: enum __bpf_usdt_arg_type lacks {', '.join(missing) or 'args[]'}")
    return SpecLayout(btf, tid, arr.nelems, arg_types, frozenset(arg_members))


def arg_spec(layout: SpecLayout, arg: UsdtArg, index: int, probe: UsdtProbe) -> dict:
    """One ``struct __bpf_usdt_arg_spec`` as libbpf's ``parse_usdt_arg`` fills it (x86-64)."""
    from ebpfpy.attach.usdt import REGISTERS
    out = {"arg_signed": int(arg.signed), "arg_bitshift": 64 - 8 * arg.size}
    if arg.kind == "const":
        out.update(arg_type=layout.arg_types["BPF_USDT_ARG_CONST"], val_off=arg.value, reg_off=0)
    elif arg.kind == "reg":
        out.update(arg_type=layout.arg_types["BPF_USDT_ARG_REG"], val_off=0, reg_off=REGISTERS[arg.reg][0])
    elif arg.index is None:
        out.update(arg_type=layout.arg_types["BPF_USDT_ARG_REG_DEREF"], val_off=arg.offset,
                   reg_off=REGISTERS[arg.reg][0])
    elif _SIB in layout.arg_types and "idx_reg_off" in layout.arg_members:
        out.update(arg_type=layout.arg_types[_SIB], val_off=arg.offset, reg_off=REGISTERS[arg.reg][0],
                   idx_reg_off=REGISTERS[arg.index][0])
        if "scale_bitshift" in layout.arg_members:
            out["scale_bitshift"] = arg.scale.bit_length() - 1
        else:
            out["scale"] = arg.scale
    else:
        raise ObjectError(f"usdt: unrecognized arg #{index + 1} spec {arg.text!r} of {probe.provider}:{probe.name} "
                          f"in {probe.path} (an indexed operand: the object's usdt.bpf.h has no BPF_USDT_ARG_SIB)")
    out["val_off"] &= (1 << 64) - 1
    return out


def probe_spec(layout: SpecLayout, probe: UsdtProbe, cookie: int) -> bytes:
    from ebpfpy.attach.errors import ProbeSpecError
    try:
        args = probe.args
    except ProbeSpecError as e:
        raise ObjectError(f"usdt: {probe.provider}:{probe.name} in {probe.path}: {e}") from None
    if len(args) > layout.max_args:
        raise ObjectError(f"usdt: too many USDT arguments (> {layout.max_args}) for "
                          f"'{probe.provider}:{probe.name}' with args spec {probe.args_text!r}")
    return layout.encode([arg_spec(layout, a, i, probe) for i, a in enumerate(args)], cookie)


def _mapped_ip(probe: UsdtProbe, pid: int) -> int:
    """The address the probe runs at in process ``pid`` (a shared object or PIE: its
    mapping's start - the mapping's file offset + the probe's file offset)."""
    real = os.path.realpath(probe.path)
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) < 6 or os.path.realpath(parts[5].strip()) != real:
                    continue
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                off = int(parts[2], 16)
                if off <= probe.offset < off + (hi - lo):
                    return lo - off + probe.offset
    except OSError as e:
        raise ObjectError(f"usdt: cannot read the mappings of pid {pid}: {e.strerror}") from None
    raise ObjectError(f"usdt: {probe.path} is not mapped in pid {pid}")


class _SpecCleanup:
    """The last part of a USDT attachment to close: gives its spec ids back and removes its
    ip map entries, once the uprobes that used them are gone."""

    def __init__(self, manager: UsdtManager, ids: list[int], ips: list[int]):
        self.manager, self.ids, self.ips = manager, ids, ips

    def close(self) -> None:
        ids, self.ids = self.ids, []
        ips, self.ips = self.ips, []
        self.manager.release(ids, ips)


class UsdtManager:
    """Spec ids of one loaded object (libbpf's ``usdt_manager``): ids are handed out from 0,
    reused after their attachment closes; one spec per distinct argument string per attach."""

    def __init__(self, obj: BPFObject):
        from .system import has_bpf_cookie
        self.obj = obj
        self.layout = spec_layout(obj)
        self.has_cookie = has_bpf_cookie()
        self._free: list[int] = []
        self._next = 0

    def _map(self, name: str):
        return self.obj.maps[name]

    def _alloc(self) -> int:
        if self._free:
            return self._free.pop()
        limit = self.obj.map_specs[SPECS_MAP].max_entries
        if self._next >= limit:
            raise ObjectError(f"usdt: ran out of spec ids ({SPECS_MAP} has {limit} entries; "
                              "raise BPF_USDT_MAX_SPEC_CNT)")
        self._next += 1
        return self._next - 1

    def release(self, ids: list[int], ips: list[int]) -> None:
        from ebpfpy.sys import bpf
        if self.obj.loaded:
            for ip in ips:
                try:
                    bpf.map_delete_elem(self._map(IP_MAP), struct.pack("<q", ip))
                except (OSError, KeyError):
                    pass
        self._free.extend(reversed(ids))

    def attach(self, prog: ObjProgram, binary: str, provider: str, name: str, *, pid: int = -1,
               cookie: int = 0) -> Attachment:
        """``bpf_program__attach_usdt``: one uprobe per probe site of ``provider:name`` in
        ``binary`` (and its semaphore raised), each told its spec id by a BPF cookie."""
        from ebpfpy.attach.binary import elf_image, resolve_binaries
        from ebpfpy.attach.errors import ProbeNotFoundError
        from ebpfpy.attach.provider import Attachment
        from ebpfpy.attach.uprobe import attach_uprobe_offset
        from ebpfpy.attach.usdt import match_probes, read_probes
        from ebpfpy.sys import bpf

        sites: list[UsdtProbe] = []
        for path in resolve_binaries(binary, pid):
            sites += match_probes(read_probes(path), provider, name)
        if not sites:
            raise ProbeNotFoundError(f"usdt: no USDT probe {provider}:{name} in {binary}")
        spec_of: dict[str, int] = {}
        cleanup = _SpecCleanup(self, [], [])
        att = Attachment(f"usdt:{binary}:{provider}:{name}", [cleanup])
        try:
            for site in sites:
                spec_id = spec_of.get(site.args_text)
                if spec_id is None:
                    raw = probe_spec(self.layout, site, cookie)
                    spec_id = spec_of[site.args_text] = self._alloc()
                    cleanup.ids.append(spec_id)
                    bpf.map_update_elem(self._map(SPECS_MAP), struct.pack("<i", spec_id), raw)
                if not self.has_cookie:
                    ip = self._ip(site, pid, elf_image(site.path).elf_type)
                    bpf.map_update_elem(self._map(IP_MAP), struct.pack("<q", ip), struct.pack("<I", spec_id))
                    cleanup.ips.append(ip)
                att.absorb(attach_uprobe_offset(prog, site.path, site.offset, probe=site.probe, pid=pid,
                                                ref_ctr_offset=site.semaphore_offset,
                                                cookie=spec_id if self.has_cookie else 0))
        except BaseException:
            att.close()
            raise
        return att

    @staticmethod
    def _ip(site: UsdtProbe, pid: int, elf_type: str) -> int:
        if elf_type != "ET_DYN":
            return site.pc
        if pid < 0:
            raise ObjectError("usdt: attaching to a shared library or PIE without a pid is not supported "
                              "on a kernel without BPF cookies")
        return _mapped_ip(site, pid)


def manager(obj: BPFObject) -> UsdtManager:
    """The object's manager, made on first use (after load: it writes to the object's maps)."""
    if not obj.loaded:
        raise ObjectError(f"{obj.path}: load the object before attaching USDT programs")
    if obj.usdt_manager is None:
        obj.usdt_manager = UsdtManager(obj)
    return obj.usdt_manager


def split_target(arg: str) -> tuple[str, str, str] | None:
    """``PATH:PROVIDER:NAME`` of a ``usdt/...`` section, as libbpf splits it; None if malformed."""
    parts = arg.rsplit(":", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def attach_program(prog: ObjProgram, binary: str, provider: str, name: str, *, pid: int = -1,
                   cookie: int = 0) -> Any:
    return manager(prog.obj).attach(prog, binary, provider, name, pid=pid, cookie=cookie)
