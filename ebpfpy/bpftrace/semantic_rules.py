"""Semantic analysis's rule tables: which probe kinds each builtin allows, operator classes,
and bpftrace's wording for arity and kind errors (functions.py holds each function's own facts)."""
from __future__ import annotations

import re
from collections.abc import Callable, Collection

from . import ast
from .functions import FUNCTIONS
from .types import DATA_LOC, Field, Type

# Which probe kinds a builtin may appear in, and the message otherwise.
# rawtracepoint (0.26): argN is the tracepoint's N-th argument, a u64 of the raw context
ARG_KINDS = frozenset(("kprobe", "uprobe", "usdt", "rawtracepoint"))
SARG_KINDS = frozenset(("kprobe", "uprobe"))
RETVAL_KINDS = frozenset(("kretprobe", "uretprobe", "kfunc", "kretfunc"))
ARGS_KINDS = frozenset(("tracepoint", "kfunc", "kretfunc", "uprobe", "uretprobe", "iter", "rawtracepoint"))
AVAILABLE_FILTER_FUNCTIONS = "/sys/kernel/tracing/available_filter_functions"
KFUNC_KINDS = frozenset(("kfunc", "kretfunc"))
FUNC_KINDS = frozenset(("kprobe", "kretprobe", "uprobe", "uretprobe", "usdt", "kfunc", "kretfunc"))
REG_KINDS = frozenset(("kprobe", "kretprobe", "uprobe", "uretprobe", "usdt", "profile",
                       "kfunc", "kretfunc", "tracepoint", "software", "hardware", "watchpoint",
                       "asyncwatchpoint", "interval"))

DEBUGF_MAX_ARGS = 3  # bpf_trace_printk's r3..r5
# A string literal longer than this (NUL included) is an error in 0.17, whatever BPFTRACE_STRLEN,
# except printf's format and cgroupid()'s path, which never reach the BPF program.
STRING_LITERAL_MAX = 64
ARITHMETIC = frozenset(("+", "-", "*", "/", "%"))
COMPARISON = frozenset(("==", "!=", "<", ">", "<=", ">="))


_C_LONG = re.compile(r"[ \t\n\r\f\v]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def param_number(raw: str) -> int | None:
    """A positional parameter's value as a number, as bpftrace 0.17 reads it (C's ``stoll``
    in any base, all of the text): ``" 5"``, ``"+5"``, ``"0x10"`` (16), ``"010"`` (8, octal);
    not ``"08"``, ``"1e3"``, ``"5 "`` nor anything outside int64 (None: not a number)."""
    m = _C_LONG.fullmatch(raw)
    if not m:
        return None
    digits = m.group(2)
    base = 16 if digits[1:2] in ("x", "X") else 8 if digits[0] == "0" and len(digits) > 1 else 10
    value = int(digits, base) * (-1 if m.group(1) == "-" else 1)
    return value if -(1 << 63) <= value < (1 << 63) else None


def unroll_count(raw: str) -> int | None:
    """``unroll($N)``'s count from the parameter's text: a number (``param_number``) read in
    base 10 as far as it goes, as bpftrace 0.17 does (``"010"`` is 10, ``"0x3"`` is 0)."""
    if param_number(raw) is None:
        return None
    return int(re.match(r"\s*([+-]?[0-9]+)", raw).group(1))


def _count(n: int) -> str:
    return "one argument" if n == 1 else f"{n} arguments"


def arity_message(name: str, lo: int, hi: int | None, n: int) -> str:
    if FUNCTIONS[name].varargs:
        if n < lo:
            return f"{name}() requires at least {_count(lo)} ({n} provided)"
        return f"{name}() takes up to {_count(hi or 0)} ({n} provided)"
    if lo == hi:
        if lo == 0:
            return f"{name}() requires no arguments ({n} provided)"
        if lo == 1:
            return f"{name}() requires one argument ({n} provided)"
        return f"{name}() requires {lo} arguments ({n} provided)"
    if n < lo:
        what = "one argument" if lo == 1 else f"{lo} arguments"
        return f"{name}() requires at least {what} ({n} provided)"
    return f"{name}() takes up to {hi} arguments ({n} provided)"


def kind_word(t: Type) -> str:
    """How bpftrace names a type's kind in '(X provided)' messages.

    Anything printed as text (stacks, symbols, ...) counts as a string.
    """
    if t.is_aggregate:
        return t.kind
    return {"int": "integer", "pointer": "integer", "none": "none", "tuple": "tuple",
            "buffer": "buffer", "array": "array", "record": "record"}.get(t.kind, "string")


def read_traceable(traceable: Callable[[], Collection[str]]) -> Collection[str]:
    # bpftrace treats an unreadable list (no ftrace, no tracefs) as an empty one.
    try:
        return traceable()
    except OSError:
        return frozenset()

# _Scope.func_args before the probe's kfunc arguments are looked up.
UNRESOLVED: list[Field] = []


def is_data_loc_field(node: ast.Expr) -> bool:
    """``args->name`` where name is a tracepoint's ``__data_loc char[]`` field (after analysis)."""
    typ = getattr(node, "type", None)
    return (isinstance(node, ast.FieldAccess) and isinstance(node.expr, ast.Builtin)
            and node.expr.name == "args" and typ is not None and typ.name == DATA_LOC)
