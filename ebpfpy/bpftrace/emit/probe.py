"""The program for one probe body on one concrete target: the emitter context and its mixins.

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
  conditions compile to one compare-and-jump (``jump_if_false``).

Each AST node kind has one small method (``expr_<Kind>``/``stmt_<Kind>``),
grouped by construct family into the mixin modules of this package.
"""
from __future__ import annotations

from typing import Any

from ebpfpy.attach.syscalls import COMPAT_CS
from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.ctx import pt_regs_offset
from ebpfpy.codegen.memory import emit_probe_read
from ebpfpy.codegen.stack import StackError, StackFrame, StackSlot
from ebpfpy.isa.builder import FP, R0, R1, R3, R6, Builder

from .. import ast
from ..shapes import Shape
from .aggregate import AggregationEmitter
from .builtins import BuiltinEmitter
from .calls import CallEmitter
from .context import FIRST_RUN_STACK, FIRST_RUN_VARS, ScriptState, Val, round8, stack_overflow_error
from .events import EventEmitter
from .expressions import ExpressionEmitter
from .fields import FieldEmitter
from .maps import MapEmitter
from .newer import NewerLanguageEmitter
from .statements import StatementEmitter
from .strings import StringEmitter
from .targets import mentions_probe


class ProbeCodegen(StatementEmitter, ExpressionEmitter, MapEmitter, AggregationEmitter, FieldEmitter,
                   BuiltinEmitter, CallEmitter, StringEmitter, EventEmitter, NewerLanguageEmitter):
    """Generates the program for one probe body on one concrete target."""

    def __init__(self, state: ScriptState, probe: ast.Probe, target: Any, context, prog_type,
                 variables: dict | None = None, final: bool = True, dispatch: str | None = None,
                 dispatch_fields: dict | None = None):
        self.state = state
        # raw_syscalls programs standing for many syscall tracepoints: the map that gives
        # each syscall number its probe index + 1 (see ``emit_syscall_dispatch``)
        self.dispatch = dispatch
        # ... and the syscall tracepoints' record fields its ``args->NAME`` reads (fields.py)
        self.dispatch_fields = dispatch_fields or {}
        self.probe_slot: StackSlot | None = None
        self.env = state.env
        self.world = state.env.world
        self.probe = probe
        self.target = target
        self.ctx = context
        self.prog_type = prog_type
        self.final = final
        self.b = Builder()
        # $variables live at the top of the stack, sized from the first run's findings; the
        # discarded first run cannot know them yet, so it gets room it will never be held to.
        var_area = round8(sum(s.size for s in (variables or {}).values())) if final else FIRST_RUN_VARS
        self.vars_frame = StackFrame(self.b, limit=var_area)
        self.frame = StackFrame(self.b) if final else StackFrame(self.b, limit=FIRST_RUN_STACK)
        self.frame.used = var_area
        self.variables: dict[str, Val] = {}
        self.var_shapes: dict[str, Shape] = dict(variables or {})
        self.loops: list[tuple[str, str]] = []
        # for loops (newer.py): bodies still to emit as subprograms, the loop variables' slot
        # names as the body spells them, and the stack the callers of this frame take
        self.callbacks: list[tuple] = []
        self.var_alias: dict[str, str] = {}
        self.jump_targets: set[str] = set()  # labels break/continue jumped to
        self.outer_depth = 0
        self.len_callback: str | None = None  # len()'s callback, when the program has one
        self.in_callback = 0  # emitting a loop's body
        self.loop_names: dict[str, int] = {}  # first run: $variables loop bodies use -> deepest level
        self.exit_label = "probe_exit"
        # True right after an unconditional jump: the kernel rejects unreachable instructions
        self.dead = False
        self.var_reads: list[tuple[int, str]] = []  # first run: (node id, $name) of each read
        self.probe_sites: list[int] = []  # builder items that load this target's probe index
        self.site_spans: dict = {}  # -k: id(node) -> the span its helper failures report (helper_site)

    def generate(self) -> Builder:
        try:
            return self._generate()
        except StackError:
            raise stack_overflow_error(self.probe) from None

    def _generate(self) -> Builder:
        b = self.b
        b.mov(R6, R1)
        if self.ctx.args == "iter":
            # the kernel calls an iterator once more after the last object, with a NULL one
            b.ldx(8, R0, R6, 8)
            b.jeq(R0, 0, self.exit_label)
        pred = self.probe.pred
        # a syscall dispatch program runs for every syscall of the system: a predicate that
        # does not need ``probe`` (``/pid == 123/``) goes first, so most calls skip the lookup
        dispatch_first = self.dispatch is not None and (pred is None or mentions_probe(pred))
        if dispatch_first:
            self.emit_syscall_dispatch()
        for name, shape in self.var_shapes.items():
            self.variables[name] = Val(shape, self.vars_frame.alloc(shape.size, name=name))
        self.loop_levels = self.state.loop_names.get(id(self.probe), {})
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
        self.emit_callbacks()
        if not self.final and self.loop_names:
            # the variables loop bodies use go first, at the top of the stack (see newer.py)
            levels = self.state.loop_names.setdefault(id(self.probe), {})
            for name, level in self.loop_names.items():
                levels[name] = max(levels.get(name, 0), level)
            first = sorted(self.var_shapes, key=lambda n: -levels.get(n, 0))
            self.var_shapes = {n: self.var_shapes[n] for n in first}
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
