"""``extern ... __kconfig`` variables: kernel config values in a read-only ``.kconfig`` map.

An object may declare ``extern int LINUX_KERNEL_VERSION __kconfig;`` or
``extern bool CONFIG_BPF_SYSCALL __kconfig;``.  As libbpf does, the values are
read from the running kernel's config (``/proc/config.gz`` or
``/boot/config-$(uname -r)``), laid out in one array map (sorted by alignment,
size, name, so offsets match libbpf's), and LD_IMM64 references to them
become map-value loads.  Weak externs that the kernel does not define read 0.
"""
from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, replace

from ebpfpy.btf import BTF, Kind
from ebpfpy.btf.types import LINKAGE_GLOBAL

from .reader import STB_WEAK, ObjectError, RawObject

KCONFIG_SEC = ".kconfig"


@dataclass(frozen=True)
class KconfigExtern:
    name: str
    type_id: int
    size: int
    align: int
    weak: bool
    offset: int = 0


def kconfig_externs(raw: RawObject, btf: BTF | None) -> list[KconfigExtern]:
    """The object's ``.kconfig`` externs with their offsets in the map value (libbpf's order)."""
    if btf is None:
        return []
    ids = btf.find_all(KCONFIG_SEC, Kind.DATASEC)
    if not ids:
        return []
    undefined = {s.name: s for s in raw.symbols if s.shndx == 0 and s.name}
    out = []
    for vs in btf[ids[0]].vars:
        var = btf[vs.type]
        sym = undefined.get(var.name)
        if sym is None:
            raise ObjectError(f"{raw.path}: kconfig extern {var.name!r} has no ELF symbol")
        out.append(KconfigExtern(var.name, var.type, btf.size_of(var.type), btf.align_of(var.type),
                                 sym.bind == STB_WEAK))
    out.sort(key=lambda e: (-e.align, e.size, e.name))
    placed, off = [], 0
    for e in out:
        off = -(-off // e.align) * e.align
        placed.append(replace(e, offset=off))
        off += e.size
    return placed


def kconfig_size(externs: list[KconfigExtern]) -> int:
    return max((e.offset + e.size for e in externs), default=0)


def fix_kconfig_btf(btf: BTF, externs: list[KconfigExtern]) -> BTF:
    """Give the ``.kconfig`` DATASEC its real size and offsets and make its VARs allocated,
    which the kernel's BTF checker insists on."""
    from ebpfpy.btf import Datasec, Var, VarSecinfo, encode
    if not externs:
        return btf
    by_name = {e.name: e for e in externs}
    types = [btf[t] for t in btf.ids()]
    for i, t in enumerate(types):
        if isinstance(t, Datasec) and t.name == KCONFIG_SEC:
            vs = []
            for v in t.vars:
                var = btf[v.type]
                e = by_name[var.name]
                types[v.type - btf.first_id] = Var(var.name, var.type, LINKAGE_GLOBAL)
                vs.append(VarSecinfo(v.type, e.offset, v.size))
            types[i] = Datasec(t.name, kconfig_size(externs), tuple(sorted(vs, key=lambda x: x.offset)))
    return BTF(encode(types, strings=btf.strings))


def read_kernel_config() -> dict[str, str]:
    """CONFIG_* -> value text (``y``, ``m``, ``"str"``, ``123``), from the running kernel."""
    text = None
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        path = f"/boot/config-{os.uname().release}"
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return {}
    cfg = {}
    for line in text.splitlines():
        m = re.match(r"(CONFIG_\w+)=(.*)", line)
        if m:
            cfg[m.group(1)] = m.group(2)
    return cfg


def kernel_version() -> int:
    """KERNEL_VERSION(a, b, c) of the running kernel, the patch level capped at 255 as libbpf does."""
    nums = [int(x) for x in re.findall(r"\d+", os.uname().release)[:3]] + [0, 0, 0]
    return (nums[0] << 16) + (nums[1] << 8) + min(nums[2], 255)


def _encode_value(btf: BTF, e: KconfigExtern, text: str) -> bytes:
    t = btf[btf.resolve(e.type_id)]
    if t.kind in (Kind.ENUM, Kind.ENUM64) or (t.kind == Kind.INT and t.encoding & 4):  # tristate / bool
        tri = {"y": 1, "n": 0, "m": 2}.get(text)
        if tri is None or (t.kind == Kind.INT and tri == 2):
            raise ObjectError(f"kconfig {e.name}={text} does not fit {btf.describe(e.type_id)}")
        return tri.to_bytes(e.size, "little")
    if t.kind == Kind.INT and e.size == 1 and text in ("y", "n", "m"):
        return text.encode()
    if t.kind == Kind.ARRAY:
        s = text[1:-1] if text.startswith('"') and text.endswith('"') else text
        return s.encode()[:e.size - 1].ljust(e.size, b"\0")
    if t.kind == Kind.INT:
        try:
            v = int(text.strip('"'), 0)
        except ValueError:
            raise ObjectError(f"kconfig {e.name}={text} is not a number") from None
        return (v & ((1 << (8 * e.size)) - 1)).to_bytes(e.size, "little")
    raise ObjectError(f"kconfig extern {e.name} has unsupported type {btf.describe(e.type_id)}")


def kconfig_image(btf: BTF, externs: list[KconfigExtern], path: str) -> bytearray:
    """The ``.kconfig`` map value for this kernel."""
    cfg: dict[str, str] = read_kernel_config() if any(e.name.startswith("CONFIG_") for e in externs) else {}
    image = bytearray(kconfig_size(externs))
    for e in externs:
        if e.name == "LINUX_KERNEL_VERSION":
            raw = kernel_version().to_bytes(e.size, "little")
        elif e.name in cfg:
            raw = _encode_value(btf, e, cfg[e.name])
        elif e.weak or e.name.startswith("CONFIG_"):
            if not e.weak:
                raise ObjectError(f"{path}: kconfig extern {e.name} is not set in this kernel's config "
                                  "(declare it __weak to read 0)")
            raw = bytes(e.size)
        else:
            raise ObjectError(f"{path}: unknown kconfig extern {e.name}")
        image[e.offset:e.offset + e.size] = raw
    return image


# -- __ksym externs: kernel functions (kfuncs) and per-CPU variables, by BTF id --------------

KSYMS_SEC = ".ksyms"
DUMMY_KSYM = "dummy_ksym"


@dataclass(frozen=True)
class KsymExtern:
    name: str
    is_func: bool
    type_id: int  # local FUNC or VAR id
    weak: bool


def ksym_externs(raw: RawObject, btf: BTF | None) -> list[KsymExtern]:
    if btf is None:
        return []
    ids = btf.find_all(KSYMS_SEC, Kind.DATASEC)
    if not ids:
        return []
    undefined = {s.name: s for s in raw.symbols if s.shndx == 0 and s.name}
    out = []
    for vs in btf[ids[0]].vars:
        t = btf[vs.type]
        sym = undefined.get(t.name)
        if sym is None:
            raise ObjectError(f"{raw.path}: ksym extern {t.name!r} has no ELF symbol")
        if t.kind == Kind.VAR and btf.kind_of(btf.resolve(t.type)) == Kind.VOID:
            raise ObjectError(f"{raw.path}: typeless ksym {t.name!r} (kallsyms address) is not supported")
        out.append(KsymExtern(t.name, t.kind == Kind.FUNC, vs.type, sym.bind == STB_WEAK))
    return out


def fix_ksyms_btf(btf: BTF) -> BTF:
    """What the kernel accepts, done as libbpf does: extern VARs become allocated ``int``s,
    extern FUNCs become global (unnamed parameters named ``dummy_ksym``) and their DATASEC
    slots point at an added ``dummy_ksym`` VAR; each slot is 4 bytes."""
    from ebpfpy.btf import Datasec, Func, FuncProto, Int, Param, Var, VarSecinfo, encode
    ids = btf.find_all(KSYMS_SEC, Kind.DATASEC)
    if not ids:
        return btf
    types = [btf[t] for t in btf.ids()]
    sec_id = ids[0]
    sec = btf[sec_id]
    int_id = next((i for i in btf.ids() if isinstance(btf[i], Int) and btf[i].bits == 32), 0)
    dummy = 0
    if any(btf.kind_of(v.type) == Kind.FUNC for v in sec.vars):
        types.append(Var(DUMMY_KSYM, int_id, LINKAGE_GLOBAL))
        dummy = btf.count
    slots = []
    for i, vs in enumerate(sec.vars):
        t = btf[vs.type]
        if isinstance(t, Func):
            proto = types[t.type - 1]
            if isinstance(proto, FuncProto):
                types[t.type - 1] = FuncProto(proto.type, tuple(
                    Param(p.name or (DUMMY_KSYM if p.type else ""), p.type) for p in proto.params))
            types[vs.type - 1] = Func(t.name, t.type, LINKAGE_GLOBAL)
            slots.append(VarSecinfo(dummy, i * 4, 4))
        else:
            types[vs.type - 1] = Var(t.name, int_id, LINKAGE_GLOBAL)
            slots.append(VarSecinfo(vs.type, i * 4, 4))
    types[sec_id - 1] = Datasec(sec.name, 4 * len(sec.vars), tuple(slots))
    return BTF(encode(types, strings=btf.strings))


def resolve_ksyms(externs: list[KsymExtern], local: BTF, kernel: BTF, path: str) -> dict[str, int]:
    """name -> vmlinux BTF id (0: a weak extern the kernel lacks)."""
    from .core import types_compatible
    out = {}
    for e in externs:
        kind = Kind.FUNC if e.is_func else Kind.VAR
        ids = kernel.find_all(e.name, kind)
        if not ids:
            if e.weak:
                out[e.name] = 0
                continue
            what = "kfunc" if e.is_func else "per-CPU variable"
            raise ObjectError(f"{path}: {what} {e.name!r} is not in the running kernel's BTF")
        kid = ids[0]
        if not types_compatible(local, local[e.type_id].type, kernel, kernel[kid].type):
            raise ObjectError(f"{path}: ksym {e.name!r} does not match the kernel's type "
                              f"({kernel.describe(kernel[kid].type)})")
        out[e.name] = kid
    return out
