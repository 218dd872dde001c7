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
  one branch is still initialised in the other;
* that first run also records every expression's shape, so the final run can
  lay out a printf event or a multi-part map key before evaluating anything
  and have each argument written straight into its place (``expr_into``);
* an expression whose value ends in r0 gives its stack temporaries back, and
  conditions compile to one compare-and-jump (``jump_if_false``);
* a wildcard whose body ignores the target (apart from ``probe``) is compiled
  once; each target gets a copy with its probe index patched in;
* such a wildcard over many syscall tracepoints (``t:syscalls:sys_enter_*``)
  becomes one program on the raw tracepoint behind ``raw_syscalls`` that finds
  the probe index by syscall number (``emit_syscall_dispatch``): one attach
  instead of ~360, and exit no longer waits ~40 ms per tracepoint for the
  kernel to detach.

Each AST node kind has one small method (``expr_<Kind>``/``stmt_<Kind>``);
builtins and functions are tables of small methods too.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

providers = importlib.import_module("ebpfpy.attach.provider")
from ebpfpy.attach.syscalls import COMPAT_CS, raw_syscalls_probe, syscall_of
from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.ctx import (
    emit_arg_load,
    emit_reg_load,
    emit_retval_load,
    pt_regs_offset,
)
from ebpfpy.codegen.mapops import (
    BPF_NOEXIST,
    emit_map_add,
    emit_map_delete,
    emit_map_update,
)
from ebpfpy.codegen.memory import emit_probe_read
from ebpfpy.codegen.stack import StackError, StackFrame, StackSlot
from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, BuildError, Builder
from ebpfpy.sys.consts import BPF_F_CURRENT_CPU, BPF_F_USER_STACK, PERF_MAX_STACK_DEPTH, MapType
from ebpfpy.sys.perf import possible_cpus

from . import ast, shapes
from .aggregations import AGGREGATIONS, MIN_BIAS
from .compiled import EVENTS_MAP, ActionPlan, CompiledScript, MapPlan, ProbePlan
from .diagnostics import Diagnostic, Message
from .helper_errors import HelperSite, checked, prefix_op_span, read_helper
from .output.printf import PrintfFormat, check_arguments
from .semantic import is_data_loc_field
from .shapes import INT, NONE, UINT, Shape

STACK_DEPTH = PERF_MAX_STACK_DEPTH
# The discarded first run cannot know the variables' sizes: it gets room it is never held to
# (within the 16-bit offsets instructions can encode); the final run gets the real 512 bytes.
FIRST_RUN_VARS = 8192
FIRST_RUN_STACK = 16384


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
    helper_errors: int = 0  # -k / -kk: which helper calls are followed by a check (helper_errors.py)
    warnings: bool = True
    # the value of an enumerator named in the script (true, TCP_SYN_SENT), None when unknown:
    # semantic analysis's resolver (BTF), which has already checked every name
    enum_value: Callable[[str], Optional[int]] = lambda name: None


@dataclass
class Val:
    """A value produced by an expression: in r0 (``slot`` None) or in a stack slot."""

    shape: Shape
    slot: Optional[StackSlot] = None


class CompileError(Diagnostic):
    pass


def stack_overflow_error(probe: ast.Probe) -> CompileError:
    """bpftrace 0.17 has no source position for this one (LLVM reports it), so neither do we:
    its exact text, naming the probe as written, with kinds spelled out."""
    name = ",".join(":".join((p.kind, *p.parts)) for p in probe.attach_points)
    return CompileError([Message(f"<unknown>:0:0: in function {name} i64 (i8*): Looks like the BPF stack "
                                 "limit of 512 bytes is exceeded. Please move large on stack variables "
                                 "into BPF per-cpu array map.\n\n", None, "error")])


def error(message: str, node: Optional[ast.Node]) -> CompileError:
    span = getattr(node, "span", None)
    return CompileError([Message(message, span if span and span.line else None)])


_COMPARE = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_SIGNED_COMPARE = {"lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"}
_NEGATE = {"eq": "ne", "ne": "eq", "lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}
_ALU = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "&": "and", "|": "or", "^": "xor",
        "<<": "lsh", ">>": "rsh"}


class ScriptState:
    """What all programs of one script share: maps, actions, probe names, variable layouts."""

    def __init__(self, env: Env):
        self.env = env
        self.script = CompiledScript()
        self.map_shapes: dict[str, tuple] = {}  # name -> (kind, key shapes, value shape, lhist)
        self.probe_names: list[str] = []
        self.c_structs: dict = {}  # "struct X" -> [types.Field]: structs the script defines
        self.printf_actions: dict = {}
        # (node id, target) -> Shape, recorded by the first run so the final one can lay out
        # an event before evaluating its arguments straight into it
        self.shape_hints: dict = {}

    def need_map(self, name: str, map_type: MapType, key_size: int, value_size: int, max_entries: int) -> str:
        if name not in self.script.maps:
            self.script.maps[name] = MapPlan(name, map_type, key_size, value_size, max_entries)
        return name

    def events(self) -> str:
        # one slot per CPU number (BPF_F_CURRENT_CPU indexes it by the running CPU's)
        return self.need_map(EVENTS_MAP, MapType.PERF_EVENT_ARRAY, 4, 4, max(possible_cpus()) + 1)

    def probe_index(self, name: str) -> int:
        if name not in self.probe_names:
            self.probe_names.append(name)
        return self.probe_names.index(name)


class ProbeCodegen:
    """Generates the program for one probe body on one concrete target."""

    def __init__(self, state: ScriptState, probe: ast.Probe, target: Any, context, prog_type,
                 variables: Optional[dict] = None, final: bool = True, dispatch: Optional[str] = None):
        self.state = state
        # raw_syscalls programs standing for many syscall tracepoints: the map that gives
        # each syscall number its probe index + 1 (see ``emit_syscall_dispatch``)
        self.dispatch = dispatch
        self.probe_slot: Optional[StackSlot] = None
        self.env = state.env
        self.probe = probe
        self.target = target
        self.ctx = context
        self.prog_type = prog_type
        self.final = final
        self.b = Builder()
        # $variables live at the top of the stack, sized from the first run's findings; the
        # discarded first run cannot know them yet, so it gets room it will never be held to.
        var_area = _round8(sum(s.size for s in (variables or {}).values())) if final else FIRST_RUN_VARS
        self.vars_frame = StackFrame(self.b, limit=var_area)
        self.frame = StackFrame(self.b) if final else StackFrame(self.b, limit=FIRST_RUN_STACK)
        self.frame.used = var_area
        self.variables: dict[str, Val] = {}
        self.var_shapes: dict[str, Shape] = dict(variables or {})
        self.loops: list[tuple[str, str]] = []
        self.exit_label = "probe_exit"
        # True right after an unconditional jump: the kernel rejects unreachable instructions
        self.dead = False
        self.var_reads: list[tuple[int, str]] = []  # first run: (node id, $name) of each read
        self.probe_sites: list[int] = []  # builder items that load this target's probe index
        self.site_spans: dict = {}  # -k: id(node) -> the span its helper failures report (helper_site)

    # -- driver ----------------------------------------------------------------

    def generate(self) -> Builder:
        try:
            return self._generate()
        except StackError:
            raise stack_overflow_error(self.probe) from None

    def _generate(self) -> Builder:
        b = self.b
        b.mov(R6, R1)
        pred = self.probe.pred
        # a syscall dispatch program runs for every syscall of the system: a predicate that
        # does not need ``probe`` (``/pid == 123/``) goes first, so most calls skip the lookup
        dispatch_first = self.dispatch is not None and (pred is None or _mentions_probe(pred))
        if dispatch_first:
            self.emit_syscall_dispatch()
        for name, shape in self.var_shapes.items():
            self.variables[name] = Val(shape, self.vars_frame.alloc(shape.size, name=name))
        if pred is not None:
            with b.at(pred.span[:3]):
                self.jump_if_false(pred, self.exit_label)
        if self.dispatch is not None and not dispatch_first:
            self.emit_syscall_dispatch()
        self.block(self.probe.body)
        b.label(self.exit_label)
        self.dead = False
        b.mov(R0, 0)
        b.exit()
        if not self.final:
            # a variable read before a later, wider assignment ($x = "abc"; ...; $x = "longer")
            # is laid out with the variable's final shape, which is what the final run reads
            for node_id, name in self.var_reads:
                self.state.shape_hints[node_id, self.target.probe] = self.var_shapes[name]
        return b

    def emit_syscall_dispatch(self) -> None:
        """Prologue of a program on the raw tracepoint ``sys_enter``/``sys_exit`` standing for
        many ``syscalls:sys_*`` tracepoints: read the syscall number (``orig_ax``) and code
        segment from the saved registers, leave at once for 32-bit (compat) syscalls, which the
        syscall tracepoints ignore, and for syscalls the script does not name (the dispatch
        map), and keep the probe index for ``probe``."""
        b = self.b
        nr_limit = self.state.script.maps[self.dispatch].max_entries
        first, last = pt_regs_offset("orig_ax"), pt_regs_offset("cs")
        regs = self.frame.alloc(last + 8 - first, zero=False, name="syscall registers")
        b.ldx(8, R3, R6, 0)  # ctx[0]: struct pt_regs *
        b.add(R3, first)
        emit_probe_read(b, regs, R3, space="kernel")
        b.ldx(8, R0, FP, regs.off + last - first)
        b.jeq(R0, COMPAT_CS, self.exit_label)
        self.probe_slot = regs.field(0, 8)  # the syscall number, then the probe index
        b.ldx(8, R0, FP, regs.off)
        b.jgt(R0, nr_limit - 1, self.exit_label)  # unsigned: also leaves for -1 and x32's numbers
        emit_helper_call(b, "map_lookup_elem", self.dispatch, self.probe_slot)
        b.jeq(R0, 0, self.exit_label)
        b.ldx(4, R0, R0, 0)
        b.jeq(R0, 0, self.exit_label)
        b.add(R0, -1)
        b.stx(8, FP, R0, self.probe_slot.off)

    def goto(self, label: str) -> None:
        """An unconditional jump that ends the straight-line code (nothing may follow it)."""
        self.b.ja(label)
        self.dead = True

    def block(self, stmts) -> None:
        for stmt in stmts:
            if self.dead:
                return  # after break/continue/return/exit(): unreachable, and rejected if emitted
            with self.b.at(stmt.span[:3] if stmt.span.line else None), self.frame.scope():
                try:
                    getattr(self, "stmt_" + type(stmt).__name__)(stmt)
                except BuildError as err:  # an instruction we cannot build: point at its statement
                    if isinstance(err, StackError) or not stmt.span.line:
                        raise
                    raise error(str(err).split(": ", 1)[-1] if str(err).startswith("insn ") else str(err),
                                stmt) from None

    # -- statements --------------------------------------------------------------

    def stmt_ExprStmt(self, stmt: ast.ExprStmt) -> None:
        self.expr(stmt.expr, statement=True)

    def stmt_Assign(self, stmt: ast.Assign) -> None:
        expr = stmt.expr
        if stmt.op:
            expr = ast.Binop(stmt.op, stmt.target, stmt.expr, span=stmt.span)
        if isinstance(stmt.target, ast.Variable):
            self.assign_variable(stmt.target, expr)
            return
        # -k: bpftrace reports a failed store at the '=', or at the whole statement for 'op='
        with self.helper_site(stmt.target, stmt.target.span.to(stmt.expr.span) if stmt.op else stmt.span):
            self.assign_map(stmt.target, expr)

    def stmt_If(self, stmt: ast.If) -> None:
        b = self.b
        orelse, done = b.fresh_label("else"), b.fresh_label("endif")
        self.jump_if_false(stmt.cond, orelse)
        self.block(stmt.then)
        then_dead = self.dead
        if not then_dead:
            b.ja(done)
        b.label(orelse)
        self.dead = False
        if stmt.orelse:
            self.block(stmt.orelse)
        b.label(done)
        self.dead = then_dead and self.dead

    def stmt_While(self, stmt: ast.While) -> None:
        b = self.b
        top, done = b.fresh_label("while"), b.fresh_label("endwhile")
        b.label(top)
        self.jump_if_false(stmt.cond, done)
        self.loops.append((top, done))
        self.block(stmt.body)
        self.loops.pop()
        if not self.dead:
            b.ja(top)
        b.label(done)
        self.dead = False

    def stmt_Unroll(self, stmt: ast.Unroll) -> None:
        count = self.constant(stmt.count)
        if not 1 <= count <= 100:
            raise error("unroll maximum value is 100", stmt.count)
        for _ in range(count):
            if self.dead:
                break
            self.block(stmt.body)

    def stmt_Jump(self, stmt: ast.Jump) -> None:
        if stmt.kind == "return":
            self.goto(self.exit_label)
            return
        if not self.loops:
            raise error(f"{stmt.kind} used outside of a loop", stmt)
        top, done = self.loops[-1]
        self.goto(top if stmt.kind == "continue" else done)

    # -- variables and maps ----------------------------------------------------------

    def assign_variable(self, target: ast.Variable, expr: ast.Expr) -> None:
        val = self.expr(expr)
        known = self.var_shapes.get(target.name)
        if known is not None and not self.final:
            self.var_shapes[target.name] = known = _wider(known, val.shape)
        if known is None:
            self.var_shapes[target.name] = known = val.shape
        elif known.kind != val.shape.kind:
            raise error(f"Type mismatch for {target.name}: trying to assign value of type "
                        f"'{val.shape.describe()}' when variable already contains a value of type "
                        f"'{known.describe()}'", target)
        slot = self.variables.get(target.name)
        if slot is None or slot.shape != known:
            # discarded first run: give it a slot now (or a wider one) so the rest of the body can use it
            slot = self.variables[target.name] = Val(known, self.vars_frame.alloc(known.size, name=target.name))
        self.store(val, slot.slot, known.size)

    def map_key(self, node: ast.Map, tail: int = 0) -> tuple:
        """Build the key on the stack; returns (slot, key shapes). ``tail`` extra bytes are left
        at the end of the slot, unwritten, for the caller (a histogram's bucket number)."""
        if not node.keys:
            slot = self.frame.alloc(tail or 8, zero=not tail, name="key")
            return slot, ()
        vals = []
        parts = []
        known = self.state.map_shapes.get(node.name)
        declared = known[1] if known and len(known[1]) == len(node.keys) else (None,) * len(node.keys)
        hints = [self.state.shape_hints.get((id(k), self.target.probe)) for k in node.keys]
        if self.final and (tail or len(node.keys) > 1) and all(
                h is not None and w is not None and (h.kind, h.size) == (w.kind, w.size)
                for h, w in zip(hints, declared)):
            # the layout is known: evaluate each part straight into its place in the key
            slot = self.frame.alloc(sum(w.size for w in declared) + tail, zero=False, name="key")
            pos = 0
            for key, want in zip(node.keys, declared):
                with self.frame.scope():
                    self.expr_into(key, slot.field(pos, want.size), want, clean=True)
                pos += want.size
            return slot, tuple(declared)
        for key, want in zip(node.keys, declared):
            val = self.expr(key)
            if val.slot is None:
                val = self.spill(val)
            if self.final and want is not None and want.kind == val.shape.kind and want.size != val.shape.size:
                val = self.coerce(val, want)  # strings take the size the map was declared with
            vals.append(val)
            parts.append(val.shape)
        if len(vals) == 1 and vals[0].slot.size == parts[0].size and not tail:
            return vals[0].slot, tuple(parts)  # a one-part key is the value's own slot: no copy
        size = sum(p.size for p in parts) + tail
        slot = self.frame.alloc(size, zero=False, name="key")  # every byte is copied in below
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
            if not self.final and len(old_keys) == len(key_shapes):
                # strings in keys and values take the largest size any use needs, as in bpftrace
                keys = tuple(_wider(o, k) for o, k in zip(old_keys, key_shapes))
                val = _wider(old_value, value) if kind != "read" else old_value
                self.state.map_shapes[node.name] = (old_kind, keys, val, known[3])
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
                               kind="int" if value.is_int else value.kind, keyed=bool(key_shapes))
                plan.decode_value = shapes.decoder(value)
                key_parts = key_shapes
            plan.decode_key = shapes.key_decoder(key_parts) if key_parts else None
            plan.key_shapes = tuple(key_parts)
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
        declared = self.state.map_shapes[name][2]
        if declared.kind == val.shape.kind and declared.size != val.shape.size:
            val = self.coerce(val, declared)
        emit_map_update(self.b, name, key, val.slot)
        self.check_helper("map_update_elem", target)

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
            lhist = tuple(self.constant(a, "lhist() expects a integer literal") for a in args[1:])
            low, high, step = lhist
            if step <= 0 or high <= low or step > high - low:
                raise error("lhist() step is too large for the given range", call)
        value_reg_needed = agg != "count"
        if value_reg_needed:
            self.int_value(args[0])
            b.mov(R7, R0)  # survives the helper calls below
        bucketed = AGGREGATIONS[agg].bucketed
        key, key_shapes = self.map_key(target, tail=8 if bucketed else 0)
        name = self.declare_map(target, agg, key_shapes, INT, lhist)
        self.map_plan(name)
        checks = {"on_missing": lambda: self.check_lookup_miss(call),
                  "on_insert": lambda: self.check_helper("map_update_elem", call)}
        if bucketed:
            self.emit_bucket(agg, lhist)
            b.stx(8, FP, R8, key.off + key.size - 8)  # the bucket number ends the key
            emit_map_add(self.frame, name, key, 1, **checks)
            return
        if agg == "count":
            emit_map_add(self.frame, name, key, 1, **checks)
        elif agg == "sum":
            emit_map_add(self.frame, name, key, R7, **checks)
        elif agg in ("avg", "stats"):
            self.emit_pair_update(name, key, count_first=True, site=call)
        else:
            self.emit_extreme(name, key, agg, site=call)

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
            # r8 += floor(log2(r1)) by halving, from 16 down as bpftrace 0.17 does: values of
            # 2**32 and more all land in the last bucket it prints, [2G, 4G)
            for shift in (16, 8, 4, 2, 1):
                skip = b.fresh_label("log2")
                b.jlt(R1, 1 << shift, skip)  # r1 > 0 here, so unsigned is right
                b.rsh(R1, shift)
                b.add(R8, shift)
                b.label(skip)
            b.label(done)
            return
        low, high, step = lhist
        buckets = (high - low) // step
        b.mov(R8, 0)
        b.jslt(R7, self.operand(low, R1), done)
        b.mov(R8, buckets + 1)
        b.jsge(R7, self.operand(high, R1), done)
        b.mov(R8, R7)
        if low:
            b.sub(R8, self.operand(low, R1))
        b.div(R8, self.operand(step, R1))  # unsigned is right: r8 >= 0 here
        b.add(R8, 1)
        b.label(done)

    def operand(self, value: int, scratch):
        """An immediate when it fits 32 bits, else ``scratch`` loaded with it."""
        if -(1 << 31) <= value < (1 << 31):
            return value
        self.load_const(scratch, value)
        return scratch

    def emit_pair_update(self, name: str, key: StackSlot, count_first: bool, site=None) -> None:
        """avg/stats: value {count, total} += {1, r7}; ``site``: the call -k reports failures at."""
        b = self.b
        missing, done = b.fresh_label("new"), b.fresh_label("updated")
        emit_helper_call(b, "map_lookup_elem", name, key)
        b.jeq(R0, 0, missing)
        b.mov(R1, 1)
        b.atomic_add(8, R0, R1, 0)
        b.atomic_add(8, R0, R7, 8)
        b.ja(done)
        b.label(missing)
        if site is not None:
            self.check_lookup_miss(site)
        value = self.frame.alloc(16, name="avg value")
        b.st(8, FP, 1, value.off)
        b.stx(8, FP, R7, value.off + 8)
        emit_map_update(b, name, key, value, BPF_NOEXIST)
        if site is not None:
            self.check_helper("map_update_elem", site)
        b.label(done)

    def emit_extreme(self, name: str, key: StackSlot, agg: str, site=None) -> None:
        """min/max as bpftrace 0.17 keeps them: one i64 per CPU, replaced when the new value
        is >= the old one (signed), a missing entry counting as 0; min stores MIN_BIAS - value
        so that the same rule keeps the smallest. 0.17's quirks follow and are kept: a negative
        max() and a min() above 0xffffffff are never stored, so never printed.
        ``site`` as for avg."""
        b = self.b
        missing, done = b.fresh_label("new"), b.fresh_label("kept")
        if agg == "min":
            self.load_const(R1, MIN_BIAS)
            b.sub(R1, R7)
            b.mov(R7, R1)
        emit_helper_call(b, "map_lookup_elem", name, key)
        b.jeq(R0, 0, missing)
        b.ldx(8, R1, R0, 0)
        b.jmp("sgt", R1, R7, done)
        b.stx(8, R0, R7, 0)
        b.ja(done)
        b.label(missing)
        if site is not None:
            self.check_lookup_miss(site)
        b.jslt(R7, 0, done)
        value = self.frame.alloc(8, name="min/max value")
        b.stx(8, FP, R7, value.off)
        emit_map_update(b, name, key, value, BPF_NOEXIST)
        if site is not None:
            self.check_helper("map_update_elem", site)
        b.label(done)

    # -- expressions ----------------------------------------------------------------

    def expr(self, node: ast.Expr, statement: bool = False) -> Val:
        method = getattr(self, "expr_" + type(node).__name__, None)
        if method is None:
            raise error(f"{type(node).__name__} expressions are not supported yet", node)
        frame = self.frame
        used, live = frame.used, len(frame._live)
        val = method(node)
        if not self.final:
            self.state.shape_hints[id(node), self.target.probe] = val.shape
        if val.slot is None:
            # the value is in r0: the stack temporaries that produced it are free again
            frame.used = used
            del frame._live[live:]
        return val

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

    def coerce(self, val: Val, shape: Shape) -> Val:
        """The value in a zeroed slot of ``shape``'s size (strings truncated or padded)."""
        slot = self.frame.alloc(shape.size, name="resized")
        self.copy(val.slot, slot)
        if shape.kind == "str" and shape.size < val.shape.size:
            self.b.st(1, FP, 0, slot.off + shape.size - 1)  # keep the terminating NUL
        return Val(shape, slot)

    def spill(self, val: Val) -> Val:
        slot = self.frame.alloc(8, zero=False, name="spill")
        self.b.stx(8, FP, R0, slot.off)
        return Val(val.shape, slot)

    def store(self, val: Val, dst: StackSlot, size: int) -> None:
        if val.slot is None:
            self.b.stx(8, FP, R0, dst.off)
        else:
            self.copy(val.slot, StackSlot(dst.off, min(size, val.slot.size)))
            for pos in range(val.slot.size, size, 8):
                self.b.st(8, FP, 0, dst.off + pos)  # a shorter string: clear the old tail

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

    def literal_size(self, text: str) -> int:
        return _round8(max(self.env.strlen, len(text.encode()) + 1))  # a literal is never truncated

    def expr_String(self, node: ast.String) -> Val:
        size = self.literal_size(node.value)
        slot = self.frame.alloc(size, name="string literal")
        self.write_literal(node.value, slot, zeroed=True)
        return Val(shapes.string(size), slot)

    def write_literal(self, text: str, slot: StackSlot, zeroed: bool) -> None:
        """Store a string's bytes into a slot, NUL-padded to its size."""
        data = text.encode()
        padded = data + bytes(-len(data) % 8 or 8) if len(data) % 8 == 0 else data + bytes(-len(data) % 8)
        for pos in range(0, slot.size, 8):
            word = int.from_bytes(padded[pos:pos + 8], "little", signed=True) if pos < len(padded) else 0
            if word:
                self.load_const(R1, word)
                self.b.stx(8, FP, R1, slot.off + pos)
            elif not zeroed:
                self.b.st(8, FP, 0, slot.off + pos)

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
        if not self.final:
            self.var_reads.append((id(node), node.name))
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
            self.check_lookup_miss(node)
            b.mov(R0, 0)
            b.label(done)
            return Val(value if kind == "int" else INT)
        slot = self.frame.alloc(value.size, name="map value")
        if self.helper_failed("map_lookup_elem", node) is None:
            b.jeq(R0, 0, done)
        else:  # -kk: the miss is reported on its way out
            found = b.fresh_label("found")
            b.jne(R0, 0, found)
            self.check_lookup_miss(node)
            b.ja(done)
            b.label(found)
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
        return self.finish_binop(node, left)

    def right_operand(self, node: ast.Binop, left_shape: Shape):
        """With the left operand in r0: the right one as an immediate, or in r1 (left back in r0)."""
        b = self.b
        signed = left_shape.signed
        if isinstance(node.right, ast.Integer) and -(1 << 31) <= node.right.value < (1 << 31):
            return node.right.value, signed
        parked = self.spill(Val(left_shape))
        rshape = self.int_value(node.right)
        b.mov(R1, R0)
        b.ldx(8, R0, FP, parked.slot.off)
        return R1, signed and rshape.signed

    def finish_binop(self, node: ast.Binop, left: Val) -> Val:
        b = self.b
        if left.shape.kind == "str" and node.op in ("==", "!="):
            return self.string_compare(node, left)
        if left.slot is not None:
            if not left.shape.in_register:
                raise error(f"Invalid operand type {left.shape.describe()} for '{node.op}'", node)
            b.ldx(8, R0, FP, left.slot.off)
        operand, signed = self.right_operand(node, left.shape)
        if node.op in ("/", "%") and isinstance(operand, int) and operand == 0:
            # the verifier rejects a constant divisor of 0; bpftrace's LLVM folds x/0 and x%0 to 0
            b.mov(R0, 0)
            return Val(INT if signed else UINT)
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
        b.alu(op, R0, operand)  # '>>' is a logical shift even on signed values, as in bpftrace 0.17
        return Val(INT if signed else UINT)

    def jump_if_false(self, cond: ast.Expr, label: str) -> None:
        """Branch to ``label`` when ``cond`` is false, with one compare-and-jump where possible
        (instead of materialising 0/1 in r0 and testing it)."""
        b = self.b
        with self.frame.scope():
            if isinstance(cond, ast.Binop) and cond.op == "&&":
                self.jump_if_false(cond.left, label)
                self.jump_if_false(cond.right, label)
                return
            if isinstance(cond, ast.Binop) and cond.op in _COMPARE:
                left = self.expr(cond.left)
                if left.shape.kind == "str" and isinstance(cond.right, ast.String) and cond.op in ("==", "!="):
                    self.literal_jump(left, cond.right.value.encode(), cond.op == "==", label)
                    return
                if left.shape.in_register:
                    if left.slot is not None:
                        b.ldx(8, R0, FP, left.slot.off)
                    operand, signed = self.right_operand(cond, left.shape)
                    test = _NEGATE[_COMPARE[cond.op]]
                    if signed:
                        test = _SIGNED_COMPARE.get(test, test)
                    b.jmp(test, R0, operand, label)
                    return
                val = self.finish_binop(cond, left)
            else:
                val = self.expr(cond)
            self.test_value(val, cond)
            b.jeq(R0, 0, label)

    def test_value(self, val: Val, node: ast.Expr) -> None:
        """Put a condition's truth in r0 (a string is true when non-empty)."""
        if val.slot is not None:
            if val.shape.kind == "str":
                self.b.ldx(1, R0, FP, val.slot.off)
            elif val.shape.in_register:
                self.b.ldx(8, R0, FP, val.slot.off)
            else:
                raise error(f"type mismatch: expected an integer, got {val.shape.describe()}", node)

    def literal_jump(self, left: Val, text: bytes, equal: bool, label: str) -> None:
        """Jump to ``label`` unless ``left == text`` (``equal``) or unless they differ (not ``equal``)."""
        b = self.b
        if len(text) + 1 > left.shape.size:
            if equal:
                b.ja(label)  # never equal
            return
        target = label if equal else b.fresh_label("strne")
        for pos, byte in enumerate(text + b"\0"):
            b.ldx(1, R1, FP, left.slot.off + pos)
            b.jne(R1, byte, target)
        if not equal:
            b.ja(label)
            b.label(target)

    def string_compare(self, node: ast.Binop, left: Val) -> Val:
        b = self.b
        if isinstance(node.right, ast.String):
            return self.literal_compare(node, left, node.right.value.encode())
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

    def literal_compare(self, node: ast.Binop, left: Val, text: bytes) -> Val:
        """``s == "lit"``: each byte (and the NUL after the literal) against an immediate, no buffer."""
        b = self.b
        equal, other = (1, 0) if node.op == "==" else (0, 1)
        if len(text) + 1 > left.shape.size:
            b.mov(R0, other)  # the literal cannot fit: never equal
            return Val(INT)
        differ = b.fresh_label("strne")
        b.mov(R0, other)
        for pos, byte in enumerate(text + b"\0"):
            b.ldx(1, R1, FP, left.slot.off + pos)
            b.jne(R1, byte, differ)
        b.mov(R0, equal)
        b.label(differ)
        return Val(INT)

    def expr_Unop(self, node: ast.Unop) -> Val:
        b = self.b
        if node.op in ("++", "--"):
            target = node.operand
            step = ast.Binop("+" if node.op == "++" else "-", target, ast.Integer(1, span=node.span), span=node.span)
            declared = getattr(target, "type", None)
            if isinstance(target, ast.Variable) and declared is not None and declared.is_int and declared.size < 8:
                # a narrow variable keeps its width and wraps, as in C and bpftrace: (uint8)255 + 1 is 0
                step = ast.Cast(f"{'' if declared.signed else 'u'}int{declared.size * 8}", 0, step, span=node.span)
            # -k: bpftrace checks one lookup and the store, at "x++" or at the "++" of "++x"
            site = node.span if node.postfix else prefix_op_span(node.op, target.name, node.span, self.env.source)
            if node.postfix:
                with self.helper_site(target, site):
                    before = self.spill(Val(self.int_value(target)))
                with self.helper_site(target, site, lookups=False):
                    self.stmt_Assign(ast.Assign(target, step, span=node.span))
                b.ldx(8, R0, FP, before.slot.off)
                return Val(INT)
            with self.helper_site(target, site):
                self.stmt_Assign(ast.Assign(target, step, span=node.span))
            with self.helper_site(target, site, lookups=False):
                self.int_value(target)
            return Val(INT)
        if node.op == "*":
            self.int_value(node.operand)
            slot = self.frame.alloc(8, name="deref")
            emit_helper_call(b, "probe_read_kernel", slot, 8, R0)
            self.check_helper(self.read_name(node.operand), node)
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
        if isinstance(node.left, ast.String) and isinstance(node.right, ast.String):
            return self.literal_ternary(node, other, done)
        self.jump_if_false(node.cond, other)
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
        with self.frame.scope():  # the right branch's temporaries die here
            right = self.expr(node.right)
            if right.slot is None or right.shape.kind != left.shape.kind:
                raise error("Ternary operator branches must have the same type", node)
            self.copy(right.slot, result)
        b.label(done)
        return Val(left.shape, result)

    def literal_ternary(self, node: ast.Ternary, other: str, done: str) -> Val:
        """``c ? "a" : "b"``: each branch writes its literal straight into the one result slot."""
        b = self.b
        size = max(self.literal_size(node.left.value), self.literal_size(node.right.value))
        result = self.frame.alloc(size, zero=False, name="ternary")
        self.jump_if_false(node.cond, other)
        self.write_literal(node.left.value, result, zeroed=False)
        b.ja(done)
        b.label(other)
        self.write_literal(node.right.value, result, zeroed=False)
        b.label(done)
        return Val(shapes.string(size), result)

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
        if node.pointer and node.type_name.startswith(("struct ", "union ")):
            if " ".join(node.type_name.split()) in self.state.c_structs:  # defined in the script
                return Val(Shape("int", 8, False, extra=("cstruct", " ".join(node.type_name.split()))))
            return Val(Shape("int", 8, False, extra=("btf", _btf_struct(node.type_name, node))))
        if bits is None or node.pointer:
            return Val(UINT)  # other pointers are plain addresses
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
        if isinstance(node.expr, ast.Builtin) and node.expr.name == "args" and self.ctx.args == "btf_func":
            return self.kfunc_param(node)
        base = self.expr(node.expr)
        extra = base.shape.extra
        if not (isinstance(extra, tuple) and extra and extra[0] in ("btf", "btf_inline", "cstruct")):
            raise error(f"Can not access field '{node.field}' on expression of type "
                        f"'{base.shape.describe()}'", node)
        if base.slot is not None:
            self.b.ldx(8, R0, FP, base.slot.off)
        if extra[0] == "cstruct":
            return self.script_struct_member(node, extra[1])
        return self.btf_member(node, extra[1])

    def script_struct_member(self, node: ast.FieldAccess, struct_name: str) -> Val:
        """r0 holds the address of a struct defined in the script: read one member, with the
        layout ``types.parse_c_structs`` gave it (the one clang gives bpftrace)."""
        b = self.b
        field = next((f for f in self.state.c_structs[struct_name] if f.name == node.field), None)
        if field is None:
            raise error(f"Struct/union of type '{struct_name}' does not contain a field named "
                        f"'{node.field}'", node)
        t = field.type
        if field.bitfield is not None:
            return self.btf_bitfield(node, 8 * field.offset + field.bitfield[0], field.bitfield[1])
        b.add(R0, field.offset)
        if t.kind == "record":  # an inline struct: its address, read member by member
            if t.name in self.state.c_structs:
                return Val(Shape("int", 8, False, extra=("cstruct", t.name)))
            return Val(Shape("int", 8, False, extra=("btf_inline", _btf_struct(t.name, node))))
        read = "probe_read_user" if self._user_memory() else "probe_read_kernel"
        if t.kind in ("string", "array"):
            size = t.size
            slot = self.frame.alloc(_round8(size + 1), name=node.field)
            emit_helper_call(b, read, StackSlot(slot.off, size), size, R0)
            if t.kind == "string":
                return Val(shapes.string(_round8(size + 1)), slot)
            return Val(Shape("bytes", slot.size, False, extra=size), slot)
        if t.size not in (1, 2, 4, 8):
            raise error(f"member '{node.field}' of size {t.size} is not supported", node)
        slot = self.frame.alloc(8, name=node.field)
        emit_helper_call(b, read, StackSlot(slot.off, t.size), t.size, R0)
        if t.kind == "pointer":
            b.ldx(8, R0, FP, slot.off)
            pointee = t.elems[0]
            if pointee.kind == "record" and pointee.name in self.state.c_structs:
                return Val(Shape("int", 8, False, extra=("cstruct", pointee.name)))
            if pointee.kind == "record":
                return Val(Shape("int", 8, False, extra=("btf", _btf_struct(pointee.name, node))))
            return Val(UINT)
        _load_extended(b, t.size, t.signed, R0, FP, slot.off)
        return Val(INT if t.signed else UINT)

    def btf_member(self, node: ast.FieldAccess, struct_tid: int) -> Val:
        """r0 holds the address of a kernel struct: read one member (pointers stay typed)."""
        from ebpfpy.btf import Kind

        spec = _vmlinux()
        b = self.b
        try:
            member = spec.member(struct_tid, node.field)
        except (KeyError, Exception) as exc:
            raise error(f"Struct/union of type '{spec.describe(struct_tid)}' does not contain "
                        f"a field named '{node.field}'", node) from exc
        tid = spec.resolve(member.type)
        kind = spec.kind_of(tid)
        bits, shift = member.bitfield_size, member.bit_offset
        if not bits and kind == Kind.INT and spec[tid].bits != 8 * spec[tid].size:
            bits, shift = spec[tid].bits, shift + spec[tid].bit_offset  # kind_flag=0 encoding
        if bits:
            return self.btf_bitfield(node, shift, bits)
        if member.bit_offset % 8:
            raise error(f"member '{node.field}' is not byte-aligned", node)
        b.add(R0, member.bit_offset // 8)
        if kind in (Kind.STRUCT, Kind.UNION):
            return Val(Shape("int", 8, False, extra=("btf_inline", tid)))  # an address, read later
        if kind == Kind.ARRAY:
            arr = spec[tid]
            elem = spec.resolve(arr.type)
            size = spec.size_of(tid)
            if spec.kind_of(elem) == Kind.INT and spec.size_of(elem) == 1:
                slot = self.frame.alloc(_round8(size + 1), name=node.field)
                emit_helper_call(b, "probe_read_kernel", StackSlot(slot.off, size), size, R0)
                return Val(shapes.string(_round8(size + 1)), slot)
            slot = self.frame.alloc(_round8(size), name=node.field)
            emit_helper_call(b, "probe_read_kernel", StackSlot(slot.off, size), size, R0)
            return Val(Shape("bytes", slot.size, False, extra=size), slot)
        size = spec.size_of(tid)
        if size not in (1, 2, 4, 8):
            raise error(f"member '{node.field}' of size {size} is not supported", node)
        slot = self.frame.alloc(8, name=node.field)
        emit_helper_call(b, "probe_read_kernel", StackSlot(slot.off, size), size, R0)
        if kind == Kind.PTR:
            b.ldx(8, R0, FP, slot.off)
            pointee = spec.resolve(spec[tid].type)
            if spec.kind_of(pointee) in (Kind.STRUCT, Kind.UNION):
                return Val(Shape("int", 8, False, extra=("btf", pointee)))
            return Val(UINT)
        signed = kind == Kind.INT and spec[tid].signed
        _load_extended(b, size, signed, R0, FP, slot.off)
        return Val(INT if signed else UINT)

    def btf_bitfield(self, node: ast.FieldAccess, bit_offset: int, bits: int) -> Val:
        """r0 holds a struct's address: read a bitfield member as bpftrace 0.17 does.

        The bytes that hold the field are copied into a zeroed u64 (little
        endian, so the first byte is the lowest), shifted down and masked.
        Like bpftrace 0.17, signed bitfields are not sign-extended: ``int a:3``
        holding -2 reads as 6."""
        b = self.b
        shift = bit_offset % 8
        nbytes = (shift + bits + 7) // 8
        if nbytes > 8:
            raise error(f"bitfield member '{node.field}' spans more than 8 bytes", node)
        b.add(R0, bit_offset // 8)
        slot = self.frame.alloc(8, name=node.field)
        emit_helper_call(b, "probe_read_kernel", StackSlot(slot.off, nbytes), nbytes, R0)
        b.ldx(8, R0, FP, slot.off)
        if shift:
            b.rsh(R0, shift)
        if bits < 64:
            if bits < 31:
                b.and_(R0, (1 << bits) - 1)
            else:
                self.load_const(R1, (1 << bits) - 1)
                b.and_(R0, R1)
        return Val(UINT)

    def kfunc_param(self, node: ast.FieldAccess) -> Val:
        """``args->NAME`` in a kfunc: slot i of the u64 array the trampoline passes."""
        params = self.ctx.func_proto.params
        for i, param in enumerate(params):
            if param.name == node.field:
                return self.btf_ctx_slot(8 * i, param.type, node, node.field)
        raise error(f"Can't find function parameter {node.field}", node)

    def btf_ctx_slot(self, off: int, tid: int, node, what: str) -> Val:
        """Read a kfunc argument or return value of BTF type ``tid`` at ``ctx + off``.

        The verifier checks these loads against the prototype: 8-byte loads at
        8-aligned offsets, narrower integers extended here by shifts. Pointers
        to structs come back as typed pointers (``->`` reads members through
        ``btf_member``); pointers the verifier will not load directly (to
        pointers, enums, functions) are copied out with probe_read_kernel."""
        from ebpfpy.btf import Kind

        spec, b = _vmlinux(), self.b
        rt = spec.resolve(tid) if tid else 0
        kind = spec.kind_of(rt) if rt else None
        if kind == Kind.PTR:
            pointee = spec[rt].type
            pk = spec.kind_of(spec.resolve(pointee)) if pointee else None
            if pk in (None, Kind.INT, Kind.STRUCT, Kind.UNION):
                b.ldx(8, R0, R6, off)
            else:
                slot = self.frame.alloc(8, name=what)
                b.mov(R3, R6)
                b.add(R3, off)
                emit_helper_call(b, "probe_read_kernel", slot, 8, R3)
                b.ldx(8, R0, FP, slot.off)
            if pk in (Kind.STRUCT, Kind.UNION):
                return Val(Shape("int", 8, False, extra=("btf", spec.resolve(pointee))))
            return Val(UINT)
        if kind in (Kind.INT, Kind.ENUM, Kind.ENUM64):
            size = spec.size_of(rt)
            signed = kind == Kind.INT and spec[rt].signed
            b.ldx(8, R0, R6, off)
            if size < 8:
                b.lsh(R0, 64 - 8 * size)
                b.arsh(R0, 64 - 8 * size) if signed else b.rsh(R0, 64 - 8 * size)
            return Val(INT if signed else UINT)
        desc = spec.describe(tid) if tid else "void"
        raise error(f"kfunc {what} of type '{desc}' is not supported", node)

    def tracepoint_field(self, node: ast.FieldAccess, strlen: int = 0) -> Val:
        """``args->name`` of a tracepoint; ``strlen``: the bytes a ``__data_loc`` string may take
        (str()'s length plus its NUL; default BPFTRACE_STRLEN)."""
        b = self.b
        fields = {f.name: f for f in self.ctx.fields}
        f = fields.get(node.field)
        if f is None:
            raise error(f"Struct/union of type '{_tracepoint_struct(self.target)}' does not contain "
                        f"a field named '{node.field}'", node)
        if f.data_loc:
            size = strlen or self.env.strlen
            slot = self.frame.alloc(_round8(size), name=f.name)
            b.ldx(4, R1, R6, f.offset)
            b.and_(R1, 0xFFFF)  # the low half is the string's offset in the record
            b.add(R1, R6)
            emit_helper_call(b, "probe_read_kernel_str", StackSlot(slot.off, size), size, R1)
            return Val(shapes.string(_round8(size)), slot)
        if f.array_len and f.element_size == 1 and "char" in f.type:
            size = _round8(f.size)
            if f.offset % 8 == 0 and f.size % 8 == 0:
                # aligned char[8n] (comm fields): plain loads from the context, no helper
                slot = self.frame.alloc(size, zero=False, name=f.name)
                for pos in range(0, size, 8):
                    b.ldx(8, R1, R6, f.offset + pos)
                    b.stx(8, FP, R1, slot.off + pos)
                return Val(shapes.string(size), slot)
            slot = self.frame.alloc(size, name=f.name)
            b.mov(R3, R6)
            b.add(R3, f.offset)
            emit_helper_call(b, "probe_read_kernel", StackSlot(slot.off, f.size), f.size, R3)
            return Val(shapes.string(size), slot)
        if f.array_len:
            slot = self.frame.alloc(max(8, f.size), name=f.name)
            b.mov(R3, R6)
            b.add(R3, f.offset)
            emit_helper_call(b, "probe_read_kernel", StackSlot(slot.off, f.size), f.size, R3)
            return Val(Shape("bytes", slot.size, False, extra=f.size), slot)
        size = f.size if f.size in (1, 2, 4, 8) else 8
        _load_extended(b, size, f.signed, R0, R6, f.offset)
        return Val(INT if f.signed else UINT)

    def expr_Builtin(self, node: ast.Builtin) -> Val:
        name = node.name
        if name.startswith("arg") and name[3:].isdigit():
            return self.builtin_arg(node, int(name[3:]), signed=False)
        if name.startswith("sarg") and name[4:].isdigit():
            return self.builtin_sarg(node, int(name[4:]))
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

    def builtin_numaid(self, node) -> Val:
        self._call_int("get_numa_node_id")
        return Val(UINT)

    def builtin_rand(self, node) -> Val:
        self._call_int("get_prandom_u32")
        return Val(UINT)

    def builtin_cgroup(self, node) -> Val:
        self._call_int("get_current_cgroup_id")
        return Val(UINT)

    def builtin_curtask(self, node) -> Val:
        self._call_int("get_current_task")
        try:
            return Val(Shape("int", 8, False, extra=("btf", _btf_struct("struct task_struct", node))))
        except CompileError:
            return Val(UINT)  # no BTF: still an address

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
        if self.probe_slot is not None:  # a syscall dispatch program: the index is data
            self.b.ldx(8, R0, FP, self.probe_slot.off)
            return Val(Shape("probe", 8, False, extra=self.state.probe_names))
        index = self.state.probe_index(self.target.probe)
        self.probe_sites.append(self.b.mark())  # patched per target when programs are shared
        self.b.mov(R0, index)
        return Val(Shape("probe", 8, False, extra=self.state.probe_names))

    def builtin_retval(self, node) -> Val:
        if not self.ctx.retval:
            raise error("The retval builtin can only be used with 'kretprobe' and 'uretprobe' and "
                        "'kfunc' probes", node)
        if self.ctx.args == "btf_func":
            proto = self.ctx.func_proto
            if not proto.type:
                raise error(f"{self.target.function} returns void: kretfunc has no retval", node)
            return self.btf_ctx_slot(8 * len(proto.params), proto.type, node, "retval")
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
        if n >= 6:
            raise error(f"x86_64 doesn't support {node.name}", node)
        emit_arg_load(self.b, R0, R6, n)
        return Val(UINT)

    def builtin_sarg(self, node, n: int) -> Val:
        """The n-th argument passed on the stack: above the return address at sp (x86-64)."""
        if self.ctx.args != "pt_regs":
            raise error(f"The {node.name} builtin can only be used with 'kprobes', 'uprobes' and "
                        "'usdt' probes", node)
        b = self.b
        slot = self.frame.alloc(8, name=node.name)
        emit_reg_load(b, R3, R6, "sp")
        b.add(R3, 8 * (n + 1))
        user = self.target.probe.split(":", 1)[0].startswith("u")
        emit_helper_call(b, "probe_read_user" if user else "probe_read_kernel", slot, 8, R3)
        b.ldx(8, R0, FP, slot.off)
        return Val(INT)

    def builtin_func(self, node) -> Val:
        if self.ctx.args == "btf_func":  # one program per kernel function: its name is a constant
            return self.expr_String(ast.String(self.target.function, span=node.span))
        if self.ctx.args not in ("pt_regs", "usdt"):
            raise error("The func builtin can only be used with kprobes, uprobes and kfuncs", node)
        kind = self.target.probe.split(":", 1)[0]
        symbol = self.target.probe.rsplit(":", 1)[-1]
        if kind in ("uprobe", "kprobe") and symbol.isidentifier():
            # the probed function is known here: no need to symbolise (maybe after the process died)
            return self.expr_String(ast.String(symbol, span=node.span))
        emit_reg_load(self.b, R0, R6, "ip")
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

    def stack_map(self, space: str, limit: int) -> str:
        """The stack-trace map for stacks of ``limit`` frames: one per depth, as in bpftrace,
        because the kernel keeps (and compares, to give one id per distinct stack) only as
        many frames as a map value holds; so kstack(1) of two different callers is one key."""
        name = f"${space}" if limit == STACK_DEPTH else f"${space}_{limit}"
        return self.state.need_map(name, MapType.STACK_TRACE, 4, 8 * max(1, limit), 4096)

    def builtin_kstack(self, node, limit: int = STACK_DEPTH, mode: str = "bpftrace") -> Val:
        name = self.stack_map("kstack", limit)
        emit_helper_call(self.b, "get_stackid", R6, name, 0)
        return Val(Shape("kstack", 8, False, extra=(name, limit, mode)))

    def builtin_ustack(self, node, limit: int = STACK_DEPTH, mode: str = "bpftrace") -> Val:
        b = self.b
        name = self.stack_map("ustack", limit)
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

    # -- -k / -kk: helper error checks (see helper_errors.py) -------------------------

    @contextlib.contextmanager
    def helper_site(self, node: ast.Node, span, lookups: bool = True):
        """Failed helper calls made for ``node`` report ``span`` inside the block (its lookups
        not at all unless ``lookups``). The outermost caller wins: ``@x++`` reports its whole
        text, as bpftrace does, and the second lookup ``x++`` compiles to is not reported twice."""
        key = id(node)
        if key in self.site_spans:
            yield
            return
        self.site_spans[key] = (span, lookups)
        try:
            yield
        finally:
            del self.site_spans[key]

    def helper_failed(self, helper: str, node: ast.Node) -> Optional[HelperSite]:
        """Where a failure of ``helper`` called for ``node`` is reported; None when it is not checked."""
        if not checked(helper, self.env.helper_errors):
            return None
        span, lookups = self.site_spans.get(id(node), (node.span, True))
        if helper == "map_lookup_elem" and not lookups:
            return None
        if span is None or not span.line:
            return None
        return HelperSite(helper, span, self.env.source, self.env.filename, self.env.warnings)

    def check_helper(self, helper: str, node: ast.Node) -> None:
        """Right after a call to ``helper``: when r0 < 0, send a helper_error event. No code at all
        unless -k checks this helper, so programs without -k stay byte for byte the same."""
        site = self.helper_failed(helper, node)
        if site is None:
            return
        ok = self.b.fresh_label("helper_ok")
        # 32-bit compare: before 6.4 the map ops the verifier calls directly return int, so the
        # upper half of r0 is zero and -E2BIG looks like 0xfffffff9 to a 64-bit test.
        self.b.jsge32(R0, 0, ok)
        self.report_helper_error(site, R0)
        self.b.label(ok)

    def read_name(self, pointer: ast.Expr, string: bool = False) -> str:
        """The probe_read* bpftrace would call (and name in a -kk warning) to read ``pointer``."""
        kind = self.target.probe.split(":", 1)[0]
        space = "kernel" if kind in ("kprobe", "kretprobe", "kfunc", "kretfunc") else \
            "user" if self._user_memory() else ""
        return read_helper(pointer, space, string)

    def check_lookup_miss(self, node: ast.Node) -> None:
        """On the path where a map_lookup_elem returned NULL (-kk): report it, with return code 0."""
        site = self.helper_failed("map_lookup_elem", node)
        if site is not None:
            self.report_helper_error(site, 0)

    def report_helper_error(self, site: HelperSite, retcode) -> None:
        """Send ``[action id][return code]``; r0 holds the return code again afterwards, r1..r5 are
        clobbered as by any call (nothing reads them after the checked call either)."""
        b = self.b
        action = ActionPlan("helper_error", _decode_retcode, site)
        action_id = self.state.script.add_action(action) if self.final else 0
        with self.frame.scope():
            record = self.frame.alloc(16, zero=False, name="helper error")
            if isinstance(retcode, int):
                b.st(8, FP, retcode, record.off + 8)
            else:
                b.stx(8, FP, retcode, record.off + 8)
            self.load_const(R1, action_id)
            b.stx(8, FP, R1, record.off)
            emit_helper_call(b, "perf_event_output", R6, self.state.events(), BPF_F_CURRENT_CPU, record, 16)
            if isinstance(retcode, int):
                b.mov(R0, retcode)
            else:
                b.ldx(8, R0, FP, record.off + 8)

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
        hints = [self.state.shape_hints.get((id(a), self.target.probe)) for a in node.args[1:]]
        if self.final and all(hints):
            return self._format_direct(node, kind, fmt, hints)
        vals = self.event_args(node.args[1:])
        problem = check_arguments(fmt, [shapes.printf_kind(v.shape) for v in vals], node.name)
        if problem:
            raise error(problem, node)
        arg_shapes = tuple(v.shape for v in vals)
        decode_all = shapes.printf_decoder(arg_shapes)
        self.emit_event(ActionPlan(kind, decode_all, PrintfFormat(fmt)), vals)
        return Val(NONE)

    def _format_direct(self, node: ast.Call, kind: str, fmt: str, hints: list) -> Val:
        """printf with a known layout: every argument is evaluated straight into the event."""
        b = self.b
        problem = check_arguments(fmt, [shapes.printf_kind(h) for h in hints], node.name)
        if problem:
            raise error(problem, node)
        size = 8 + sum(h.size for h in hints)
        record = self.frame.alloc(size, zero=False, name="event")  # every field is written below
        pos = 8
        for arg, hint in zip(node.args[1:], hints):
            with self.frame.scope():
                self.expr_into(arg, record.field(pos, hint.size), hint)
            pos += hint.size
        action = ActionPlan(kind, shapes.printf_decoder(hints), PrintfFormat(fmt))
        self.load_const(R1, self.state.script.add_action(action))
        b.stx(8, FP, R1, record.off)
        emit_helper_call(b, "perf_event_output", R6, self.state.events(), BPF_F_CURRENT_CPU, record, size)
        return Val(NONE)

    def expr_into(self, node: ast.Expr, dest: StackSlot, hint: Shape, clean: bool = False) -> None:
        """Evaluate ``node`` into ``dest`` (its expected size), writing every byte of it; with
        ``clean`` the bytes after a string's NUL are zero too (map keys compare all bytes)."""
        if isinstance(node, ast.String) and self.literal_size(node.value) <= dest.size:
            self.write_literal(node.value, dest, zeroed=False)
            return
        if isinstance(node, ast.Builtin) and node.name == "comm" and dest.size == 16:
            emit_helper_call(self.b, "get_current_comm", dest, 16)
            return
        if isinstance(node, ast.Call) and node.name == "str" and hint.kind == "str":
            if clean:
                for pos in range(0, dest.size, 8):
                    self.b.st(8, FP, 0, dest.off + pos)
            val = self.call_str(node, dest=dest)
            if val.slot is dest:
                return
        else:
            val = self.expr(node)
        if val.shape.size != hint.size or val.shape.kind != hint.kind:
            raise error(f"internal: argument changed shape between passes ({hint.describe()} -> "
                        f"{val.shape.describe()})", node)
        if val.slot is None:
            self.b.stx(8, FP, R0, dest.off)
        else:
            self.copy(val.slot, dest)

    def call_printf(self, node: ast.Call) -> Val:
        return self._format_call(node, "printf")

    def call_system(self, node: ast.Call) -> Val:
        if not self.env.unsafe:
            raise error("system() is an unsafe function being used in safe mode", node)
        return self._format_call(node, "system")

    def call_cat(self, node: ast.Call) -> Val:
        return self._format_call(node, "cat")

    def call_debugf(self, node: ast.Call) -> Val:
        """debugf(fmt, ...): the kernel formats it into the trace buffer (bpf_trace_printk;
        read it from tracefs ``trace_pipe``); integers go as values, strings as the address
        of their stack copy."""
        if not node.args or not isinstance(node.args[0], ast.String):
            raise error("debugf() expects a string literal", node)
        b = self.b
        values = []
        for arg in node.args[1:]:
            val = self.expr(arg)
            if val.slot is None:
                val = self.spill(val)
            values.append(val)
        text = node.args[0].value
        fmt = self.frame.alloc(_round8(len(text.encode()) + 1), name="debugf fmt")
        self.write_literal(text, fmt, zeroed=True)
        regs = (R3, R4, R5)
        for reg, val in zip(regs, values):
            if val.shape.kind == "str":
                b.mov(reg, FP)
                b.add(reg, val.slot.off)
            else:
                b.ldx(8, reg, FP, val.slot.off)
        size = len(text.encode()) + 1
        emit_helper_call(b, "trace_printk", StackSlot(fmt.off, size), size, *regs[:len(values)])
        return Val(NONE)

    def call_exit(self, node: ast.Call) -> Val:
        self.argc(node, 0)
        self.emit_event(ActionPlan("exit", lambda data, services: ()), [])
        self.goto(self.exit_label)
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
            if self.state.map_shapes[name][0] == "stats":
                top, div = 0, 1  # ignored, as semantic analysis warned
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
        self.check_helper("map_delete_elem", node)
        return Val(NONE)

    def call_str(self, node: ast.Call, dest: Optional[StackSlot] = None) -> Val:
        self.argc(node, 1, 2)
        if isinstance(node.args[0], ast.PositionalParam):
            return self.str_param(node)
        if is_data_loc_field(node.args[0]) and self.ctx.args == "tracepoint":
            return self.tracepoint_field(node.args[0], strlen=self.str_size(node))
        val = self.expr(node.args[0])
        if val.shape.kind == "str":
            return val
        if len(node.args) == 2 and not _is_literal(node.args[1]):
            return self.str_runtime_length(node, val)
        if val.slot is not None:
            self.b.ldx(8, R0, FP, val.slot.off)
        b = self.b
        size = self.str_size(node)
        if dest is not None and dest.size == _round8(size):
            slot = dest  # an event field: bytes after the NUL need not be zero
            if size % 8:
                b.st(8, FP, 0, slot.off + slot.size - 8)  # the padding the helper will not write
        else:
            slot = self.frame.alloc(_round8(size), name="str")  # zeroed: strings are also map keys
        emit_helper_call(b, "probe_read_str", StackSlot(slot.off, size), size, R0)
        self.check_helper(self.read_name(node.args[0], string=True), node)
        return Val(shapes.string(_round8(size)), slot)

    def str_size(self, node: ast.Call) -> int:
        """The bytes ``str(x)``/``str(x, n)`` (n known while compiling) takes: BPFTRACE_STRLEN,
        or n characters plus the terminating NUL if fewer, as bpftrace 0.17 keeps them."""
        size = self.env.strlen
        if len(node.args) == 2:
            size = max(1, min(size, self.constant(node.args[1], "str() length must be an integer literal") + 1))
        return size

    def str_runtime_length(self, node: ast.Call, pointer: Val) -> Val:
        """str(p, n) with n known only at run time (``str(args->buf, args->count)``): n
        characters and the NUL, at most BPFTRACE_STRLEN bytes; a negative n, huge unsigned,
        is cut there too. The bound is checked before the read, so the verifier knows it."""
        b = self.b
        if pointer.slot is None:
            pointer = self.spill(pointer)
        size = self.env.strlen
        self.int_value(node.args[1])
        within = b.fresh_label("str_n")
        b.add(R0, 1)
        b.jle(R0, size, within)
        b.mov(R0, size)
        b.label(within)
        b.mov(R2, R0)
        b.ldx(8, R3, FP, pointer.slot.off)
        slot = self.frame.alloc(_round8(size), name="str")  # zeroed: strings are also map keys
        emit_helper_call(b, "probe_read_str", StackSlot(slot.off, size), R2, R3)
        self.check_helper(self.read_name(node.args[0], string=True), node)
        return Val(shapes.string(_round8(size)), slot)

    def str_param(self, node: ast.Call) -> Val:
        """``str($1)``: the parameter's text, cut like any str() to BPFTRACE_STRLEN (or n) - 1 bytes."""
        size = self.str_size(node)
        text = self.param(node.args[0].index).encode()[:size - 1].decode(errors="ignore")
        slot = self.frame.alloc(_round8(size), name="str")
        self.write_literal(text, slot, zeroed=True)
        return Val(shapes.string(_round8(size)), slot)

    def call_path(self, node: ast.Call) -> Val:
        """path(p): the file path of a ``struct path`` (bpf_d_path), given as a typed pointer
        (``args->path``) or as a member (``args->filp->f_path``). Only kfunc probes have such
        pointers the verifier trusts, and it allows d_path only in functions it lists
        (security_inode_getattr, security_file_open, filp_close, ...)."""
        self.argc(node, 1)
        val = self.expr(node.args[0])
        extra = val.shape.extra
        if not (isinstance(extra, tuple) and extra[:1] in (("btf",), ("btf_inline",))
                and _vmlinux().name_of(extra[1]) == "path"):
            raise error("path() expects a struct path: a pointer to one or a member that is one", node)
        if val.slot is not None:
            self.b.ldx(8, R0, FP, val.slot.off)
        size = self.env.strlen
        slot = self.frame.alloc(_round8(size), name="path")
        emit_helper_call(self.b, "d_path", R0, StackSlot(slot.off, size), size)
        self.check_helper("d_path", node)
        return Val(shapes.string(_round8(size)), slot)

    def call_kptr(self, node: ast.Call) -> Val:
        """kptr()/uptr() only tell bpftrace which address space a pointer is in: the value is
        unchanged (ours picks the read helper per use, so nothing more to record)."""
        self.argc(node, 1)
        return self.expr(node.args[0])

    call_uptr = call_kptr

    def call_bswap(self, node: ast.Call) -> Val:
        """The argument's bytes reversed at its own width (an 8-bit value is itself); 16 and
        32-bit results are zero-extended, as bpftrace prints them."""
        self.argc(node, 1)
        typ = getattr(node.args[0], "type", None)
        size = typ.size if typ is not None and typ.is_int else 8
        self.int_value(node.args[0])
        if size > 1:
            self.b.bswap(R0, size * 8)
        return Val(UINT)

    def call_strerror(self, node: ast.Call) -> Val:
        """An error number, printed as the C library's text for it."""
        return self.rendered_int(node, "strerror", signed=True)

    def rendered_int(self, node: ast.Call, kind: str, signed: bool = False) -> Val:
        """f(x) for an integer x that only the runtime turns into text (a symbol, an error
        message): the value travels as is, under a shape that names its renderer."""
        self.argc(node, 1)
        self.int_value(node.args[0])
        return Val(Shape(kind, 8, signed))

    def call_strcontains(self, node: ast.Call) -> Val:
        """1 when the first string contains the second (an empty needle is in every string).

        A bounded loop over where the needle may start, and for each start the needle's
        bytes compared one by one, unrolled over the needle's slot: each comparison is then
        a branch the verifier sees once per start, not once per (start, position) state,
        which kept a 64-by-64 search under its 1M-instruction budget only just. No helper
        is called inside, so r1-r5 are free for the index and the bytes."""
        self.argc(node, 2)
        hay, needle = self.expr(node.args[0]), self.expr(node.args[1])
        if hay.shape.kind != "str" or needle.shape.kind != "str":
            raise error("strcontains() expects two strings", node)
        b = self.b
        outer, next_i = b.fresh_label("sc_start"), b.fresh_label("sc_next")
        found, missing, done = b.fresh_label("sc_found"), b.fresh_label("sc_missing"), b.fresh_label("sc_done")
        h, n = hay.slot, needle.slot

        def load_hay_byte(index) -> None:
            """r1 = haystack[index register] (bounded by the caller's check)."""
            b.mov(R1, FP)
            b.add(R1, h.off)
            b.add(R1, index)
            b.ldx(1, R1, R1, 0)

        b.mov(R4, 0)                          # i: where the needle is tried in the haystack
        b.label(outer)
        b.jge(R4, h.size, missing)
        for j in range(n.size):
            matched = b.fresh_label("sc_match")
            b.ldx(1, R2, FP, n.off + j)       # needle[j]
            b.jeq(R2, 0, found)
            b.mov(R3, R4)
            if j:
                b.add(R3, j)
            b.jge(R3, h.size, missing)
            load_hay_byte(R3)                 # haystack[i + j]
            # a match jumps and a mismatch falls through: the verifier follows the fall-through
            # first and stacks the jumps, so this keeps its stack of pending branches a few per
            # start deep (jumping on mismatch stacked two per compared byte: over its 8192 limit
            # at BPFTRACE_STRLEN=200)
            b.jeq(R1, R2, matched)
            b.ja(next_i)
            b.label(matched)
        b.ja(found)                           # the needle filled its slot, every byte matched
        b.label(next_i)
        load_hay_byte(R4)
        b.jeq(R1, 0, missing)                 # the haystack ended
        b.add(R4, 1)
        b.ja(outer)
        b.label(found)
        b.mov(R0, 1)
        b.ja(done)
        b.label(missing)
        b.mov(R0, 0)
        b.label(done)
        return Val(UINT)

    def call_ksym(self, node: ast.Call) -> Val:
        return self.rendered_int(node, "ksym")

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
        self.check_helper("send_signal", node)
        return Val(NONE)

    def call_override(self, node: ast.Call) -> Val:
        """``override(rc)``: the probed kernel function returns ``rc`` without running
        (bpf_override_return; the kernel allows it only for functions on its error-injection list)."""
        self.argc(node, 1)
        from ebpfpy import features

        if self.final and not features.has("override_return"):
            raise error("override() is not supported by this kernel: " + features.reason("override_return"), node)
        self.int_value(node.args[0])
        self.b.mov(R2, R0)
        emit_helper_call(self.b, "override_return", R6, R2)
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
        """join(argv[, delim]): up to 16 user strings, built in a per-CPU scratch value (too big for the stack)."""
        self.argc(node, 1, 2)
        delim = " "
        if len(node.args) == 2:
            if not isinstance(node.args[1], ast.String):
                raise error("join() expects a string literal as the second argument", node)
            delim = node.args[1].value
        b = self.b
        strlen, count = self.env.strlen, JOIN_ARGS
        size = 8 + count * strlen
        scratch = self.state.need_map("$join", MapType.PERCPU_ARRAY, 4, size, 1)
        action_id = self.state.script.add_action(
            ActionPlan("join", _join_decoder(strlen, count, delim))) if self.final else 0
        self.int_value(node.args[0])
        b.mov(R8, R0)  # argv: callee-saved across the helper calls below
        key = self.frame.alloc(8, name="join key")
        done = b.fresh_label("join_done")
        emit_helper_call(b, "map_lookup_elem", scratch, StackSlot(key.off, 4))
        b.jeq(R0, 0, done)
        b.mov(R9, R0)
        self.load_const(R1, action_id)
        b.stx(8, R9, R1, 0)
        for i in range(count):
            b.st(1, R9, 0, 8 + i * strlen)
        ptr = self.frame.alloc(8, zero=False, name="argv[i]")
        send = b.fresh_label("join_send")
        user = self._user_memory()
        for i in range(count):
            b.mov(R3, R8)
            b.add(R3, 8 * i)
            emit_helper_call(b, "probe_read_user" if user else "probe_read_kernel", ptr, 8, R3)
            b.ldx(8, R3, FP, ptr.off)
            b.jeq(R3, 0, send)
            b.mov(R1, R9)
            b.add(R1, 8 + i * strlen)
            emit_helper_call(b, "probe_read_user_str" if user else "probe_read_kernel_str", R1, strlen, R3)
        b.label(send)
        emit_helper_call(b, "perf_event_output", R6, self.state.events(), BPF_F_CURRENT_CPU, R9, size)
        b.label(done)
        return Val(NONE)

    def _user_memory(self) -> bool:
        """Pointers in syscall tracepoint args and uprobe registers point into user memory."""
        kind = self.target.probe.split(":", 1)[0]
        return kind.startswith("u") or (kind in ("tracepoint", "t") and ":syscalls:" in ":" + self.target.probe)

    def call_buf(self, node: ast.Call) -> Val:
        """buf(p, n): n bytes (n a literal, at most BPFTRACE_STRLEN) after a u64 length, for %r."""
        self.argc(node, 1, 2)
        val = self.expr(node.args[0])
        if val.shape.kind in ("str", "bytes"):
            data = val.shape.extra if val.shape.kind == "bytes" else val.shape.size
            n = self.constant(node.args[1]) if len(node.args) == 2 else data
            n = min(n, data)
            slot = self.frame.alloc(8 + _round8(n), name="buf")
            self.b.st(8, FP, n, slot.off)
            self.copy(StackSlot(val.slot.off, _round8(n)), slot.field(8, _round8(n)))
            return Val(Shape("buffer", slot.size, False, extra=n), slot)
        if len(node.args) != 2:
            raise error("buf() requires a length argument for pointers", node)
        n = min(self.constant(node.args[1], "buf() length must be an integer literal"), self.env.strlen)
        if val.slot is not None:
            self.b.ldx(8, R0, FP, val.slot.off)
        slot = self.frame.alloc(8 + _round8(n), name="buf")
        self.b.st(8, FP, n, slot.off)
        read = "probe_read_user" if self._user_memory() else "probe_read_kernel"
        emit_helper_call(self.b, read, StackSlot(slot.off + 8, n), n, R0)
        self.check_helper(self.read_name(node.args[0]), node)
        return Val(Shape("buffer", slot.size, False, extra=n), slot)

    def call_strftime(self, node: ast.Call) -> Val:
        self.argc(node, 2)
        if not isinstance(node.args[0], ast.String):
            raise error("strftime() expects a string literal as the first argument", node)
        self.int_value(node.args[1])
        return Val(Shape("strftime", 8, False, extra=node.args[0].value))

    def call_macaddr(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        val = self.expr(node.args[0])
        slot = self.frame.alloc(8, name="macaddr")
        if val.shape.kind == "bytes" and val.shape.extra != 6:
            raise error("macaddr() argument must be 6 bytes in size", node)
        if val.shape.kind == "bytes":
            self.copy(StackSlot(val.slot.off, 8), slot)
        else:
            if val.slot is not None:
                self.b.ldx(8, R0, FP, val.slot.off)
            read = "probe_read_user" if self._user_memory() else "probe_read_kernel"
            emit_helper_call(self.b, read, StackSlot(slot.off, 6), 6, R0)
        return Val(Shape("macaddr", 8, False), slot)

    def call_cgroupid(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        if not isinstance(node.args[0], ast.String):
            raise error("cgroupid() expects a string literal", node)
        try:
            ident = os.stat(node.args[0].value).st_ino  # a cgroup v2 directory's inode is its id
        except OSError:
            raise error(f"Failed to get cgroupid for path '{node.args[0].value}'", node) from None
        self.load_const(R0, ident)
        return Val(UINT)

    def call_pton(self, node: ast.Call) -> Val:
        import socket

        self.argc(node, 1)
        if not isinstance(node.args[0], ast.String):
            raise error("pton() expects a string literal", node)
        text = node.args[0].value
        try:
            raw = socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
        except OSError:
            raise error(f"pton() expects a valid IPv4 or IPv6 address: {text}", node) from None
        slot = self.frame.alloc(_round8(len(raw)), name="pton")
        padded = raw + bytes(-len(raw) % 8)
        for pos in range(0, len(padded), 8):
            self.load_const(R1, int.from_bytes(padded[pos:pos + 8], "little", signed=True))
            self.b.stx(8, FP, R1, slot.off + pos)
        return Val(Shape("bytes", slot.size, False, extra=len(raw)), slot)

    def call_uaddr(self, node: ast.Call) -> Val:
        self.argc(node, 1)
        if not isinstance(node.args[0], ast.String):
            raise error("uaddr() expects a string literal", node)
        kind, _, rest = self.target.probe.partition(":")
        if not kind.startswith("u"):
            raise error("uaddr can only be used with uprobes and usdt probes", node)
        binary = rest.split(":", 1)[0]
        addr = _elf_symbol(binary, node.args[0].value)
        if addr is None:
            raise error(f"Could not resolve symbol: {binary}:{node.args[0].value}", node)
        self.load_const(R0, addr)
        return Val(UINT)

    def expr_Identifier(self, node: ast.Identifier) -> Val:
        """An enumerator from BTF (bpftrace 0.17 has no other bare names; ``true`` and
        ``false`` are the kernel's own enum): an unsigned 64-bit constant."""
        value = self.env.enum_value(node.name)
        if value is None:
            raise error(f"Unknown identifier: '{node.name}'", node)
        self.load_const(R0, value & (1 << 64) - 1)
        return Val(UINT)

    def expr_Sizeof(self, node: ast.Sizeof) -> Val:
        if node.type_name is not None:
            size = _INT_SIZES.get(node.type_name)
            if size is None:
                size = _btf_sizeof(node.type_name)
            if size is None:
                raise error(f"Unknown type: {node.type_name}", node)
        else:
            typ = getattr(node.expr, "type", None)
            size = getattr(typ, "size", None)
            if not isinstance(size, int):
                size = self.expr(node.expr).shape.size  # our layout: integers are 8 bytes
        self.load_const(R0, size)
        return Val(UINT)


JOIN_ARGS = 16  # bpftrace reads at most 16 argv entries

_INT_SIZES = {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8,
              "uint64": 8, "char": 1, "short": 2, "int": 4, "long": 8, "unsigned int": 4,
              "unsigned long": 8, "u8": 1, "u16": 2, "u32": 4, "u64": 8, "s8": 1, "s16": 2, "s32": 4,
              "s64": 8, "bool": 1, "void *": 8}


def _decode_retcode(data: bytes, services) -> tuple:
    return struct.unpack_from("<i", data)  # the low half: see check_helper


def _join_decoder(strlen: int, count: int, delim: str):
    def decode(data: bytes, services) -> tuple:
        parts = []
        for i in range(count):
            raw = bytes(data[i * strlen:(i + 1) * strlen]).split(b"\0", 1)[0]
            if not raw:
                break
            parts.append(raw.decode("utf-8", "replace"))
        return (delim.join(parts),)
    return decode


def _vmlinux():
    from ebpfpy import btf

    return btf.vmlinux()


def _btf_struct(type_name: str, node) -> int:
    """The BTF id of ``struct NAME``/``union NAME`` in the running kernel."""
    name = type_name.split()[-1]
    try:
        return _vmlinux().find_struct(name)
    except Exception:  # no BTF, or no such type
        raise error(f"Unknown struct/union: '{type_name}'", node) from None


def _btf_sizeof(type_name: str) -> Optional[int]:
    """Size of a kernel type by name (``struct task_struct``), from vmlinux BTF when readable."""
    try:
        from ebpfpy import btf

        spec = btf.vmlinux()
        name = type_name.split()[-1]
        tid = spec.find_struct(name) if type_name.startswith(("struct ", "union ")) else spec.find(name)
        return spec.size_of(tid)
    except Exception:  # BTF unreadable: the caller reports an unknown type
        return None
    return None


def _elf_symbol(path: str, name: str) -> Optional[int]:
    try:
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            elf = ELFFile(f)
            for section in (".symtab", ".dynsym"):
                table = elf.get_section_by_name(section)
                if table is None:
                    continue
                for sym in table.get_symbol_by_name(name) or ():
                    if sym["st_value"] and sym["st_info"]["type"] == "STT_OBJECT":  # as bpftrace: data only
                        return sym["st_value"]
    except (OSError, ValueError):
        return None
    return None


def _load_extended(b: Builder, size: int, signed: bool, dst, src, off: int) -> None:
    """Load ``size`` bytes, sign-extended when ``signed``.

    A plain load and two shifts rather than the ISA v4 sign-extending load,
    which kernels before 6.6 reject ("BPF_LDX uses reserved fields").
    """
    b.ldx(size, dst, src, off)
    if signed and size < 8:
        b.lsh(dst, 64 - 8 * size)
        b.arsh(dst, 64 - 8 * size)


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


def _wider(old: Shape, new: Shape) -> Shape:
    """The larger of two string shapes; anything else keeps its first shape."""
    if old.kind == "str" and new.kind == "str" and new.size > old.size:
        return new
    return old


def _kind_name(kind: str, value: Shape) -> str:
    return value.describe() if kind == "int" else f"{kind}"


def _describe_keys(key_shapes) -> str:
    return ", ".join(k.describe() for k in key_shapes)


def _is_literal(node: ast.Expr) -> bool:
    """An integer known while compiling, in the forms ``ProbeCodegen.constant`` folds: a
    literal, a negated literal, or a positional parameter."""
    if isinstance(node, ast.Unop) and node.op == "-":
        return isinstance(node.operand, ast.Integer)
    return isinstance(node, (ast.Integer, ast.PositionalParam))


def _tracepoint_struct(target) -> str:
    parts = target.probe.split(":")
    return f"struct _tracepoint_{parts[-2]}_{parts[-1]}" if len(parts) >= 3 else "args"


# -- the script ------------------------------------------------------------------------

@dataclass
class ExpandedProbe:
    probe: ast.Probe
    targets: list  # (provider, target)


# Kinds whose missing functions bpftrace 0.17 drops without a word (the file itself was checked).
_SILENT_KINDS = frozenset(("uprobe", "uretprobe", "usdt"))


class NoProbesError(CompileError):
    """Every attach point matched nothing: bpftrace prints "No probes to attach" on stdout, exit 1."""


def expand_probes(program: ast.Program, pid: int = -1) -> list:
    """Resolve every attach point into concrete targets (wildcards included).

    Like bpftrace 0.17, a uprobe/usdt function that is not in its (existing)
    binary is skipped silently, and only a script left with no probe at all fails.
    """
    from ebpfpy.attach.errors import ProbeNotFoundError

    out = []
    for probe in program.probes:
        targets = []
        for point in probe.attach_points:
            spec = point.raw
            span = point.span if point.span.line else None
            prov, rest = None, spec
            try:
                prov, rest = providers.split_probe(spec)
                found = prov.expand(rest, pid=pid)
            except ProbeNotFoundError as exc:
                if getattr(prov, "kind", None) not in _SILENT_KINDS:
                    raise CompileError([Message(str(exc).strip("'\""), span)]) from None
                found = []
            except Exception as exc:  # attach-layer errors carry a readable message
                raise CompileError([Message(str(exc).strip("'\""), span)]) from None
            kind = getattr(prov, "kind", None)
            if not found and kind == "tracepoint":
                raise CompileError([Message(f"tracepoints not found: {rest}", span)])
            if not found and kind not in _SILENT_KINDS:
                raise CompileError([Message(f"No probes to attach: {spec}", span)])
            targets.extend((prov, t) for t in found)
        out.append(ExpandedProbe(probe, targets))
    if out and not any(item.targets for item in out):
        raise NoProbesError([Message("No probes to attach")])
    return out


def compile_script(program: ast.Program, env: Env) -> CompiledScript:
    """Compile a parsed script into programs, maps and actions for the runtime."""
    expanded = expand_probes(program, env.pid if env.pid > 0 else (env.cpid or -1))
    state = ScriptState(env)
    if any(("struct" in d or "union" in d) and "{" in d for d in program.c_definitions):
        from .types import BTFResolver, parse_c_structs

        state.c_structs = parse_c_structs(program.c_definitions, BTFResolver())
    # First run: discover map shapes and each probe's variables; its output is discarded.
    variables = {}
    for item in expanded:
        for group, event in _program_groups(item):
            prov, target, ctx, dispatch = _group_program(state, group, event)
            gen = ProbeCodegen(state, item.probe, target, ctx, ctx.prog_type, final=False, dispatch=dispatch)
            gen.generate()
            for _, t in group:
                variables[id(item.probe), t.probe] = gen.var_shapes
    state.script = CompiledScript()
    state.printf_actions = {}
    ordered = sorted(expanded, key=lambda e: _probe_order(e.probe))
    for item in ordered:
        label = ",".join(p.raw for p in item.probe.attach_points)
        for group, event in _program_groups(item):
            prov, target, ctx, dispatch = _group_program(state, group, event)
            gen = ProbeCodegen(state, item.probe, target, ctx, ctx.prog_type,
                               variables=variables[id(item.probe), group[0][1].probe], dispatch=dispatch)
            builder = gen.generate()
            state.script.probes.append(_probe_plan(target, ctx, builder, label))
            if dispatch is not None:
                state.script.probes[-1].covers = tuple(t.probe for _, t in group)
                continue
            for prov_other, other in group[1:]:
                index = state.probe_index(other.probe)
                shared = _with_probe_index(builder, gen.probe_sites, index)
                state.script.probes.append(_probe_plan(other, prov_other.context(other), shared, label))
    return state.script


def _probe_plan(target, ctx, builder: Builder, label: str) -> ProbePlan:
    """The runtime's plan for one target; kfunc programs are loaded for one BTF function."""
    return ProbePlan(target.probe, ctx.prog_type, builder, label=label,
                     expected_attach_type=ctx.expected_attach_type, attach_btf_id=ctx.attach_btf_id)


# Builtins whose code depends on the concrete target (its context layout or symbol).
_TARGET_BUILTINS = frozenset({"args", "func", "retval"})
_TARGET_CALLS = frozenset({"uaddr"})


def _depends_on_target(probe: ast.Probe) -> bool:
    """Whether the body reads anything target-specific besides ``probe`` (which is patched)."""
    def walk(node) -> bool:
        if isinstance(node, ast.Builtin):
            name = node.name
            if name in _TARGET_BUILTINS or (name.startswith(("arg", "sarg")) and name.lstrip("sarg").isdigit()):
                return True
        if isinstance(node, ast.Call) and node.name in _TARGET_CALLS:
            return True
        if isinstance(node, (list, tuple)):
            return any(walk(n) for n in node)
        if isinstance(node, ast.Node):
            return any(walk(getattr(node, f)) for f in node.__dataclass_fields__
                       if f not in ("span", "type", "op_span", "pred_span"))
        return False
    return walk(probe.pred) or walk(probe.body)


def _mentions_probe(node) -> bool:
    """Whether an expression reads the ``probe`` builtin."""
    if isinstance(node, ast.Builtin):
        return node.name == "probe"
    if isinstance(node, (list, tuple)):
        return any(_mentions_probe(n) for n in node)
    if isinstance(node, ast.Node):
        return any(_mentions_probe(getattr(node, f)) for f in node.__dataclass_fields__ if f not in ("span", "type"))
    return False


def _share_groups(item: ExpandedProbe) -> list:
    """Targets that can share one program: all of them when the body ignores the target
    (a wildcard over 300 tracepoints is compiled once), else one group per target."""
    if len(item.targets) < 2 or _depends_on_target(item.probe):
        return [[t] for t in item.targets]
    groups: dict = {}
    for prov, target in item.targets:
        ctx = prov.context(target)
        groups.setdefault((ctx.prog_type, ctx.args), []).append((prov, target))
    return list(groups.values())


# A wildcard over at least this many syscall tracepoints becomes one raw_syscalls program
# (``ebpfpy.attach.syscalls``): fewer are cheaper to trace one by one, since the dispatch
# program runs for every syscall of the system.
DISPATCH_MIN = 32


def _program_groups(item: ExpandedProbe) -> list:
    """``(targets, event)`` per program: ``event`` is ``"sys_enter"``/``"sys_exit"`` where one
    raw_syscalls program stands for a shared group's syscall tracepoints, else None."""
    out = []
    for group in _share_groups(item):
        by_event: dict = {}
        if len(group) >= DISPATCH_MIN:
            for member in group:
                found = syscall_of(member[1].probe)
                by_event.setdefault(found[0] if found else None, []).append(member)
        dispatched = {event: members for event, members in by_event.items()
                      if event is not None and len(members) >= DISPATCH_MIN}
        rest = [m for event, members in by_event.items() if event not in dispatched for m in members] \
            if dispatched else group
        out.extend((members, event) for event, members in dispatched.items())
        if rest:
            out.append((rest, None))
    return out


def _group_program(state: ScriptState, group: list, event: Optional[str]):
    """The target, context and dispatch map of the program for one of ``_program_groups``."""
    if event is None:
        prov, target = group[0]
        return prov, target, prov.context(target), None
    prov, rest = providers.split_probe(raw_syscalls_probe(event))
    target = prov.expand(rest)[0]
    numbers = [syscall_of(t.probe)[1] for _, t in group]
    name = state.need_map(f"$syscalls{sum(n.startswith('$syscalls') for n in state.script.maps)}",
                          MapType.ARRAY, 4, 4, max(numbers) + 1)
    state.script.maps[name].initial = {
        nr.to_bytes(4, "little"): (state.probe_index(t.probe) + 1).to_bytes(4, "little")
        for nr, (_, t) in zip(numbers, group)}
    return prov, target, prov.context(target), name


def _with_probe_index(builder: Builder, sites: list, index: int) -> Builder:
    """A copy of ``builder`` whose ``probe`` loads (sites from ``Builder.mark``) give ``index``."""
    return builder.with_imm(sites, index)


def _probe_order(probe: ast.Probe) -> int:
    kinds = {p.raw for p in probe.attach_points}
    if "BEGIN" in kinds:
        return 0
    if "END" in kinds:
        return 2
    return 1
