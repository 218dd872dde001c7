"""bpftrace 0.17's integer promotion: the one table semantic analysis and codegen both read.

Observed with bpftrace 0.17 (``tests/differential/test_int_promotion_vs_bpftrace.py`` runs
every operator with every mix of signed, unsigned, narrow and literal operands):

- a binary operator's result is a 64-bit integer, signed only when both operands are
  signed. That holds for comparisons, ``&&`` and ``||`` as well (``nsecs > 0`` is
  unsigned), and a comparison compares signed only when its result is signed
  (``$n >= !0`` with ``$n = -5`` is true). An operand no pass has typed yet (a map read
  before any write) is not signed, so ``@a = @a - 5`` makes ``@a`` a uint64;
- ``<<`` and ``>>`` take the left operand's sign (and ``>>`` shifts in zeros even then);
- ``/`` and ``%`` divide unsigned, whatever the result's sign (BPF has no signed division);
- ``!x`` is unsigned, of ``x``'s width; ``-x`` and ``~x`` are 64-bit with ``x``'s sign,
  computed at ``x``'s width, so on an unsigned narrow ``x`` the value stays within that
  width (``~(uint16)0`` is 65535).

Pointers (``POINTER``): ``p + n``, ``n + p`` and ``p - n`` are pointers of ``p``'s type that
move by ``n`` elements (``n`` times the size of what ``p`` points to, ``n`` zero-extended from
its width: ``p - (int8)-1`` moves back 255 elements in 0.17); so do ``p++``, ``p--``, ``p += n``
and ``p -= n``. Pointers compare with pointers (warning when they point to different types)
and with integers, unsigned. Any other operator on a pointer is an error, unary ones too.
"""
from __future__ import annotations

# operator -> whose sign the result takes: "both" (signed only if both operands are) or "left"
BINARY: dict[str, str] = {
    **dict.fromkeys(("+", "-", "*", "/", "%", "&", "|", "^", "==", "!=", "<", ">", "<=", ">=", "&&", "||"),
                    "both"),
    "<<": "left",
    ">>": "left",
}
# operators whose machine operation ignores the operands' signs
UNSIGNED_OPERATION = frozenset(("/", "%", ">>"))

# operator -> (result width: "operand" or 64, result sign: "operand" or "unsigned")
UNARY: dict[str, tuple[str | int, str]] = {
    "!": ("operand", "unsigned"),
    "-": (64, "operand"),
    "~": (64, "operand"),
}


def binary_signed(op: str, left_signed: bool, right_signed: bool) -> bool:
    """Whether ``left op right`` is signed: its result type, and for a comparison the compare.
    (A compound assignment ``a op= b`` is ``a = a op b``.)"""
    rule = BINARY[op]
    return left_signed if rule == "left" else left_signed and right_signed


def unary_type(op: str, bits: int, signed: bool) -> tuple[int, bool]:
    """(width in bits, signed) of ``op x`` for an integer ``x`` of ``bits`` and ``signed``."""
    width, sign = UNARY[op]
    return (bits if width == "operand" else width), (signed if sign == "operand" else False)


def unary_mask(op: str, bits: int, signed: bool) -> int | None:
    """The mask ``op x`` (``-`` or ``~``) is cut to: computed at an unsigned narrow ``x``'s width."""
    if op in ("-", "~") and not signed and bits < 64:
        return (1 << bits) - 1
    return None


# operator -> what it does with a pointer operand: "arith" (p + n, n + p), "left_arith"
# (p - n only), "compare" (an unsigned 0 or 1); an operator not here refuses pointers
POINTER: dict[str, str] = {
    "+": "arith",
    "-": "left_arith",
    **dict.fromkeys(("==", "!=", "<", ">", "<=", ">="), "compare"),
}


def pointer_binary(op: str, left_pointer: bool, right_pointer: bool) -> str | None:
    """For ``left op right`` with a pointer operand (the other a pointer or an integer):
    "left" or "right" (pointer arithmetic; the result is that operand's pointer type),
    "compare", or None when bpftrace refuses it."""
    rule = POINTER.get(op)
    if rule == "compare":
        return "compare"
    if left_pointer and right_pointer:
        return None
    if rule == "arith" or (rule == "left_arith" and left_pointer):
        return "left" if left_pointer else "right"
    return None


def pointee_size(size: int) -> int:
    """How far ``p + 1`` moves: the size of what ``p`` points to (``void *``: one byte)."""
    return size or 1
