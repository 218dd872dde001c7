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
    _ALU_TABLES,
    _ATOMIC_OPS,
    _CALL,
    _CONDITIONS,
    _EXIT_KEY,
    _EXIT_TRUSTED,
    _LDX_FAST,
    _LDX_MEM,
    _LDX_TABLES,
    _S16,
    _S32,
    _ST_FAST,
    _ST_TABLES,
    _STX_FAST,
    _STX_MEM,
    _STX_TABLES,
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
    _alu_key,
    _alu_method,
    _atomic_method,
    _Fixup,
    _imm32,
    _Item,
    _jump_key,
    _jump_method,
    _mem_key,
    _off16,
    _pool_get,
    _reg,
    _signed,
    _size,
)
from ebpfpy.isa.helpers import Helper, UnknownHelperError, helper
from ebpfpy.isa.insn import Insn, _made, _pooled, _remember, _trusted
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
_CALL_HELPER = int(_CALL)  # | CallKind.HELPER (0)
_MAP_FD = int(Pseudo.MAP_FD)
_HELPER_CALLS: dict[str, tuple[Insn, bytes]] = {}  # helper name as written -> its call (shared)
_JA_KEY = (int(Class.JMP | JmpOp.JA), 0, 0, 0, 0)
_MAP_FD_KEYS = tuple((LD_IMM64, d, _MAP_FD, 0, 0) for d in range(11))
_U63, _U64 = 1 << 63, 1 << 64


class Builder:
    """Collects instructions with symbolic labels, helper names and map references."""

    def __init__(self) -> None:
        # Two entries per emitted instruction (the shared Insn and its shared bytes), nothing else
        # per instruction: the rest is kept only where there is something (fixups, comments, the
        # two-slot LD_IMM64s) or as runs (spans).
        self._insns: list[Insn] = []  # as emitted, before build() fills in the fixups
        self._codes: list[bytes | None] = []  # their bytes (None: build() makes or checks them)
        self._wide: list[int] = []  # indices of the LD_IMM64s (two slots each), ascending
        self._unchecked: list[int] = []  # indices build() must Insn.check() (not fast-path ones)
        self._fixups: dict[int, tuple] = {}  # index -> (kind, target, map_ref, map_offset)
        self._notes: dict[int, tuple[str, ...]] = {}  # index -> comments (len(_insns): pending)
        self._span: Span | None = None
        self._span_runs: list[tuple[int, Span | None]] = [(0, None)]  # (first index, span), ascending
        self._labels: dict[str, int] = {}  # label -> slot of the instruction it precedes
        self._counter = itertools.count(1)
        self._spans: list[Span | None] | None = []  # None: not made yet from the runs (spans)
        self._spans_of = 0  # how many instructions the last build() had
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
    def spans(self) -> list[Span | None]:
        """The source span of each slot of the last build() (None: no span).

        Made on first use: only a verifier error or a listing reads them, and a program is
        built (and loaded) far more often than that.
        """
        if self._spans is None:
            self._spans = self._slot_spans(self._spans_of)
        return self._spans

    @spans.setter
    def spans(self, value: list[Span | None]) -> None:
        self._spans = value

    def _slot_spans(self, n: int) -> list[Span | None]:
        """One span per slot of the first ``n`` instructions: each run under one span, its
        LD_IMM64s twice. Instructions emitted since only add runs and wide ones past ``n``."""
        runs, wide = self._span_runs, self._wide
        spans: list[Span | None] = []
        for j, (start, span) in enumerate(runs):
            stop = min(runs[j + 1][0], n) if j + 1 < len(runs) else n
            if stop > start:
                slots = stop - start
                if wide:
                    slots += bisect_left(wide, stop) - bisect_left(wide, start)
                spans.extend(itertools.repeat(span, slots))
        return spans

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

    def _emit(
        self,
        insn: Insn,
        fixup: str | None = None,
        target: str | None = None,
        map_ref: Any = None,
        map_offset: int = 0,
    ) -> None:
        """The general path: a valid instruction is shared (as the fast paths' are); an invalid
        one is left for build() to report, in program order; build() fills in a fixup."""
        i = len(self._insns)
        code = None
        if fixup is not None:
            self._fixups[i] = (fixup, target, map_ref, map_offset)
        else:
            try:
                insn.check()
            except ISAError:
                self._unchecked.append(i)
            else:
                insn, code = _shared(insn)
        if insn.op == LD_IMM64:
            self._wide.append(i)
        self._insns.append(insn)
        self._codes.append(code)

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
        clone._codes = codes = list(self._codes)
        clone._wide, clone._unchecked = list(self._wide), list(self._unchecked)
        clone._notes, clone._fixups = dict(self._notes), dict(self._fixups)
        clone._span_runs, clone._labels = list(self._span_runs), dict(self._labels)
        clone._counter = copy.copy(self._counter)
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
            codes[site] = None
            clone._unchecked.append(site)  # a new immediate: build() checks it
        return clone

    def label(self, name: str) -> str:
        """Mark the position of the next instruction as ``name``."""
        labels = self._labels
        if name in labels:
            raise BuildError(f"duplicate label {name!r}", index=self.pc, label=name)
        labels[name] = len(self._insns) + len(self._wide)  # self.pc
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
        try:  # the tables of the method of that name (mov, add...): what it made, this makes too
            k_tables, x_tables = _ALU_TABLES[op, bool(wide)]
            tables, operand = (k_tables, src) if type(src) is int else (x_tables, src._number)
            pair = tables[dst._number].get(operand)
        except (KeyError, TypeError, AttributeError):
            tables = pair = None
        if pair is None:
            key = _alu_key(op, wide, dst, src)
            if key is not None:
                pair = _made(key) if tables is not None else _pooled(key)
                if tables is not None:
                    tables[key[1]][operand] = pair
        if pair is not None:
            self._insns.append(pair[0])
            self._codes.append(pair[1])
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
        try:  # the usual case: one lookup (see forms: only valid instructions are kept)
            pair = _LDX_TABLES[size][dst._number].get((src._number, off)) if type(off) is int else None
        except (KeyError, TypeError, AttributeError):
            pair = None
        if pair is None:
            key = _mem_key(_LDX_FAST, dst, src, off, size)
            if key is not None:
                pair = _LDX_TABLES[size][key[1]][key[2], off] = _made(key)
        if pair is not None:
            self._insns.append(pair[0])
            self._codes.append(pair[1])
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
        try:  # the usual case: one lookup (see forms: only valid instructions are kept)
            pair = _STX_TABLES[size][dst._number].get((src._number, off)) if type(off) is int else None
        except (KeyError, TypeError, AttributeError):
            pair = None
        if pair is None:
            key = _mem_key(_STX_FAST, dst, src, off, size)
            if key is not None:
                pair = _STX_TABLES[size][key[1]][key[2], off] = _made(key)
        if pair is not None:
            self._insns.append(pair[0])
            self._codes.append(pair[1])
            return
        self._emit(_trusted(_STX_MEM | _size(size), _reg(dst), _reg(src), _off16(off), 0))

    def st(self, size: SizeSpec, dst: Reg, imm: int, off: int = 0) -> None:
        """``*(size *)(dst + off) = imm`` (an 8-byte store sign-extends the 32-bit immediate)."""
        try:
            pair = _ST_TABLES[size][dst._number].get((off, imm)) if type(off) is type(imm) is int else None
        except (KeyError, TypeError, AttributeError):
            pair = None
        if pair is None:
            key = _mem_key(_ST_FAST, dst, None, off, size, imm)
            if key is not None:
                pair = _ST_TABLES[size][key[1]][off, imm] = _made(key)
        if pair is not None:
            self._insns.append(pair[0])
            self._codes.append(pair[1])
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
        d = getattr(dst, "_number", None)
        if d is not None and type(value) is int:  # valid for every register and value: shared
            key = (LD_IMM64, d, 0, 0, value if value < _U63 else value - _U64)
            insn, code = _pool_get(key) or _pooled(key)
            self._wide.append(len(self._insns))
            self._insns.append(insn)
            self._codes.append(code)
            return
        self._emit(Insn(LD_IMM64, _reg(dst), 0, 0, _signed(value, 64)))

    def ld_map_fd(self, dst: Reg, map_ref: Any) -> None:
        """Load a map pointer; ``map_ref`` is an object with ``.fd`` or a name for ``build(maps=)``."""
        d = getattr(dst, "_number", None)
        if d is not None:
            insns = self._insns
            i = len(insns)
            self._fixups[i] = ("map_fd", None, map_ref, 0)
            self._wide.append(i)
            insns.append((_pool_get(_MAP_FD_KEYS[d]) or _pooled(_MAP_FD_KEYS[d]))[0])
            self._codes.append(None)  # build() fills in the fd
            return
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
        key = _jump_key(cond, wide, dst, src)
        if key is not None:
            insns = self._insns
            self._fixups[len(insns)] = ("jump", label, None, 0)  # build() fills in the offset
            insns.append(_pooled(key)[0])
            self._codes.append(None)
            return
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
        insns = self._insns
        self._fixups[len(insns)] = ("jump", label, None, 0)
        insns.append((_pool_get(_JA_KEY) or _pooled(_JA_KEY))[0])
        self._codes.append(None)

    def gotol(self, label: str) -> None:
        """Unconditional jump with a 32-bit offset in imm (JMP32 class JA, kernel 6.6+)."""
        self._emit(Insn(Class.JMP32 | JmpOp.JA), fixup="gotol", target=label)

    def call(self, name_or_id: str | int | Helper) -> None:
        """Call a helper by name (with or without ``bpf_``) or id; the result lands in r0."""
        kind = type(name_or_id)
        if kind is str:
            pair = _HELPER_CALLS.get(name_or_id)
        else:
            pair = _pool_get((_CALL_HELPER, 0, 0, 0, name_or_id.id)) if kind is Helper else None
        if pair is None:
            try:
                h = helper(name_or_id)
            except UnknownHelperError as e:
                raise BuildError(str(e), index=self.pc) from None
            # Valid for every helper id (a call's usual fields): shared, and not checked again.
            pair = _pooled((_CALL_HELPER, 0, 0, 0, h.id))
            if type(name_or_id) is str and len(_HELPER_CALLS) < 1024:
                _HELPER_CALLS[name_or_id] = pair
        self._insns.append(pair[0])
        self._codes.append(pair[1])

    def call_local(self, label: str) -> None:
        """BPF-to-BPF call of the subprogram starting at ``label`` (r1-r5 in, r0 out, r6-r9 kept)."""
        self._emit(Insn(_CALL, 0, int(CallKind.LOCAL)), fixup="call", target=label)

    def call_kfunc(self, btf_id: int) -> None:
        """Call a kernel function by its vmlinux BTF id."""
        self._emit(Insn(_CALL, 0, int(CallKind.KFUNC), 0, _imm32(btf_id, True)))

    def exit(self) -> None:
        """Return r0 to the caller (or the kernel)."""
        if _EXIT_TRUSTED:
            insn, code = _pool_get(_EXIT_KEY) or _pooled(_EXIT_KEY)
            self._insns.append(insn)
            self._codes.append(code)
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
        out, codes = insns.copy(), self._codes.copy()
        entries = {0}
        # Only what the fast paths did not vouch for is looked at one by one, in program order
        # (so the first error is the one reported, as when every instruction was checked).
        # A patched instruction is checked when it is made (_patched); the pool's need no check.
        unchecked = self._unchecked
        # (fixups are made in emission order: their dict is already in program order)
        todo = [(i, fixups.get(i)) for i in sorted(set(unchecked).union(fixups))] if unchecked else fixups.items()
        for i, fix in todo:
            insn = insns[i]
            pc = i + bisect_left(wide, i) if wide else i
            if fix is None:
                try:
                    insn.check()
                except ISAError as e:
                    raise BuildError(str(e), index=pc) from None
                out[i], codes[i] = _shared(insn)
                continue
            kind = fix[0]
            if kind == "jump":  # the usual cases, inline: a near label, a map, a shared result
                slot = label_slots.get(fix[1], end)
                if slot < end and -0x8000 <= slot - pc - 1 <= 0x7FFF:
                    patched = _pool_get((insn.op, insn.dst, insn.src, slot - pc - 1, insn.imm))
                    if patched is not None:
                        out[i], codes[i] = patched
                        continue
            elif kind == "map_fd":  # (a name in a dict of objects with an int fd; else _map_fd says)
                fd = getattr(maps.get(fix[2]), "fd", None) if type(maps) is dict and type(fix[2]) is str else None
                if type(fd) is int and fd >= 0:
                    patched = _pool_get((insn.op, insn.dst, insn.src, insn.off, fd))
                    if patched is not None:
                        out[i], codes[i] = patched
                        continue
            out[i], codes[i] = self._resolve(insn, fix, pc, label_slots, end, maps)
            if kind in ("call", "func"):
                entries.add(label_slots[fix[1]])
        comments: dict[int, tuple[str, ...]] = {}
        for i, texts in self._notes.items():
            comments[i + bisect_left(wide, i) if i < n else end] = texts
        self.comments, self.label_slots = comments, label_slots
        self._spans, self._spans_of = None, n  # made when asked for (see spans)
        self.subprograms = sorted(entries) if out else []
        try:
            _remember(out, b"".join(codes))  # what encode_all(out) will return
        except TypeError:  # an instruction without known bytes: encode_all packs them all
            pass
        return out

    def _resolve(
        self,
        insn: Insn,
        fix: tuple,
        pc: int,
        labels: dict[str, int],
        end: int,
        maps: Mapping[str, Any] | None,
    ) -> tuple[Insn, bytes | None]:
        """The instruction with its fixup filled in, and its bytes."""
        kind, target, map_ref, map_offset = fix
        if kind in ("map_fd", "map_value"):
            fd = _map_fd(map_ref, maps, pc)
            imm = fd if kind == "map_fd" else fd | (map_offset << 32)
            if imm >= 1 << 63:  # an unsigned spelling: Insn() folds it (or refuses it)
                return _shared(_checked(dataclasses.replace(insn, imm=imm), pc))
            return _patched(insn, insn.off, imm, pc)
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
            return _patched(insn, delta, insn.imm, pc)
        if not _S32[0] <= delta <= _S32[1]:
            raise BuildError(
                f"target {target!r} is {delta} slots away", index=pc, label=target
            )
        return _patched(insn, insn.off, delta, pc)  # gotol, call, func


def _patched(insn: Insn, off: int, imm: int, pc: int) -> tuple[Insn, bytes]:
    """``insn`` with a new offset and immediate (both in range), checked: the shared one if it is
    valid (it usually is: build() fills in the fields a jump, call or map load leaves free)."""
    key = (insn.op, insn.dst, insn.src, off, imm)
    new = _pool_get(key)
    if new is None:
        _checked(_trusted(*key), pc)
        new = _pooled(key)
    return new


def _shared(insn: Insn) -> tuple[Insn, bytes | None]:
    """The pool's instruction equal to ``insn`` (valid, checked by the caller) and its bytes; or
    ``insn`` itself, bytes unknown (None), if a field is not a plain int in range."""
    op, dst, src, off, imm = key = (insn.op, insn.dst, insn.src, insn.off, insn.imm)
    if not (type(op) is type(dst) is type(src) is type(off) is type(imm) is int):
        return insn, None
    wide = op == LD_IMM64
    if (0 <= op <= 0xFF and 0 <= dst <= 0xF and 0 <= src <= 0xF and _S16[0] <= off <= _S16[1]
            and (-_U63 <= imm < _U63 if wide else _S32[0] <= imm <= _S32[1])):
        return _pool_get(key) or _pooled(key)
    return insn, None  # (made past Insn()'s checks: encode_all fails on it, as it always did)


def _checked(insn: Insn, pc: int) -> Insn:
    try:
        insn.check()
    except ISAError as e:
        raise BuildError(str(e), index=pc) from None
    return insn


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
    if type(fd) is not int and hasattr(fd, "fileno"):  # (an int has no fileno: skip the lookup)
        fd = fd.fileno()
    if not isinstance(fd, int) or isinstance(fd, bool) or fd < 0:
        raise BuildError(
            f"map reference {name or ref!r} has no usable fd ({fd!r})",
            index=pc,
            label=name,
        )
    return fd
