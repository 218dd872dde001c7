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

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

from . import ast
from .compat import is_modern
from .diagnostics import Diagnostic, Message, Reporter, Span, Verbatim
from .promotion import binary_signed, pointer_binary, unary_type
from .semantic_builtins import BuiltinChecks
from .semantic_calls import CallChecks
from .semantic_newer import STACK_ADDRESS, STACK_ADDRESS_IN_LOOP, NewerChecks
from .semantic_rules import (
    ARITHMETIC,
    COMPARISON,
    STRING_LITERAL_MAX,
    UNRESOLVED,
    kind_word,
    param_number,
    unroll_count,
)
from .semantic_targets import (  # noqa: F401 (system_*: read by semantic_bridge and the tests)
    TargetChecks,
    system_binaries,
    system_kfuncs,
    system_traceable,
)
from .types import (
    BOOL,
    DEFAULT_STRLEN,
    INT64,
    INT_TYPE_NAMES,
    NONE,
    RETVAL_FIELD,
    UINT64,
    Field,
    LayeredResolver,
    TracepointFormats,
    Type,
    TypeResolver,
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
    pid: int = 0                                  # -p PID (0: none)
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
    # the language (compat.py): "0.17", "0.26", or None for the default
    compat: str | None = None


@dataclass(frozen=True)
class MapInfo:
    name: str
    keys: tuple[Type, ...]   # () for a map used without [...]
    value: Type
    kind: str                # "count", "hist", ... or "value" for plain stores


@dataclass
class Analysis:
    """The result: ``env`` is the one used, with script-defined structs layered
    over BTF; pass it to ``enum_value`` and read field layouts
    from ``env.resolver``."""

    program: ast.Program
    maps: dict[str, MapInfo]
    warnings: list[Message] = field(default_factory=list)
    env: Env = field(default_factory=lambda: Env())


# -- the checker ----------------------------------------------------------------


class _Scope:
    def __init__(self, kinds: frozenset[str], spec_parts: list[tuple[str, ...]],
                 attach_points: tuple[ast.AttachPoint, ...] = ()):
        self.kinds = kinds
        self.parts = spec_parts
        self.attach_points = attach_points
        self.vars: dict[str, Type] = {}
        self.loops = 0
        self.fors = 0  # for loops the statement is in (today's language)
        # today's block scoping: the variables each open block introduced (innermost last),
        # and where each `let` declared its variable
        self.blocks: list[set[str]] = [set()]
        self.declared: dict[str, Span] = {}
        # kfunc/kretfunc: the parameters (and $retval) from BTF; None when unknown
        # (no BTF) or failed (reported); resolved on first use of args/retval.
        self.func_args: list[Field] | None = UNRESOLVED
        self.func_args_failed = False
        # bpftrace names a kfunc probe's args record after the probe
        self.args_name = "struct " + ",".join(
            f"{ap.kind}:{ap.parts[-1] if ap.parts else ''}" for ap in attach_points) + "_args"


class Checker(BuiltinChecks, CallChecks, TargetChecks, NewerChecks):
    """Types every node and reports bpftrace's errors; builtins and calls are checked by its mixins."""

    def __init__(self, env: Env, maps: dict[str, MapInfo], report: Reporter, final: bool = True):
        self.env = env
        self.maps = maps
        self.r = report
        # bpftrace analyses the program in passes (so a map may be read before the probe
        # that writes it); some errors it reports in any pass, the rest only in the last
        self.final = final
        self.scope: _Scope = _Scope(frozenset(), [])
        self._traceable: Collection[str] | None = None
        # calls of functions bpftrace has and we cannot compile: reported only when the
        # script is otherwise correct, so bpftrace's own errors come out as bpftrace prints them
        self.unsupported: list[Message] = []
        self.modern = is_modern(env.compat)

    # -- helpers -----------------------------------------------------------
    def error(self, text: str, span: Span) -> Type:
        self.r.error(text, span)
        return NONE

    def final_error(self, text: str, span: Span) -> Type:
        """An error bpftrace reports only in its last pass, when every type is known:
        it is not seen when an earlier pass already failed (on an ``error()``)."""
        if self.final:
            self.r.error(text, span)
        return NONE

    def warning(self, text: str, span: Span | None) -> None:
        """Warnings too come from the last pass only."""
        if self.final:
            self.r.warning(text, span)

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
        self.map_declarations(program.map_decls)
        for probe in program.probes:
            kinds = frozenset(ap.kind for ap in probe.attach_points if ap.kind)
            self.scope = _Scope(kinds, [ap.parts for ap in probe.attach_points], probe.attach_points)
            for ap in probe.attach_points:
                if ap.kind in ("watchpoint", "asyncwatchpoint"):
                    self.watchpoint(ap)
            if probe.pred is not None:
                t = self.expr(probe.pred)
                if t.kind not in ("int", "pointer", "none"):
                    self.final_error(f"Invalid type for predicate: {kind_word(t)}", probe.pred_span)
            self.stmts(probe.body)
        self.declared_map_values(program.map_decls)

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
            if cond.kind not in ("int", "none"):  # (a pointer too: bpftrace wants an integer)
                self.final_error(f"Invalid condition in if(): {cond.kind}", Span(1, 1, 1))
            self.block(node.then)
            if node.orelse is not None:
                self.block(node.orelse)
        elif isinstance(node, ast.While):
            if self.modern:
                self.warning("While loops are deprecated and may be removed in the future.", node.span)
                if self.final:
                    self.r.messages.append(Verbatim(
                        "HINT: For loops support ranges (e.g. `for ($x : $start..$end) { ... }`), and can be "
                        "used in place of while. These are more easily proven to be bounded by the verifier.",
                        None, "WARNING"))
            self.expr(node.cond)
            self.scope.loops += 1
            self.block(node.body)
            self.scope.loops -= 1
        elif isinstance(node, ast.Let):
            self.let(node)
        elif isinstance(node, ast.Unroll):
            self.unroll(node)
        elif isinstance(node, ast.For):
            self.for_loop(node)
        elif isinstance(node, ast.Jump) and node.kind == "return" and self.scope.fors:
            self.error("'return' statement is not allowed in a for-loop", node.span)
        elif isinstance(node, ast.Jump) and node.kind != "return" and self.scope.loops == 0:
            self.error(f"{node.kind} used outside of a loop", node.span)

    def param_value(self, index: int) -> int:
        """A positional parameter as a number (unset or non-numeric: 0)."""
        params = self.env.params
        raw = params[index - 1] if index <= len(params) else "0"
        return param_number(raw) or 0

    def unroll(self, node: ast.Unroll) -> None:
        count = node.count
        self.expr(count)
        n = None
        if isinstance(count, ast.Integer):
            n = count.value
        elif isinstance(count, ast.PositionalParam):
            params = self.env.params
            raw = params[count.index - 1] if count.index <= len(params) else "0"
            n = unroll_count(raw)
            if n is None:
                self.error(f'${count.index} used numerically but given "{raw}"', count.span)
                self.error("invalid unroll value", node.span)
        elif isinstance(count, ast.ParamCount):
            n = len(self.env.params)
        if n is not None and n > 100:
            self.error("unroll maximum value is 100", node.span)
        elif n is not None and n < 1:
            self.error("unroll minimum value is 1", node.span)
        self.block(node.body)  # not a loop for break/continue

    def assign(self, node: ast.Assign) -> None:
        target, rhs = node.target, node.expr
        # bpftrace visits the map's keys first, then the value (for "op=", "@m[k] op v": the keys again)
        keys = self.map_keys(target) if isinstance(target, ast.Map) else ()
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
        elif value.name == STACK_ADDRESS:
            self.error("the address of a variable (&$v) can not be stored in a map", node.span)
        else:
            self.assign_map(target, value, node.span, keys)

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
                self.final_error(f"Undefined map: {target.name}", target.span)
            self.final_error("Invalid expression for assignment: none", rhs.span)

    def read_target(self, target: ast.Expr) -> Type:
        """The current value for ``op=``. A map no pass has written yet is untyped, as in
        bpftrace, so ``@a[1] -= 10`` alone makes ``@a`` a uint64 (see ``promotion``)."""
        if isinstance(target, ast.Variable) and target.name not in self.scope.vars:
            return self.error(f"Undefined or undeclared variable: {target.name}", target.span)
        return self.expr(target)

    def assign_var(self, target: ast.Variable, value: Type, span: Span) -> None:
        if value.is_aggregate:
            return
        old = self.scope.vars.get(target.name)
        if old is not None and old.kind == "none":
            old = None
        if old is not None and old.kind == value.kind == "tuple" and not compatible(old, value):
            self.final_error(f"Tuple type mismatch: {old} != {value}.", span)
            return
        if old is not None and not compatible(old, value):
            if value.kind in ("string", "buffer") and old.kind != value.kind and value.size > old.size:
                # 0.17 checks the size before the type, and warns first (in whichever pass)
                self.r.warning(f"{value.kind.capitalize()} size mismatch: {old.size} != {value.size}. "
                             "The value may be truncated.", span)
            self.error(f"Type mismatch for {target.name}: trying to assign value of type '{value}' "
                       f"when variable already contains a value of type '{old}'", span)
            return
        if old is None and target.name not in self.scope.declared:
            self.scope.blocks[-1].add(target.name)  # first assigned here: this block's
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
            if t.kind == "cgroup_path":  # 0.17 stops at run time with this text: we stop here
                self.error("invalid mapkey argument type", k.span)
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
        # bpftrace reports a mismatch in whichever pass sees it (then its warnings are never
        # printed), unless a key's type is not known yet ("none": the last pass decides)
        known = all(k.kind != "none" for k in (*keys, *info.keys))
        report = self.error if known else self.final_error
        report(f"Argument mismatch for {node.name}: trying to access with arguments: [{have}] "
               f"when map expects arguments: [{want}]", node.span)
        return False

    def assign_map(self, target: ast.Map, value: Type, op_span: Span, keys: tuple[Type, ...]) -> None:
        """The value's type is checked before the keys: bpftrace reports one error per
        assignment, a value of the wrong type first (``@a = count(); @a[1] = 1``)."""
        stored = int_type(64, value.signed) if value.is_int else value
        kind = value.kind if value.is_aggregate else "value"
        info = self.maps.get(target.name)
        if info is not None and info.value.kind == stored.kind == "tuple" and \
                not compatible(info.value, stored):
            self.final_error(f"Tuple type mismatch: {info.value} != {stored}.", op_span)
            return
        if info is not None and not compatible(info.value, stored):
            self.error(f"Type mismatch for {target.name}: trying to assign value of type '{value}' "
                       f"when map already contains a value of type '{info.value}", target.span)
            return
        if not self.check_map_keys(target, keys):
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

    def e_String(self, node: ast.String, checked: bool = True) -> Type:
        t = string_type(len(node.value.encode("utf-8", "surrogateescape")) + 1)  # bytes, as bpftrace counts
        if checked and t.size > STRING_LITERAL_MAX:
            self.error(f"String is too long (over {STRING_LITERAL_MAX} bytes): {node.value}", node.span)
        return t

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
            if param_number(raw) is None and self.modern:
                # today's language: a parameter that is not a number is a string ($1 = "p1")
                return string_type(max(self.env.strlen, len(raw.encode()) + 1))
            if param_number(raw) is None:
                # bpftrace 0.17 goes on with an int64, so later checks report too
                self.final_error(f'${node.index} used numerically but given "{raw}". '
                                 f"Try using str(${node.index}).", node.span)
        return INT64

    def e_ParamCount(self, node: ast.ParamCount) -> Type:
        return INT64

    def e_Variable(self, node: ast.Variable) -> Type:
        t = self.scope.vars.get(node.name)
        if t is None:
            return self.error(f"Undefined or undeclared variable: {node.name}", node.span)
        if self.scope.fors and t.name == STACK_ADDRESS:
            return self.error(STACK_ADDRESS_IN_LOOP, node.span)  # (today's `&$v`: semantic_newer.py)
        return t

    def e_Map(self, node: ast.Map) -> Type:
        keys = self.map_keys(node)
        info = self.maps.get(node.name)
        if info is None:
            return self.final_error(f"Undefined map: {node.name}", node.span)
        self.check_map_keys(node, keys)
        return info.value

    # operators ----------------------------------------------------------------------
    def e_Binop(self, node: ast.Binop) -> Type:
        left, right = self.expr(node.left), self.expr(node.right)
        return self.binop_types(node.op, left, right, node.span, node.op_span, node.left, node.right)

    def binop_types(self, op: str, left: Type, right: Type, span: Span, op_span: Span,
                    left_node: ast.Expr, right_node: ast.Expr) -> Type:
        if {left.kind, right.kind} == {"none", "pointer"}:  # bpftrace refuses it in every pass
            self.error(f"The {op} operator can not be used on expressions of types {left}, {right}", op_span)
            return NONE  # as bpftrace's: `str($p > nosuch)` is an error of str() too
        if left.kind == "none" or right.kind == "none":
            # a map no pass has typed yet: an integer all the same (signed only if both
            # operands are, and "none" is not), so "@a = @a + 1" types @a as uint64
            if left.kind != right.kind:
                self.final_error(f"Type mismatch for '{op}': comparing '{left}' with '{right}'", span)
            return int_type(64, binary_signed(op, left.signed, right.signed))
        if left.is_int and right.is_int:
            self.sign_warnings(op, left, right, op_span, left_node, right_node)
            return int_type(64, binary_signed(op, left.signed, right.signed))
        if "pointer" in (left.kind, right.kind) and {left.kind, right.kind} <= {"pointer", "int"}:
            how = pointer_binary(op, left.kind == "pointer", right.kind == "pointer")
            if how == "left":
                return left
            if how == "right":
                return right
            if how == "compare":
                if left.kind == right.kind == "pointer" and left.elems[0] != right.elems[0]:
                    self.warning(f"comparison of distinct pointer types ('{left.elems[0]}, "
                                 f"'{right.elems[0]}')", span)
                return UINT64
            self.final_error(f"The {op} operator can not be used on expressions of types {left}, {right}",
                             op_span)
            return UINT64
        if left.is_string and right.is_string and op in ("==", "!="):
            return UINT64
        if left.kind == right.kind == "array" and op in ("==", "!="):
            return UINT64
        # after an error, still the integer bpftrace makes of it (a non-integer is not signed)
        result = int_type(64, binary_signed(op, left.signed, right.signed))
        if left.kind == right.kind or "pointer" in (left.kind, right.kind):
            self.final_error(f"The {op} operator can not be used on expressions of types {left}, {right}",
                             op_span)
            return result
        self.final_error(f"Type mismatch for '{op}': comparing '{left}' with '{right}'", span)
        return result

    def sign_warnings(self, op: str, left: Type, right: Type, op_span: Span,
                      left_node: ast.Expr, right_node: ast.Expr) -> None:
        """bpftrace's warnings about signedness; a non-negative literal fits either sign.
        0.17 keeps every literal as an int64, so one of 2**63 and up is a negative int64 here
        (``(uint64)$x + 0xffffffffffffff00`` warns), whatever type the rest of the analysis uses."""
        def int64_literal(n: ast.Expr) -> bool:
            return not self.modern and isinstance(n, ast.Integer) and n.value >= 1 << 63

        def signed(t: Type, n: ast.Expr) -> bool | None:
            if isinstance(n, ast.Integer):
                return True if n.value < 0 or int64_literal(n) else None
            return None if isinstance(n, ast.Identifier) else t.signed

        ls, rs = signed(left, left_node), signed(right, right_node)
        left, right = (INT64 if int64_literal(n) else t for t, n in ((left, left_node), (right, right_node)))
        if None not in (ls, rs) and ls != rs:
            if op in ARITHMETIC:
                self.warning(f"arithmetic on integers of different signs: '{left}' and "
                             f"'{right}' can lead to undefined behavior", op_span)
            elif op in COMPARISON:
                self.warning(f"comparison of integers of different signs: '{left}' and "
                             f"'{right}' can lead to undefined behavior", op_span)
        if op in ("/", "%") and (ls or rs):  # (after the warning above, if both apply)
            self.warning(f"signed operands for '{op}' can lead to undefined behavior "
                         "(cast to unsigned to silence warning)", op_span)

    def e_Unop(self, node: ast.Unop) -> Type:
        op = node.op
        if op in ("++", "--"):
            return self.incdec(node)
        if op == "&":
            return self.address_of(node)
        t = self.expr(node.operand)
        if t.kind == "none" and op != "*":
            self.final_error(f"The {op} operator can not be used on expressions of type '{t}'", node.span)
            return int_type(*unary_type(op, 64, False))
        if t.kind == "none":
            return NONE
        if op == "*":
            if t.kind == "pointer":
                return t.elems[0]
            if t.is_int:
                return UINT64
        elif t.is_int:
            return int_type(*unary_type(op, t.size * 8, t.signed))
        # a known type that is wrong: bpftrace says so in whichever pass it is, beside that pass's
        # other errors (``$v = "s"; $v = 1; !$v`` gives both)
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
        if info is not None and not info.value.is_int and info.value.kind != "pointer":
            return self.final_error(f"The {node.op} operator can not be used on expressions of type "
                                    f"'{info.value}'", node.span)
        self._set_map(target, keys, INT64, "value")
        ast.set_type(target, self.maps[target.name].value)
        return self.maps[target.name].value

    def e_Ternary(self, node: ast.Ternary) -> Type:
        cond = self.expr(node.cond)
        left, right = self.expr(node.left), self.expr(node.right)
        if cond.kind not in ("int", "none"):
            word = "pointer" if cond.kind == "pointer" else kind_word(cond)
            return self.final_error(f"Invalid condition in ternary: {word}", node.span)
        if left.kind == "none" or right.kind == "none":
            return NONE
        if left.kind == "tuple" and compatible(left, right):
            return self.error(f"Ternary return type unsupported {kind_word(left)}", node.span)
        if not compatible(left, right):
            return self.final_error("Ternary operator must return the same type: have "
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
            return self.final_error(f"Can not access index {node.index} on expression of type '{t}'",
                              node.span)
        if node.index >= len(t.elems):
            return self.final_error(f"Invalid tuple index: {node.index}. Found {len(t.elems)} elements "
                              "in tuple.", node.span)
        return t.elems[node.index]

    def e_FieldAccess(self, node: ast.FieldAccess) -> Type:
        t = self.expr(node.expr)
        if t.kind == "none":
            return NONE
        rec = t
        if t.kind == "tuple" and t.names and not node.arrow:
            return self.record_field(node, t)
        if node.arrow:
            if t.kind != "pointer" or t.elems[0].kind != "record":
                return self.error(f"Can not access field '{node.field}' on type '{t}'. Try "
                                  f"dereferencing it first, or using '.'", node.span)
            rec = t.elems[0]
        elif t.kind == "pointer" and self.modern and t.elems[0].kind == "record":
            ast.lower_to_arrow(node)  # `.` through a pointer: bpftrace 0.25+, and `args.f` 0.19+
            rec = t.elems[0]
        elif t.kind == "pointer":
            return self.error(f"Can not access field '{node.field}' on type '{t}'. Try "
                              "dereferencing it first, or using '->'", node.span)
        elif t.kind != "record":
            return self.final_error(f"Can not access field '{node.field}' on expression of type '{t}'",
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
        if self.modern and t.kind in ("tuple", "string"):
            return self.index_tuple_or_string(node, t, idx)
        if t.kind not in ("array", "pointer"):
            return self.final_error("The array index operator [] can only be used on arrays and "
                              f"pointers, found {kind_word(t)}.", node.span)
        if not idx.is_int:
            return self.final_error(f"The array index operator [] only accepts integer indices, found {idx}.",
                              node.span)
        return t.elems[0]

    def e_Cast(self, node: ast.Cast) -> Type:
        operand = self.expr(node.expr)
        base = INT_TYPE_NAMES.get(node.type_name)
        if base is not None and not node.pointer and operand.kind == "none" and isinstance(node.expr, ast.Map):
            # a map no probe has written yet in this pass (a later one writes it): 0.17 stops here
            self.error('Cannot cast from "none" type', node.span)
            return self.error('Casts are not supported for type: "none"', node.span)
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

    def e_Boolean(self, node: ast.Boolean) -> Type:
        return BOOL

    def e_Offsetof(self, node: ast.Offsetof) -> Type:
        """``offsetof(struct T, f.g)`` (today's language): the byte offset, from the script's
        structs or BTF; codegen loads ``node.size``."""
        name, offset = node.type_name, 0
        for i, fname in enumerate(node.fields):
            fields = self.env.resolver.struct_fields(name) if self.env.resolver else None
            if fields is None:
                return self.error(f"'{name}' is not a struct type" if i else f"Unknown identifier: '{name}'",
                                  node.span)
            found = next((f for f in fields if f.name == fname), None)
            if found is None:
                return self.error(f"'{name}' has no field named '{fname}'", node.span)
            offset += found.offset
            name = found.type.name
        ast.set_size(node, offset)
        return UINT64

    def e_Sizeof(self, node: ast.Sizeof) -> Type:
        """The one place sizeof() is sized: a type by name (script structs over BTF), an
        expression by its type; codegen loads ``node.size``."""
        if node.expr is not None:
            t = self.expr(node.expr)
            ast.set_size(node, t.size if isinstance(t.size, int) else None)
            return UINT64
        if node.type_name in INT_TYPE_NAMES:
            size = INT_TYPE_NAMES[node.type_name].size
        else:
            size = self.env.resolver.type_size(node.type_name) if self.env.resolver else None
            if size is None:
                return self.error(f"Unknown identifier: '{node.type_name}'", node.span)
        ast.set_size(node, size)
        return UINT64


def enum_value(node: ast.Identifier, env: Env) -> int:
    """The constant an Identifier (an enumerator) stands for, after analysis."""
    lookup = getattr(env.resolver, "enum_value", None)
    value = lookup(node.name) if lookup is not None else None
    if value is None:
        raise KeyError(node.name)
    return value


def analyse(program: ast.Program, env: Env | None = None, source: str = "",
            filename: str = "stdin") -> Analysis:
    """Type-check a parsed program; raises Diagnostic (errors and warnings, in order)."""
    env = env or Env()
    script_structs = parse_c_structs(program.c_definitions, env.resolver)
    if script_structs:
        env = replace(env, resolver=LayeredResolver(script_structs, env.resolver))
    maps: dict[str, MapInfo] = {}
    # bpftrace's passes: maps keep the types earlier passes gave them, so a map may be read
    # before (or in a probe before) the one that writes it; a pass that reports an error
    # ends the analysis, and the last pass adds the errors that need every type known.
    for _ in range(9):
        before = dict(maps)
        report = Reporter(source, filename)
        Checker(env, maps, report, final=False).program(program)
        if report.errors:  # (with the warnings bpftrace printed as they came in that pass)
            raise Diagnostic(report.warnings + report.errors, source=source, filename=filename)
        if maps == before:
            break
    report = Reporter(source, filename)
    checker = Checker(env, maps, report)
    checker.program(program)
    if report.errors:
        # bpftrace prints a pass's warnings as they come, its errors at the end of the pass
        raise Diagnostic(report.warnings + report.errors, source=source, filename=filename)
    if checker.unsupported:
        raise Diagnostic(checker.unsupported, source=source, filename=filename)
    return Analysis(program, maps, report.warnings, env)
