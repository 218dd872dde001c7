"""Semantic analysis: give every expression a type and check the program.

One walk per probe annotates each ``ast.Expr`` with a ``types.Type`` (via
``ast.set_type``) and collects errors in bpftrace 0.17's wording.  Maps can be
read in one probe before the probe that assigns them, so, like bpftrace, the
walk repeats silently until the map table stops changing, then runs once more
reporting errors.

Output: ``Analysis`` with the annotated program and the map table (name, key
types, value type, kind) that codegen allocates maps from.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Collection

from . import ast
from .diagnostics import Diagnostic, Message, Reporter, Span
from .output.printf import check_arguments, find_specifiers
from .types import (
    DATA_LOC,
    DEFAULT_STRLEN,
    INT64,
    INT_TYPE_NAMES,
    NONE,
    RETVAL_FIELD,
    UINT32,
    UINT64,
    Field,
    LayeredResolver,
    TracepointFormats,
    Type,
    TypeResolver,
    array_of,
    buffer_type,
    compatible,
    int_type,
    named,
    parse_c_structs,
    pointer_to,
    record,
    string_type,
    tuple_type,
)


@dataclass
class Env:
    """What the analysis may know about the world; all optional for tests."""

    resolver: TypeResolver | None = None        # BTF or a table
    tracepoints: TracepointFormats | None = None  # tracefs formats or a table
    unsafe: bool = False                          # --unsafe
    has_child: bool = False                       # -c CMD given
    strlen: int = DEFAULT_STRLEN                  # BPFTRACE_STRLEN
    params: tuple[str, ...] = ()                  # positional parameters
    # uprobe/usdt target -> the executable paths it names (raise or return []
    # when none); ``system_binaries`` asks the file system.  None: not checked.
    binaries: Callable[[str], list[str]] | None = None
    # The kernel functions kprobes may attach to; ``system_traceable`` reads
    # tracefs.  None: not checked.
    traceable: Callable[[], Collection[str]] | None = None
    # A kfunc wildcard -> the kernel functions it attaches to (``system_kfuncs``
    # keeps those tracefs lists).  None: every BTF function the pattern matches.
    kfuncs: Callable[[str], list[str]] | None = None
    # Whether the kernel offers BPF_FUNC_d_path (tracing programs: fentry), for path().
    # None: not checked.
    has_d_path: Callable[[], bool] | None = None


@dataclass(frozen=True)
class MapInfo:
    name: str
    keys: tuple[Type, ...]   # () for a map used without [...]
    value: Type
    kind: str                # "count", "hist", ... or "value" for plain stores


@dataclass
class Analysis:
    """The result: ``env`` is the one used, with script-defined structs layered
    over BTF; pass it to ``sizeof_value``/``enum_value`` and read field layouts
    from ``env.resolver``."""

    program: ast.Program
    maps: dict[str, MapInfo]
    warnings: list[Message] = field(default_factory=list)
    env: Env = field(default_factory=lambda: Env())


# -- tables -------------------------------------------------------------------

# Builtin variables: their type (a function of the probe kind where it varies).
BUILTIN_TYPES: dict[str, Type] = {
    "pid": UINT64, "tid": UINT64, "uid": UINT64, "gid": UINT64, "nsecs": UINT64,
    "elapsed": UINT64, "numaid": UINT32, "cpu": UINT64, "rand": UINT32, "cgroup": UINT64,
    "cpid": UINT64, "comm": string_type(16), "username": named("username", 8),
    "kstack": named("kstack"), "ustack": named("ustack"), "probe": named("probe"),
    "curtask": pointer_to(record("struct task_struct")), "ctx": pointer_to(record("ctx")),
    "retval": UINT64, "func": named("ksym"),
}

# Which probe kinds a builtin may appear in, and the message otherwise.
ARG_KINDS = frozenset(("kprobe", "uprobe", "usdt"))
SARG_KINDS = frozenset(("kprobe", "uprobe"))
RETVAL_KINDS = frozenset(("kretprobe", "uretprobe", "kfunc", "kretfunc"))
ARGS_KINDS = frozenset(("tracepoint", "kfunc", "kretfunc", "uprobe", "uretprobe", "iter"))
AVAILABLE_FILTER_FUNCTIONS = "/sys/kernel/tracing/available_filter_functions"
KFUNC_KINDS = frozenset(("kfunc", "kretfunc"))
FUNC_KINDS = frozenset(("kprobe", "kretprobe", "uprobe", "uretprobe", "usdt", "kfunc", "kretfunc"))
REG_KINDS = frozenset(("kprobe", "kretprobe", "uprobe", "uretprobe", "usdt", "profile",
                       "kfunc", "kretfunc", "tracepoint", "software", "hardware", "watchpoint",
                       "asyncwatchpoint", "interval"))

# name -> (min args, max args); None max means unbounded.
CALL_ARITY: dict[str, tuple[int, int | None]] = {
    "printf": (1, None), "system": (1, None), "cat": (1, None), "debugf": (1, None),
    "exit": (0, 0), "signal": (1, 1), "str": (1, 2), "buf": (1, 2), "ksym": (1, 1),
    "usym": (1, 1), "kaddr": (1, 1), "uaddr": (1, 1), "reg": (1, 1), "ntop": (1, 2),
    "pton": (1, 1), "print": (1, 3), "cgroupid": (1, 1), "time": (0, 1), "strftime": (2, 2),
    "strncmp": (3, 3), "strcontains": (2, 2), "override": (1, 1), "macaddr": (1, 1),
    "cgroup_path": (1, 2), "bswap": (1, 1), "skboutput": (4, 4), "path": (1, 1),
    "uptr": (1, 1), "kptr": (1, 1), "strerror": (1, 1), "unwatch": (1, 1), "join": (1, 2),
    "count": (0, 0), "sum": (1, 1), "min": (1, 1), "max": (1, 1), "avg": (1, 1),
    "stats": (1, 1), "hist": (1, 1), "lhist": (4, 4), "delete": (1, 1), "clear": (1, 1),
    "zero": (1, 1), "kstack": (0, 2), "ustack": (0, 2),
}
UNSAFE = frozenset(("system", "signal", "override"))
AGG_FUNCS = frozenset(("count", "sum", "min", "max", "avg", "stats", "hist", "lhist"))
MAP_FUNCS = frozenset(("delete", "clear", "zero"))
FORMAT_FUNCS = frozenset(("printf", "system", "cat", "debugf"))
DEBUGF_MAX_ARGS = 3  # bpf_trace_printk's r3..r5
ARITHMETIC = frozenset(("+", "-", "*", "/", "%"))
COMPARISON = frozenset(("==", "!=", "<", ">", "<=", ">="))

# Functions whose count is checked as a range ("requires at least", "takes up to").
VARARGS = frozenset(("printf", "system", "cat", "debugf", "str", "buf", "print", "strftime",
                     "ntop", "cgroup_path", "join", "kstack", "ustack", "time"))
# Functions that return nothing: not allowed as a value.
VOID_FUNCS = frozenset(("printf", "system", "cat", "debugf", "print", "exit", "time", "join",
                        "clear", "zero", "delete", "signal", "override", "unwatch"))


def _count(n: int) -> str:
    return "one argument" if n == 1 else f"{n} arguments"


def _arity_message(name: str, lo: int, hi: int | None, n: int) -> str:
    if name in VARARGS:
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


# Probe kinds whose first part is a binary -> the word bpftrace's message uses.
BINARY_KINDS = {"uprobe": "uprobe", "uretprobe": "uprobe", "usdt": "usdt"}


def system_binaries(target: str) -> list[str]:
    """The files a uprobe target names on this system (the attach layer's rules)."""
    from ebpfpy.attach.binary import resolve_binaries

    return resolve_binaries(target)


def _any_executable(binaries: Callable[[str], list[str]], target: str) -> bool:
    try:
        paths = binaries(target)
    except Exception:  # the attach layer's "not found" errors: the message is ours to word
        return False
    return any(os.path.isfile(p) and os.access(p, os.X_OK) and _is_elf(p) for p in paths)


def system_traceable() -> frozenset[str]:
    """tracefs available_filter_functions (the attach layer reads it)."""
    from ebpfpy.attach.kprobe import traceable_functions

    return frozenset(traceable_functions())


def system_kfuncs(pattern: str) -> list[str]:
    """The functions a kfunc wildcard attaches to (the attach layer's rules)."""
    from ebpfpy.attach.fentry import match_functions

    return match_functions(pattern)


def _read_traceable(traceable: Callable[[], Collection[str]]) -> Collection[str]:
    # bpftrace treats an unreadable list (no ftrace, no tracefs) as an empty one.
    try:
        return traceable()
    except OSError:
        return frozenset()


def _is_elf(path: str) -> bool:
    """bpftrace accepts only ELF files as targets (an executable script is not one)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


# -- the checker ----------------------------------------------------------------

# _Scope.func_args before the probe's kfunc arguments are looked up.
_UNRESOLVED: list[Field] = []


class _Scope:
    def __init__(self, kinds: frozenset[str], spec_parts: list[tuple[str, ...]],
                 attach_points: tuple[ast.AttachPoint, ...] = ()):
        self.kinds = kinds
        self.parts = spec_parts
        self.attach_points = attach_points
        self.vars: dict[str, Type] = {}
        self.loops = 0
        # kfunc/kretfunc: the parameters (and $retval) from BTF; None when unknown
        # (no BTF) or failed (reported); resolved on first use of args/retval.
        self.func_args: list[Field] | None = _UNRESOLVED
        self.func_args_failed = False
        # bpftrace names a kfunc probe's args record after the probe
        self.args_name = "struct " + ",".join(
            f"{ap.kind}:{ap.parts[-1] if ap.parts else ''}" for ap in attach_points) + "_args"


class Checker:
    def __init__(self, env: Env, maps: dict[str, MapInfo], report: Reporter):
        self.env = env
        self.maps = maps
        self.r = report
        self.scope: _Scope = _Scope(frozenset(), [])
        self._traceable: Collection[str] | None = None

    # -- helpers -----------------------------------------------------------
    def error(self, text: str, span: Span) -> Type:
        self.r.error(text, span)
        return NONE

    def probe_kind_name(self) -> str:
        kinds = sorted(self.scope.kinds)
        if not kinds:
            return "special"
        k = kinds[0]
        return "special" if k in ("BEGIN", "END") else k

    def _set_map(self, node: ast.Map, keys: tuple[Type, ...], value: Type, kind: str) -> None:
        if node.name not in self.maps:
            self.maps[node.name] = MapInfo(node.name, keys, value, kind)

    # -- program -------------------------------------------------------------
    def program(self, program: ast.Program) -> None:
        # bpftrace resolves attach points before it type-checks the bodies
        # (whose errors it still reports, so we go on too).
        self.attach_targets(program)
        for probe in program.probes:
            kinds = frozenset(ap.kind for ap in probe.attach_points if ap.kind)
            self.scope = _Scope(kinds, [ap.parts for ap in probe.attach_points], probe.attach_points)
            if probe.pred is not None:
                t = self.expr(probe.pred)
                if t.kind not in ("int", "pointer", "none"):
                    self.error(f"Invalid type for predicate: {kind_word(t)}", probe.pred_span)
            self.stmts(probe.body)

    def attach_targets(self, program: ast.Program) -> None:
        """Report uprobe/usdt targets that name no executable ELF file, and
        warn (as bpftrace does) about kprobes on functions tracefs does not list."""
        for probe in program.probes:
            for ap in probe.attach_points:
                if ap.kind in ("kprobe", "kretprobe") and self.env.traceable is not None:
                    self.kprobe_target(ap)
                if self.env.binaries is None:
                    continue
                if ap.kind not in BINARY_KINDS or not ap.parts or not ap.parts[0]:
                    continue
                if not _any_executable(self.env.binaries, ap.parts[0]):
                    self.error(f"{BINARY_KINDS[ap.kind]} target file '{ap.parts[0]}' does not exist "
                               "or is not executable", ap.span)

    def kprobe_target(self, ap: ast.AttachPoint) -> None:
        func = ap.parts[-1] if ap.parts else ""
        if not func or func[0].isdigit() or "+" in func or any(c in func for c in "*?["):
            return
        if self._traceable is None:
            self._traceable = _read_traceable(self.env.traceable)
        if func not in self._traceable:
            self.r.warning(f'{func} is not traceable (either non-existing, inlined, or marked as "notrace"); '
                           "attaching to it will likely fail", ap.span)

    def stmts(self, stmts: tuple[ast.Stmt, ...]) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, node: ast.Stmt) -> None:
        if isinstance(node, ast.ExprStmt):
            self.expr(node.expr, statement=True)
        elif isinstance(node, ast.Assign):
            self.assign(node)
        elif isinstance(node, ast.If):
            cond = self.expr(node.cond)
            if cond.kind not in ("int", "pointer", "none"):
                self.error(f"Invalid condition in if(): {cond.kind}", Span(1, 1, 1))
            self.stmts(node.then)
            if node.orelse is not None:
                self.stmts(node.orelse)
        elif isinstance(node, ast.While):
            self.expr(node.cond)
            self.scope.loops += 1
            self.stmts(node.body)
            self.scope.loops -= 1
        elif isinstance(node, ast.Unroll):
            self.unroll(node)
        elif isinstance(node, ast.Jump) and node.kind != "return" and self.scope.loops == 0:
            self.error(f"{node.kind} used outside of a loop", node.span)

    def param_value(self, index: int) -> int:
        """A positional parameter as a number (unset or non-numeric: 0)."""
        params = self.env.params
        raw = params[index - 1] if index <= len(params) else "0"
        return int(raw, 0) if re.fullmatch(r"-?(0x[0-9a-fA-F]+|[0-9]+)", raw) else 0

    def unroll(self, node: ast.Unroll) -> None:
        count = node.count
        self.expr(count)
        n = None
        if isinstance(count, ast.Integer):
            n = count.value
        elif isinstance(count, ast.PositionalParam):
            n = self.param_value(count.index)
        elif isinstance(count, ast.ParamCount):
            n = len(self.env.params)
        if n is not None and n > 100:
            self.error("unroll maximum value is 100", node.span)
        elif n is not None and n < 1:
            self.error("unroll minimum value is 1", node.span)
        self.stmts(node.body)  # not a loop for break/continue

    def assign(self, node: ast.Assign) -> None:
        target, rhs = node.target, node.expr
        if node.op:
            # bpftrace rewrites "a op= b" as "a = a op b", spanning the statement
            value = self.binop_types(node.op, self.read_target(target), self.expr(rhs),
                                     target.span.to(rhs.span), node.span, target, rhs)
        else:
            value = self.expr(rhs, assigned="map" if isinstance(target, ast.Map) else "var")
        if value.kind == "none":
            self.assign_none(target, rhs)
            return
        if isinstance(target, ast.Variable):
            self.assign_var(target, value, node.span)
        else:
            self.assign_map(target, value, node.span)

    def assign_none(self, target: ast.Expr, rhs: ast.Expr) -> None:
        """The fallout bpftrace reports after an error left the value untyped."""
        if isinstance(target, ast.Variable):  # declared, so later uses stay quiet
            self.scope.vars.setdefault(target.name, NONE)
        if isinstance(rhs, ast.Call):
            return
        if isinstance(target, ast.Map) and target.name in self.maps:
            self.error(f"Type mismatch for {target.name}: trying to assign value of type "
                       f"'none' when map already contains a value of type "
                       f"'{self.maps[target.name].value}", target.span)
        elif isinstance(rhs, (ast.Map, ast.TupleAccess, ast.ArrayAccess)):
            if isinstance(target, ast.Map):
                self.error(f"Undefined map: {target.name}", target.span)
            self.error("Invalid expression for assignment: none", rhs.span)

    def read_target(self, target: ast.Expr) -> Type:
        """The current value for ``op=``; an unset map reads as 0 (int64)."""
        if isinstance(target, ast.Variable) and target.name not in self.scope.vars:
            return self.error(f"Undefined or undeclared variable: {target.name}", target.span)
        if isinstance(target, ast.Map) and target.name not in self.maps:
            self.map_keys(target)
            return INT64
        return self.expr(target)

    def assign_var(self, target: ast.Variable, value: Type, span: Span) -> None:
        if value.is_aggregate:
            return
        old = self.scope.vars.get(target.name)
        if old is not None and old.kind == "none":
            old = None
        if old is not None and old.kind == value.kind == "tuple" and not compatible(old, value):
            self.error(f"Tuple type mismatch: {old} != {value}.", span)
            return
        if old is not None and not compatible(old, value):
            self.error(f"Type mismatch for {target.name}: trying to assign value of type '{value}' "
                       f"when variable already contains a value of type '{old}'", span)
            return
        if old is None or (value.kind in ("string", "buffer") and value.size > old.size):
            self.scope.vars[target.name] = value
        ast.set_type(target, self.scope.vars[target.name])

    def map_keys(self, node: ast.Map) -> tuple[Type, ...]:
        keys = []
        for k in node.keys:
            t = self.expr(k)
            if t.kind == "tuple":
                self.error("tuple cannot be used as a map key. Try a multi-key associative array "
                           "instead (eg `@map[$1, $2] = ...)`.", node.span)
            keys.append(UINT64 if t.is_int else t)
        return tuple(keys)

    def check_map_keys(self, node: ast.Map, keys: tuple[Type, ...]) -> bool:
        info = self.maps.get(node.name)
        if info is None:
            return True
        if len(info.keys) == len(keys) and all(compatible(a, b) for a, b in zip(info.keys, keys)):
            return True
        have = ", ".join(str(k) for k in keys)
        want = ", ".join(str(k) for k in info.keys)
        self.error(f"Argument mismatch for {node.name}: trying to access with arguments: [{have}] "
                   f"when map expects arguments: [{want}]", node.span)
        return False

    def assign_map(self, target: ast.Map, value: Type, op_span: Span) -> None:
        keys = self.map_keys(target)
        if not self.check_map_keys(target, keys):
            return
        stored = int_type(64, value.signed) if value.is_int else value
        kind = value.kind if value.is_aggregate else "value"
        info = self.maps.get(target.name)
        if info is not None and info.value.kind == stored.kind == "tuple" and \
                not compatible(info.value, stored):
            self.error(f"Tuple type mismatch: {info.value} != {stored}.", op_span)
            return
        if info is not None and not compatible(info.value, stored):
            self.error(f"Type mismatch for {target.name}: trying to assign value of type '{value}' "
                       f"when map already contains a value of type '{info.value}", target.span)
            return
        if info is not None and stored.kind in ("string", "buffer") and stored.size > info.value.size:
            self.maps[target.name] = MapInfo(target.name, keys, stored, kind)
        self._set_map(target, keys, stored, kind)
        ast.set_type(target, self.maps[target.name].value)

    # -- expressions -------------------------------------------------------------
    def expr(self, node: ast.Expr, statement: bool = False, assigned: str = "") -> Type:
        method: Callable[..., Type] = getattr(self, "e_" + type(node).__name__)
        if isinstance(node, ast.Call):
            t = method(node, statement=statement, assigned=assigned)
        else:
            t = method(node)
        ast.set_type(node, t)
        return t

    def e_Integer(self, node: ast.Integer) -> Type:
        return UINT64 if node.value >= 1 << 63 else INT64

    def e_String(self, node: ast.String) -> Type:
        return string_type(len(node.value.encode("latin-1", "replace")) + 1)

    def e_Identifier(self, node: ast.Identifier) -> Type:
        """A bare name is an enum value (from BTF), else an error."""
        lookup = getattr(self.env.resolver, "enum_value", None)
        if lookup is not None and lookup(node.name) is not None:
            return UINT64  # as bpftrace 0.17 types enumerators
        return self.error(f"Unknown identifier: '{node.name}'", node.span)

    def e_StackMode(self, node: ast.StackMode) -> Type:
        return named("stack_mode")

    def e_PositionalParam(self, node: ast.PositionalParam) -> Type:
        params = self.env.params
        if node.index <= len(params):
            raw = params[node.index - 1]
            if not re.fullmatch(r"-?(0[xX][0-9a-fA-F]+|[0-9]+)", raw):
                # bpftrace 0.17 goes on with an int64, so later checks report too
                self.error(f'${node.index} used numerically but given "{raw}". '
                           f"Try using str(${node.index}).", node.span)
        return INT64

    def e_ParamCount(self, node: ast.ParamCount) -> Type:
        return INT64

    def e_Variable(self, node: ast.Variable) -> Type:
        t = self.scope.vars.get(node.name)
        if t is None:
            return self.error(f"Undefined or undeclared variable: {node.name}", node.span)
        return t

    def e_Map(self, node: ast.Map) -> Type:
        keys = self.map_keys(node)
        info = self.maps.get(node.name)
        if info is None:
            return self.error(f"Undefined map: {node.name}", node.span)
        self.check_map_keys(node, keys)
        return info.value

    def e_Builtin(self, node: ast.Builtin) -> Type:
        name, kinds = node.name, self.scope.kinds
        m = re.fullmatch(r"(s?)arg([0-9]+)", name)
        if m:
            allowed = SARG_KINDS if m.group(1) else ARG_KINDS
            if not kinds <= allowed:
                which = "'kprobes' and 'uprobes'" if m.group(1) else "'kprobes', 'uprobes' and 'usdt'"
                return self.error(f"The {name} builtin can only be used with {which} probes", node.span)
            return UINT64
        if name == "retval" and not kinds <= RETVAL_KINDS:
            hint = " (try to use args->ret instead)" if "tracepoint" in kinds else ""
            return self.error("The retval builtin can only be used with 'kretprobe' and "
                              f"'uretprobe' and 'kfunc' probes{hint}", node.span)
        if name == "retval" and kinds and kinds <= KFUNC_KINDS:
            return self.kfunc_retval(node)
        if name == "func" and not kinds <= FUNC_KINDS:
            bad = min(kinds - FUNC_KINDS)
            return self.error(f"The func builtin can not be used with '{bad}' probes", node.span)
        if name == "cpid" and not self.env.has_child:
            return self.error("cpid cannot be used without child command", node.span)
        if name == "args":
            return self.args_type(node)
        if name == "ctx":
            if "tracepoint" in kinds:
                return self.error("Use args instead of ctx in tracepoint", node.span)
            if kinds & {"BEGIN", "END"}:
                return self.error("invalid program type", node.span)
        if name == "func" and kinds and kinds <= {"uprobe", "uretprobe", "usdt"}:
            return named("usym")
        return BUILTIN_TYPES.get(name, UINT64)

    def args_type(self, node: ast.Builtin) -> Type:
        kinds = self.scope.kinds
        if not kinds or not kinds <= ARGS_KINDS:
            return self.error("The args builtin can only be used with tracepoint/kfunc/uprobe"
                              f"probes ({self.probe_kind_name()} used here)", node.span)
        if kinds <= KFUNC_KINDS:
            self.func_args()
            if self.scope.func_args_failed:
                return NONE
            return pointer_to(record(self.scope.args_name))
        return pointer_to(record("struct args"))

    def kfunc_retval(self, node: ast.Builtin) -> Type:
        """kretfunc's retval has the function's return type (kfunc's is bpftrace's plain u64)."""
        args = self.func_args()
        ret = next((f.type for f in args or () if f.name == RETVAL_FIELD), None)
        if self.scope.func_args_failed:
            return NONE
        if ret is None:
            return UINT64
        if ret.kind == "none":
            aps = self.scope.attach_points
            func = aps[0].parts[-1] if aps and aps[0].parts else ""
            return self.error(f"{func} returns void: kretfunc has no retval", node.span)
        return ret

    def func_args(self) -> list[Field] | None:
        """The probe's kfunc parameters from BTF, as bpftrace's field analyser finds them.

        Every attach point, and every function a wildcard matches, must take
        parameters of the same names ("mixed arguments" otherwise); the first
        one's types are used (codegen reads each function's own slots).  An
        explicit function that cannot be resolved is an error, a wildcard
        match only a warning.  Resolved once per probe, on first use."""
        scope = self.scope
        if scope.func_args is not _UNRESOLVED:
            return scope.func_args
        scope.func_args = None
        resolve = getattr(self.env.resolver, "func_args", None)
        if resolve is None:
            return None
        result: list[Field] | None = None
        for ap in scope.attach_points:
            if ap.kind not in KFUNC_KINDS:
                continue
            func = ap.parts[-1] if ap.parts else ""
            wildcard = any(c in func for c in "*?[")
            for name in self.kfunc_matches(func) if wildcard else [func]:
                try:
                    args = resolve(name, ap.kind == "kretfunc")
                    reason = None if wildcard else self.kfunc_untraceable(name)
                    if reason:
                        raise LookupError(reason)
                except LookupError as exc:
                    # bpftrace says "kfunc:" for kretfunc too
                    if wildcard:
                        self.r.warning(f"kfunc:{func}: {exc.args[0]}", None)
                        continue
                    scope.func_args_failed = True
                    self.error(f"kfunc:{func}: {exc.args[0]}", ap.span)
                    return None
                if result is None:
                    result = args
                elif {f.name for f in args} != {f.name for f in result}:
                    self.error("Probe has attach points with mixed arguments", ap.span)
                    break
        scope.func_args = result if result is not None else []
        return scope.func_args

    def kfunc_untraceable(self, func: str) -> str | None:
        """Why bpftrace would refuse to resolve an explicit kfunc, when tracefs is consulted."""
        if self.env.traceable is None:
            return None
        if self._traceable is None:
            self._traceable = _read_traceable(self.env.traceable)
        if func in self._traceable:
            return None
        if not self._traceable:
            return (f"could not read traceable functions from {AVAILABLE_FILTER_FUNCTIONS} "
                    "(is tracefs mounted?)")
        return 'function not traceable (probably it is inlined or marked as "notrace")'

    def kfunc_matches(self, pattern: str) -> list[str]:
        if self.env.kfuncs is not None:
            return self.env.kfuncs(pattern)
        return self.env.resolver.functions(pattern)

    # calls ----------------------------------------------------------------------
    def e_Call(self, node: ast.Call, statement: bool = False, assigned: str = "") -> Type:
        name, args = node.name, node.args
        if assigned and name in VOID_FUNCS:
            self.error(f"{name}() should not be used in an assignment or as a map key", node.span)
        lo, hi = CALL_ARITY.get(name, (0, None))
        if len(args) < lo or (hi is not None and len(args) > hi):
            return self.error(_arity_message(name, lo, hi, len(args)), node.span)
        if name in UNSAFE and not self.env.unsafe:
            self.error(f"{name}() is an unsafe function being used in safe mode", node.span)
        if name in MAP_FUNCS:
            return self.map_func(node)
        types = [self.arg_type(name, i, a) for i, a in enumerate(args)]
        if name in AGG_FUNCS:
            return self.aggregate(node, types, assigned)
        handler = getattr(self, "c_" + name, None)
        if handler is not None:
            return handler(node, types)
        return NONE

    def arg_type(self, name: str, i: int, arg: ast.Expr) -> Type:
        if i == 0 and name == "print":
            if isinstance(arg, ast.Map) and arg.indexed:
                return NONE  # reported by c_print
            return self.whole_map(arg)
        if i == 0 and name == "str" and isinstance(arg, ast.PositionalParam):
            t = string_type(self.env.strlen)  # str($1): the parameter's text
            ast.set_type(arg, t)
            return t
        return self.expr(arg)

    def whole_map(self, arg: ast.Expr) -> Type:
        """print(@m): the whole map, whatever its keys."""
        if isinstance(arg, ast.Map) and not arg.indexed and arg.name in self.maps:
            t = self.maps[arg.name].value
            ast.set_type(arg, t)
            return t
        return self.expr(arg)

    def map_func(self, node: ast.Call) -> Type:
        arg = node.args[0]
        if not isinstance(arg, ast.Map):
            return self.error(f"{node.name}() expects a map to be provided", node.span)
        if node.name != "delete" and arg.indexed:
            return self.error(f"The map passed to {node.name}() should not be indexed by a key",
                              node.span)
        if arg.name not in self.maps:
            for k in arg.keys:
                self.expr(k)
            return self.error(f"Undefined map: {arg.name}", arg.span)
        if node.name == "delete":
            self.expr(arg)
        else:
            ast.set_type(arg, self.maps[arg.name].value)
        return NONE

    def aggregate(self, node: ast.Call, types: list[Type], assigned: str) -> Type:
        name = node.name
        if assigned != "map":
            return self.error(f"{name}() should be directly assigned to a map", node.span)
        if name in ("sum", "min", "max", "avg", "stats", "hist", "lhist") and \
                types[0].kind not in ("int", "none"):
            return self.error(f"{name}() only supports integer arguments "
                              f"({kind_word(types[0])} provided)", node.span)
        if name == "lhist":
            self.check_lhist(node)
        return named(name)

    def check_lhist(self, node: ast.Call) -> None:
        lits = []
        for a in node.args[1:]:
            if isinstance(a, ast.Integer):
                lits.append(a.value)
            elif isinstance(a, ast.PositionalParam):
                lits.append(self.param_value(a.index))
            else:
                self.error(f"lhist() expects a integer literal ({kind_word(a.type)} provided)",
                           node.span)
                return
        lo, hi, step = lits
        if lo < 0:
            self.error(f"lhist() min must be non-negative (provided min {lo})", node.span)
            return
        if step < 1:
            self.error(f"lhist() step must be >= 1 ({step} provided)", node.span)
            return
        if lo > hi:
            self.error(f"lhist() min must be less than max (provided min {lo} and max {hi})",
                       node.span)
        if step > hi - lo:
            self.error(f"lhist() step is too large for the given range (provided step {step} "
                       f"for range {hi - lo})", node.span)

    def check_format(self, node: ast.Call, types: list[Type]) -> None:
        fmt_node = node.args[0]
        if not isinstance(fmt_node, ast.String):
            self.error(f"{node.name}() expects a string literal ({kind_word(types[0])} provided)",
                       node.span)
            return
        # One set of specifier rules, shared with the runtime that prints.
        # An argument whose type is already an error ("none") takes the kind
        # its specifier wants, so that it is reported once, not twice.
        specs = find_specifiers(fmt_node.value)
        kinds = [spec.kind if t.kind == "none" else kind_word(t)
                 for spec, t in zip(specs, types[1:])]
        kinds += [kind_word(t) for t in types[1 + len(specs):]]
        problem = check_arguments(fmt_node.value, kinds, node.name)
        if problem:
            self.error(problem, node.span)

    def c_printf(self, node: ast.Call, types: list[Type]) -> Type:
        self.check_format(node, types)
        return NONE

    c_system = c_cat = c_printf

    def c_debugf(self, node: ast.Call, types: list[Type]) -> Type:
        """debugf(): bpf_trace_printk, which takes at most three values; bpftrace warns first."""
        fmt = node.args[0]
        if isinstance(fmt, ast.String):
            self.r.warning("The debugf() builtin is not recommended for production use. For more "
                           "information see bpf_trace_printk in bpf-helpers(7).", node.span)
        if isinstance(fmt, ast.String) and len(find_specifiers(fmt.value)) > DEBUGF_MAX_ARGS:
            return self.error(f"debugf: Cannot use more than {DEBUGF_MAX_ARGS} conversion specifiers",
                              node.span)
        self.check_format(node, types)
        return NONE

    def _probe_only(self, node: ast.Call, what: str) -> bool:
        special = self.scope.kinds & {"BEGIN", "END"}
        if special:
            self.error(f'{what} can not be used with "{min(special)}" probes', node.span)
            return False
        return True

    def c_signal(self, node: ast.Call, types: list[Type]) -> Type:
        self._probe_only(node, "signal")
        return NONE

    def c_override(self, node: ast.Call, types: list[Type]) -> Type:
        if not self.scope.kinds <= {"kprobe"} or not self.scope.kinds:
            self.error("override can only be used with kprobes.", node.span)
        return NONE

    def c_exit(self, node: ast.Call, types: list[Type]) -> Type:
        return NONE

    def c_str(self, node: ast.Call, types: list[Type]) -> Type:
        t = types[0]
        if t.kind not in ("int", "pointer", "array", "none") and not \
                isinstance(node.args[0], ast.PositionalParam) and not is_data_loc_field(node.args[0]):
            return self.error("str() expects an integer or a pointer type as first argument "
                              f"({t} provided)", node.span)
        size = self.env.strlen
        if len(node.args) == 2 and isinstance(node.args[1], ast.Integer):
            size = min(size, node.args[1].value + 1)
        return string_type(size)

    def c_buf(self, node: ast.Call, types: list[Type]) -> Type:
        if len(node.args) == 1 and types[0].kind not in ("array", "string", "none"):
            return self.error("buf() expects a length argument for non-array type "
                              f"{kind_word(types[0])}", node.span)
        size = self.env.strlen
        if len(node.args) == 2 and isinstance(node.args[1], ast.Integer):
            size = node.args[1].value
        elif types[0].kind in ("array", "string"):
            size = types[0].size
        return buffer_type(size + 1)

    def _int_or_pointer(self, node: ast.Call, t: Type) -> bool:
        if t.kind in ("int", "pointer", "none"):
            return True
        self.error(f"{node.name}() expects an integer or pointer argument", node.span)
        return False

    def _literal(self, node: ast.Call, i: int, t: Type) -> bool:
        if isinstance(node.args[i], ast.String):
            return True
        self.error(f"{node.name}() expects a string literal ({kind_word(t)} provided)", node.span)
        return False

    def _integer(self, node: ast.Call, t: Type) -> bool:
        if t.kind in ("int", "none"):
            return True
        self.error(f"{node.name}() only supports integer arguments ({kind_word(t)} provided)",
                   node.span)
        return False

    def c_ksym(self, node: ast.Call, types: list[Type]) -> Type:
        return named("ksym") if self._int_or_pointer(node, types[0]) else NONE

    def c_usym(self, node: ast.Call, types: list[Type]) -> Type:
        return named("usym", 16) if self._int_or_pointer(node, types[0]) else NONE

    def c_join(self, node: ast.Call, types: list[Type]) -> Type:
        if len(node.args) == 2:
            self._literal(node, 1, types[1])
        return NONE

    def c_kaddr(self, node: ast.Call, types: list[Type]) -> Type:
        if not isinstance(node.args[0], ast.String):
            return self.error(f"kaddr() expects a string literal ({kind_word(types[0])} provided)",
                              node.span)
        return UINT64

    def c_uaddr(self, node: ast.Call, types: list[Type]) -> Type:
        if not self._probe_only(node, "uaddr"):
            return NONE
        return pointer_to(UINT64)

    def c_reg(self, node: ast.Call, types: list[Type]) -> Type:
        ok = self._probe_only(node, "reg")
        if not self._literal(node, 0, types[0]) or not ok:
            return NONE
        return UINT64

    def c_ntop(self, node: ast.Call, types: list[Type]) -> Type:
        addr = types[-1]
        if addr.kind not in ("int", "none") and addr.size not in (4, 16):
            return self.error(f"{node.name}() argument must be 4 or 16 bytes in size", node.span)
        return named("inet", 24)

    def c_pton(self, node: ast.Call, types: list[Type]) -> Type:
        arg = node.args[0]
        n = 16 if isinstance(arg, ast.String) and ":" in arg.value else 4
        return array_of(int_type(8, False), n)

    def c_print(self, node: ast.Call, types: list[Type]) -> Type:
        arg = node.args[0]
        if isinstance(arg, ast.Map) and arg.indexed:
            self.error("The map passed to print() should not be indexed by a key", node.span)
        elif len(node.args) > 1 and not isinstance(node.args[0], ast.Map):
            self.error(f"Non-map print() only takes 1 argument, {len(node.args)} found", node.span)
        elif len(node.args) > 1 and types[0].kind == "stats":
            self.r.warning("print()'s top and div arguments are ignored when used on stats() maps.",
                           node.span)
        return NONE

    def c_cgroupid(self, node: ast.Call, types: list[Type]) -> Type:
        return UINT64 if self._literal(node, 0, types[0]) else NONE

    def c_time(self, node: ast.Call, types: list[Type]) -> Type:
        if node.args and not isinstance(node.args[0], ast.String):
            self.error(f"time() expects a string literal ({kind_word(types[0])} provided)", node.span)
        return NONE

    def c_strftime(self, node: ast.Call, types: list[Type]) -> Type:
        if not self._literal(node, 0, types[0]) or not self._integer(node, types[1]):
            return NONE
        return named("timestamp", 16)

    def c_strncmp(self, node: ast.Call, types: list[Type]) -> Type:
        for t in types[:2]:
            if not t.is_string and t.kind != "none":
                return self.error(f"strncmp() only supports string arguments ({kind_word(t)} provided)",
                                  node.span)
        n = node.args[2]
        if isinstance(n, ast.Integer) and n.value < 0:
            return self.error("Builtin strncmp requires a non-negative size", node.span)
        return UINT64

    def c_strcontains(self, node: ast.Call, types: list[Type]) -> Type:
        return UINT64

    def c_macaddr(self, node: ast.Call, types: list[Type]) -> Type:
        t = types[0]
        if t.kind not in ("array", "pointer") and not (t.kind == "array" and t.size == 6):
            return self.error("macaddr() argument must be 6 bytes in size", node.span)
        return named("mac_address", 16)

    def c_cgroup_path(self, node: ast.Call, types: list[Type]) -> Type:
        return named("cgroup_path", 16)

    def c_bswap(self, node: ast.Call, types: list[Type]) -> Type:
        return types[0] if self._integer(node, types[0]) else NONE

    def c_uptr(self, node: ast.Call, types: list[Type]) -> Type:
        return types[0]

    c_kptr = c_uptr

    def c_path(self, node: ast.Call, types: list[Type]) -> Type:
        """path(): bpftrace 0.17's two checks, in its order (the kernel's helper, then the probe)."""
        if self.env.has_d_path is not None and not self.env.has_d_path():
            self.error("BPF_FUNC_d_path not available for your kernel version", node.span)
        if not self.scope.kinds or not self.scope.kinds <= {"kfunc", "kretfunc", "iter"}:
            return self.error("The path function can only be used with 'kfunc', 'kretfunc', 'iter' probes",
                              node.span)
        return string_type(self.env.strlen)

    def c_strerror(self, node: ast.Call, types: list[Type]) -> Type:
        return named("strerror", 8) if self._integer(node, types[0]) else NONE

    def c_kstack(self, node: ast.Call, types: list[Type]) -> Type:
        return named(node.name)

    c_ustack = c_kstack

    # operators ----------------------------------------------------------------------
    def e_Binop(self, node: ast.Binop) -> Type:
        left, right = self.expr(node.left), self.expr(node.right)
        return self.binop_types(node.op, left, right, node.span, node.op_span, node.left, node.right)

    def binop_types(self, op: str, left: Type, right: Type, span: Span, op_span: Span,
                    left_node: ast.Expr, right_node: ast.Expr) -> Type:
        if left.kind == "none" or right.kind == "none":
            return NONE
        if left.is_int and right.is_int:
            self.sign_warnings(op, left, right, op_span, left_node, right_node)
            return INT64 if left.signed and right.signed else UINT64
        if left.kind == "pointer" and right.is_int and op in ("+", "-"):
            return left
        if left.kind in ("pointer", "int") and right.kind in ("pointer", "int"):
            return UINT64
        if left.is_string and right.is_string and op in ("==", "!="):
            return UINT64
        if left.kind == right.kind == "array" and op in ("==", "!="):
            return UINT64
        if left.kind == right.kind or "pointer" in (left.kind, right.kind):
            self.error(f"The {op} operator can not be used on expressions of types {left}, {right}",
                       op_span)
            return INT64
        self.error(f"Type mismatch for '{op}': comparing '{left}' with '{right}'", span)
        return INT64

    def sign_warnings(self, op: str, left: Type, right: Type, op_span: Span,
                      left_node: ast.Expr, right_node: ast.Expr) -> None:
        """bpftrace's warnings about signedness; a non-negative literal fits either sign."""
        def signed(t: Type, n: ast.Expr) -> bool | None:
            if isinstance(n, ast.Integer):
                return True if n.value < 0 else None
            return None if isinstance(n, ast.Identifier) else t.signed

        ls, rs = signed(left, left_node), signed(right, right_node)
        if None not in (ls, rs) and ls != rs:
            if op in ARITHMETIC:
                self.r.warning(f"arithmetic on integers of different signs: '{left}' and "
                               f"'{right}' can lead to undefined behavior", op_span)
            elif op in COMPARISON:
                self.r.warning(f"comparison of integers of different signs: '{left}' and "
                               f"'{right}' can lead to undefined behavior", op_span)
        elif op in ("/", "%") and (ls or rs):
            self.r.warning(f"signed operands for '{op}' can lead to undefined behavior "
                           "(cast to unsigned to silence warning)", op_span)

    def e_Unop(self, node: ast.Unop) -> Type:
        op = node.op
        if op in ("++", "--"):
            return self.incdec(node)
        t = self.expr(node.operand)
        if t.kind == "none":
            return NONE
        if op == "*":
            if t.kind == "pointer":
                return t.elems[0]
            if t.is_int:
                return UINT64
        elif t.is_int or (op == "!" and t.kind == "pointer"):
            if op == "-":
                return INT64
            return UINT64 if op == "!" else t
        self.error(f"The {op} operator can not be used on expressions of type '{t}'", node.span)
        return INT64

    def incdec(self, node: ast.Unop) -> Type:
        target = node.operand
        if isinstance(target, ast.Variable):
            t = self.scope.vars.get(target.name)
            if t is None:
                return self.error(f"Undefined or undeclared variable: {target.name}", target.span)
            ast.set_type(target, t)
            return t
        assert isinstance(target, ast.Map)
        keys = self.map_keys(target)
        if not self.check_map_keys(target, keys):
            return NONE
        info = self.maps.get(target.name)
        if info is not None and not info.value.is_int:
            return self.error(f"The {node.op} operator can not be used on expressions of type "
                              f"'{info.value}'", node.span)
        self._set_map(target, keys, INT64, "value")
        ast.set_type(target, self.maps[target.name].value)
        return self.maps[target.name].value

    def e_Ternary(self, node: ast.Ternary) -> Type:
        cond = self.expr(node.cond)
        left, right = self.expr(node.left), self.expr(node.right)
        if cond.kind not in ("int", "pointer", "none"):
            return self.error(f"Invalid condition in ternary: {kind_word(cond)}", node.span)
        if left.kind == "none" or right.kind == "none":
            return NONE
        if left.kind == "tuple" and compatible(left, right):
            return self.error(f"Ternary return type unsupported {kind_word(left)}", node.span)
        if not compatible(left, right):
            return self.error("Ternary operator must return the same type: have "
                              f"'{kind_word(left)}' and '{kind_word(right)}'", node.span)
        if left.is_string:
            return left if left.size >= right.size else right
        return left

    def e_Tuple(self, node: ast.Tuple) -> Type:
        elems = [self.expr(e) for e in node.elems]
        if any(e.kind == "none" for e in elems):
            return NONE
        return tuple_type(elems)

    def e_TupleAccess(self, node: ast.TupleAccess) -> Type:
        t = self.expr(node.expr)
        if t.kind == "none":
            return NONE
        if t.kind != "tuple":
            return self.error(f"Can not access index {node.index} on expression of type '{t}'",
                              node.span)
        if node.index >= len(t.elems):
            return self.error(f"Invalid tuple index: {node.index}. Found {len(t.elems)} elements "
                              "in tuple.", node.span)
        return t.elems[node.index]

    def e_FieldAccess(self, node: ast.FieldAccess) -> Type:
        t = self.expr(node.expr)
        if t.kind == "none":
            return NONE
        rec = t
        if node.arrow:
            if t.kind != "pointer" or t.elems[0].kind != "record":
                return self.error(f"Can not access field '{node.field}' on type '{t}'. Try "
                                  f"dereferencing it first, or using '.'", node.span)
            rec = t.elems[0]
        elif t.kind == "pointer":
            return self.error(f"Can not access field '{node.field}' on type '{t}'. Try "
                              "dereferencing it first, or using '->'", node.span)
        elif t.kind != "record":
            return self.error(f"Can not access field '{node.field}' on expression of type '{t}'",
                              node.span)
        if rec.name == self.scope.args_name:
            params = self.func_args()
            if params is None:
                return UINT64  # no BTF here: codegen reads the prototype
            for f in params:
                if f.name == node.field and f.name != RETVAL_FIELD:
                    return f.type
            return self.error(f"Can't find function parameter {node.field}", node.span)
        if rec.name == "struct args":
            return self.tracepoint_field(node)
        fields = self.record_fields(rec, node)
        if fields is None:
            return UINT64  # layout unknown here: codegen will need BTF
        for f in fields:
            if f.name == node.field:
                return f.type
        return self.error(f"Struct/union of type '{rec.name}' does not contain a field named "
                          f"'{node.field}'", node.span)

    def tracepoint_field(self, node: ast.FieldAccess) -> Type:
        """``args->name``: every tracepoint of the probe must have the field; like bpftrace,
        one error per tracepoint that lacks it, in the order of their struct names."""
        found: Type = UINT64  # no format known here (tests without tracefs): codegen checks
        missing = []
        for category, event, fields in self._tracepoint_formats():
            match = next((f for f in fields if f.name == node.field), None)
            if match is None:
                missing.append(f"struct _tracepoint_{category}_{event}")
            else:
                found = match.type
        for struct in sorted(set(missing)):
            self.error(f"Struct/union of type '{struct}' does not contain a field named "
                       f"'{node.field}'", node.span)
        return NONE if missing else found

    def record_fields(self, rec: Type, node: ast.Node) -> list[Field] | None:
        if self.env.resolver is None:
            return None
        fields = self.env.resolver.struct_fields(rec.name)
        return None if fields is None else list(fields)

    def _tracepoint_formats(self):
        """(category, event, fields) of each of this probe's tracepoints whose format is known."""
        if self.env.tracepoints is None:
            return
        for parts in self.scope.parts:
            if len(parts) == 2 and "*" not in parts[0] + parts[1]:
                fields = self.env.tracepoints.fields(parts[0], parts[1])
                if fields is not None:
                    yield parts[0], parts[1], fields


    def e_ArrayAccess(self, node: ast.ArrayAccess) -> Type:
        t = self.expr(node.expr)
        idx = self.expr(node.index)
        if t.kind == "none" or idx.kind == "none":
            return NONE
        if t.kind not in ("array", "pointer"):
            return self.error("The array index operator [] can only be used on arrays and "
                              f"pointers, found {kind_word(t)}.", node.span)
        if not idx.is_int:
            return self.error(f"The array index operator [] only accepts integer indices, found {idx}.",
                              node.span)
        return t.elems[0]

    def e_Cast(self, node: ast.Cast) -> Type:
        operand = self.expr(node.expr)
        base = INT_TYPE_NAMES.get(node.type_name)
        if base is not None and not node.pointer and operand.kind not in ("int", "pointer", "none"):
            return self.error(f'Casts are not supported for type: "{operand}"', node.span)
        if base is None:
            is_struct = node.type_name.startswith(("struct ", "union ", "enum "))
            res = self.env.resolver
            if res is None or (isinstance(res, LayeredResolver) and res.base is None):
                # no BTF to check against: trust the script
                known = is_struct or (res is not None and res.struct_fields(node.type_name) is not None)
            else:
                known = res.struct_fields(node.type_name) is not None
            if not known:
                return self.error(f"Unknown struct/union: '{node.type_name}'", node.span)
            size = self.env.resolver.type_size(node.type_name) if self.env.resolver else 0
            base = record(node.type_name, size or 0)
            if not node.pointer:
                return self.error(f"Cannot cast to \"{node.type_name}\"", node.span)
        t = base
        for _ in range(node.pointer):
            t = pointer_to(t)
        return t

    def e_Sizeof(self, node: ast.Sizeof) -> Type:
        if node.expr is not None:
            self.expr(node.expr)
            return UINT64
        if node.type_name not in INT_TYPE_NAMES:
            size = self.env.resolver.type_size(node.type_name) if self.env.resolver else None
            if size is None:
                return self.error(f"Unknown identifier: '{node.type_name}'", node.span)
        return UINT64


def enum_value(node: ast.Identifier, env: Env) -> int:
    """The constant an Identifier (an enumerator) stands for, after analysis."""
    lookup = getattr(env.resolver, "enum_value", None)
    value = lookup(node.name) if lookup is not None else None
    if value is None:
        raise KeyError(node.name)
    return value


def sizeof_value(node: ast.Sizeof, env: Env) -> int:
    """The constant a sizeof() node evaluates to (after analysis)."""
    if node.expr is not None:
        return node.expr.type.size if node.expr.type is not None else 0
    if node.type_name in INT_TYPE_NAMES:
        return INT_TYPE_NAMES[node.type_name].size
    return (env.resolver.type_size(node.type_name) if env.resolver else 0) or 0


def analyse(program: ast.Program, env: Env | None = None, source: str = "",
            filename: str = "stdin") -> Analysis:
    """Type-check a parsed program; raises Diagnostic (errors and warnings, in order)."""
    env = env or Env()
    script_structs = parse_c_structs(program.c_definitions, env.resolver)
    if script_structs:
        env = replace(env, resolver=LayeredResolver(script_structs, env.resolver))
    maps: dict[str, MapInfo] = {}
    for _ in range(10):
        before = dict(maps)
        Checker(env, maps, Reporter(source, filename)).program(program)
        if maps == before:
            break
    report = Reporter(source, filename)
    Checker(env, maps, report).program(program)
    if report.errors:
        raise Diagnostic(report.messages, source=source, filename=filename)
    return Analysis(program, maps, report.warnings, env)


def is_data_loc_field(node: ast.Expr) -> bool:
    """``args->name`` where name is a tracepoint's ``__data_loc char[]`` field (after analysis)."""
    typ = getattr(node, "type", None)
    return (isinstance(node, ast.FieldAccess) and isinstance(node.expr, ast.Builtin)
            and node.expr.name == "args" and typ is not None and typ.name == DATA_LOC)
