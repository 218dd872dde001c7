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
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

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
# Kinds whose answer is "no" (0) when the kernel has no match, instead of an error.
_ZERO_WHEN_MISSING = frozenset({
    CoreReloKind.FIELD_EXISTS, CoreReloKind.TYPE_EXISTS, CoreReloKind.ENUMVAL_EXISTS,
    CoreReloKind.TYPE_MATCHES, CoreReloKind.TYPE_ID_TARGET,
})
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


def _describe_local(lbtf: BTF, tid: int) -> str:
    t = lbtf[tid]
    ess = essential_name(t.name)
    kind = {Kind.STRUCT: "struct", Kind.UNION: "union", Kind.ENUM: "enum", Kind.ENUM64: "enum",
            Kind.TYPEDEF: "typedef"}.get(t.kind, "")
    return f"{kind} {ess}".strip()


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
            results.append(field_value(tspec, kind))
        if not results:
            why = reasons[0] if reasons else f"the kernel has no {_describe_local(lbtf, lbtf.skip_mods(local_id))}"
            return Resolved(lval, None, lsize, 0, why, validate=lspec.bitfield_size == 0)
        if len(set(results)) > 1:
            raise CoreError(f"CO-RE relocation for {_describe_local(lbtf, lbtf.skip_mods(local_id))} "
                            f"is ambiguous: kernel candidates disagree ({sorted(set(results))})")
        tval, tsize = results[0]
        return Resolved(lval, tval, lsize, tsize, validate=lspec.bitfield_size == 0)
    if kind in _TYPE_KINDS:
        if kind == CoreReloKind.TYPE_ID_LOCAL:
            return Resolved(local_id, local_id)
        check = types_match if kind == CoreReloKind.TYPE_MATCHES else types_compatible
        cands = [c for c in candidates(lbtf, lbtf.skip_mods(local_id), tbtf) if check(lbtf, local_id, tbtf, c)]
        lvals = {CoreReloKind.TYPE_ID_TARGET: local_id, CoreReloKind.TYPE_EXISTS: 1,
                 CoreReloKind.TYPE_SIZE: lbtf.size_of(local_id) if kind == CoreReloKind.TYPE_SIZE else 0,
                 CoreReloKind.TYPE_MATCHES: 1}
        if not cands:
            return Resolved(lvals[kind], None, reason=f"the kernel has no {_describe_local(lbtf, lbtf.skip_mods(local_id))}")
        c = cands[0]
        tvals = {CoreReloKind.TYPE_ID_TARGET: c, CoreReloKind.TYPE_EXISTS: 1,
                 CoreReloKind.TYPE_SIZE: tbtf.size_of(c) if kind == CoreReloKind.TYPE_SIZE else 0,
                 CoreReloKind.TYPE_MATCHES: 1}
        return Resolved(lvals[kind], tvals[kind])
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


# -- patching instructions -----------------------------------------------------------------

_SIZE_CODES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
_SIZE_OF_CODE = {v: k for k, v in _SIZE_CODES.items()}


def patch(code: bytearray, slot: int, local: int | None, value: int, local_size: int, new_size: int,
          what: str) -> None:
    """Write ``value`` into the instruction at ``slot`` where clang put the local answer."""
    base = slot * 8
    if base + 8 > len(code):
        raise CoreError(f"{what}: CO-RE relocation points past the end of the code")
    op = code[base]
    cls = op & 0x07
    if op == 0x18:  # LD_IMM64
        struct.pack_into("<I", code, base + 4, value & 0xFFFF_FFFF)
        struct.pack_into("<I", code, base + 12, (value >> 32) & 0xFFFF_FFFF)
        return
    if cls in (0x04, 0x07):  # ALU, ALU64 with an immediate
        if op & 0x08:
            raise CoreError(f"{what}: CO-RE relocation on an ALU instruction with a register operand")
        (old,) = struct.unpack_from("<i", code, base + 4)
        if local is not None and old != local:
            raise CoreError(f"{what}: instruction holds {old}, expected the local value {local}")
        struct.pack_into("<i", code, base + 4, value if value < 1 << 31 else value - (1 << 32))
        return
    if cls in (0x01, 0x02, 0x03):  # LDX, ST, STX: the offset field
        if not -(1 << 15) <= value < 1 << 15:
            raise CoreError(f"{what}: field offset {value} does not fit an instruction offset")
        struct.pack_into("<h", code, base + 2, value)
        if (new_size and local_size and new_size != local_size and new_size in _SIZE_CODES
                and _SIZE_OF_CODE.get(op & 0x18) == local_size):
            code[base] = (op & ~0x18) | _SIZE_CODES[new_size]
        return
    raise CoreError(f"{what}: CO-RE relocation on unsupported instruction opcode {op:#04x}")


def apply(code: bytearray, relos: list[CoreRelo], lbtf: BTF, tbtf: BTF, where: str,
          func_at: Callable[[int], str] | None = None) -> None:
    """Patch one ELF section's code in place for every CO-RE relocation recorded for it.

    ``func_at(slot)`` names the function holding an instruction, for error messages."""
    for i, relo in enumerate(relos):
        if relo.insn_off % 8:
            raise CoreError(f"{where}: misaligned CO-RE relocation at byte {relo.insn_off}")
        if func_at is not None:
            where_i = f"{where}: program '{func_at(relo.insn_off // 8)}'"
        else:
            where_i = where
        res = resolve(lbtf, tbtf, relo)
        what = f"{where_i}: CO-RE relocation #{i} ({relo.kind.name})"
        if res.target is None:
            if relo.kind not in _ZERO_WHEN_MISSING:
                raise CoreError(f"{where_i}: CO-RE relocation failed: {res.reason} in the running kernel")
            value = 0
        else:
            value = res.target
        size_adjust = relo.kind == CoreReloKind.FIELD_BYTE_OFFSET
        patch(code, relo.insn_off // 8, res.local if res.validate else None, value,
              res.local_size if size_adjust else 0, res.target_size if size_adjust else 0, what)
