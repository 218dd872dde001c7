"""``extern ... __kconfig`` variables: kernel config values in a read-only ``.kconfig`` map.

An object may declare ``extern int LINUX_KERNEL_VERSION __kconfig;`` or
``extern bool CONFIG_BPF_SYSCALL __kconfig;``.  As libbpf does, the values are
laid out in one array map (sorted by alignment, size, name, so offsets match
libbpf's), and LD_IMM64 references to them become map-value loads.

The values follow libbpf's rules:

- ``LINUX_KERNEL_VERSION``: KERNEL_VERSION(a, b, c) of the running kernel (c clamped to 255);
  ``LINUX_HAS_BPF_COOKIE`` and ``LINUX_HAS_SYSCALL_WRAPPER``: 1 or 0, probed; any other
  ``LINUX_*`` extern must be weak and reads 0.
- ``CONFIG_*``: from ``/boot/config-$(uname -r)`` or ``/proc/config.gz``.  ``y``/``n``/``m``
  go into a ``bool`` (1/0; ``m`` is an error), an ``enum libbpf_tristate`` (1/0/2) or a
  one-byte integer (the character itself); a quoted string into a ``char`` array (truncated,
  NUL terminated); a number (``strtoull`` base 0) into an integer, checked to fit.
- An extern the kernel does not define reads 0 when weak, and is an error naming it
  when strong.  Any other name is an error.

The extern's type decides what it can hold (libbpf's ``kcfg`` types): a one-byte
``_Bool``, a one-byte integer (char), a 1/2/4/8-byte integer, ``enum
libbpf_tristate``, or a ``char`` array; anything else is refused when the object is opened.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from ebpfpy.btf import BTF, Kind
from ebpfpy.btf.types import LINKAGE_GLOBAL

from . import system
from .reader import STB_WEAK, ObjectError, RawObject

KCONFIG_SEC = ".kconfig"

# libbpf's kcfg types
KCFG_CHAR = "char"
KCFG_BOOL = "bool"
KCFG_INT = "int"
KCFG_TRISTATE = "tristate"
KCFG_CHAR_ARR = "char array"

TRISTATE = {"n": 0, "y": 1, "m": 2}  # enum libbpf_tristate


@dataclass(frozen=True)
class KconfigExtern:
    name: str
    type_id: int
    size: int
    align: int
    weak: bool
    offset: int = 0
    kcfg: str = KCFG_INT
    signed: bool = False


def kcfg_type(btf: BTF, type_id: int) -> tuple[str | None, bool]:
    """(libbpf's kcfg type, signed) of an extern's type; None when libbpf refuses it."""
    t = btf[btf.resolve(type_id)]
    if t.kind == Kind.INT:
        if t.encoding & 4:  # BTF_INT_BOOL
            return (KCFG_BOOL if t.size == 1 else None), False
        signed = bool(t.encoding & 1)
        if t.size == 1:
            return KCFG_CHAR, signed
        if t.size not in (2, 4, 8):
            return None, signed
        return KCFG_INT, signed
    if t.kind in (Kind.ENUM, Kind.ENUM64):
        if t.name != "libbpf_tristate" or (t.kind == Kind.ENUM and t.size != 4):
            return None, False
        return KCFG_TRISTATE, False
    if t.kind == Kind.ARRAY:
        if t.nelems == 0 or kcfg_type(btf, t.type)[0] != KCFG_CHAR:
            return None, False
        return KCFG_CHAR_ARR, False
    return None, False


def _extern_entries(raw: RawObject, btf: BTF | None, section: str, what: str) -> Iterator[tuple]:
    """(secinfo, type, ELF symbol) of each extern in the DATASEC ``section`` (``.kconfig``,
    ``.ksyms``): libbpf reads both the same way, and an extern without its undefined ELF
    symbol is a broken object."""
    if btf is None:
        return
    ids = btf.find_all(section, Kind.DATASEC)
    if not ids:
        return
    undefined = {s.name: s for s in raw.symbols if s.shndx == 0 and s.name}
    for vs in btf[ids[0]].vars:
        t = btf[vs.type]
        sym = undefined.get(t.name)
        if sym is None:
            raise ObjectError(f"{raw.path}: {what} extern {t.name!r} has no ELF symbol")
        yield vs, t, sym


def kconfig_externs(raw: RawObject, btf: BTF | None) -> list[KconfigExtern]:
    """The object's ``.kconfig`` externs with their offsets in the map value (libbpf's order)."""
    out = []
    for _vs, var, sym in _extern_entries(raw, btf, KCONFIG_SEC, "kconfig"):
        kind, signed = kcfg_type(btf, var.type)
        if kind is None:
            raise ObjectError(f"{raw.path}: kconfig extern {var.name!r} has a type libbpf does not support "
                              f"({btf.describe(var.type)}): use bool, char, an integer, "
                              "enum libbpf_tristate or a char array")
        out.append(KconfigExtern(var.name, var.type, btf.size_of(var.type), btf.align_of(var.type),
                                 sym.bind == STB_WEAK, kcfg=kind, signed=signed))
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
    found = system.read_kernel_config()
    return dict(_config_entries(found[1])) if found else {}


def _config_entries(lines: list[str]):
    for line in lines:
        if line.startswith("CONFIG_"):
            name, sep, value = line.rstrip("\n").partition("=")
            if sep and value:
                yield name, value


def kernel_version() -> int:
    """KERNEL_VERSION(a, b, c) of the running kernel, the patch level capped at 255 as libbpf does."""
    return system.kernel_version()


class KconfigError(ObjectError):
    pass


def _fits(e: KconfigExtern, value: int) -> bool:
    bits = e.size * 8
    if e.size == 8:
        return True
    if e.signed:
        return (value + (1 << (bits - 1))) % (1 << 64) < (1 << bits)
    return value >> bits == 0


def encode_number(e: KconfigExtern, value: int) -> bytes:
    """libbpf's set_kcfg_value_num: into an integer, a char or a bool, checked to fit."""
    value &= (1 << 64) - 1
    if e.kcfg not in (KCFG_INT, KCFG_CHAR, KCFG_BOOL):
        raise KconfigError(f"kconfig extern {e.name}: value {value} implies an integer, char or bool type")
    if e.kcfg == KCFG_BOOL and value > 1:
        raise KconfigError(f"kconfig extern {e.name}: value {value} is not a bool")
    if not _fits(e, value):
        raise KconfigError(f"kconfig extern {e.name}: value {value} does not fit in {e.size} bytes")
    return (value & ((1 << (8 * e.size)) - 1)).to_bytes(e.size, "little")


def _strtoull(text: str) -> int | None:
    """C's strtoull(text, &end, 0) with the whole string consumed; None when it is not a number."""
    t = text.strip(" \t")
    neg = t.startswith("-")
    if t[:1] in "+-":
        t = t[1:]
    try:
        if t[:2].lower() == "0x":
            v = int(t[2:], 16)
        elif len(t) > 1 and t[0] == "0":
            v = int(t[1:], 8)
        else:
            v = int(t, 10) if t.isdigit() else None
    except ValueError:
        return None
    if v is None or v >= 1 << 64:
        return None
    return (-v) % (1 << 64) if neg else v


def encode_config_value(e: KconfigExtern, text: str) -> bytes:
    """One ``CONFIG_X=text`` line's value in the extern's type, as libbpf converts it."""
    first = text[:1]
    if first in ("y", "n", "m"):
        if e.kcfg == KCFG_BOOL:
            if first == "m":
                raise KconfigError(f"kconfig extern {e.name}: value 'm' implies a tristate or char type")
            return bytes([first == "y"])
        if e.kcfg == KCFG_TRISTATE:
            return TRISTATE[first].to_bytes(e.size, "little")
        if e.kcfg == KCFG_CHAR:
            return first.encode()
        raise KconfigError(f"kconfig extern {e.name}: value '{first}' does not fit its {e.kcfg} type")
    if first == '"':
        if e.kcfg != KCFG_CHAR_ARR:
            raise KconfigError(f"kconfig extern {e.name}: a string value needs a char array")
        if len(text) < 2 or not text.endswith('"'):
            raise KconfigError(f"kconfig extern {e.name}: invalid string value {text}")
        raw = text[1:-1].encode()[:e.size - 1]
        return raw.ljust(e.size, b"\0")
    num = _strtoull(text)
    if num is None:
        raise KconfigError(f"kconfig extern {e.name}: value '{text}' is not a valid integer")
    if e.kcfg not in (KCFG_INT, KCFG_CHAR):
        raise KconfigError(f"kconfig extern {e.name}: value '{text}' implies an integer type")
    return encode_number(e, num)


VIRTUAL_EXTERNS = {
    "LINUX_KERNEL_VERSION": system.kernel_version,
    "LINUX_HAS_BPF_COOKIE": lambda: int(system.has_bpf_cookie()),
    "LINUX_HAS_SYSCALL_WRAPPER": lambda: int(system.has_syscall_wrapper()),
}


def kconfig_image(btf: BTF, externs: list[KconfigExtern], path: str) -> bytearray:
    """The ``.kconfig`` map value for this kernel (an ``ObjectError`` naming the extern when
    a value cannot be had)."""
    image = bytearray(kconfig_size(externs))
    done = set()

    def put(e: KconfigExtern, raw: bytes) -> None:
        image[e.offset:e.offset + e.size] = raw
        done.add(e.name)

    try:
        for e in externs:
            if e.name in VIRTUAL_EXTERNS:
                value = VIRTUAL_EXTERNS[e.name]()
                if e.name == "LINUX_KERNEL_VERSION" and not value:
                    raise KconfigError("cannot tell the kernel version from uname")
                put(e, encode_number(e, value))
            elif e.name.startswith("LINUX_"):
                if not e.weak:
                    raise KconfigError(f"kconfig extern {e.name} is not one libbpf knows "
                                       "(an unknown LINUX_ extern must be __weak to read 0)")
                done.add(e.name)  # 0
            elif not e.name.startswith("CONFIG_"):
                raise KconfigError(f"kconfig extern {e.name} is neither CONFIG_* nor LINUX_*")
        wanted = {e.name: e for e in externs if e.name.startswith("CONFIG_")}
        if wanted:
            found = system.read_kernel_config()
            if found is None:
                raise KconfigError(f"cannot read the kernel config ({' or '.join(system.kernel_config_paths())}) "
                                   f"for {', '.join(sorted(wanted))}")
            for name, value in _config_entries(found[1]):
                e = wanted.get(name)
                if e is not None and name not in done:
                    put(e, encode_config_value(e, value))
        missing = [e.name for e in externs if e.name not in done and not e.weak]
        if missing:
            raise KconfigError(f"kconfig extern {', '.join(missing)} is not set in this kernel's config "
                               "(declare it __weak to read 0)")
    except KconfigError as err:
        raise KconfigError(f"{path}: {err}") from None
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
    typeless: bool = False  # ``extern const void x __ksym``: its kallsyms address


class KsymAddress(int):
    """A typeless ksym's value: a kernel address, loaded as a 64-bit constant (not a BTF id)."""


def ksym_externs(raw: RawObject, btf: BTF | None) -> list[KsymExtern]:
    out = []
    for vs, t, sym in _extern_entries(raw, btf, KSYMS_SEC, "ksym"):
        typeless = t.kind == Kind.VAR and btf.kind_of(btf.resolve(t.type)) == Kind.VOID
        out.append(KsymExtern(t.name, t.kind == Kind.FUNC, vs.type, sym.bind == STB_WEAK, typeless))
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
    """name -> vmlinux BTF id (0: a weak extern the kernel lacks); typeless ones -> their
    ``KsymAddress`` from /proc/kallsyms, as libbpf resolves them."""
    from .core import types_compatible
    out: dict[str, int] = {}
    typeless = [e for e in externs if e.typeless]
    if typeless:
        addrs = kallsyms_addresses({e.name for e in typeless})
        for e in typeless:
            if e.name not in addrs and not e.weak:
                raise ObjectError(f"{path}: extern (ksym) {e.name!r}: not in /proc/kallsyms")
            out[e.name] = KsymAddress(addrs.get(e.name, 0))
    for e in externs:
        if e.typeless:
            continue
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


def kallsyms_addresses(names: set[str], path: str = "/proc/kallsyms") -> dict[str, int]:
    """Addresses of ``names`` in kallsyms (the first entry of each; module symbols too).
    Without CAP_SYSLOG the kernel shows zeros, and so does the program then, as with libbpf."""
    out: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] in names and parts[2] not in out:
                    out[parts[2]] = int(parts[0], 16)
    except OSError as e:
        raise ObjectError(f"cannot read {path} for typeless ksyms: {e.strerror}") from None
    return out
