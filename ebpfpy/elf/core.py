"""CO-RE: rewrite field offsets, sizes and type facts for the running kernel.

clang records, for every instruction that used ``preserve_access_index``
information, the local type, an access string (``0:3:1``: index into the root
pointer, then member / array indices) and what the instruction needs (a byte
offset, a size, whether a field exists...).  We walk the access path in the
object's BTF, find same-named types in the kernel's BTF (ignoring a
``___flavor`` suffix), walk the same path there by member *names*, and patch
the instruction with the kernel's answer.  The rules follow libbpf's
relo_core: candidates must have compatible kinds and all matching candidates
must agree.

A relocation the kernel cannot satisfy does not fail the load, as in libbpf:
existence checks (field, type, enumerator) and every type-based relocation
read 0, and any other instruction is *poisoned*: replaced with a call to the
invalid helper ``0xbad2310``.  Code that is dead on this kernel (guarded by
``bpf_core_field_exists()``) is dropped by the verifier; reached, the verifier
refuses ``unknown#195896080`` and the loader names the relocation
(``Poison.message``).
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from ebpfpy.btf import BTF, CoreRelo, CoreReloKind, Kind

from .reader import ObjectError

_FIELD_KINDS = frozenset({
    CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_BYTE_SIZE, CoreReloKind.FIELD_EXISTS,
    CoreReloKind.FIELD_SIGNED, CoreReloKind.FIELD_LSHIFT_U64, CoreReloKind.FIELD_RSHIFT_U64,
})
_TYPE_KINDS = frozenset({
    CoreReloKind.TYPE_ID_LOCAL, CoreReloKind.TYPE_ID_TARGET, CoreReloKind.TYPE_EXISTS,
    CoreReloKind.TYPE_SIZE, CoreReloKind.TYPE_MATCHES,
})
_ENUM_KINDS = frozenset({CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE})
# Kinds whose answer is 0 when the kernel has no match (libbpf: existence checks and every
# type-based relocation); the others poison their instruction.
_ZERO_WHEN_MISSING = frozenset({CoreReloKind.FIELD_EXISTS, CoreReloKind.ENUMVAL_EXISTS}) | _TYPE_KINDS
POISON_HELPER = 0xBAD2310  # "invalid func unknown#195896080" when the verifier reaches it
_RELO_KIND_NAMES = {
    CoreReloKind.FIELD_BYTE_OFFSET: "byte_off", CoreReloKind.FIELD_BYTE_SIZE: "byte_sz",
    CoreReloKind.FIELD_EXISTS: "field_exists", CoreReloKind.FIELD_SIGNED: "signed",
    CoreReloKind.FIELD_LSHIFT_U64: "lshift_u64", CoreReloKind.FIELD_RSHIFT_U64: "rshift_u64",
    CoreReloKind.TYPE_ID_LOCAL: "local_type_id", CoreReloKind.TYPE_ID_TARGET: "target_type_id",
    CoreReloKind.TYPE_EXISTS: "type_exists", CoreReloKind.TYPE_MATCHES: "type_matches",
    CoreReloKind.TYPE_SIZE: "type_size", CoreReloKind.ENUMVAL_EXISTS: "enumval_exists",
    CoreReloKind.ENUMVAL_VALUE: "enumval_value",
}
_COMPOSITE = (Kind.STRUCT, Kind.UNION)


def essential_name(name: str) -> str:
    """``task_struct___mine`` -> ``task_struct``: the flavor suffix is for the local copy only."""
    i = name.find("___")
    return name[:i] if i > 0 else name


def _skip(btf: BTF, tid: int) -> int:
    return btf.resolve(tid)


@dataclass
class Access:
    type_id: int      # the type being indexed (struct/union/array), after skipping typedefs
    index: int
    name: str         # member name; "" for array indices


@dataclass
class Spec:
    """A walked access path in one BTF."""
    btf: BTF
    root_id: int
    accesses: list[Access]   # named members and array indices (anonymous members skipped)
    raw: list[int]
    field_id: int            # type of the accessed field
    bit_offset: int
    bitfield_size: int


class CoreError(ObjectError):
    pass


def _parse_access(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(":")]
    except ValueError:
        raise CoreError(f"bad CO-RE access string {text!r}") from None


def local_field_spec(btf: BTF, type_id: int, raw: list[int]) -> Spec:
    tid = _skip(btf, type_id)
    bit_off = raw[0] * btf.size_of(tid) * 8
    accesses = [Access(tid, raw[0], "")]
    cur, bitfield = tid, 0
    for idx in raw[1:]:
        cur = _skip(btf, cur)
        t = btf[cur]
        if t.kind in _COMPOSITE:
            if idx >= len(t.members):
                raise CoreError(f"CO-RE access {raw} out of range of {btf.describe(cur)}")
            m = t.members[idx]
            bit_off += m.bit_offset
            bitfield = m.bitfield_size
            if m.name:
                accesses.append(Access(cur, idx, m.name))
            cur = m.type
        elif t.kind == Kind.ARRAY:
            elem = t.type
            bit_off += idx * btf.size_of(elem) * 8
            accesses.append(Access(cur, idx, ""))
            cur, bitfield = elem, 0
        else:
            raise CoreError(f"CO-RE access {raw} walks into non-composite {btf.describe(cur)}")
    return Spec(btf, tid, accesses, raw, cur, bit_off, bitfield)


def _find_member(btf: BTF, tid: int, name: str) -> tuple[int, int, int] | None:
    """(member type, bit offset, bitfield size) of ``name`` in ``tid``, looking through anonymous members."""
    t = btf[_skip(btf, tid)]
    for m in t.members:
        if m.name == name:
            return m.type, m.bit_offset, m.bitfield_size
        if not m.name and btf.kind_of(_skip(btf, m.type)) in _COMPOSITE:
            inner = _find_member(btf, m.type, name)
            if inner is not None:
                return inner[0], m.bit_offset + inner[1], inner[2]
    return None


def fields_compatible(lbtf: BTF, lid: int, tbtf: BTF, tid: int) -> bool:
    lid, tid = _skip(lbtf, lid), _skip(tbtf, tid)
    lk, tk = lbtf.kind_of(lid), tbtf.kind_of(tid)
    if lk in _COMPOSITE and tk in _COMPOSITE:
        return True
    enums = (Kind.ENUM, Kind.ENUM64)
    if lk != tk and not (lk in enums and tk in enums):
        return False
    if lk in (Kind.PTR, Kind.FLOAT, Kind.VOID):
        return True
    if lk in (Kind.FWD, Kind.ENUM, Kind.ENUM64):
        ln, tn = essential_name(lbtf.name_of(lid)), essential_name(tbtf.name_of(tid))
        return not ln or not tn or ln == tn
    if lk == Kind.INT:
        return lbtf[lid].bit_offset == 0 and tbtf[tid].bit_offset == 0
    if lk == Kind.ARRAY:
        return fields_compatible(lbtf, lbtf[lid].type, tbtf, tbtf[tid].type)
    return False


def match_field(local: Spec, tbtf: BTF, cand: int) -> tuple[Spec | None, str]:
    """Walk ``local``'s path by names in the target; (spec, "") or (None, what is missing)."""
    tid = _skip(tbtf, cand)
    bit_off = local.raw[0] * tbtf.size_of(tid) * 8
    cur, bitfield = tid, 0
    accesses = [Access(tid, local.raw[0], "")]
    lbtf = local.btf
    for acc in local.accesses[1:]:
        cur = _skip(tbtf, cur)
        t = tbtf[cur]
        if acc.name:
            if t.kind not in _COMPOSITE:
                return None, f"{tbtf.describe(cur)} is not a struct or union"
            hit = _find_member(tbtf, cur, acc.name)
            if hit is None:
                return None, f"{tbtf.describe(cur)} has no field '{acc.name}'"
            mtype, moff, msize = hit
            local_m = lbtf[acc.type_id].members[acc.index]
            if not fields_compatible(lbtf, local_m.type, tbtf, mtype):
                return None, (f"field '{acc.name}' of {tbtf.describe(cur)} has an incompatible type "
                              f"({tbtf.describe(mtype)})")
            bit_off += moff
            bitfield = msize
            accesses.append(Access(cur, 0, acc.name))
            cur = mtype
        else:
            if t.kind != Kind.ARRAY:
                return None, f"{tbtf.describe(cur)} is not an array"
            if acc.index >= t.nelems and t.nelems != 0:
                return None, f"index {acc.index} is out of {tbtf.describe(cur)}"
            bit_off += acc.index * tbtf.size_of(t.type) * 8
            accesses.append(Access(cur, acc.index, ""))
            cur, bitfield = t.type, 0
    return Spec(tbtf, tid, accesses, local.raw, cur, bit_off, bitfield), ""


def field_value(spec: Spec, kind: CoreReloKind) -> tuple[int, int]:
    """(value, access size in bytes) of a field relocation, computed as libbpf does."""
    btf = spec.btf
    if kind == CoreReloKind.FIELD_EXISTS:
        return 1, 0
    ftype = _skip(btf, spec.field_id)
    bit_off, bit_sz = spec.bit_offset, spec.bitfield_size
    if bit_sz == 0:
        byte_sz = btf.size_of(ftype)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    else:
        byte_sz = btf.size_of(ftype)
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise CoreError("bitfield too wide for a CO-RE load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    t = btf[ftype]
    values = {
        CoreReloKind.FIELD_BYTE_OFFSET: lambda: byte_off,
        CoreReloKind.FIELD_BYTE_SIZE: lambda: byte_sz,
        CoreReloKind.FIELD_SIGNED: lambda: int(
            (t.kind in (Kind.ENUM, Kind.ENUM64) and t.signed) or (t.kind == Kind.INT and t.signed)),
        CoreReloKind.FIELD_LSHIFT_U64: lambda: 64 - (bit_off + bit_sz - byte_off * 8),
        CoreReloKind.FIELD_RSHIFT_U64: lambda: 64 - bit_sz,
    }
    return values[kind](), byte_sz


def types_compatible(lbtf: BTF, lid: int, tbtf: BTF, tid: int, depth: int = 0) -> bool:
    if depth > 32:
        return False
    lid, tid = _skip(lbtf, lid), _skip(tbtf, tid)
    lk, tk = lbtf.kind_of(lid), tbtf.kind_of(tid)
    if lk != tk:
        return False
    if lk in (Kind.VOID, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FWD, Kind.FLOAT):
        return True
    if lk == Kind.INT:
        return lbtf[lid].bit_offset == 0 and tbtf[tid].bit_offset == 0
    if lk == Kind.PTR:
        return types_compatible(lbtf, lbtf[lid].type, tbtf, tbtf[tid].type, depth + 1)
    if lk == Kind.ARRAY:
        return types_compatible(lbtf, lbtf[lid].type, tbtf, tbtf[tid].type, depth + 1)
    if lk == Kind.FUNC_PROTO:
        lp, tp = lbtf[lid], tbtf[tid]
        if len(lp.params) != len(tp.params):
            return False
        return all(types_compatible(lbtf, a.type, tbtf, b.type, depth + 1) for a, b in zip(lp.params, tp.params)) \
            and types_compatible(lbtf, lp.type, tbtf, tp.type, depth + 1)
    return False


def _names_match(a: str, b: str) -> bool:
    return not a or not b or essential_name(a) == essential_name(b)


def types_match(lbtf: BTF, lid: int, tbtf: BTF, tid: int, behind_ptr: bool = False, level: int = 32) -> bool:
    """TYPE_MATCHES: stricter than compatibility: names, int size and signedness, array
    lengths, enumerators and (recursively) every local member must agree; behind a
    pointer a struct only needs its name (a forward declaration will do)."""
    if level <= 0:
        return False
    while True:
        lid, tid = _skip(lbtf, lid), _skip(tbtf, tid)
        lt, tt = lbtf[lid], tbtf[tid]
        if not _names_match(lt.name, tt.name):
            return False
        lk, tk = lt.kind, tt.kind
        if lk == Kind.VOID:
            return tk == Kind.VOID
        if lk == Kind.FWD:
            if tk == Kind.FWD:
                return lt.is_union == tt.is_union
            return behind_ptr and tk == (Kind.UNION if lt.is_union else Kind.STRUCT)
        if lk in (Kind.ENUM, Kind.ENUM64):
            if tk not in (Kind.ENUM, Kind.ENUM64) or lt.size != tt.size or len(lt.values) > len(tt.values):
                return False
            return all(any(_names_match(n, m) for m, _ in tt.values) for n, _ in lt.values)
        if lk in _COMPOSITE:
            if behind_ptr:
                return lk == tk or (tk == Kind.FWD and tt.is_union == (lk == Kind.UNION))
            if lk != tk or len(lt.members) > len(tt.members):
                return False
            return all(any(_names_match(lm.name, tm.name)
                           and types_match(lbtf, lm.type, tbtf, tm.type, behind_ptr, level - 1)
                           for tm in tt.members) for lm in lt.members)
        if lk != tk:
            return False
        if lk == Kind.INT:
            return lt.size == tt.size and lt.signed == tt.signed
        if lk == Kind.PTR:
            behind_ptr, lid, tid = True, lt.type, tt.type
            continue
        if lk == Kind.ARRAY:
            if lt.nelems != tt.nelems:
                return False
            lid, tid = lt.type, tt.type
            continue
        if lk == Kind.FUNC_PROTO:
            if len(lt.params) != len(tt.params):
                return False
            if not all(types_match(lbtf, a.type, tbtf, b.type, behind_ptr, level - 1)
                       for a, b in zip(lt.params, tt.params)):
                return False
            lid, tid = lt.type, tt.type
            continue
        return False


def candidates(lbtf: BTF, local_id: int, tbtf: BTF) -> list[int]:
    """Target types with the local type's essential name and a compatible kind."""
    lt = lbtf[local_id]
    name = essential_name(lt.name)
    if not name:
        raise CoreError(f"CO-RE relocation on anonymous type {lbtf.describe(local_id)} is not supported")
    kinds = {lt.kind}
    if lt.kind in (Kind.ENUM, Kind.ENUM64):
        kinds = {Kind.ENUM, Kind.ENUM64}
    return [i for i in tbtf.find_all(name) if tbtf.kind_of(i) in kinds]


@dataclass(frozen=True)
class Resolved:
    local: int
    target: int | None   # None: the kernel has no match
    local_size: int = 0
    target_size: int = 0
    reason: str = ""
    validate: bool = True  # clang sizes bitfield loads by record alignment: no check then
    memsz_ok: bool = True  # a load/store may be resized from local_size to target_size

    def value(self, kind: CoreReloKind) -> int | None:
        """The value to patch in; None when the instruction must be poisoned (libbpf's rules)."""
        if self.target is not None:
            return self.target
        return 0 if kind in _ZERO_WHEN_MISSING else None


def _describe_local(lbtf: BTF, tid: int) -> str:
    t = lbtf[tid]
    ess = essential_name(t.name)
    kind = {Kind.STRUCT: "struct", Kind.UNION: "union", Kind.ENUM: "enum", Kind.ENUM64: "enum",
            Kind.TYPEDEF: "typedef"}.get(t.kind, "")
    return f"{kind} {ess}".strip()


def _resizable(lbtf: BTF, lid: int, tbtf: BTF, tid: int) -> bool:
    """libbpf allows a load of a different size for pointers and unsigned integers only
    (zero extension keeps the value)."""
    lt, tt = lbtf[_skip(lbtf, lid)], tbtf[_skip(tbtf, tid)]
    if lt.kind == Kind.PTR and tt.kind == Kind.PTR:
        return True
    return lt.kind == Kind.INT and tt.kind == Kind.INT and not lt.signed and not tt.signed


def resolve(lbtf: BTF, tbtf: BTF, relo: CoreRelo) -> Resolved:
    kind = relo.kind
    raw = _parse_access(lbtf.string(relo.access_str_off))
    local_id = relo.type_id
    if kind in _FIELD_KINDS:
        lspec = local_field_spec(lbtf, local_id, raw)
        lval, lsize = field_value(lspec, kind)
        results, reasons = [], []
        for cand in candidates(lbtf, lbtf.skip_mods(local_id), tbtf):
            tspec, why = match_field(lspec, tbtf, cand)
            if tspec is None:
                reasons.append(why)
                continue
            results.append((field_value(tspec, kind), tspec))
        validate = lspec.bitfield_size == 0
        if not results:
            why = reasons[0] if reasons else f"the kernel has no {_describe_local(lbtf, lbtf.skip_mods(local_id))}"
            return Resolved(lval, None, lsize, 0, why, validate=validate)
        if len({v for v, _ in results}) > 1:
            raise CoreError(f"CO-RE relocation for {_describe_local(lbtf, lbtf.skip_mods(local_id))} "
                            f"is ambiguous: kernel candidates disagree ({sorted({v for v, _ in results})})")
        (tval, tsize), tspec = results[0]
        memsz_ok = lsize == tsize or _resizable(lbtf, lspec.field_id, tbtf, tspec.field_id)
        return Resolved(lval, tval, lsize, tsize, validate=validate, memsz_ok=memsz_ok)
    if kind in _TYPE_KINDS:
        if kind == CoreReloKind.TYPE_ID_LOCAL:  # ids change when objects are linked: no check
            return Resolved(local_id, local_id, validate=False)
        check = types_match if kind == CoreReloKind.TYPE_MATCHES else types_compatible
        cands = [c for c in candidates(lbtf, lbtf.skip_mods(local_id), tbtf) if check(lbtf, local_id, tbtf, c)]
        lvals = {CoreReloKind.TYPE_ID_TARGET: local_id, CoreReloKind.TYPE_EXISTS: 1,
                 CoreReloKind.TYPE_SIZE: lbtf.size_of(local_id) if kind == CoreReloKind.TYPE_SIZE else 0,
                 CoreReloKind.TYPE_MATCHES: 1}
        validate = kind != CoreReloKind.TYPE_ID_TARGET
        if not cands:
            missing = _describe_local(lbtf, lbtf.skip_mods(local_id))
            return Resolved(lvals[kind], None, reason=f"the kernel has no {missing}", validate=validate)
        c = cands[0]
        tvals = {CoreReloKind.TYPE_ID_TARGET: c, CoreReloKind.TYPE_EXISTS: 1,
                 CoreReloKind.TYPE_SIZE: tbtf.size_of(c) if kind == CoreReloKind.TYPE_SIZE else 0,
                 CoreReloKind.TYPE_MATCHES: 1}
        return Resolved(lvals[kind], tvals[kind], validate=validate)
    # enum value relocations: access string is the enumerator index
    lt = lbtf[_skip(lbtf, local_id)]
    if raw[0] >= len(lt.values):
        raise CoreError(f"CO-RE enumerator index {raw[0]} out of range of {lbtf.describe(local_id)}")
    ename, lvalue = lt.values[raw[0]]
    lval = 1 if kind == CoreReloKind.ENUMVAL_EXISTS else lvalue
    for cand in candidates(lbtf, lbtf.skip_mods(local_id), tbtf):
        for n, v in tbtf[cand].values:
            if essential_name(n) == essential_name(ename):
                return Resolved(lval, 1 if kind == CoreReloKind.ENUMVAL_EXISTS else v)
    return Resolved(lval, None, reason=f"{_describe_local(lbtf, lbtf.skip_mods(local_id))} has no value '{ename}'")


def format_spec(lbtf: BTF, relo: CoreRelo) -> str:
    """The relocation as libbpf prints it: ``<byte_off> [336] struct cfs_rq.nr_running (0:1 @ offset 16)``."""
    kind = relo.kind
    t = lbtf[relo.type_id]
    kind_name = _RELO_KIND_NAMES.get(kind, kind.name.lower())
    text = f"<{kind_name}> [{relo.type_id}] {t.kind.name.lower()} {t.name or '<anon>'}"
    if kind in _TYPE_KINDS:
        return text
    try:
        raw = _parse_access(lbtf.string(relo.access_str_off))
        if kind in _ENUM_KINDS:
            name, value = lbtf[_skip(lbtf, relo.type_id)].values[raw[0]]
            return f"{text}::{name} = {value}"
        spec = local_field_spec(lbtf, relo.type_id, raw)
    except (CoreError, IndexError, AttributeError):
        return text
    for i, acc in enumerate(spec.accesses):
        if acc.name:
            text += f".{acc.name}"
        elif i > 0 or acc.index > 0:
            text += f"[{acc.index}]"
    byte, bit = divmod(spec.bit_offset, 8)
    return f"{text} ({':'.join(map(str, raw))} @ offset {byte}{f'.{bit}' if bit else ''})"


# -- patching instructions -----------------------------------------------------------------

_SIZE_CODES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
_SIZE_OF_CODE = {v: k for k, v in _SIZE_CODES.items()}


def patch(code: bytearray, slot: int, local: int | None, value: int, local_size: int, new_size: int,
          what: str) -> None:
    """Write ``value`` into the instruction at ``slot`` where clang put the local answer.

    ``local`` (None: do not check) is what the instruction must hold now, as libbpf
    checks; a load or store of ``local_size`` bytes becomes one of ``new_size`` bytes."""
    base = slot * 8
    if base + 8 > len(code):
        raise CoreError(f"{what}: CO-RE relocation points past the end of the code")
    op = code[base]
    cls = op & 0x07
    if op == 0x18:  # LD_IMM64
        if (base + 16 > len(code) or code[base + 1] >> 4 or struct.unpack_from("<h", code, base + 2)[0]
                or code[base + 8] or code[base + 9] or struct.unpack_from("<h", code, base + 10)[0]):
            raise CoreError(f"{what}: CO-RE relocation on an LD_IMM64 of unexpected form")
        old = struct.unpack_from("<I", code, base + 4)[0] | struct.unpack_from("<I", code, base + 12)[0] << 32
        if local is not None and old != local & ((1 << 64) - 1):
            raise CoreError(f"{what}: instruction holds {old}, expected the local value {local}")
        struct.pack_into("<I", code, base + 4, value & 0xFFFF_FFFF)
        struct.pack_into("<I", code, base + 12, (value >> 32) & 0xFFFF_FFFF)
        return
    if cls in (0x04, 0x07):  # ALU, ALU64 with an immediate
        if op & 0x08:
            raise CoreError(f"{what}: CO-RE relocation on an ALU instruction with a register operand")
        (old,) = struct.unpack_from("<i", code, base + 4)
        if local is not None and old & 0xFFFF_FFFF != local & 0xFFFF_FFFF:
            raise CoreError(f"{what}: instruction holds {old}, expected the local value {local}")
        value &= 0xFFFF_FFFF
        struct.pack_into("<i", code, base + 4, value if value < 1 << 31 else value - (1 << 32))
        return
    if cls in (0x01, 0x02, 0x03):  # LDX, ST, STX: the offset field
        (old,) = struct.unpack_from("<h", code, base + 2)
        if local is not None and old != local:
            raise CoreError(f"{what}: instruction holds offset {old}, expected the local value {local}")
        if not -(1 << 15) <= value < 1 << 15:
            raise CoreError(f"{what}: field offset {value} does not fit an instruction offset")
        struct.pack_into("<h", code, base + 2, value)
        if new_size and local_size and new_size != local_size:
            if _SIZE_OF_CODE.get(op & 0x18) != local_size:
                raise CoreError(f"{what}: the instruction accesses {_SIZE_OF_CODE.get(op & 0x18)} bytes, "
                                f"the field has {local_size}")
            if new_size not in _SIZE_CODES:
                raise CoreError(f"{what}: the kernel's field has {new_size} bytes, which no load can read")
            code[base] = (op & ~0x18) | _SIZE_CODES[new_size]
        return
    raise CoreError(f"{what}: CO-RE relocation on unsupported instruction opcode {op:#04x}")


def poison(code: bytearray, slot: int) -> None:
    """Replace the instruction (both halves of an LD_IMM64) with a call to the invalid helper
    0xbad2310, as libbpf does: dead code the verifier drops, or a load error at that spot."""
    call = struct.pack("<BBhi", 0x85, 0, 0, POISON_HELPER)
    wide = code[slot * 8] == 0x18 and slot * 8 + 16 <= len(code)
    code[slot * 8:slot * 8 + 8] = call
    if wide:
        code[slot * 8 + 8:slot * 8 + 16] = call


@dataclass(frozen=True)
class Poison:
    """An instruction replaced because its CO-RE relocation could not be resolved."""
    slot: int       # in the ELF section
    index: int      # the relocation's number in the section (libbpf's "relo #N")
    spec: str       # libbpf's rendering of the local access (format_spec)
    reason: str

    def message(self, prog: str, insn: int | None = None) -> str:
        at = f" (insn #{insn})" if insn is not None else ""
        return f"prog '{prog}': relo #{self.index}: {self.spec}: bad CO-RE relocation: {self.reason}{at}"


def apply(code: bytearray, relos: list[CoreRelo], lbtf: BTF, tbtf: BTF, where: str,
          func_at: Callable[[int], str] | None = None) -> list[Poison]:
    """Patch one ELF section's code in place for every CO-RE relocation recorded for it.

    Returns the instructions poisoned because the kernel has no answer (see ``Poison``);
    a relocation that is malformed for the object itself raises ``CoreError``.
    ``func_at(slot)`` names the function holding an instruction, for error messages."""
    poisoned = []
    for i, relo in enumerate(relos):
        if relo.insn_off % 8:
            raise CoreError(f"{where}: misaligned CO-RE relocation at byte {relo.insn_off}")
        slot = relo.insn_off // 8
        where_i = f"{where}: program '{func_at(slot)}'" if func_at is not None else where
        res = resolve(lbtf, tbtf, relo)
        what = f"{where_i}: CO-RE relocation #{i} ({relo.kind.name})"
        value = res.value(relo.kind)
        size_adjust = relo.kind == CoreReloKind.FIELD_BYTE_OFFSET and res.validate
        is_mem = slot * 8 < len(code) and code[slot * 8] & 0x07 in (0x01, 0x02, 0x03)
        reason = ""
        if value is None:
            reason = f"{res.reason} in the running kernel"
        elif size_adjust and is_mem and not res.memsz_ok:
            reason = (f"the instruction reads the field as {res.local_size} bytes, the kernel's has "
                      f"{res.target_size} (only pointers and unsigned integers can be resized)")
        if reason:
            if slot * 8 + 8 > len(code):
                raise CoreError(f"{what}: CO-RE relocation points past the end of the code")
            poison(code, slot)
            poisoned.append(Poison(slot, i, format_spec(lbtf, relo), reason))
            continue
        patch(code, slot, res.local if res.validate else None, value,
              res.local_size if size_adjust else 0, res.target_size if size_adjust else 0, what)
    return poisoned
