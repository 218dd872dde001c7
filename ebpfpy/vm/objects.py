"""Clang-built objects in the VM: the maps an object declares become emulated maps (global
data sections as one-element arrays holding their initial image), each program is linked with
its subprograms as ``ebpfpy.elf`` links it for the kernel, and BTF line info becomes the
programs' source lines.

Nothing touches the kernel, with two exceptions the object itself asks for: CO-RE relocations
and ``__ksym`` externs are resolved against the running kernel's BTF (``/sys/kernel/btf``);
``__kconfig`` values read as zeros.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import VMError
from .maps import Codec, VMMap
from .source import SourceLine

if TYPE_CHECKING:
    from .machine import VM, VMProgram


class VMObject:
    """The programs (by function name) and maps (by name) of an object loaded into a VM;
    ``globals`` are the global variables, read from and written to the data maps."""

    def __init__(self, vm: VM, obj: Any, programs: dict[str, VMProgram], maps: dict[str, VMMap]) -> None:
        self.vm = vm
        self.obj = obj
        self.path = obj.path
        self.programs = programs
        self.maps = maps
        self.globals = _Globals(self)

    def program(self, name: str | None = None) -> VMProgram:
        """A program by function or section name; with no name, the only one there is."""
        if name is None:
            if len(self.programs) == 1:
                return next(iter(self.programs.values()))
            raise VMError(f"{self.path} has {len(self.programs)} programs ({', '.join(self.programs)}): "
                          "say which (--section)")
        if name in self.programs:
            return self.programs[name]
        found = [p for p in self.programs.values() if p.section == name]
        if len(found) == 1:
            return found[0]
        if found:
            raise VMError(f"section {name!r} holds {len(found)} programs ({', '.join(p.name for p in found)}): "
                          "name one by its function")
        raise VMError(f"{self.path} has no program or section {name!r} "
                      f"(programs: {', '.join(f'{p.name} in {p.section}' for p in self.programs.values())})")

    def type_of(self, map_name: str) -> tuple[int, int]:
        """BTF type ids of a map's key and value (0 where unknown)."""
        spec = self.obj.map_specs[map_name]
        return spec.btf_key_type_id, spec.btf_value_type_id


class _Globals:
    def __init__(self, vobj: VMObject) -> None:
        from ebpfpy.elf.mapdefs import global_vars

        self._vobj = vobj
        self._vars = global_vars(vobj.obj.raw, vobj.obj.btf)

    def _where(self, name: str):
        var = self._vars[name]
        spec = next(s for s in self._vobj.obj.map_specs.values() if s.is_global_data and s.section == var.section)
        return var, self._vobj.maps[spec.name]

    def __iter__(self):
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)

    def __getitem__(self, name: str):
        var, m = self._where(name)
        raw = m.lookup_raw(b"\0\0\0\0")[var.offset:var.offset + var.size]
        from ebpfpy.btf.values import decode

        return decode(self._vobj.obj.btf, var.type_id, raw)

    def __setitem__(self, name: str, value) -> None:
        var, m = self._where(name)
        from ebpfpy.btf.values import encode

        image = bytearray(m.lookup_raw(b"\0\0\0\0"))
        image[var.offset:var.offset + var.size] = encode(self._vobj.obj.btf, var.type_id, value)
        m.update(0, bytes(image))


def _codecs(obj: Any, spec: Any) -> dict:
    """The loader's BTF codecs for a map, made with the VM's Codec."""
    from ebpfpy.elf.mapload import map_codecs

    return map_codecs(obj, spec, Codec)


def _lines(obj: Any, records: list[tuple[int, int, int, int]], nslots: int) -> dict[int, SourceLine]:
    """Every slot's source line: a line_info record holds until the next one."""
    btf = obj.raw.btf
    if btf is None or not records:
        return {}
    out: dict[int, SourceLine] = {}
    marks = sorted(records)
    for i, (insn, file_off, line_off, line_col) in enumerate(marks):
        try:
            line = SourceLine(os.path.basename(btf.string(file_off)), line_col >> 10, line_col & 0x3FF,
                              btf.string(line_off).strip())
        except Exception:  # a damaged string offset: no line rather than no program
            continue
        end = marks[i + 1][0] if i + 1 < len(marks) else nslots
        for slot in range(insn, end):
            out[slot] = line
    return out


def load_object(vm: VM, path: str) -> VMObject:
    from ebpfpy.elf import ObjectError
    from ebpfpy.elf import load_object as read_object
    from ebpfpy.elf.link import fill_map_fds

    try:
        obj = read_object(path)
    except (ObjectError, OSError) as e:
        raise VMError(f"{path}: {e}") from None
    maps: dict[str, VMMap] = {}
    for name, spec in obj.map_specs.items():
        m = vm.create_map(spec.map_type, spec.key_size, spec.value_size, spec.max_entries or None, name=name,
                          flags=spec.flags, **_codecs(obj, spec))
        if spec.is_global_data:
            m.update(0, bytes(spec.data))
        maps[name] = m
    try:
        linked = obj.link()
    except Exception as e:  # CO-RE or ksyms without kernel BTF, bad relocations: one line
        raise VMError(f"{path}: linking failed: {e}") from None
    fds = {name: m.fd for name, m in maps.items()}
    programs = {}
    for name, lp in linked.items():
        code = fill_map_fds(lp.code, lp.map_refs, fds)
        nslots = len(code) // 8
        programs[name] = vm.load(bytes(code), name=name, section=lp.section, lines=_lines(obj, lp.line_info, nslots))
    return VMObject(vm, obj, programs, maps)
