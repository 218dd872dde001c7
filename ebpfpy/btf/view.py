"""The raw words of a BTF blob (and of its base, for split BTF) as flat, id-indexed tables.

The C and raw printers walk every type of vmlinux; decoding each into a type
value first would cost a Python object per type and per member.  A ``View``
instead reads the records in place: ``W`` is the u32 words of the type
section, ``R[tid]`` the word where type ``tid``'s record starts (ids of a split
blob and of its base in one table), ``K[tid]`` its kind, and names are decoded
from the string section only when printed.  Sizes and alignments are
memoised per id.

Record layout (``o = R[tid]``): ``W[o]`` name offset, ``W[o + 1]`` info (kind in
bits 24..28, kind_flag in bit 31, vlen in bits 0..15), ``W[o + 2]`` size or
type, then the kind's extra words (see the kernel's ``btf.h``).
"""
from __future__ import annotations

from array import array

from .errors import BTFError
from .kinds import Kind

# Kind numbers as plain ints: comparisons in the hot loops stay int comparisons.
(VOID, INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC,
 FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(20)

KIND_NAMES = tuple(k.name for k in Kind)
# What resolve() skips: typedefs and qualifiers.
IS_MODIFIER = bytes(1 if k in (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG) else 0 for k in range(32))
POINTER_SIZE = 8


class View:
    """Flat tables over one BTF blob and its bases (see the module docstring)."""

    def __init__(self, btf):
        chain = []
        b = btf
        while b is not None:
            chain.append(b)
            b = b.base
        chain.reverse()
        if len(chain) == 1:
            self.W = btf._words
            self.R = btf._R  # R[0]: void, never read
            self.S, self.sb, self.send = btf.data, btf._s0, btf._s0 + btf._slen
        else:  # split: one id space and one string table, base first
            W, R, S = array("I"), array("I", [0]), bytearray()
            for b in chain:
                shift = len(W)
                W.frombytes(b._words.tobytes())
                R.extend([o + shift for o in b._offsets])
                S += b.strings
            self.W, self.R, self.S, self.sb, self.send = W, R, bytes(S), 0, len(S)
        self.count = btf.count
        # The rest is made on first use: describing one type must not pay for a whole dump.
        self._text: str | bool | None = False  # False: not decoded yet
        self._K: bytes | None = None
        self._sizes: array | None = None
        self._aligns: bytearray | None = None

    @property
    def text(self) -> str | None:
        """The string section as one str when it is all ASCII (vmlinux's is): a name is then a
        slice of it. None otherwise (names are decoded one by one)."""
        if self._text is False:
            try:
                self._text = str(memoryview(self.S)[self.sb:self.send], "ascii")
            except UnicodeDecodeError:
                self._text = None
        return self._text  # type: ignore[return-value]

    @property
    def K(self) -> bytes:
        """Kind of every id (0 for void), computed on first use."""
        if self._K is None:
            W = self.W
            k = bytearray([(W[o + 1] >> 24) & 0x1F for o in self.R])
            k[0] = VOID
            self._K = bytes(k)
        return self._K

    def kinds(self):
        """What a writer indexes kinds with: the table if it is made, else one record at a time."""
        return self._K if self._K is not None else _KindsOnDemand(self.W, self.R)

    @property
    def sizes(self) -> array:
        """Memoised size_of by id: -2 not known yet (-1: no size)."""
        if self._sizes is None:
            self._sizes = array("q", [-2]) * self.count
        return self._sizes

    @property
    def aligns(self) -> bytearray:
        """Memoised align_of by id: 0 not known yet."""
        if self._aligns is None:
            self._aligns = bytearray(self.count)
        return self._aligns

    # -- strings ----------------------------------------------------------------------
    def string(self, off: int) -> str:
        text = self._text
        if text:
            end = text.find("\0", off)
            if end < 0:
                raise BTFError(f"string offset {off} out of range")
            return text[off:end]
        start = self.sb + off
        end = self.S.find(b"\0", start, self.send)
        if end < 0:
            raise BTFError(f"string offset {off} out of range")
        return self.S[start:end].decode("utf-8", "replace")

    def name(self, tid: int) -> str:
        off = self.W[self.R[tid]] if tid else 0
        return self.string(off) if off else ""

    # -- type arithmetic (as BTF.resolve / size_of / align_of) -------------------------
    def resolve(self, tid: int) -> int:
        K, W, R = self.kinds(), self.W, self.R
        seen = 0
        while IS_MODIFIER[K[tid]]:
            tid = W[R[tid] + 2]
            seen += 1
            if seen > 64:
                raise BTFError("typedef loop")
        return tid

    def size_of(self, tid: int) -> int:
        """Byte size, or -1 for a type without one (a function, a forward declaration...)."""
        size = self.sizes[tid]
        if size == -2:
            r = self.resolve(tid)
            o = self.R[r]
            k = (self.W[o + 1] >> 24) & 0x1F if r else VOID
            if k in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
                size = self.W[o + 2]
            elif k == PTR:
                size = POINTER_SIZE
            elif k == ARRAY:
                elem = self.size_of(self.W[o + 3])
                size = -1 if elem < 0 else self.W[o + 5] * elem
            elif k == VAR:
                size = self.size_of(self.W[o + 2])
            else:
                size = -1
            self.sizes[tid] = size
        return size

    def align_of(self, tid: int) -> int:
        """Natural alignment as the C compiler (and libbpf's btf__align_of) sees it."""
        a = self.aligns[tid]
        if not a:
            r = self.resolve(tid)
            W, o = self.W, self.R[r]
            k = (W[o + 1] >> 24) & 0x1F if r else VOID
            if k in (INT, ENUM, ENUM64, FLOAT):
                a = min(POINTER_SIZE, W[o + 2]) or 1
            elif k == PTR:
                a = POINTER_SIZE
            elif k == ARRAY:
                a = self.align_of(W[o + 3])
            elif k == STRUCT or k == UNION:
                a = self._struct_align(W, o)
            else:
                a = 1
            self.aligns[tid] = a
        return a

    def _struct_align(self, W, o: int) -> int:
        kflag = W[o + 1] >> 31
        best = 1
        align_of, known = self.align_of, self.aligns
        members = W[o + 3:o + 3 + 3 * (W[o + 1] & 0xFFFF)]
        for t, off in zip(members[1::3], members[2::3]):
            a = known[t] or align_of(t)
            if kflag:
                if not off >> 24 and (off & 0xFFFFFF) % (8 * a):
                    return 1  # a misaligned member: the struct is packed
            elif off % (8 * a):
                return 1
            if a > best:
                best = a
        return 1 if W[o + 2] % best else best


class _KindsOnDemand:
    """``K[tid]`` read from the record each time, for writers that look at a few types."""

    __slots__ = ("R", "W")

    def __init__(self, W, R):
        self.W, self.R = W, R

    def __getitem__(self, tid: int) -> int:
        return (self.W[self.R[tid] + 1] >> 24) & 0x1F if tid else VOID


def view(btf) -> View:
    """The (cached) view of ``btf``."""
    v = btf._view
    if v is None:
        v = btf._view = View(btf)
    return v
