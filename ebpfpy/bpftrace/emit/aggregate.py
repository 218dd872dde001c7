"""Aggregations (count, sum, avg, stats, min, max, hist, lhist) as map updates.

A mixin of ``ProbeCodegen`` (``probe.py``): every method works on the one emitter context
(``self.b`` the builder, ``self.frame`` the stack, ``self.state`` the script, ``self.ctx`` the target).
"""
from __future__ import annotations

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.mapops import BPF_NOEXIST, emit_map_add, emit_map_update
from ebpfpy.codegen.stack import StackSlot
from ebpfpy.isa.builder import FP, R0, R1, R7, R8

from .. import ast
from ..aggregations import AGGREGATIONS, MIN_BIAS
from ..shapes import INT
from .context import error
from .maps import LAST_BUCKET


class AggregationEmitter:
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
        printed = lhist
        if lhist and not self.env.modern:
            # 0.17 computes buckets with a positional parameter's value ($1 = 10) but prints
            # with its number (1): its printer reads the node as a literal (static_cast)
            printed = tuple(a.index if isinstance(a, ast.PositionalParam) else v for a, v in zip(args[1:], lhist))
        value_reg_needed = agg != "count"
        value = INT
        if value_reg_needed:
            value = self.int_value(args[0])
            b.mov(R7, R0)  # survives the helper calls below
        bucketed = AGGREGATIONS[agg].bucketed
        key, key_shapes = self.map_key(target, tail=8 if bucketed else 0)
        # a sum prints unsigned when its (first) argument is unsigned, as bpftrace's CreateSum(sign)
        name = self.declare_map(target, agg, key_shapes, value if agg == "sum" else INT, printed)
        self.map_plan(name)
        checks = {"on_missing": lambda: self.check_lookup_miss(call),
                  "on_insert": lambda: self.check_helper("map_update_elem", call)}
        last = self.variables.get(LAST_BUCKET)  # a delete() in this program reads it (maps.py)
        if bucketed:
            self.emit_bucket(agg, lhist)
            b.stx(8, FP, R8, key.off + key.size - 8)  # the bucket number ends the key
            if last is not None:
                b.stx(8, FP, R8, last.slot.off)
            emit_map_add(self.frame, name, key, 1, **checks)
            return
        if agg == "count":
            emit_map_add(self.frame, name, key, 1, **checks)
        elif agg == "sum":
            emit_map_add(self.frame, name, key, R7, **checks)
        elif agg in ("avg", "stats"):
            self.emit_pair_update(name, key, count_first=True, site=call)
            if last is not None:
                b.st(8, FP, 1, last.slot.off)  # 0.17 writes the total (bucket 1) last
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
