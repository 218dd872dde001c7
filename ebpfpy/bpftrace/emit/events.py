"""Events sent to user space: printf/system/cat/exit/time records and -k helper-error reports.

A mixin of ``ProbeCodegen`` (``probe.py``): every method works on the one emitter context
(``self.b`` the builder, ``self.frame`` the stack, ``self.state`` the script, ``self.ctx`` the target).
"""
from __future__ import annotations

import contextlib
import struct

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.stack import StackSlot
from ebpfpy.isa.builder import FP, R0, R1, R3, R4, R5, R6
from ebpfpy.sys.consts import BPF_F_CURRENT_CPU

from .. import ast, shapes
from ..compiled import ActionPlan
from ..helper_errors import HelperSite, checked, read_helper
from ..output.printf import PrintfFormat, check_arguments
from ..shapes import NONE, Shape
from .context import Val, error, round8

_I64 = struct.Struct("<q")


def _decode_retcode(data: bytes, services) -> tuple:
    return struct.unpack_from("<i", data)  # the low half: see check_helper


class EventEmitter:
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

    def helper_failed(self, helper: str, node: ast.Node) -> HelperSite | None:
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
        return read_helper(pointer, self.ctx.space, string)

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

    def format_data(self, node: ast.Call, kind: str, fmt: str):
        """What the runtime needs to print a formatted event: the format; errorf()/warnf()
        (today's language) also say where the call is."""
        if kind in ("errorf", "warnf"):
            return PrintfFormat(fmt), self.env.filename, node.span[:3]
        return PrintfFormat(fmt)

    def _format_call(self, node: ast.Call, kind: str) -> Val:
        if not node.args or not isinstance(node.args[0], ast.String):
            raise error(f"{node.name}() expects a string literal as the first argument", node)
        fmt = node.args[0].value
        hints = [self.state.shape_hints.get((id(a), self.target.probe)) for a in node.args[1:]]
        if self.final and all(hints):
            return self._format_direct(node, kind, fmt, hints)
        vals = self.event_args(node.args[1:])
        problem = check_arguments(fmt, [shapes.printf_kind(v.shape) for v in vals], node.name)
        if problem and self.final:  # (a first run may see a map a later probe writes as an integer)
            raise error(problem, node)
        arg_shapes = tuple(v.shape for v in vals)
        decode_all = shapes.printf_decoder(arg_shapes)
        self.emit_event(ActionPlan(kind, decode_all, self.format_data(node, kind, fmt)), vals)
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
        action = ActionPlan(kind, shapes.printf_decoder(hints), self.format_data(node, kind, fmt))
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
        fmt = self.frame.alloc(round8(len(text.encode("utf-8", "surrogateescape")) + 1), name="debugf fmt")
        self.write_literal(text, fmt, zeroed=True)
        regs = (R3, R4, R5)
        for reg, val in zip(regs, values):
            if val.shape.kind == "str":
                b.mov(reg, FP)
                b.add(reg, val.slot.off)
            else:
                b.ldx(8, reg, FP, val.slot.off)
        size = len(text.encode("utf-8", "surrogateescape")) + 1
        emit_helper_call(b, "trace_printk", StackSlot(fmt.off, size), size, *regs[:len(values)])
        return Val(NONE)

    def call_exit(self, node: ast.Call) -> Val:
        if node.args:  # exit(code), today's language: the run's exit status
            code = self.spill(Val(self.int_value(node.args[0])))
            self.emit_event(ActionPlan("exit", lambda data, services: (_I64.unpack_from(data)[0],)), [code])
            self.goto(self.exit_label)
            return Val(NONE)
        self.emit_event(ActionPlan("exit", lambda data, services: ()), [])
        self.goto(self.exit_label)
        return Val(NONE)

    def call_time(self, node: ast.Call) -> Val:
        fmt = "%H:%M:%S\n"
        if node.args:
            if not isinstance(node.args[0], ast.String):
                raise error("time() expects a string literal", node)
            fmt = node.args[0].value
        self.emit_event(ActionPlan("time", lambda data, services: (), fmt), [])
        return Val(NONE)
