"""bpftrace AST -> eBPF programs, emitted directly through ebpfpy's builder (no LLVM).

One program per concrete probe target: a wildcard tracepoint becomes one small
program per tracepoint, each knowing its own ``args`` layout and ``probe`` name.

Conventions that keep the verifier happy by construction:

* r6 holds the context for the whole program; integer results are left in r0;
  a binary operation parks its left operand on the stack while the right one
  is computed, so no live value is ever in r1..r5 across a helper call;
* every value has a ``Shape`` (see ``shapes.py``) whose size is a multiple of
  8, and every buffer handed to a helper is zeroed first;
* every map lookup is followed by its null check (``ebpfpy.codegen``);
* scratch variables get their stack slots at program entry (found by a first,
  discarded run of the same code generator), so a variable first assigned in
  one branch is still initialised in the other.

Each AST node kind has one small method (``expr_<Kind>``/``stmt_<Kind>``);
builtins and functions are tables of small methods too.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import importlib

providers = importlib.import_module("ebpfpy.attach.provider")
from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.ctx import emit_arg_load, emit_reg_load, emit_retval_load, pt_regs_offset
from ebpfpy.codegen.mapops import BPF_NOEXIST, emit_map_add, emit_map_delete, emit_map_update
from ebpfpy.codegen.stack import StackFrame, StackSlot
from ebpfpy.isa.builder import FP, R0, R1, R2, R6, R7, R8, R9, Builder
from ebpfpy.sys.consts import MapType, ProgType

from . import ast, shapes
from .aggregations import AGGREGATIONS
from .compiled import EVENTS_MAP, ActionPlan, CompiledScript, MapPlan, ProbePlan
from .diagnostics import Diagnostic, Message
from .output.printf import PrintfFormat, check_arguments
from .shapes import INT, NONE, UINT, Shape

BPF_F_CURRENT_CPU = 0xFFFFFFFF
BPF_F_USER_STACK = 1 << 8
STACK_DEPTH = 127
VARIABLE_AREA = 256  # bytes of stack reserved for $variables; temporaries live below


@dataclass
class Env:
    """Everything the compiler needs from the command line and the system."""

    strlen: int = 64
    map_keys_max: int = 4096
    params: tuple = ()  # positional parameters $1..$N as strings
    cpid: int = 0
    pid: int = -1
    unsafe: bool = False
    start_ns: int = field(default_factory=time.monotonic_ns)
    source: str = ""
    filename: str = "stdin"


@dataclass
class Val:
    """A value produced by an expression: in r0 (``slot`` None) or in a stack slot."""

    shape: Shape
    slot: Optional[StackSlot] = None


class CompileError(Diagnostic):
    pass


def error(message: str, node: Optional[ast.Node]) -> CompileError:
    span = getattr(node, "span", None)
    return CompileError([Message(message, span if span and span.line else None)])


_COMPARE = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_SIGNED_COMPARE = {"lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"}
_ALU = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "&": "and", "|": "or", "^": "xor",
        "<<": "lsh", ">>": "rsh"}


class ScriptState:
    """What all programs of one script share: maps, actions, probe names, variable layouts."""

    def __init__(self, env: Env):
        self.env = env
        self.script = CompiledScript()
        self.map_shapes: dict[str, tuple] = {}  # name -> (kind, key shapes, value shape, lhist)
        self.probe_names: list[str] = []
        self.printf_actions: dict = {}

    def need_map(self, name: str, map_type: MapType, key_size: int, value_size: int, max_entries: int) -> str:
        if name not in self.script.maps:
            self.script.maps[name] = MapPlan(name, map_type, key_size, value_size, max_entries)
        return name

    def events(self) -> str:
        return self.need_map(EVENTS_MAP, MapType.PERF_EVENT_ARRAY, 4, 4, _possible_cpus())

    def probe_index(self, name: str) -> int:
        if name not in self.probe_names:
            self.probe_names.append(name)
        return self.probe_names.index(name)


def _possible_cpus() -> int:
    from ebpfpy.maps import _ncpus

    return _ncpus()


class ProbeCodegen:
    """Generates the program for one probe body on one concrete target."""

    def __init__(self, state: ScriptState, probe: ast.Probe, target: Any, context, prog_type,
                 variables: Optional[dict] = None, final: bool = True):
        self.state = state
        self.env = state.env
        self.probe = probe
        self.target = target
        self.ctx = context
        self.prog_type = prog_type
        self.final = final
        self.b = Builder()
        self.vars_frame = StackFrame(self.b, limit=VARIABLE_AREA)
        self.frame = StackFrame(self.b)
        self.frame.used = VARIABLE_AREA
        self.variables: dict[str, Val] = {}
        self.var_shapes: dict[str, Shape] = dict(variables or {})
        self.loops: list[tuple[str, str]] = []
        self.exit_label = "probe_exit"

    # -- driver ----------------------------------------------------------------

    def generate(self) -> Builder:
        b = self.b
        b.mov(R6, R1)
        for name, shape in self.var_shapes.items():
            self.variables[name] = Val(shape, self.vars_frame.alloc(shape.size, name=name))
        if self.probe.pred is not None:
            with b.at(self.probe.pred.span[:3]):
                self.int_value(self.probe.pred)
                b.jeq(R0, 0, self.exit_label)
        self.block(self.probe.body)
        b.label(self.exit_label)
        b.mov(R0, 0)
        b.exit()
        return b

    def block(self, stmts) -> None:
        for stmt in stmts:
            with self.b.at(stmt.span[:3] if stmt.span.line else None), self.frame.scope():
                getattr(self, "stmt_" + type(stmt).__name__)(stmt)

    # -- statements --------------------------------------------------------------

    def stmt_ExprStmt(self, stmt: ast.ExprStmt) -> None:
        self.expr(stmt.expr, statement=True)

    def stmt_Assign(self, stmt: ast.Assign) -> None:
        expr = stmt.expr
        if stmt.op:
            expr = ast.Binop(stmt.op, stmt.target, stmt.expr, span=stmt.span)
        if isinstance(stmt.target, ast.Variable):
            self.assign_variable(stmt.target, expr)
        else:
            self.assign_map(stmt.target, expr)

    def stmt_If(self, stmt: ast.If) -> None:
        b = self.b
        orelse, done = b.fresh_label("else"), b.fresh_label("endif")
        self.int_value(stmt.cond)
        b.jeq(R0, 0, orelse)
        self.block(stmt.then)
        b.ja(done)
        b.label(orelse)
        if stmt.orelse:
            self.block(stmt.orelse)
        b.label(done)

    def stmt_While(self, stmt: ast.While) -> None:
        b = self.b
        top, done = b.fresh_label("while"), b.fresh_label("endwhile")
        b.label(top)
        self.int_value(stmt.cond)
        b.jeq(R0, 0, done)
        self.loops.append((top, done))
        self.block(stmt.body)
        self.loops.pop()
        b.ja(top)
        b.label(done)

    def stmt_Unroll(self, stmt: ast.Unroll) -> None:
        count = self.constant(stmt.count)
        if not 1 <= count <= 100:
            raise error("unroll maximum value is 100", stmt.count)
        for _ in range(count):
            self.block(stmt.body)

    def stmt_Jump(self, stmt: ast.Jump) -> None:
        if stmt.kind == "return":
            self.b.ja(self.exit_label)
            return
        if not self.loops:
            raise error(f"{stmt.kind} used outside of a loop", stmt)
        top, done = self.loops[-1]
        self.b.ja(top if stmt.kind == "continue" else done)

    # -- variables and maps ----------------------------------------------------------

    def assign_variable(self, target: ast.Variable, expr: ast.Expr) -> None:
        val = self.expr(expr)
        known = self.var_shapes.get(target.name)
        if known is None:
            self.var_shapes[target.name] = known = val.shape
        elif known.kind != val.shape.kind:
            raise error(f"Type mismatch for {target.name}: trying to assign value of type "
                        f"'{val.shape.describe()}' when variable already contains a value of type "
                        f"'{known.describe()}'", target)
        slot = self.variables.get(target.name)
        if slot is None:
            # discarded first run: give it a slot now so the rest of the body can use it
            slot = self.variables[target.name] = Val(known, self.vars_frame.alloc(known.size, name=target.name))
        self.store(val, slot.slot, known.size)

    def map_key(self, node: ast.Map) -> tuple:
        """Build the key in a zeroed stack slot; returns (slot, key shapes)."""
        if not node.keys:
            slot = self.frame.alloc(8, name="key")
            return slot, ()
        vals = []
        parts = []
        for key in node.keys:
            val = self.expr(key)
            if val.slot is None:
                val = self.spill(val)
            vals.append(val)
            parts.append(val.shape)
        size = sum(p.size for p in parts)
        slot = self.frame.alloc(size, name="key")
        pos = 0
        for val in vals:
            self.copy(val.slot, slot.field(pos, val.shape.size))
            pos += val.shape.size
        return slot, tuple(parts)

    def declare_map(self, node: ast.Map, kind: str, key_shapes: tuple, value: Shape, lhist=None) -> str:
        known = self.state.map_shapes.get(node.name)
        if known is None:
            self.state.map_shapes[node.name] = (kind, key_shapes, value, lhist)
        else:
            old_kind, old_keys, old_value, _ = known
            if [k.kind for k in old_keys] != [k.kind for k in key_shapes] and old_keys is not None:
                if not old_keys or not key_shapes:
                    raise error(f"Argument mismatch for {node.name}: trying to access with "
                                f"{'no' if not key_shapes else len(key_shapes)} arguments when map "
                                f"expects {'no' if not old_keys else len(old_keys)} arguments", node)
                raise error(f"Argument mismatch for {node.name}: trying to access with arguments: "
                            f"{_describe_keys(key_shapes)} when map expects arguments: "
                            f"{_describe_keys(old_keys)}", node)
            if old_kind != kind and kind != "read":
                raise error(f"Type mismatch for {node.name}: trying to assign value of type "
                            f"'{_kind_name(kind, value)}' when map already contains a value of type "
                            f"'{_kind_name(old_kind, old_value)}'", node)
            if kind == "int" and old_value.kind != value.kind:
                raise error(f"Type mismatch for {node.name}: trying to assign value of type "
                            f"'{value.describe()}' when map already contains a value of type "
                            f"'{old_value.describe()}'", node)
        return node.name

    def map_plan(self, name: str) -> str:
        """Make sure the BPF map for a user map exists in the compiled script (final run only)."""
        kind, key_shapes, value, lhist = self.state.map_shapes[name]
        key_size = max(8, sum(k.size for k in key_shapes))
        agg = AGGREGATIONS.get(kind)
        if agg is not None and agg.bucketed:
            key_size = sum(k.size for k in key_shapes) + 8
        plans = self.state.script.maps
        if name not in plans:
            if agg is not None:
                plan = MapPlan(name, MapType.PERCPU_HASH, key_size, agg.value_size, self.env.map_keys_max,
                               kind=kind, keyed=bool(key_shapes), bucket_key=agg.bucketed, lhist=lhist)
                fold = agg.fold
                plan.decode_value = lambda raw, services: fold(raw)
                key_parts = key_shapes + ((UINT,) if agg.bucketed else ())
            else:
                plan = MapPlan(name, MapType.HASH, key_size, value.size, self.env.map_keys_max,
                               kind="int", keyed=bool(key_shapes))
                plan.decode_value = shapes.decoder(value)
                key_parts = key_shapes
            plan.decode_key = shapes.key_decoder(key_parts) if key_parts else None
            plans[name] = plan
        return name

    def assign_map(self, target: ast.Map, expr: ast.Expr) -> None:
        if isinstance(expr, ast.Call) and expr.name in AGGREGATIONS:
            self.aggregate(target, expr)
            return
        val = self.expr(expr)
        if val.slot is None:
            val = self.spill(val)
        key, key_shapes = self.map_key(target)
        name = self.declare_map(target, "int", key_shapes, val.shape)
        self.map_plan(name)
        emit_map_update(self.b, name, key, val.slot)

    def aggregate(self, target: ast.Map, call: ast.Call) -> None:
        b = self.b
        agg = call.name
        lhist = None
        args = call.args
        expected = {"count": 0, "hist": 1, "lhist": 4}.get(agg, 1)
        if len(args) != expected:
            raise error(f"{agg}() requires {expected} argument{'s' if expected != 1 else ''} "
                        f"({len(args)} provided)" if expected else
                        f"{agg}() should take 0 arguments ({len(args)} provided)", call)
        if agg == "lhist":
            lhist = tuple(self.constant(a, f"lhist() expects a integer literal") for a in args[1:])
            low, high, step = lhist
            if step <= 0 or high <= low or step > high - low:
                raise error("lhist() step is too large for the given range", call)
        value_reg_needed = agg != "count"
        if value_reg_needed:
            self.int_value(args[0])
            b.mov(R7, R0)  # survives the helper calls below
        key, key_shapes = self.map_key(target)
        name = self.declare_map(target, agg, key_shapes, INT, lhist)
        self.map_plan(name)
        if AGGREGATIONS[agg].bucketed:
            self.emit_bucket(agg, lhist)
            bucket_key = self.frame.alloc(key.size + 8, name="bucket key")
            self.copy(key, bucket_key.field(0, key.size)) if key_shapes else None
            b.stx(8, FP, R8, bucket_key.off + (key.size if key_shapes else 0))
            if not key_shapes:
                bucket_key = StackSlot(bucket_key.off, 8, "bucket key")
            emit_map_add(self.frame, name, bucket_key, 1)
            return
        if agg == "count":
            emit_map_add(self.frame, name, key, 1)
        elif agg == "sum":
            emit_map_add(self.frame, name, key, R7)
        elif agg in ("avg", "stats"):
            self.emit_pair_update(name, key, count_first=True)
        else:
            self.emit_extreme(name, key, agg)

    def emit_bucket(self, agg: str, lhist) -> None:
        """r8 = the histogram bucket of the value in r7."""
        b = self.b
        done = b.fresh_label("bucket")
        if agg == "hist":
            b.mov(R8, 0)
            b.jslt(R7, 0, done)
            b.mov(R8, 1)
            b.jeq(R7, 0, done)
            b.mov(R1, R7)
            b.mov(R8, 2)
            for shift in (32, 16, 8, 4, 2, 1):
                skip = b.fresh_label("log2")
                b.mov(R2, R1)
                b.rsh(R2, shift)
                b.jeq(R2, 0, skip)
                b.mov(R1, R2)
                b.add(R8, shift)
                b.label(skip)
            b.label(done)
            return
        low, high, step = lhist
        buckets = (high - low) // step
        b.mov(R8, 0)
        self.load_const(R1, low)
        b.jslt(R7, R1, done)
        b.mov(R8, buckets + 1)
        self.load_const(R1, high)
        b.jsge(R7, R1, done)
        b.mov(R8, R7)
        self.load_const(R1, low)
        b.sub(R8, R1)
        self.load_const(R1, step)
        b.div(R8, R1)
        b.add(R8, 1)
        b.label(done)

    def emit_pair_update(self, name: str, key: StackSlot, count_first: bool) -> None:
        """avg/stats: value {count, total} += {1, r7}."""
        b = self.b
        missing, done = b.fresh_label("new"), b.fresh_label("updated")
        emit_helper_call(b, "map_lookup_elem", name, key)
        b.jeq(R0, 0, missing)
        b.mov(R1, 1)
        b.atomic_add(8, R0, R1, 0)
        b.atomic_add(8, R0, R7, 8)
        b.ja(done)
        b.label(missing)
        value = self.frame.alloc(16, name="avg value")
        b.st(8, FP, 1, value.off)
        b.stx(8, FP, R7, value.off + 8)
        emit_map_update(b, name, key, value, BPF_NOEXIST)
        b.label(done)

    def emit_extreme(self, name: str, key: StackSlot, agg: str) -> None:
        """min/max: value {value, is_set}; replace when unset or beaten."""
        b = self.b
        missing, store, done = b.fresh_label("new"), b.fresh_label("store"), b.fresh_label("kept")
        emit_helper_call(b, "map_lookup_elem", name, key)
        b.jeq(R0, 0, missing)
        b.ldx(8, R1, R0, 8)
        b.jeq(R1, 0, store)
        b.ldx(8, R1, R0, 0)
        b.jmp("sge" if agg == "min" else "sle", R7, R1, done)
        b.label(store)
        b.stx(8, R0, R7, 0)
        b.st(8, R0, 1, 8)
        b.ja(done)
        b.label(missing)
        value = self.frame.alloc(16, name="min/max value")
        b.stx(8, FP, R7, value.off)
        b.st(8, FP, 1, value.off + 8)
        emit_map_update(b, name, key, value, BPF_NOEXIST)
        b.label(done)

    # -- expressions ----------------------------------------------------------------

    def expr(self, node: ast.Expr, statement: bool = False) -> Val:
        method = getattr(self, "expr_" + type(node).__name__, None)
        if method is None:
            raise error(f"{type(node).__name__} expressions are not supported yet", node)
        return method(node)

    def int_value(self, node: ast.Expr) -> Shape:
        """Evaluate an integer expression into r0."""
        val = self.expr(node)
        if val.slot is not None:
            if not val.shape.in_register:
                if val.shape.kind == "str":
                    # a string in a condition is true when non-empty
                    self.b.ldx(1, R0, FP, val.slot.off)
                    return UINT
                raise error(f"type mismatch: expected an integer, got {val.shape.describe()}", node)
            self.b.ldx(8, R0, FP, val.slot.off)
        return val.shape

    def spill(self, val: Val) -> Val:
        slot = self.frame.alloc(8, zero=False, name="spill")
        self.b.stx(8, FP, R0, slot.off)
        return Val(val.shape, slot)

    def store(self, val: Val, dst: StackSlot, size: int) -> None:
        if val.slot is None:
            self.b.stx(8, FP, R0, dst.off)
        else:
            self.copy(val.slot, StackSlot(dst.off, min(size, val.slot.size)))

    def copy(self, src: StackSlot, dst: StackSlot) -> None:
        size = min(src.size, dst.size)
        for pos in range(0, size - size % 8, 8):
            self.b.ldx(8, R1, FP, src.off + pos)
            self.b.stx(8, FP, R1, dst.off + pos)
        for pos in range(size - size % 8, size):
            self.b.ldx(1, R1, FP, src.off + pos)
            self.b.stx(1, FP, R1, dst.off + pos)

    def load_const(self, reg, value: int) -> None:
        if -(1 << 31) <= value < (1 << 31):
            self.b.mov(reg, value)
        else:
            self.b.ld_imm64(reg, value)

    def constant(self, node: ast.Expr, message: str = "expected an integer literal") -> int:
        if isinstance(node, ast.Integer):
            return node.value
        if isinstance(node, ast.Unop) and node.op == "-" and isinstance(node.operand, ast.Integer):
            return -node.operand.value
        if isinstance(node, ast.PositionalParam):
            text = self.param(node.index)
            if text.lstrip("-").isdigit():
                return int(text)
        raise error(message, node)

    def param(self, index: int) -> str:
        params = self.env.params
        return params[index - 1] if 0 < index <= len(params) else ""

    def expr_Integer(self, node: ast.Integer) -> Val:
        self.load_const(R0, node.value)
        return Val(INT)

    def expr_String(self, node: ast.String) -> Val:
        data = node.value.encode()[: self.env.strlen - 1]
        slot = self.frame.alloc(self.env.strlen, name="string literal")
        padded = data + bytes(-len(data) % 8)
        for pos in range(0, len(padded), 8):
            word = int.from_bytes(padded[pos:pos + 8], "little", signed=True)
            if word:
                self.load_const(R1, word)
                self.b.stx(8, FP, R1, slot.off + pos)
        return Val(shapes.string(self.env.strlen), slot)

    def expr_PositionalParam(self, node: ast.PositionalParam) -> Val:
        text = self.param(node.index)
        if text == "" or text.lstrip("-").isdigit():
            self.load_const(R0, int(text or 0))
            return Val(INT)
        return self.expr_String(ast.String(text, span=node.span))

    def expr_ParamCount(self, node) -> Val:
        self.load_const(R0, len(self.env.params))
        return Val(INT)

    def expr_Variable(self, node: ast.Variable) -> Val:
        val = self.variables.get(node.name)
        if val is None:
            raise error(f"Undefined or undeclared variable: {node.name}", node)
        if val.shape.in_register:
            self.b.ldx(8, R0, FP, val.slot.off)
            return Val(val.shape)
        return val

    def expr_Map(self, node: ast.Map) -> Val:
        b = self.b
        known = self.state.map_shapes.get(node.name)
        if known is None:
            if self.final:
                raise error(f"Undefined map: {node.name}", node)
            self.load_const(R0, 0)
            return Val(INT)
        kind, key_shapes, value, _ = known
        key, shapes_used = self.map_key(node)
        self.declare_map(node, "read", shapes_used, value)
        self.map_plan(node.name)
        missing, done = b.fresh_label("nokey"), b.fresh_label("got")
        if kind in AGGREGATIONS and AGGREGATIONS[kind].bucketed:
            raise error(f"Can not read from a {kind}() map", node)
        emit_helper_call(b, "map_lookup_elem", node.name, key)
        if value.in_register or kind in AGGREGATIONS:
            b.jeq(R0, 0, missing)
            b.ldx(8, R0, R0, 8 if kind in ("avg", "stats") else 0)
            b.ja(done)
            b.label(missing)
            b.mov(R0, 0)
            b.label(done)
            return Val(value if kind == "int" else INT)
        slot = self.frame.alloc(value.size, name="map value")
        b.jeq(R0, 0, done)
        b.mov(R1, R0)
        for pos in range(0, value.size, 8):
            b.ldx(8, R2, R1, pos)
            b.stx(8, FP, R2, slot.off + pos)
        b.label(done)
        return Val(value, slot)

    def expr_Binop(self, node: ast.Binop) -> Val:
        b = self.b
        if node.op in ("&&", "||"):
            out = b.fresh_label("logic")
            self.int_value(node.left)
            short = 0 if node.op == "&&" else 1
            b.mov(R1, short)
            b.jmp("eq" if node.op == "&&" else "ne", R0, 0, out + "_short")
            self.int_value(node.right)
            b.mov(R1, 1)
            b.jne(R0, 0, out)
            b.mov(R1, 0)
            b.ja(out)
            b.label(out + "_short")
            b.mov(R1, short)
            b.label(out)
            b.mov(R0, R1)
            return Val(INT)
        left = self.expr(node.left)
        if left.shape.kind == "str" and node.op in ("==", "!="):
            return self.string_compare(node, left)
        if left.slot is not None:
            if not left.shape.in_register:
                raise error(f"Invalid operand type {left.shape.describe()} for '{node.op}'", node)
            b.ldx(8, R0, FP, left.slot.off)
        signed = left.shape.signed
        right_const = None
        if isinstance(node.right, ast.Integer) and -(1 << 31) <= node.right.value < (1 << 31):
            right_const = node.right.value
        if right_const is None:
            parked = self.spill(Val(left.shape))
            rshape = self.int_value(node.right)
            signed = signed and rshape.signed
            b.mov(R1, R0)
            b.ldx(8, R0, FP, parked.slot.off)
            operand = R1
        else:
            operand = right_const
        if node.op in _COMPARE:
            cond = _COMPARE[node.op]
            if signed:
                cond = _SIGNED_COMPARE.get(cond, cond)
            done = b.fresh_label("cmp")
            b.mov(R2, R0)
            b.mov(R0, 1)
            b.jmp(cond, R2, operand, done)
            b.mov(R0, 0)
            b.label(done)
            return Val(INT)
        op = _ALU.get(node.op)
        if op is None:
            raise error(f"operator {node.op} is not supported", node)
        if op == "rsh" and signed:
            op = "arsh"
        b.alu(op, R0, operand)
        return Val(INT if signed else UINT)

    def string_compare(self, node: ast.Binop, left: Val) -> Val:
        b = self.b
        right = self.expr(node.right)
        if right.shape.kind != "str":
            raise error(f"Invalid operand type {right.shape.describe()} for '{node.op}'", node)
        size = min(left.shape.size, right.shape.size)
        differ, done = b.fresh_label("strne"), b.fresh_label("strcmp")
        for pos in range(size):
            b.ldx(1, R1, FP, left.slot.off + pos)
            b.ldx(1, R2, FP, right.slot.off + pos)
            b.jne(R1, R2, differ)
            b.jeq(R1, 0, done)
        b.label(done)
        b.mov(R0, 1 if node.op == "==" else 0)
        end = b.fresh_label("strend")
        b.ja(end)
        b.label(differ)
        b.mov(R0, 0 if node.op == "==" else 1)
        b.label(end)
        return Val(INT)

    def expr_Unop(self, node: ast.Unop) -> Val:
        b = self.b
        if node.op in ("++", "--"):
            target = node.operand
            step = ast.Binop("+" if node.op == "++" else "-", target, ast.Integer(1, span=node.span), span=node.span)
            if node.postfix:
                before = self.spill(Val(self.int_value(target)))
                self.stmt_Assign(ast.Assign(target, step, span=node.span))
                b.ldx(8, R0, FP, before.slot.off)
                return Val(INT)
            self.stmt_Assign(ast.Assign(target, step, span=node.span))
            self.int_value(target)
            return Val(INT)
        if node.op == "*":
            self.int_value(node.operand)
            slot = self.frame.alloc(8, name="deref")
            emit_helper_call(b, "probe_read_kernel", slot, 8, R0)
            b.ldx(8, R0, FP, slot.off)
            return Val(INT)
        shape = self.int_value(node.operand)
        if node.op == "!":
            done = b.fresh_label("not")
            b.mov(R1, R0)
            b.mov(R0, 1)
            b.jeq(R1, 0, done)
            b.mov(R0, 0)
            b.label(done)
            return Val(INT)
        if node.op == "-":
            b.neg(R0)
            return Val(INT)
        if node.op == "~":
            b.xor(R0, -1)
            return Val(shape)
        raise error(f"operator {node.op} is not supported", node)

    def expr_Ternary(self, node: ast.Ternary) -> Val:
        b = self.b
        other, done = b.fresh_label("tern_else"), b.fresh_label("tern_end")
        self.int_value(node.cond)
        b.jeq(R0, 0, other)
        left = self.expr(node.left)
        if left.shape.in_register:
            if left.slot is not None:
                b.ldx(8, R0, FP, left.slot.off)
            b.ja(done)
            b.label(other)
            self.int_value(node.right)
            b.label(done)
            return Val(left.shape)
        result = self.frame.alloc(left.shape.size, name="ternary")
        self.copy(left.slot, result)
        b.ja(done)
        b.label(other)
        right = self.expr(node.right)
        if right.slot is None or right.shape.kind != left.shape.kind:
            raise error("Ternary operator branches must have the same type", node)
        self.copy(right.slot, result)
        b.label(done)
        return Val(left.shape, result)

    def expr_Tuple(self, node: ast.Tuple) -> Val:
        vals = []
        for elem in node.elems:
            val = self.expr(elem)
            vals.append(val if val.slot is not None else self.spill(val))
        shape = shapes.tuple_of(v.shape for v in vals)
        slot = self.frame.alloc(shape.size, name="tuple")
        for val, off in zip(vals, shape.offsets()):
            self.copy(val.slot, slot.field(off, val.shape.size))
        return Val(shape, slot)

    def expr_TupleAccess(self, node: ast.TupleAccess) -> Val:
        val = self.expr(node.expr)
        if val.shape.kind != "tuple" or not 0 <= node.index < len(val.shape.elems):
            raise error(f"Invalid tuple index: {node.index}", node)
        elem = val.shape.elems[node.index]
        off = val.shape.offsets()[node.index]
        slot = val.slot.field(off, elem.size)
        if elem.in_register:
            self.b.ldx(8, R0, FP, slot.off)
            return Val(elem)
        return Val(elem, slot)

    def expr_Cast(self, node: ast.Cast) -> Val:
        shape = self.int_value(node.expr)
        bits = {"int8": 8, "uint8": 8, "int16": 16, "uint16": 16, "int32": 32, "uint32": 32,
                "int64": 64, "uint64": 64}.get(node.type_name)
        if bits is None or node.pointer:
            return Val(UINT)  # pointers and structs are plain addresses here
        signed = not node.type_name.startswith("u")
        if bits < 64:
            if signed:
                self.b.lsh(R0, 64 - bits)
                self.b.arsh(R0, 64 - bits)
            else:
                self.load_const(R1, (1 << bits) - 1) if bits == 32 else self.b.and_(R0, (1 << bits) - 1)
                if bits == 32:
                    self.b.and_(R0, R1)
        return Val(INT if signed else UINT)

    def expr_FieldAccess(self, node: ast.FieldAccess) -> Val:
        if isinstance(node.expr, ast.Builtin) and node.expr.name == "args" and self.ctx.args == "tracepoint":
            return self.tracepoint_field(node)
        raise error("struct member access needs BTF types, which pybpftrace does not read yet", node)

    def tracepoint_field(self, node: ast.FieldAccess) -> Val:
        b = self.b
        fields = {f.name: f for f in self.ctx.fields}
        f = fields.get(node.field)
        if f is None:
            raise error(f"Struct/union of type '{_tracepoint_struct(self.target)}' does not contain "
                        f"a field named '{node.field}'", node)
        if f.data_loc:
            slot = self.frame.alloc(self.env.strlen, name=f.name)
            b.ldx(4, R1, R6, f.offset)
            b.and_(R1, 0xFFFF)
            b.mov(R3, R6) if False else None
            b.add(R1, R6)
            emit_helper_call(b, "probe_read_kernel_str", slot, self.env.strlen, R1)
            return Val(shapes.string(self.env.strlen), slot)
        if f.array_len and f.element_size == 1 and "char" in f.type:
            slot = self.frame.alloc(max(8, f.size + 1), name=f.name)
            b.mov(R3, R6)
            b.add(R3, f.offset)
            emit_helper_call(b, "probe_read_kernel", StackSlot(slot.off, f.size), f.size, R3)
            return Val(shapes.string(max(8, f.size + 1)), slot)
        if f.array_len:
            slot = self.frame.alloc(max(8, f.size), name=f.name)
            b.mov(R3, R6)
            b.add(R3, f.offset)
            emit_helper_call(b, "probe_read_kernel", StackSlot(slot.off, f.size), f.size, R3)
            return Val(Shape("bytes", slot.size, False, extra=f.size), slot)
        size = f.size if f.size in (1, 2, 4, 8) else 8
        if f.signed and size < 8:
            b.ldx_sx(size, R0, R6, f.offset)
        else:
            b.ldx(size, R0, R6, f.offset)
        return Val(INT if f.signed else UINT)

    def expr_Builtin(self, node: ast.Builtin) -> Val:
        name = node.name
        if name.startswith("arg") and name[3:].isdigit():
            return self.builtin_arg(node, int(name[3:]), signed=False)
        if name.startswith("sarg") and name[4:].isdigit():
            raise error("sarg is not supported yet", node)
        method = getattr(self, "builtin_" + name, None)
        if method is None:
            raise error(f"Unknown identifier: '{name}'", node)
        return method(node)

    # -- builtins (one small method each) ----------------------------------------------

    def _call_int(self, helper: str, *args) -> None:
        emit_helper_call(self.b, helper, *args)

    def builtin_pid(self, node) -> Val:
        self._call_int("get_current_pid_tgid")
        self.b.rsh(R0, 32)
        return Val(UINT)

    def builtin_tid(self, node) -> Val:
        self._call_int("get_current_pid_tgid")
        self.b.and_(R0, 0x7FFFFFFF)
        return Val(UINT)

    def builtin_uid(self, node) -> Val:
        self._call_int("get_current_uid_gid")
        self.b.and_(R0, 0x7FFFFFFF)
        return Val(UINT)

    def builtin_gid(self, node) -> Val:
        self._call_int("get_current_uid_gid")
        self.b.rsh(R0, 32)
        return Val(UINT)

    def builtin_username(self, node) -> Val:
        self.builtin_uid(node)
        return Val(Shape("username", 8, False))

    def builtin_nsecs(self, node) -> Val:
        self._call_int("ktime_get_ns")
        return Val(UINT)

    def builtin_elapsed(self, node) -> Val:
        self._call_int("ktime_get_ns")
        self.load_const(R1, self.env.start_ns)
        self.b.sub(R0, R1)
        return Val(UINT)

    def builtin_cpu(self, node) -> Val:
        self._call_int("get_smp_processor_id")
        return Val(UINT)

    def builtin_rand(self, node) -> Val:
        self._call_int("get_prandom_u32")
        return Val(UINT)

    def builtin_cgroup(self, node) -> Val:
        self._call_int("get_current_cgroup_id")
        return Val(UINT)

    def builtin_curtask(self, node) -> Val:
        self._call_int("get_current_task")
        return Val(UINT)

    def builtin_cpid(self, node) -> Val:
        if not self.env.cpid:
            raise error("cpid cannot be used without child command", node)
        self.load_const(R0, self.env.cpid)
        return Val(UINT)

    def builtin_comm(self, node) -> Val:
        slot = self.frame.alloc(16, name="comm")
        emit_helper_call(self.b, "get_current_comm", slot, 16)
        return Val(shapes.string(16), slot)

    def builtin_probe(self, node) -> Val:
        index = self.state.probe_index(self.target.probe)
        self.load_const(R0, index)
        return Val(Shape("probe", 8, False, extra=self.state.probe_names))

    def builtin_retval(self, node) -> Val:
        if not self.ctx.retval:
            raise error("The retval builtin can only be used with 'kretprobe' and 'uretprobe' and "
                        "'kfunc' probes", node)
        emit_retval_load(self.b, R0, R6)
        return Val(INT)

    def builtin_arg(self, node, n: int, signed: bool) -> Val:
        if self.ctx.args == "usdt":
            from ebpfpy.attach.usdt import emit_usdt_arg

            if n >= len(self.ctx.usdt_args):
                raise error(f"usdt probe has only {len(self.ctx.usdt_args)} arguments", node)
            emit_usdt_arg(self.b, self.ctx.usdt_args[n], R0, R6)
            return Val(INT)
        if self.ctx.args != "pt_regs":
            raise error(f"The {node.name} builtin can only be used with 'kprobes', 'uprobes' and "
                        "'usdt' probes", node)
        emit_arg_load(self.b, R0, R6, n)
        return Val(UINT)

    def builtin_func(self, node) -> Val:
        if self.ctx.args not in ("pt_regs", "usdt"):
            raise error("The func builtin can only be used with kprobes, uprobes and kfuncs", node)
        emit_reg_load(self.b, R0, R6, "ip")
        kind = self.target.probe.split(":", 1)[0]
        if kind.startswith("u"):
            return self.user_symbol()
        return Val(Shape("ksym", 8, False))

    def user_symbol(self) -> Val:
        b = self.b
        slot = self.frame.alloc(16, name="usym")
        b.stx(8, FP, R0, slot.off)
        emit_helper_call(b, "get_current_pid_tgid")
        b.rsh(R0, 32)
        b.stx(8, FP, R0, slot.off + 8)
        return Val(Shape("usym", 16, False), slot)

    def builtin_kstack(self, node, limit: int = STACK_DEPTH, mode: str = "bpftrace") -> Val:
        name = self.state.need_map("$kstack", MapType.STACK_TRACE, 4, 8 * STACK_DEPTH, 4096)
        emit_helper_call(self.b, "get_stackid", R6, name, 0)
        return Val(Shape("kstack", 8, False, extra=(name, limit, mode)))

    def builtin_ustack(self, node, limit: int = STACK_DEPTH, mode: str = "bpftrace") -> Val:
        b = self.b
        name = self.state.need_map("$ustack", MapType.STACK_TRACE, 4, 8 * STACK_DEPTH, 4096)
        slot = self.frame.alloc(16, name="ustack")
        emit_helper_call(b, "get_stackid", R6, name, BPF_F_USER_STACK)
        b.stx(8, FP, R0, slot.off)
        emit_helper_call(b, "get_current_pid_tgid")
        b.rsh(R0, 32)
        b.stx(8, FP, R0, slot.off + 8)
        return Val(Shape("ustack", 16, False, extra=(name, limit, mode)), slot)

    def builtin_args(self, node) -> Val:
        raise error("args can only be used to access fields (args->field)", node)

    # -- function calls ------------------------------------------------------------------

    def expr_Call(self, node: ast.Call) -> Val:
        if node.name in AGGREGATIONS:
            raise error(f"{node.name}() should be directly assigned to a map", node)
        method = getattr(self, "call_" + node.name, None)
        if method is None:
            raise error(f"Unknown function: '{node.name}'", node)
        return method(node)

    def argc(self, node: ast.Call, low: int, high: Optional[int] = None) -> None:
        high = low if high is None else high
        n = len(node.args)
        if n < low or n > high:
            if low == high:
                raise error(f"{node.name}() requires {low} argument{'s' if low != 1 else ''} "
                            f"({n} provided)", node)
            raise error(f"{node.name}() takes up to {high} arguments ({n} provided)" if n > high else
                        f"{node.name}() requires at least {low} argument{'s' if low != 1 else ''} "
                        f"({n} provided)", node)

    def emit_event(self, action: ActionPlan, vals: list) -> None:
        """Send ``[action id][values...]`` through the events perf buffer."""
        b = self.b
        events = self.state.events()
        action_id = self.state.script.add_action(action) if self.final else 0
        size = 8 + sum(v.shape.size for v in vals)
        record = self.frame.alloc(size, name="event")
        self.load_const(R1, action_id)
        b.stx(8, FP, R1, record.off)
        pos = 8
        for val in vals:
            self.copy(val.slot, record.field(pos, val.shape.size))
            pos += val.shape.size
        emit_helper_call(b, "perf_event_output", R6, events, BPF_F_CURRENT_CPU, record, size)

    def event_args(self, exprs) -> list:
        vals = []
        for expr in exprs:
            val = self.expr(expr)
            vals.append(val if val.slot is not None else self.spill(val))
        return vals

    def _format_call(self, node: ast.Call, kind: str) -> Val:
        if not node.args or not isinstance(node.args[0], ast.String):
            raise error(f"{node.name}() expects a string literal as the first argument", node)
        fmt = node.args[0].value
        vals = self.event_args(node.args[1:])
        problem = check_arguments(fmt, [shapes.printf_kind(v.shape) for v in vals], node.name)
        if problem:
            raise error(problem, node)
        arg_shapes = tuple(v.shape for v in vals)
        decode_all = shapes.key_decoder(arg_shapes) if arg_shapes else (lambda data, services: ())
        self.emit_event(ActionPlan(kind, decode_all, PrintfFormat(fmt)), vals)
        return Val(NONE)

    def call_printf(self, node: ast.Call) -> Val:
        return self._format_call(node, "printf")

    def call_system(self, node: ast.Call) -> Val:
        if not self.env.unsafe:
            raise error("system() is an unsafe function being used in safe mode", node)
        return self._format_call(node, "system")

    def call_cat(self, node: ast.Call) -> Val:
        return self._format_call(node, "cat")

    def call_exit(self, node: ast.Call) -> Val:
        self.argc(node, 0)
        self.emit_event(ActionPlan("exit", lambda data, services: ()), [])
        self.b.ja(self.exit_label)
        return Val(NONE)

    def call_time(self, node: ast.Call) -> Val:
        self.argc(node, 0, 1)
        fmt = "%H:%M:%S\n"
        if node.args:
            if not isinstance(node.args[0], ast.String):
                raise error("time() expects a string literal", node)
            fmt = node.args[0].value
        self.emit_event(ActionPlan("time", lambda data, services: (), fmt), [])
        return Val(NONE)

    def _map_arg(self, node: ast.Call) -> str:
        if not node.args or not isinstance(node.args[0], ast.Map) or node.args[0].keys:
            raise error(f"{node.name}() expects a map to be provided", node)
        name = node.args[0].name
        if name not in self.state.map_shapes:
            if self.final:
                raise error(f"Undefined map: {name}", node.args[0])
            return name
        self.map_plan(name)
        return name

    def call_clear(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        name = self._map_arg(node)
        self.emit_event(ActionPlan("clear", lambda data, services: (), name), [])
        return Val(NONE)

    def call_zero(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        name = self._map_arg(node)
        self.emit_event(ActionPlan("zero", lambda data, services: (), name), [])
        return Val(NONE)

    def call_print(self, node: ast.Call) -> Val:
        self.argc(node, 1, 3)
        if isinstance(node.args[0], ast.Map) and not node.args[0].keys:
            name = self._map_arg(node)
            top = self.constant(node.args[1]) if len(node.args) > 1 else 0
            div = self.constant(node.args[2]) if len(node.args) > 2 else 1
            self.emit_event(ActionPlan("print_map", lambda data, services: (), (name, top, div)), [])
            return Val(NONE)
        vals = self.event_args(node.args[:1])
        self.emit_event(ActionPlan("print_value", shapes.key_decoder([vals[0].shape])), vals)
        return Val(NONE)

    def call_delete(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        target = node.args[0]
        if not isinstance(target, ast.Map):
            raise error("delete() expects a map to be provided", node)
        if target.name not in self.state.map_shapes:
            if self.final:
                raise error(f"Undefined map: {target.name}", target)
            return Val(NONE)
        key, key_shapes = self.map_key(target)
        self.declare_map(target, "read", key_shapes, INT)
        self.map_plan(target.name)
        emit_map_delete(self.b, target.name, key)
        return Val(NONE)

    def call_str(self, node: ast.Call) -> Val:
        self.argc(node, 1, 2)
        val = self.expr(node.args[0])
        if val.shape.kind == "str":
            return val
        if val.slot is not None:
            self.b.ldx(8, R0, FP, val.slot.off)
        b = self.b
        size = self.env.strlen
        if len(node.args) == 2:
            size = max(1, min(size, self.constant(node.args[1], "str() length must be an integer literal")))
        b.mov(R7, R0)
        slot = self.frame.alloc(_round8(size), name="str")
        emit_helper_call(b, "probe_read_str", StackSlot(slot.off, size), size, R7)
        return Val(shapes.string(_round8(size)), slot)

    def call_ksym(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        self.int_value(node.args[0])
        return Val(Shape("ksym", 8, False))

    def call_usym(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        self.int_value(node.args[0])
        return self.user_symbol()

    def call_kaddr(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        if not isinstance(node.args[0], ast.String):
            raise error("kaddr() expects a string literal", node)
        from ebpfpy.events.symbols import kaddr

        try:
            addr = kaddr(node.args[0].value)
        except (KeyError, LookupError):
            raise error(f"Failed to resolve kernel symbol: {node.args[0].value}", node) from None
        self.load_const(R0, addr)
        return Val(UINT)

    def call_kstack(self, node: ast.Call) -> Val:
        mode, limit = self._stack_args(node)
        return self.builtin_kstack(node, limit, mode)

    def call_ustack(self, node: ast.Call) -> Val:
        mode, limit = self._stack_args(node)
        return self.builtin_ustack(node, limit, mode)

    def _stack_args(self, node: ast.Call):
        mode, limit = "bpftrace", STACK_DEPTH
        for arg in node.args:
            if isinstance(arg, ast.StackMode) or isinstance(arg, ast.Identifier):
                mode = arg.name
            else:
                limit = self.constant(arg)
        return mode, limit

    def call_reg(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        if not isinstance(node.args[0], ast.String):
            raise error("reg() expects a string literal", node)
        emit_reg_load(self.b, R0, R6, node.args[0].value)
        return Val(UINT)

    def call_signal(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        if not self.env.unsafe:
            raise error("signal() is an unsafe function being used in safe mode", node)
        arg = node.args[0]
        if isinstance(arg, ast.String):
            import signal as _signal

            name = arg.value.upper()
            number = getattr(_signal, name if name.startswith("SIG") else "SIG" + name, None)
            if number is None:
                raise error(f"{arg.value} is not a valid signal", node)
            self.load_const(R1, int(number))
        else:
            self.int_value(arg)
            self.b.mov(R1, R0)
        emit_helper_call(self.b, "send_signal", R1)
        return Val(NONE)

    def call_ntop(self, node: ast.Call) -> Val:
        self.argc(node, 1, 2)
        import socket

        b = self.b
        arg = node.args[-1]
        slot = self.frame.alloc(24, name="inet")
        val = self.expr(arg)
        if val.shape.kind == "bytes":
            length = val.shape.extra
            family = socket.AF_INET if length == 4 else socket.AF_INET6
            b.st(8, FP, family, slot.off)
            self.copy(StackSlot(val.slot.off, min(16, _round8(length))), slot.field(8, min(16, _round8(length))))
        else:
            if val.slot is not None:
                b.ldx(8, R0, FP, val.slot.off)
            b.st(8, FP, socket.AF_INET, slot.off)
            b.stx(4, FP, R0, slot.off + 8)
        return Val(Shape("inet", 24, False), slot)

    def call_strncmp(self, node: ast.Call) -> Val:
        self.argc(node, 3)
        left, right = self.expr(node.args[0]), self.expr(node.args[1])
        n = self.constant(node.args[2])
        if left.shape.kind != "str" or right.shape.kind != "str":
            raise error("strncmp() expects two strings", node)
        b = self.b
        differ, done = b.fresh_label("ncmp_ne"), b.fresh_label("ncmp")
        for pos in range(min(n, left.shape.size, right.shape.size)):
            b.ldx(1, R1, FP, left.slot.off + pos)
            b.ldx(1, R2, FP, right.slot.off + pos)
            b.jne(R1, R2, differ)
            b.jeq(R1, 0, done)
        b.label(done)
        b.mov(R0, 0)
        end = b.fresh_label("ncmp_end")
        b.ja(end)
        b.label(differ)
        b.mov(R0, 1)
        b.label(end)
        return Val(INT)

    def call_join(self, node: ast.Call) -> Val:
        raise error("join() is not supported yet", node)


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


def _kind_name(kind: str, value: Shape) -> str:
    return value.describe() if kind == "int" else f"{kind}"


def _describe_keys(key_shapes) -> str:
    return ", ".join(k.describe() for k in key_shapes)


def _tracepoint_struct(target) -> str:
    parts = target.probe.split(":")
    return f"struct _tracepoint_{parts[-2]}_{parts[-1]}" if len(parts) >= 3 else "args"


# -- the script ------------------------------------------------------------------------

@dataclass
class ExpandedProbe:
    probe: ast.Probe
    targets: list  # (provider, target)


def expand_probes(program: ast.Program, pid: int = -1) -> list:
    """Resolve every attach point into concrete targets (wildcards included)."""
    out = []
    for probe in program.probes:
        targets = []
        for point in probe.attach_points:
            spec = point.raw
            try:
                prov, rest = providers.split_probe(spec)
                found = prov.expand(rest, pid=pid)
            except Exception as exc:  # attach-layer errors carry a readable message
                raise CompileError([Message(str(exc).strip("'\""), point.span if point.span.line else None)]) \
                    from None
            if not found:
                raise CompileError([Message(f"No probes to attach: {spec}",
                                            point.span if point.span.line else None)])
            targets.extend((prov, t) for t in found)
        out.append(ExpandedProbe(probe, targets))
    return out


def compile_script(program: ast.Program, env: Env) -> CompiledScript:
    """Compile a parsed script into programs, maps and actions for the runtime."""
    expanded = expand_probes(program, env.pid if env.pid > 0 else (env.cpid or -1))
    state = ScriptState(env)
    # First run: discover map shapes and each probe's variables; its output is discarded.
    variables = {}
    for item in expanded:
        for prov, target in item.targets:
            ctx = prov.context(target)
            gen = ProbeCodegen(state, item.probe, target, ctx, ctx.prog_type, final=False)
            gen.generate()
            variables[id(item.probe), target.probe] = gen.var_shapes
    state.script = CompiledScript()
    state.printf_actions = {}
    ordered = sorted(expanded, key=lambda e: _probe_order(e.probe))
    for item in ordered:
        for prov, target in item.targets:
            ctx = prov.context(target)
            gen = ProbeCodegen(state, item.probe, target, ctx, ctx.prog_type,
                               variables=variables[id(item.probe), target.probe])
            builder = gen.generate()
            label = ",".join(p.raw for p in item.probe.attach_points)
            state.script.probes.append(ProbePlan(target.probe, ctx.prog_type, builder, label=label))
    for name in state.map_shapes:
        gen_state_map = state.script.maps.get(name)
        if gen_state_map is None:
            # maps only ever read or cleared still exist, empty
            pass
    return state.script


def _probe_order(probe: ast.Probe) -> int:
    kinds = {p.raw for p in probe.attach_points}
    if "BEGIN" in kinds:
        return 0
    if "END" in kinds:
        return 2
    return 1
