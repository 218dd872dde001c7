"""The one table of bpftrace's functions and builtins: every fact about each, in one row.

The lexer knows a word is a function or a builtin from here; semantic analysis
takes arity, the value-or-void rule, the unsafe rule, each row's own check and
its type from here; codegen finds each row's emitter here; listings and the
docs can walk it. Adding a function is one row, its check and emitter methods
(named by the row), and its tests (``tests/unit/test_bpftrace_functions.py``
walks the table and fails on a row without them).

Methods are named, not referenced, so this module imports neither pass: the
semantic ``Checker`` has ``check`` methods, the emitter ``ProbeCodegen`` has
``emit`` methods, and a test checks that every named method exists.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .shapes import UINT, Shape
from .types import UINT32, UINT64, Type, named, pointer_to, record, string_type


@dataclass(frozen=True)
class Function:
    """A function call ``name(args...)``."""

    name: str
    min_args: int = 0
    max_args: int | None = 0  # None: no upper bound
    # arity errors worded as a range ("requires at least", "takes up to") even when fixed
    varargs: bool = False
    void: bool = False  # returns nothing: not allowed in an assignment or as a map key
    unsafe: bool = False  # needs --unsafe
    family: str = ""  # "aggregate" (only as `@m = f(...)`), "map" (takes a map), "format" (printf-like)
    check: str = ""  # semantic.Checker method that types it ("" when arity is all there is to check)
    # ProbeCodegen method that emits it; "" for aggregates, which the map assignment emits
    emit: str = ""
    target: bool = False  # its code depends on the concrete probe target (see emit/targets.py)
    unsupported: str = ""  # why pybpftrace cannot compile it yet (it still passes analysis)
    # today's language (compat.is_modern), where it differs from 0.17's: (min, max) arguments,
    # whether a void 0.17 function returns a value, whether only today's language has it
    modern_args: tuple[int, int | None] | None = None
    modern_value: bool = False
    modern_only: bool = False


@dataclass(frozen=True)
class Builtin:
    """A builtin variable (``pid``, ``comm``, ``arg0``...)."""

    name: str
    type: Type  # its type where it does not depend on the probe (semantic refines retval, func, args)
    # simple builtins: one helper call, then ALU operations on r0, giving a value of ``shape``
    helper: str = ""
    post: tuple[tuple[str, int], ...] = ()
    shape: Shape = UINT
    emit: str = ""  # ProbeCodegen method for builtins with code of their own
    target: bool = False  # its code depends on the concrete probe target
    pattern: str = ""  # a family of names (arg0, arg1, ...): the regex, with the index as group 1


_SAFE_LOW31 = 0x7FFFFFFF  # bpftrace keeps 31 bits of tid and uid

BUILTINS: tuple[Builtin, ...] = (
    Builtin("pid", UINT64, helper="get_current_pid_tgid", post=(("rsh", 32),)),
    Builtin("tid", UINT64, helper="get_current_pid_tgid", post=(("and", _SAFE_LOW31),)),
    Builtin("uid", UINT64, helper="get_current_uid_gid", post=(("and", _SAFE_LOW31),)),
    Builtin("gid", UINT64, helper="get_current_uid_gid", post=(("rsh", 32),)),
    Builtin("username", named("username", 8), helper="get_current_uid_gid", post=(("and", _SAFE_LOW31),),
            shape=Shape("username", 8, False)),
    Builtin("nsecs", UINT64, helper="ktime_get_ns"),
    Builtin("cpu", UINT64, helper="get_smp_processor_id"),
    Builtin("numaid", UINT32, helper="get_numa_node_id"),
    Builtin("rand", UINT32, helper="get_prandom_u32"),
    Builtin("cgroup", UINT64, helper="get_current_cgroup_id"),
    Builtin("elapsed", UINT64, emit="builtin_elapsed"),
    Builtin("curtask", pointer_to(record("struct task_struct")), emit="builtin_curtask"),
    Builtin("ctx", pointer_to(record("ctx")), emit="builtin_ctx"),
    Builtin("cpid", UINT64, emit="builtin_cpid"),
    Builtin("comm", string_type(16), emit="builtin_comm"),
    Builtin("probe", named("probe"), emit="builtin_probe"),
    Builtin("retval", UINT64, emit="builtin_retval", target=True),
    Builtin("func", named("ksym"), emit="builtin_func", target=True),
    Builtin("args", UINT64, emit="builtin_args", target=True),
    Builtin("kstack", named("kstack"), emit="builtin_kstack"),
    Builtin("ustack", named("ustack"), emit="builtin_ustack"),
    Builtin("arg", UINT64, emit="builtin_arg", target=True, pattern=r"arg([0-9]+)"),
    Builtin("sarg", UINT64, emit="builtin_sarg", target=True, pattern=r"sarg([0-9]+)"),
)


def _fn(name: str, lo: int = 0, hi: int | None = 0, **facts) -> Function:
    return Function(name, lo, hi, **facts)


FUNCTIONS_TABLE: tuple[Function, ...] = (
    # output and control
    _fn("printf", 1, None, varargs=True, void=True, family="format", check="c_printf", emit="call_printf"),
    _fn("system", 1, None, varargs=True, void=True, unsafe=True, family="format", check="c_system",
        emit="call_system"),
    _fn("cat", 1, None, varargs=True, void=True, family="format", check="c_cat", emit="call_cat"),
    _fn("debugf", 1, None, varargs=True, void=True, family="format", check="c_debugf", emit="call_debugf"),
    _fn("print", 1, 3, varargs=True, void=True, check="c_print", emit="call_print"),
    _fn("time", 0, 1, varargs=True, void=True, check="c_time", emit="call_time"),
    _fn("exit", void=True, check="c_exit", emit="call_exit", modern_args=(0, 1)),  # exit(code): 0.21+
    _fn("join", 1, 2, varargs=True, void=True, check="c_join", emit="call_join"),
    # strings, buffers and addresses
    _fn("str", 1, 2, varargs=True, check="c_str", emit="call_str"),
    _fn("buf", 1, 2, varargs=True, check="c_buf", emit="call_buf"),
    _fn("path", 1, 1, check="c_path", emit="call_path"),
    _fn("strncmp", 3, 3, check="c_strncmp", emit="call_strncmp"),
    _fn("strcontains", 2, 2, check="c_strcontains", emit="call_strcontains"),
    _fn("strftime", 2, 2, varargs=True, check="c_strftime", emit="call_strftime"),
    _fn("strerror", 1, 1, check="c_strerror", emit="call_strerror"),
    _fn("ntop", 1, 2, varargs=True, check="c_ntop", emit="call_ntop"),
    _fn("pton", 1, 1, check="c_pton", emit="call_pton"),
    _fn("macaddr", 1, 1, check="c_macaddr", emit="call_macaddr"),
    # symbols, registers, stacks
    _fn("ksym", 1, 1, check="c_ksym", emit="call_ksym"),
    _fn("usym", 1, 1, check="c_usym", emit="call_usym"),
    _fn("kaddr", 1, 1, check="c_kaddr", emit="call_kaddr"),
    _fn("uaddr", 1, 1, check="c_uaddr", emit="call_uaddr", target=True),
    _fn("reg", 1, 1, check="c_reg", emit="call_reg"),
    _fn("kstack", 0, 2, varargs=True, check="c_kstack", emit="call_kstack"),
    _fn("ustack", 0, 2, varargs=True, check="c_ustack", emit="call_ustack"),
    _fn("kptr", 1, 1, check="c_kptr", emit="call_kptr"),
    _fn("uptr", 1, 1, check="c_uptr", emit="call_uptr"),
    _fn("bswap", 1, 1, check="c_bswap", emit="call_bswap"),
    _fn("cgroupid", 1, 1, check="c_cgroupid", emit="call_cgroupid"),
    _fn("cgroup_path", 1, 2, varargs=True, check="c_cgroup_path", emit="call_cgroup_path"),
    # acting on the traced system
    _fn("signal", 1, 1, void=True, unsafe=True, check="c_signal", emit="call_signal"),
    _fn("override", 1, 1, void=True, unsafe=True, check="c_override", emit="call_override"),
    # maps
    _fn("delete", 1, 1, void=True, family="map", emit="call_delete", modern_value=True),  # bool: 0.24+
    _fn("clear", 1, 1, void=True, family="map", emit="call_clear"),
    _fn("zero", 1, 1, void=True, family="map", emit="call_zero"),
    # today's language only (the parser refuses it in 0.17 mode, and lowers has_key(@m, k) to
    # has_key(@m[k])): whether the map holds the key
    _fn("has_key", 1, 2, varargs=True, check="c_has_key", emit="call_has_key", modern_only=True),
    _fn("len", 1, 1, check="c_len", emit="call_len", modern_only=True),  # entries of a map
    # find(@m, key, $v) (0.25): the parser makes it find(@m[key], key, $v); $v takes the value when found
    _fn("find", 3, 3, check="c_find", emit="call_find", modern_only=True),
    _fn("errorf", 1, None, varargs=True, void=True, family="format", check="c_printf", emit="call_errorf",
        modern_only=True),
    _fn("warnf", 1, None, varargs=True, void=True, family="format", check="c_printf", emit="call_warnf",
        modern_only=True),
    _fn("syscall_name", 1, 1, check="c_syscall_name", emit="call_syscall_name", modern_only=True),
    _fn("signal_name", 1, 1, check="c_signal_name", emit="call_signal_name", modern_only=True),
    # a named program option (``-- --name=value``), a constant once the command line is read
    _fn("getopt", 1, 3, varargs=True, check="c_getopt", emit="call_getopt", modern_only=True),
    # aggregations (aggregations.py has their value layouts)
    _fn("count", family="aggregate"),
    _fn("sum", 1, 1, family="aggregate"),
    _fn("min", 1, 1, family="aggregate"),
    _fn("max", 1, 1, family="aggregate"),
    _fn("avg", 1, 1, family="aggregate"),
    _fn("stats", 1, 1, family="aggregate"),
    _fn("hist", 1, 1, family="aggregate"),
    _fn("lhist", 4, 4, family="aggregate"),
    # bpftrace 0.17 has these; we do not compile them yet (docs/pybpftrace.md, "Not supported yet")

    _fn("skboutput", 4, 4, unsupported="it needs a pcap writer for skb data"),
    _fn("unwatch", 1, 1, void=True, unsupported="watchpoint probes are not supported yet"),
)

FUNCTIONS: dict[str, Function] = {f.name: f for f in FUNCTIONS_TABLE}
BUILTINS_BY_NAME: dict[str, Builtin] = {b.name: b for b in BUILTINS if not b.pattern}
_PATTERNS: tuple[tuple[re.Pattern[str], Builtin], ...] = tuple(
    (re.compile(b.pattern), b) for b in BUILTINS if b.pattern)

# words the lexer treats as calls: every function, and sizeof and offsetof (parsed as their own nodes)
CALL_NAMES: frozenset[str] = frozenset(FUNCTIONS) | {"sizeof", "offsetof"}
# functions (and offsetof) only today's language has: unknown words in 0.17 mode
MODERN_ONLY: frozenset[str] = frozenset(f.name for f in FUNCTIONS_TABLE if f.modern_only) | {"offsetof"}
# builtins that can also be called (kstack, ustack(perf, 3))
CALLABLE_BUILTINS: frozenset[str] = frozenset(BUILTINS_BY_NAME) & frozenset(FUNCTIONS)
BUILTIN_NAMES: frozenset[str] = frozenset(BUILTINS_BY_NAME) - CALLABLE_BUILTINS
AGGREGATE_NAMES: frozenset[str] = frozenset(f.name for f in FUNCTIONS_TABLE if f.family == "aggregate")


def builtin(name: str) -> tuple[Builtin, int | None] | None:
    """The row for a builtin's name, and the index for a family (``arg3`` -> (arg row, 3))."""
    row = BUILTINS_BY_NAME.get(name)
    if row is not None:
        return row, None
    for pattern, row in _PATTERNS:
        m = pattern.fullmatch(name)
        if m:
            return row, int(m.group(1))
    return None


def is_builtin_word(word: str) -> bool:
    """Whether the lexer should read ``word`` as a builtin variable (not one that can be called)."""
    return word in BUILTIN_NAMES or any(p.fullmatch(word) for p, _ in _PATTERNS)
