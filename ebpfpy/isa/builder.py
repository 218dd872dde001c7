"""Write BPF programs in Python, one method per instruction, with labels and late-bound maps.

Jumps name labels, calls name helpers, map loads name maps; nothing is turned into numbers until
``build()``. That keeps the program readable while it is written (``b.jeq(R0, 0, "out")``) and lets
the builder count slots once, correctly (``ld_imm64`` takes two), instead of every caller doing
offset arithmetic by hand.

Every instruction also remembers the source span and comments active when it was emitted, so a
verifier error at instruction *n* can be traced back to the line that produced it.

Example::

    b = Builder()
    b.mov(R0, 0)
    b.jeq(R1, 0, "out")
    b.mov(R0, 1)
    b.label("out")
    b.exit()
    insns = b.build()

Opcode numbers follow RFC 9669 (the few this module needs are spelled out below).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ebpfpy.isa.errors import ISAError
from ebpfpy.isa.forms import (  # noqa: F401 (R0..R10, FP, REGS, Operand, SizeSpec: the public names)
    _ALU,
    _ALU32_FAST,
    _ALU64,
    _ALU64_FAST,
    _ALU_FORMS,
    _ATOMIC_OPS,
    _CALL,
    _CONDITIONS,
    _EXIT_KEY,
    _EXIT_TRUSTED,
    _KNOWN_MAX,
    _LDX_FAST,
    _LDX_MEM,
    _S16,
    _S32,
    _ST_FAST,
    _STX_FAST,
    _STX_MEM,
    _X,
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
    REGS,
    BuildError,
    Operand,
    Reg,
    SizeSpec,
    _alu_method,
    _atomic_method,
    _Fixup,
    _imm32,
    _Item,
    _jump_method,
    _off16,
    _reg,
    _signed,
    _size,
    _unchecked_insn,
)
from ebpfpy.isa.helpers import Helper, UnknownHelperError, helper
from ebpfpy.isa.insn import Insn, _trusted
from ebpfpy.isa.opcodes import (
    FETCH,
    LD_IMM64,
    AluOp,
    CallKind,
    Class,
    JmpOp,
    Mode,
    Pseudo,
    Size,
    Source,
)

Span = tuple[int, int, int]  # (line, first column, last column)


class Builder:
    """Collects instructions with symbolic labels, helper names and map references."""

    def __init__(self) -> None:
        # One entry per emitted instruction, and nothing else per instruction: the rest is kept
        # only where there is something (fixups, comments, the two-slot LD_IMM64s) or as runs
        # (spans), so a million-instruction program costs a million Insn and a list.
        self._insns: list[Insn] = []  # as emitted, before build() fills in the fixups
        self._wide: list[int] = []  # indices of the LD_IMM64s (two slots each), ascending
        self._unchecked: list[int] = []  # indices build() must Insn.check() (not fast-path ones)
        self._known: dict[tuple, Insn] = {}  # (op, dst, src, off, imm) -> the Insn (fast paths)
        self._fixups: dict[int, tuple] = {}  # index -> (kind, target, map_ref, map_offset)
        self._notes: dict[int, tuple[str, ...]] = {}  # index -> comments (len(_insns): pending)
        self._span: Span | None = None
        self._span_runs: list[tuple[int, Span | None]] = [(0, None)]  # (first index, span), ascending
        self._labels: dict[str, int] = {}  # label -> slot of the instruction it precedes
        self._counter = itertools.count(1)
        self.spans: list[Span | None] = []
        self.comments: dict[int, tuple[str, ...]] = {}
        self.label_slots: dict[str, int] = {}
        self.subprograms: list[int] = []

    # --- bookkeeping ---------------------------------------------------------------------------
    @property
    def span(self) -> Span | None:
        """The source span given to the instructions emitted from now on (see `at`)."""
        return self._span

    @span.setter
    def span(self, value: Span | None) -> None:
        self._span = value
        runs, here = self._span_runs, len(self._insns)
        if runs[-1][0] == here:
            runs[-1] = (here, value)  # nothing emitted under the previous span since it was set
        elif runs[-1][1] is not value:
            runs.append((here, value))

    @property
    def pc(self) -> int:
        """Slot index the next instruction will get."""
        return len(self._insns) + len(self._wide)

    def __len__(self) -> int:
        return len(self._insns)

    def _spans_per_insn(self) -> list[Span | None]:
        n, out = len(self._insns), []
        runs = self._span_runs
        for j, (start, span) in enumerate(runs):
            stop = runs[j + 1][0] if j + 1 < len(runs) else n
            out.extend(itertools.repeat(span, stop - start))
        return out

    @property
    def _items(self) -> list[_Item]:
        """The emitted instructions with their metadata, unresolved (for tests and debugging)."""
        out = []
        for i, (insn, span) in enumerate(zip(self._insns, self._spans_per_insn())):
            kind, target, map_ref, map_offset = self._fixups.get(i, (None, None, None, 0))
            out.append(_Item(insn, kind, target, map_ref, map_offset, span, self._notes.get(i, ())))
        return out

    def _made(self, key: tuple, op: int, dst: int, src: int, off: int, imm: int) -> Insn:
        """A new instruction for a fast path, kept for the next time (up to _KNOWN_MAX of them)."""
        insn = _unchecked_insn(op, dst, src, off, imm)
        if len(self._known) < _KNOWN_MAX:
            self._known[key] = insn
        return insn

    def _emit(
        self,
        insn: Insn,
        fixup: str | None = None,
        target: str | None = None,
        map_ref: Any = None,
        map_offset: int = 0,
    ) -> None:
        """The general path: build() checks the instruction (and fills in the fixup)."""
        i = len(self._insns)
        if fixup is not None:
            self._fixups[i] = (fixup, target, map_ref, map_offset)
        else:
            self._unchecked.append(i)
        if insn.op == LD_IMM64:
            self._wide.append(i)
        self._insns.append(insn)

    def insn(self, insn: Insn) -> None:
        """Append a ready-made instruction (no labels or maps to resolve)."""
        self._emit(insn)

    def mark(self) -> int:
        """The site of the next instruction to be emitted, for `with_imm`.

        A site is the instruction's position in emission order (not its slot number, which an
        LD_IMM64 before it would shift); it stays valid for copies made by `with_imm`.
        """
        return len(self._insns)

    def with_imm(self, sites: Iterable[int], value: int) -> Builder:
        """A copy of this builder in which the instructions at ``sites`` (from `mark`) have
        ``imm = value``.

        Why: a code generator that emits the same program for many targets that differ in one
        constant (pybpftrace's ``probe`` index, when one body serves 300 tracepoints) generates
        it once, marks where the constant goes, and stamps out a copy per target instead of
        generating again. Labels, map references, spans and comments come along; the copy and
        this builder share nothing that either can change. Only immediates the writer chose can
        be patched: one that ``build()`` fills in (a jump, call or map reference) is refused, as
        is a value the instruction cannot hold.
        """
        clone = copy.copy(self)
        clone._insns = insns = list(self._insns)
        clone._wide, clone._unchecked = list(self._wide), list(self._unchecked)
        clone._notes, clone._fixups = dict(self._notes), dict(self._fixups)
        clone._span_runs, clone._labels = list(self._span_runs), dict(self._labels)
        clone._counter = copy.copy(self._counter)
        clone._known = {}
        clone.spans, clone.comments = list(self.spans), dict(self.comments)
        clone.label_slots, clone.subprograms = dict(self.label_slots), list(self.subprograms)
        for site in sites:
            if not (isinstance(site, int) and 0 <= site < len(insns)):
                raise BuildError(f"no instruction at site {site!r}")
            if site in self._fixups:
                raise BuildError(
                    f"the immediate at site {site} is filled in by build() "
                    f"({self._fixups[site][0]}), it cannot be patched"
                )
            try:
                insns[site] = dataclasses.replace(insns[site], imm=value)
            except ISAError as e:
                raise BuildError(f"site {site}: {e}") from None
            clone._unchecked.append(site)  # a new immediate: build() checks it
        return clone

    def label(self, name: str) -> str:
        """Mark the position of the next instruction as ``name``."""
        if name in self._labels:
            raise BuildError(f"duplicate label {name!r}", index=self.pc, label=name)
        self._labels[name] = self.pc
        return name

    def fresh_label(self, hint: str = "L") -> str:
        """A label name not used yet, for code generators that need private jump targets."""
        while True:
            name = f".{hint}{next(self._counter)}"
            if name not in self._labels:
                return name

    def comment(self, text: str) -> None:
        """Attach ``text`` to the next instruction (shown beside it in annotated listings)."""
        here = len(self._insns)
        self._notes[here] = (*self._notes.get(here, ()), text)

    @contextlib.contextmanager
    def at(self, span: Span | None) -> Iterator[None]:
        """Tag every instruction emitted inside the block with ``span``."""
        saved, self.span = self.span, span
        try:
            yield
        finally:
            self.span = saved

    # --- ALU -----------------------------------------------------------------------------------
    def alu(self, op: str, dst: Reg, src: Operand, wide: bool = True) -> None:
        """Generic ALU instruction by name (``"add"``, ``"sdiv"``, ...); 64-bit unless ``wide=False``."""
        try:
            k_code, x_code, off = (_ALU64_FAST if wide else _ALU32_FAST)[op]
            d = dst._number
        except (KeyError, TypeError, AttributeError):
            d = None
        if d is not None:
            if type(src) is not int:
                try:
                    s = src._number
                except AttributeError:
                    s = None
                if s is not None and x_code is not None:
                    key = (x_code, d, s, off, 0)
                    try:
                        insn = self._known[key]
                    except KeyError:
                        insn = self._made(key, x_code, d, s, off, 0)
                    self._insns.append(insn)
                    return
            elif -0x8000_0000 <= src <= 0x7FFF_FFFF and k_code is not None:
                key = (k_code, d, 0, off, src)
                try:
                    insn = self._known[key]
                except KeyError:
                    insn = self._made(key, k_code, d, 0, off, src)
                self._insns.append(insn)
                return
        try:
            operation, off = _ALU_FORMS[op]
        except KeyError:
            raise BuildError(f"unknown ALU operation {op!r}") from None
        code = (_ALU64 if wide else _ALU) | operation
        d = _reg(dst, "destination")
        if isinstance(src, Reg):
            self._emit(_trusted(code | _X, d, _reg(src), off, 0))
        else:
            self._emit(_trusted(code, d, 0, off, _imm32(src, wide)))

    mov, mov32 = _alu_method("mov", True), _alu_method("mov", False)
    add, add32 = _alu_method("add", True), _alu_method("add", False)
    sub, sub32 = _alu_method("sub", True), _alu_method("sub", False)
    mul, mul32 = _alu_method("mul", True), _alu_method("mul", False)
    div, div32 = _alu_method("div", True), _alu_method("div", False)
    sdiv, sdiv32 = _alu_method("sdiv", True), _alu_method("sdiv", False)
    mod, mod32 = _alu_method("mod", True), _alu_method("mod", False)
    smod, smod32 = _alu_method("smod", True), _alu_method("smod", False)
    or_, or32 = _alu_method("or", True), _alu_method("or", False)
    and_, and32 = _alu_method("and", True), _alu_method("and", False)
    xor, xor32 = _alu_method("xor", True), _alu_method("xor", False)
    lsh, lsh32 = _alu_method("lsh", True), _alu_method("lsh", False)
    rsh, rsh32 = _alu_method("rsh", True), _alu_method("rsh", False)
    arsh, arsh32 = _alu_method("arsh", True), _alu_method("arsh", False)

    def neg(self, dst: Reg) -> None:
        self._emit(Insn(Class.ALU64 | AluOp.NEG, _reg(dst)))

    def neg32(self, dst: Reg) -> None:
        self._emit(Insn(Class.ALU | AluOp.NEG, _reg(dst)))

    def movsx(self, dst: Reg, src: Reg, bits: int, wide: bool = True) -> None:
        """Sign-extending move of the low ``bits`` (8, 16, 32) of src (RFC 9669 MOVSX)."""
        allowed = (8, 16, 32) if wide else (8, 16)
        if bits not in allowed:
            raise BuildError(f"movsx bits must be one of {allowed}, not {bits}")
        cls = Class.ALU64 if wide else Class.ALU
        self._emit(Insn(cls | Source.X | AluOp.MOV, _reg(dst), _reg(src), bits, 0))

    def _end(self, cls: int, source: int, dst: Reg, bits: int) -> None:
        if bits not in (16, 32, 64):
            raise BuildError(f"byte swap width must be 16, 32 or 64, not {bits}")
        self._emit(Insn(cls | source | AluOp.END, _reg(dst), 0, 0, bits))

    def to_le(self, dst: Reg, bits: int) -> None:
        """Convert dst from host order to little endian (a truncation on x86)."""
        self._end(Class.ALU, Source.K, dst, bits)

    def to_be(self, dst: Reg, bits: int) -> None:
        """Convert dst from host order to big endian (network order)."""
        self._end(Class.ALU, Source.X, dst, bits)

    def bswap(self, dst: Reg, bits: int) -> None:
        """Unconditional byte swap (RFC 9669: ALU64 class with the END operation)."""
        self._end(Class.ALU64, Source.K, dst, bits)

    # --- loads and stores ------------------------------------------------------------------------
    def ldx(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """``dst = *(size *)(src + off)``, zero-extended."""
        try:
            code = _LDX_FAST[size]
            d, s = dst._number, src._number
        except (KeyError, TypeError, AttributeError):
            code = None
        if code is not None and d is not None and s is not None and type(off) is int and -0x8000 <= off <= 0x7FFF:
            key = (code, d, s, off, 0)
            try:
                insn = self._known[key]
            except KeyError:
                insn = self._made(key, code, d, s, off, 0)
            self._insns.append(insn)
            return
        self._emit(_trusted(_LDX_MEM | _size(size), _reg(dst), _reg(src), _off16(off), 0))

    def ldx_sx(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """``dst = *(signed size *)(src + off)``, sign-extended (not for 8-byte loads)."""
        s = _size(size)
        if s == Size.DW:
            raise BuildError("ldx_sx needs a size of 1, 2 or 4 bytes")
        self._emit(Insn(Class.LDX | Mode.MEMSX | s, _reg(dst), _reg(src), _off16(off)))

    def stx(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """``*(size *)(dst + off) = src``."""
        try:
            code = _STX_FAST[size]
            d, s = dst._number, src._number
        except (KeyError, TypeError, AttributeError):
            code = None
        if code is not None and d is not None and s is not None and type(off) is int and -0x8000 <= off <= 0x7FFF:
            key = (code, d, s, off, 0)
            try:
                insn = self._known[key]
            except KeyError:
                insn = self._made(key, code, d, s, off, 0)
            self._insns.append(insn)
            return
        self._emit(_trusted(_STX_MEM | _size(size), _reg(dst), _reg(src), _off16(off), 0))

    def st(self, size: SizeSpec, dst: Reg, imm: int, off: int = 0) -> None:
        """``*(size *)(dst + off) = imm`` (an 8-byte store sign-extends the 32-bit immediate)."""
        try:
            code = _ST_FAST[size]
            d = dst._number
        except (KeyError, TypeError, AttributeError):
            code = None
        if (code is not None and d is not None and type(off) is int and -0x8000 <= off <= 0x7FFF
                and type(imm) is int and -0x8000_0000 <= imm <= 0x7FFF_FFFF):
            key = (code, d, 0, off, imm)
            try:
                insn = self._known[key]
            except KeyError:
                insn = self._made(key, code, d, 0, off, imm)
            self._insns.append(insn)
            return
        s = _size(size)
        code = Class.ST | Mode.MEM | s
        self._emit(_trusted(code, _reg(dst), 0, _off16(off), _imm32(imm, s == Size.DW)))

    def atomic(
        self,
        op: str,
        size: SizeSpec,
        dst: Reg,
        src: Reg,
        off: int = 0,
        fetch: bool = False,
    ) -> None:
        """Atomic read-modify-write on ``*(size *)(dst + off)``; only 4- and 8-byte sizes exist."""
        s = _size(size)
        if s not in (Size.W, Size.DW):
            raise BuildError("atomic operations need a size of 4 or 8 bytes")
        if op not in _ATOMIC_OPS:
            raise BuildError(f"unknown atomic operation {op!r}")
        imm = _ATOMIC_OPS[op] | (FETCH if fetch else 0)
        self._emit(
            Insn(Class.STX | Mode.ATOMIC | s, _reg(dst), _reg(src), _off16(off), imm)
        )

    atomic_add = _atomic_method("add")
    atomic_or = _atomic_method("or")
    atomic_and = _atomic_method("and")
    atomic_xor = _atomic_method("xor")

    def atomic_xchg(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """Swap src with ``*(size *)(dst + off)``."""
        self.atomic("xchg", size, dst, src, off)

    def atomic_cmpxchg(self, size: SizeSpec, dst: Reg, src: Reg, off: int = 0) -> None:
        """If ``*(dst + off) == r0`` store src there; r0 receives the old value either way."""
        self.atomic("cmpxchg", size, dst, src, off)

    def ld_imm64(self, dst: Reg, value: int) -> None:
        """Load a full 64-bit constant (two slots)."""
        if not -(1 << 63) <= value < (1 << 64):
            raise BuildError(f"ld_imm64 value {value:#x} does not fit 64 bits")
        self._emit(Insn(LD_IMM64, _reg(dst), 0, 0, _signed(value, 64)))

    def ld_map_fd(self, dst: Reg, map_ref: Any) -> None:
        """Load a map pointer; ``map_ref`` is an object with ``.fd`` or a name for ``build(maps=)``."""
        self._emit(
            Insn(LD_IMM64, _reg(dst), int(Pseudo.MAP_FD)),
            fixup="map_fd",
            map_ref=map_ref,
        )

    def ld_map_value(self, dst: Reg, map_ref: Any, offset: int = 0) -> None:
        """Load a pointer to byte ``offset`` of an array map's value 0 (direct value access)."""
        if not 0 <= offset < (1 << 31):
            raise BuildError(f"map value offset {offset} out of range")
        self._emit(
            Insn(LD_IMM64, _reg(dst), int(Pseudo.MAP_VALUE)),
            fixup="map_value",
            map_ref=map_ref,
            map_offset=offset,
        )

    def ld_func(self, dst: Reg, label: str) -> None:
        """Load the address of the subprogram at ``label`` (a callback for ``loop`` and friends)."""
        self._emit(
            Insn(LD_IMM64, _reg(dst), int(Pseudo.FUNC)), fixup="func", target=label
        )

    def ld_abs(self, size: SizeSpec, imm: int) -> None:
        """Legacy socket-filter packet load: ``r0 = ntoh(*(size *)(skb->data + imm))``."""
        self._emit(Insn(Class.LD | Mode.ABS | _size(size), 0, 0, 0, _imm32(imm, True)))

    def ld_ind(self, size: SizeSpec, src: Reg, imm: int) -> None:
        """Legacy socket-filter packet load: ``r0 = ntoh(*(size *)(skb->data + src + imm))``."""
        self._emit(
            Insn(Class.LD | Mode.IND | _size(size), 0, _reg(src), 0, _imm32(imm, True))
        )

    # --- jumps and calls -----------------------------------------------------------------------
    def jmp(
        self, cond: str, dst: Reg, src: Operand, label: str, wide: bool = True
    ) -> None:
        """Conditional jump by condition name (``"eq"``, ``"sgt"``, ...) to ``label``."""
        if cond not in _CONDITIONS:
            raise BuildError(
                f"unknown jump condition {cond!r}; one of {', '.join(_CONDITIONS)}"
            )
        cls = Class.JMP if wide else Class.JMP32
        d = _reg(dst, "jump operand")
        if isinstance(src, Reg):
            insn = _trusted(cls | Source.X | _CONDITIONS[cond], d, _reg(src), 0, 0)
        else:
            insn = _trusted(cls | Source.K | _CONDITIONS[cond], d, 0, 0, _imm32(src, wide))
        self._emit(insn, fixup="jump", target=label)

    def jmp32(self, cond: str, dst: Reg, src: Operand, label: str) -> None:
        """As ``jmp`` but comparing the low 32 bits."""
        self.jmp(cond, dst, src, label, wide=False)

    jeq, jeq32 = _jump_method("eq", True), _jump_method("eq", False)
    jne, jne32 = _jump_method("ne", True), _jump_method("ne", False)
    jgt, jgt32 = _jump_method("gt", True), _jump_method("gt", False)
    jge, jge32 = _jump_method("ge", True), _jump_method("ge", False)
    jlt, jlt32 = _jump_method("lt", True), _jump_method("lt", False)
    jle, jle32 = _jump_method("le", True), _jump_method("le", False)
    jset, jset32 = _jump_method("set", True), _jump_method("set", False)
    jsgt, jsgt32 = _jump_method("sgt", True), _jump_method("sgt", False)
    jsge, jsge32 = _jump_method("sge", True), _jump_method("sge", False)
    jslt, jslt32 = _jump_method("slt", True), _jump_method("slt", False)
    jsle, jsle32 = _jump_method("sle", True), _jump_method("sle", False)

    def ja(self, label: str) -> None:
        """Unconditional jump (16-bit offset)."""
        self._emit(Insn(Class.JMP | JmpOp.JA), fixup="jump", target=label)

    def gotol(self, label: str) -> None:
        """Unconditional jump with a 32-bit offset in imm (JMP32 class JA, kernel 6.6+)."""
        self._emit(Insn(Class.JMP32 | JmpOp.JA), fixup="gotol", target=label)

    def call(self, name_or_id: str | int | Helper) -> None:
        """Call a helper by name (with or without ``bpf_``) or id; the result lands in r0."""
        try:
            h = helper(name_or_id)
        except UnknownHelperError as e:
            raise BuildError(str(e), index=self.pc) from None
        self._emit(Insn(_CALL, 0, int(CallKind.HELPER), 0, h.id))

    def call_local(self, label: str) -> None:
        """BPF-to-BPF call of the subprogram starting at ``label`` (r1-r5 in, r0 out, r6-r9 kept)."""
        self._emit(Insn(_CALL, 0, int(CallKind.LOCAL)), fixup="call", target=label)

    def call_kfunc(self, btf_id: int) -> None:
        """Call a kernel function by its vmlinux BTF id."""
        self._emit(Insn(_CALL, 0, int(CallKind.KFUNC), 0, _imm32(btf_id, True)))

    def exit(self) -> None:
        """Return r0 to the caller (or the kernel)."""
        if _EXIT_TRUSTED:
            try:
                insn = self._known[_EXIT_KEY]
            except KeyError:
                insn = self._made(_EXIT_KEY, *_EXIT_KEY)
            self._insns.append(insn)
            return
        self._emit(Insn(Class.JMP | JmpOp.EXIT))

    # --- build ---------------------------------------------------------------------------------
    def build(self, maps: Mapping[str, Any] | None = None) -> list[Insn]:
        """Resolve labels and map references and return the instructions.

        Fills ``spans`` (one entry per slot), ``comments`` (slot -> texts), ``label_slots`` and
        ``subprograms`` (the first slot of each function: 0 and every call/callback target, which
        is what BTF ``func_info`` must describe). May be called again, e.g. with other map fds.
        """
        insns, wide, fixups = self._insns, self._wide, self._fixups
        n = len(insns)
        end = n + len(wide)
        label_slots = dict(self._labels)
        out = list(insns)
        entries = {0}
        # Only what the fast paths did not vouch for is looked at one by one, in program order
        # (so the first error is the one reported, as when every instruction was checked).
        for i in sorted(set(self._unchecked).union(fixups)):
            insn = insns[i]
            pc = i + bisect_left(wide, i)
            fix = fixups.get(i)
            if fix is not None:
                insn = self._resolve(insn, fix, pc, label_slots, end, maps)
                if fix[0] in ("call", "func"):
                    entries.add(label_slots[fix[1]])
            try:
                insn.check()
            except ISAError as e:
                raise BuildError(str(e), index=pc) from None
            out[i] = insn
        # One span per slot: each run of instructions under one span, its LD_IMM64s twice.
        spans: list[Span | None] = []
        runs = self._span_runs
        for j, (start, span) in enumerate(runs):
            stop = runs[j + 1][0] if j + 1 < len(runs) else n
            if stop > start:
                slots = stop - start
                if wide:
                    slots += bisect_left(wide, stop) - bisect_left(wide, start)
                spans.extend(itertools.repeat(span, slots))
        comments: dict[int, tuple[str, ...]] = {}
        for i, texts in self._notes.items():
            comments[i + bisect_left(wide, i) if i < n else end] = texts
        self.spans, self.comments, self.label_slots = spans, comments, label_slots
        self.subprograms = sorted(entries) if out else []
        return out

    def _resolve(
        self,
        insn: Insn,
        fix: tuple,
        pc: int,
        labels: dict[str, int],
        end: int,
        maps: Mapping[str, Any] | None,
    ) -> Insn:
        kind, target, map_ref, map_offset = fix
        if kind in ("map_fd", "map_value"):
            fd = _map_fd(map_ref, maps, pc)
            imm = fd if kind == "map_fd" else fd | (map_offset << 32)
            return dataclasses.replace(insn, imm=imm)
        if target not in labels:
            raise BuildError(f"undefined label {target!r}", index=pc, label=target)
        if labels[target] >= end:
            raise BuildError(
                f"label {target!r} is past the last instruction", index=pc, label=target
            )
        delta = labels[target] - (pc + 1)
        if kind == "jump":
            if not _S16[0] <= delta <= _S16[1]:
                raise BuildError(
                    f"jump to {target!r} is {delta} slots away, beyond a 16-bit offset; "
                    "use gotol for long unconditional jumps",
                    index=pc,
                    label=target,
                )
            return dataclasses.replace(insn, off=delta)
        if not _S32[0] <= delta <= _S32[1]:
            raise BuildError(
                f"target {target!r} is {delta} slots away", index=pc, label=target
            )
        return dataclasses.replace(insn, imm=delta)  # gotol, call, func


def _map_fd(ref: Any, maps: Mapping[str, Any] | None, pc: int) -> int:
    """The fd of a map reference: an object with ``.fd``, an int fd, or a name in ``maps``."""
    name = None
    if isinstance(ref, str):
        name = ref
        if maps is None or ref not in maps:
            raise BuildError(
                f"map {ref!r} is not in the maps given to build()", index=pc, label=ref
            )
        ref = maps[ref]
    fd = getattr(ref, "fd", ref)
    if hasattr(fd, "fileno"):
        fd = fd.fileno()
    if not isinstance(fd, int) or isinstance(fd, bool) or fd < 0:
        raise BuildError(
            f"map reference {name or ref!r} has no usable fd ({fd!r})",
            index=pc,
            label=name,
        )
    return fd
