"""Instructions to closures: each slot of a program becomes one Python function ``op(pc)`` that
does the instruction's work on the register list and returns the next slot to run.

The dispatch loop is then just ``pc = code[pc](pc)``. The closures are stamped from small
source templates, one per instruction shape (``R[d] = (R[d] + k) & M64``), compiled once per
shape and cached: the register numbers, immediates and jump targets are bound as default
arguments (local variables, the fastest lookup Python has).

Registers always hold unsigned 64-bit values (0 <= r < 2**64); every operation masks its
result. Signed views are taken where an operation needs them (sdiv, arsh, signed jumps:
``(x ^ 2**63)`` orders unsigned numbers as their signed values). Semantics follow RFC 9669:
ALU32 results are zero-extended, division by zero gives 0, modulo by zero leaves dst alone (a
32-bit one truncated), shift amounts are masked, sdiv of INT_MIN by -1 is INT_MIN and smod 0.

Backward jumps and calls take one unit off the run's budget (``vm.max_loops``); a program that
never stops therefore ends with a `VMError` instead of hanging. Forward code costs nothing.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ebpfpy.isa import opcodes as oc
from ebpfpy.isa.insn import Insn

from .errors import VMError
from .helpers import TAIL_CALL, helper_name
from .memory import FUNC_BASE, M64, WINDOW_SHIFT, packer, unpacker

if TYPE_CHECKING:
    from .machine import VM, VMProgram

M32 = (1 << 32) - 1
S64 = 1 << 63
S32 = 1 << 31
NOWIN = (1, 0, None, None)  # the window entry for "no region": its bounds check always fails
MAX_FRAMES = 8  # the kernel's MAX_CALL_FRAMES, the main program's frame included
MAX_TAIL_CALLS = 33  # the kernel's MAX_TAIL_CALL_CNT


class Halt(Exception):  # control flow, not an error
    """The program's final exit."""


class Return(Exception):  # control flow, not an error
    """A callback returned to the helper that invoked it."""


# -- arithmetic the templates call -------------------------------------------------------------


def udiv(x: int, y: int) -> int:
    return x // y if y else 0


def umod(x: int, y: int) -> int:
    return x % y if y else x


def umod32(x: int, y: int) -> int:
    return (x & M32) % y if y else x & M32


def _sdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _smod(a: int, b: int) -> int:
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def sdiv64(x: int, y: int) -> int:
    if not y:
        return 0
    return _sdiv((x ^ S64) - S64, (y ^ S64) - S64) & M64


def smod64(x: int, y: int) -> int:
    if not y:
        return x
    return _smod((x ^ S64) - S64, (y ^ S64) - S64) & M64


def sdiv32(x: int, y: int) -> int:
    y &= M32
    if not y:
        return 0
    return _sdiv(((x & M32) ^ S32) - S32, (y ^ S32) - S32) & M32


def smod32(x: int, y: int) -> int:
    y &= M32
    if not y:
        return x & M32
    return _smod(((x & M32) ^ S32) - S32, (y ^ S32) - S32) & M32


def bswap16(x: int) -> int:
    return (x & 0xFF) << 8 | (x >> 8) & 0xFF


def bswap32(x: int) -> int:
    return int.from_bytes((x & M32).to_bytes(4, "little"), "big")


def bswap64(x: int) -> int:
    return int.from_bytes(x.to_bytes(8, "little"), "big")


_GLOBALS = {
    "M64": M64, "M32": M32, "S64": S64, "S32": S32, "NOWIN": NOWIN, "Halt": Halt,
    "udiv": udiv, "umod": umod, "umod32": umod32, "sdiv64": sdiv64, "smod64": smod64,
    "sdiv32": sdiv32, "smod32": smod32, "bswap16": bswap16, "bswap32": bswap32, "bswap64": bswap64,
}  # fmt: skip


@functools.cache
def _template(src: str):
    """The ``make`` function defined by ``src``, compiled once per distinct source."""
    namespace: dict = {}
    exec(compile(src, "<ebpfpy.vm template>", "exec"), dict(_GLOBALS), namespace)
    return namespace["make"]


def _make(params: str, body: str, **values):
    """An ``op(pc)`` closure with ``body``, the names in ``params`` bound as defaults."""
    names = params.split()
    binds = ", ".join(f"{n}={n}" for n in names)
    src = f"def make({', '.join(names)}):\n    def op(pc, {binds}):\n" + "".join(
        f"        {line}\n" for line in body.strip("\n").splitlines()
    ) + "    return op\n"
    return _template(src)(**{n: values[n] for n in names})


# -- ALU ---------------------------------------------------------------------------------------

# X is dst's value, Y the operand (a register or the constant k).
_ALU64 = {
    oc.AluOp.ADD: "(X + Y) & M64", oc.AluOp.SUB: "(X - Y) & M64", oc.AluOp.MUL: "(X * Y) & M64",
    oc.AluOp.OR: "X | Y", oc.AluOp.AND: "X & Y", oc.AluOp.XOR: "X ^ Y",
    oc.AluOp.LSH: "(X << (Y & 63)) & M64", oc.AluOp.RSH: "X >> (Y & 63)",
    oc.AluOp.ARSH: "(((X ^ S64) - S64) >> (Y & 63)) & M64", oc.AluOp.MOV: "Y",
    oc.AluOp.DIV: "udiv(X, Y)", oc.AluOp.MOD: "umod(X, Y)",
}  # fmt: skip
_ALU32 = {
    oc.AluOp.ADD: "(X + Y) & M32", oc.AluOp.SUB: "(X - Y) & M32", oc.AluOp.MUL: "(X * Y) & M32",
    oc.AluOp.OR: "(X | Y) & M32", oc.AluOp.AND: "X & Y & M32", oc.AluOp.XOR: "(X ^ Y) & M32",
    oc.AluOp.LSH: "(X << (Y & 31)) & M32", oc.AluOp.RSH: "(X & M32) >> (Y & 31)",
    oc.AluOp.ARSH: "((((X & M32) ^ S32) - S32) >> (Y & 31)) & M32", oc.AluOp.MOV: "Y & M32",
    oc.AluOp.DIV: "udiv(X & M32, Y & M32)", oc.AluOp.MOD: "umod32(X, Y & M32)",
}  # fmt: skip
_SIGNED = {  # off=1
    (True, oc.AluOp.DIV): "sdiv64(X, Y)", (True, oc.AluOp.MOD): "smod64(X, Y)",
    (False, oc.AluOp.DIV): "sdiv32(X, Y)", (False, oc.AluOp.MOD): "smod32(X, Y)",
}  # fmt: skip
_SEXT = {8: ("0xFF", "0x80"), 16: ("0xFFFF", "0x8000"), 32: ("M32", "S32")}


def _alu(vm: VM, insn: Insn, nxt: int):
    op, d, s = insn.op, insn.dst, insn.src
    wide = op & 0x07 == oc.Class.ALU64
    operation = oc.alu_op(op)
    x_form = op & oc.Source.X
    R = vm.regs
    if d == 10:
        raise VMError("r10 is read-only (the frame pointer)")
    if operation == oc.AluOp.NEG:
        expr = "(-X) & M64" if wide else "(-X) & M32"
    elif operation == oc.AluOp.END:
        if not wide and not x_form:  # to little endian: this host's order, so a truncation
            expr = {16: "X & 0xFFFF", 32: "X & M32", 64: "X"}[insn.imm]
        else:  # to big endian, or bswap (ALU64): a swap of the low imm bits
            expr = f"bswap{insn.imm}(X)"
    elif operation == oc.AluOp.MOV and insn.off and x_form:
        if insn.off not in _SEXT:  # addr_space_cast (1), the kernel's per-cpu move (-1): plain moves here
            expr = "Y" if wide else "Y & M32"
        else:
            mask, sign = _SEXT[insn.off]
            expr = f"(((Y & {mask}) ^ {sign}) - {sign}) & {'M64' if wide else 'M32'}"
    elif insn.off == 1 and operation in (oc.AluOp.DIV, oc.AluOp.MOD):
        expr = _SIGNED[wide, operation]
    else:
        expr = (_ALU64 if wide else _ALU32)[operation]
    k = 0
    if x_form:
        expr = expr.replace("Y", "R[s]")
    else:
        k = insn.imm & (M64 if wide else M32)
        expr = expr.replace("Y", "k")
    expr = expr.replace("X", "R[d]")
    return _make("R d s k nxt", f"R[d] = {expr}\nreturn nxt", R=R, d=d, s=s, k=k, nxt=nxt)


# -- jumps -------------------------------------------------------------------------------------

_CONDITIONS = {
    oc.JmpOp.JEQ: ("X == Y", False), oc.JmpOp.JNE: ("X != Y", False),
    oc.JmpOp.JGT: ("X > Y", False), oc.JmpOp.JGE: ("X >= Y", False),
    oc.JmpOp.JLT: ("X < Y", False), oc.JmpOp.JLE: ("X <= Y", False),
    oc.JmpOp.JSET: ("X & Y", False),
    oc.JmpOp.JSGT: ("X > Y", True), oc.JmpOp.JSGE: ("X >= Y", True),
    oc.JmpOp.JSLT: ("X < Y", True), oc.JmpOp.JSLE: ("X <= Y", True),
}  # fmt: skip

_TAKEN_BACK = "B[0] -= 1\nif B[0] < 0:\n    over()\nreturn tgt"


def _branch(vm: VM, cond: str, tgt: int, nxt: int, backward: bool, **values):
    params = "R d s k tgt nxt" + (" B over" if backward else "")
    taken = _TAKEN_BACK if backward else "return tgt"
    body = f"if {cond}:\n" + "".join(f"    {line}\n" for line in taken.splitlines()) + "return nxt"
    return _make(params, body, R=vm.regs, tgt=tgt, nxt=nxt, B=vm._budget, over=vm._over_budget, **values)


def _jcond(vm: VM, insn: Insn, tgt: int, nxt: int, backward: bool):
    op = insn.op
    wide = op & 0x07 == oc.Class.JMP
    cond, signed = _CONDITIONS[oc.jmp_op(op)]
    sign = "S64" if wide else "S32"
    x = "R[d]" if wide else "(R[d] & M32)"
    if signed:
        x = f"({x} ^ {sign})"
    if op & oc.Source.X:
        y = "R[s]" if wide else "(R[s] & M32)"
        if signed:
            y = f"({y} ^ {sign})"
        k = 0
    else:
        y = "k"
        k = insn.imm & (M64 if wide else M32)
        if signed:
            k ^= S64 if wide else S32
    if cond == "X & Y" and not wide:
        cond = "R[d] & R[s] & M32" if op & oc.Source.X else "R[d] & k"
    else:
        cond = cond.replace("X", x).replace("Y", y)
    return _branch(vm, cond, tgt, nxt, backward, d=insn.dst, s=insn.src, k=k)


def _goto(vm: VM, tgt: int, backward: bool):
    if backward:
        return _make("B over tgt", _TAKEN_BACK, B=vm._budget, over=vm._over_budget, tgt=tgt)
    return _make("tgt", "return tgt", tgt=tgt)


# -- memory ------------------------------------------------------------------------------------

_SIZES = {oc.Size.B: 1, oc.Size.H: 2, oc.Size.W: 4, oc.Size.DW: 8}
_MASKS = {1: "0xFF", 2: "0xFFFF", 4: "M32", 8: None}


def _ldx(vm: VM, insn: Insn, nxt: int):
    if insn.dst == 10:
        raise VMError("r10 is read-only (the frame pointer)")
    n = _SIZES[oc.size(insn.op)]
    signed = oc.mode(insn.op) == oc.Mode.MEMSX
    if n == 1 and not signed:
        read = "t[2][a - t[0]]"
    else:
        read = "unp(t[2], a - t[0])[0]" + (" & M64" if signed else "")
    body = f"""
a = R[s] + off
t = get(a >> {WINDOW_SHIFT}, NOWIN)
if t[0] <= a and a + {n} <= t[1]:
    R[d] = {read}
    return nxt
R[d] = slow(a, {n}, {signed})
return nxt
"""
    return _make("R d s off nxt get unp slow", body, R=vm.regs, d=insn.dst, s=insn.src, off=insn.off, nxt=nxt,
                 get=vm.space.rd.get, unp=unpacker(n, signed), slow=vm.space.load)


def _store(vm: VM, insn: Insn, nxt: int):
    n = _SIZES[oc.size(insn.op)]
    if oc.cls(insn.op) == oc.Class.ST:
        value, k = "k", insn.imm & ((1 << (8 * n)) - 1)
    else:
        mask = _MASKS[n]
        value, k = (f"(R[s] & {mask})" if mask else "R[s]"), 0
    write = f"t[2][a - t[0]] = {value}" if n == 1 else f"pk(t[2], a - t[0], {value})"
    body = f"""
a = R[d] + off
t = get(a >> {WINDOW_SHIFT}, NOWIN)
if t[0] <= a and a + {n} <= t[1]:
    {write}
    return nxt
slow(a, {n}, {value})
return nxt
"""
    return _make("R d s off k nxt get pk slow", body, R=vm.regs, d=insn.dst, s=insn.src, off=insn.off, k=k,
                 nxt=nxt, get=vm.space.wr.get, pk=packer(n), slow=vm.space.store)


def _atomic(vm: VM, insn: Insn, nxt: int):
    n = _SIZES[oc.size(insn.op)]
    mask = (1 << (8 * n)) - 1
    R, space = vm.regs, vm.space
    d, s, off, imm = insn.dst, insn.src, insn.off, insn.imm
    operation = imm & ~oc.FETCH
    fetch = imm & oc.FETCH
    combine = {
        oc.AluOp.ADD: lambda old, v: (old + v) & mask,
        oc.AluOp.OR: lambda old, v: old | v,
        oc.AluOp.AND: lambda old, v: old & v,
        oc.AluOp.XOR: lambda old, v: old ^ v,
    }.get(operation)

    if imm == oc.AtomicOp.XCHG:
        def op(pc):
            a = (R[d] + off) & M64
            old = space.load(a, n)
            space.store(a, n, R[s] & mask)
            R[s] = old
            return nxt
    elif imm == oc.AtomicOp.CMPXCHG:
        def op(pc):
            a = (R[d] + off) & M64
            old = space.load(a, n)
            if old == R[0] & mask:
                space.store(a, n, R[s] & mask)
            R[0] = old
            return nxt
    elif combine is not None:
        def op(pc):
            a = (R[d] + off) & M64
            old = space.load(a, n)
            space.store(a, n, combine(old, R[s] & mask))
            if fetch:
                R[s] = old
            return nxt
    else:
        raise VMError(f"unknown atomic operation {imm:#x}")
    return op


def _legacy_load(vm: VM, insn: Insn, nxt: int):
    """LD_ABS / LD_IND: a big-endian read from the packet; out of bounds ends the program with 0."""
    n = _SIZES[oc.size(insn.op)]
    R, imm = vm.regs, insn.imm
    src = insn.src if oc.mode(insn.op) == oc.Mode.IND else None

    def op(pc):
        packet = vm.packet_region
        off = (imm + (R[src] if src is not None else 0)) & M32
        off = (off ^ S32) - S32  # the kernel adds them as 32-bit signed numbers
        if packet is None or off < 0 or off + n > packet.size:
            R[0] = 0
            raise Halt
        R[0] = int.from_bytes(packet.buf[off:off + n], "big")
        return nxt

    return op


# -- calls and exits ---------------------------------------------------------------------------


def _helper_call(vm: VM, insn: Insn, nxt: int):
    R, helpers, hid = vm.regs, vm.helpers, insn.imm
    if hid == TAIL_CALL:
        return _tail_call(vm, nxt)
    name = helper_name(hid)
    bare = name.split("#")[0].removeprefix("bpf_")

    def op(pc):
        fn = helpers.get(hid)
        if fn is None:
            raise VMError(f"helper {name} is not emulated (vm.add_helper can add it)")
        try:
            R[0] = fn(vm, R[1], R[2], R[3], R[4], R[5]) & M64
        except VMError as e:
            if e.index is None and e.address is not None and not e.message.startswith(bare):
                e.message = f"{name}: {e.message}"  # a bad pointer argument: say whose
                e.args = (e.message,)
            raise
        return nxt

    return op


def _tail_call(vm: VM, nxt: int):
    from .maps import ProgArrayMap

    R, counter = vm.regs, vm._tail_calls

    def op(pc):
        m = vm.map_at(R[2])
        if not isinstance(m, ProgArrayMap):
            raise VMError(f"tail_call: r2 = {R[2]:#x} is not a prog array")
        target = m.target(R[3] & M32)
        if target is None or counter[0] >= MAX_TAIL_CALLS:
            return nxt  # the call fails and the program goes on
        counter[0] += 1
        return target.base

    return op


def _local_call(vm: VM, tgt: int, nxt: int):
    R, frames, budget, stacks = vm.regs, vm._frames, vm._budget, vm._stacks
    zero = bytes(len(stacks[0].buf))

    def op(pc):
        depth = len(frames) + 1
        if depth >= MAX_FRAMES:
            raise VMError(f"call depth exceeds {MAX_FRAMES} frames")
        budget[0] -= 1
        if budget[0] < 0:
            vm._over_budget()
        frames.append((nxt, R[6], R[7], R[8], R[9], R[10]))
        stack = stacks[depth]
        stack.buf[:] = zero
        R[10] = stack.end
        return tgt

    return op


def _exit(vm: VM):
    R, frames = vm.regs, vm._frames

    def op(pc):
        if frames:
            ret, R[6], R[7], R[8], R[9], R[10] = frames.pop()
            return ret
        raise Halt

    return op


def _may_goto(vm: VM, tgt: int, nxt: int):
    left = vm._may_goto

    def op(pc):
        if left[0] <= 0:
            return tgt
        left[0] -= 1
        return nxt

    return op


def _fails(message: str):
    def op(pc):
        raise VMError(message)

    return op


# -- a whole program ---------------------------------------------------------------------------


def compile_program(vm: VM, prog: VMProgram) -> list:
    """One closure per slot of ``prog`` (the second slot of an LD_IMM64 included: jumping there
    is an error), plus one after the end that reports running off it. Raises `VMError` for what
    cannot run at all: jumps outside the program, writes to r10, unknown map fds."""
    base, nslots = prog.base, prog.nslots
    code: list = []
    starts = {slot for slot, _ in prog.slots()}

    def target(slot: int, rel: int, what: str) -> int:
        to = slot + 1 + rel
        if not 0 <= to < nslots:
            raise VMError(f"{what} to {to} is outside the program (0..{nslots - 1})", index=slot)
        if to not in starts:
            raise VMError(f"{what} to {to} lands in the middle of an ld_imm64", index=slot)
        return base + to

    for slot, insn in prog.slots():
        nxt = base + slot + insn.size
        try:
            code.append(_compile_one(vm, prog, insn, slot, nxt, target))
        except VMError as e:
            if e.index is None:
                e.index = slot
            raise
        if insn.size == 2:
            code.append(_fails("jump into the middle of an ld_imm64"))
    code.append(_fails(f"fell off the end of the program (instruction {nslots - 1} is not an exit or a jump)"))
    return code


def _compile_one(vm: VM, prog: VMProgram, insn: Insn, slot: int, nxt: int, target):
    op = insn.op
    klass = op & 0x07
    if klass in (oc.Class.ALU, oc.Class.ALU64):
        return _alu(vm, insn, nxt)
    if klass in (oc.Class.JMP, oc.Class.JMP32):
        operation = op & 0xF0
        if operation == oc.JmpOp.EXIT:
            return _exit(vm)
        if operation == oc.JmpOp.CALL:
            if op & oc.Source.X:
                return _fails("callx (indirect calls) is not emulated")
            if insn.src == oc.CallKind.HELPER:
                return _helper_call(vm, insn, nxt)
            if insn.src == oc.CallKind.LOCAL:
                return _local_call(vm, target(slot, insn.imm, "call"), nxt)
            return _fails(f"kfunc calls are not emulated (BTF id {insn.imm})")
        if operation == oc.JmpOp.JA:
            rel = insn.imm if klass == oc.Class.JMP32 else insn.off
            return _goto(vm, target(slot, rel, "jump"), rel < 0)
        if operation == oc.JmpOp.JCOND:
            return _may_goto(vm, target(slot, insn.off, "jump"), nxt)
        return _jcond(vm, insn, target(slot, insn.off, "jump"), nxt, insn.off < 0)
    if op == oc.LD_IMM64:
        if insn.dst == 10:
            raise VMError("r10 is read-only (the frame pointer)")
        value = _ldimm64_value(vm, prog, insn, slot, target)
        return _make("R d k nxt", "R[d] = k\nreturn nxt", R=vm.regs, d=insn.dst, k=value, nxt=nxt)
    if klass == oc.Class.LD:
        return _legacy_load(vm, insn, nxt)
    if klass == oc.Class.LDX:
        return _ldx(vm, insn, nxt)
    if klass == oc.Class.STX and oc.mode(op) == oc.Mode.ATOMIC:
        return _atomic(vm, insn, nxt)
    return _store(vm, insn, nxt)


def _ldimm64_value(vm: VM, prog: VMProgram, insn: Insn, slot: int, target) -> int:
    src, imm = insn.src, insn.imm & M64
    if src == oc.Pseudo.IMM:
        return imm
    if src in (oc.Pseudo.MAP_FD, oc.Pseudo.MAP_VALUE, oc.Pseudo.MAP_IDX, oc.Pseudo.MAP_IDX_VALUE):
        ref = imm & M32
        if src in (oc.Pseudo.MAP_IDX, oc.Pseudo.MAP_IDX_VALUE):
            m = prog.map_by_index(ref)
        else:
            m = vm.maps.get(ref)
            if m is None:
                raise VMError(f"ld_imm64 refers to map fd {ref}, and the VM has no such map "
                              f"(its maps: {', '.join(str(fd) for fd in vm.maps) or 'none'})")
        if src in (oc.Pseudo.MAP_FD, oc.Pseudo.MAP_IDX):
            return m.handle
        from .maps import ArrayMap

        if not isinstance(m, ArrayMap):
            raise VMError(f"direct value access needs an array map; {m.label!r} is {m.type_name}")
        return m.value_address(imm >> 32)
    if src == oc.Pseudo.FUNC:
        rel = ((insn.imm & M32) ^ S32) - S32  # the low word; the high one is 0
        return FUNC_BASE + target(slot, rel, "function reference") * 8
    raise VMError(f"ld_imm64 of a kernel BTF object (pseudo source {src}) is not emulated")
