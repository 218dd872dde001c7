"""User maps: keys, declared shapes, the BPF map each one becomes, reads, stores, delete/clear/zero/print.

A mixin of ``ProbeCodegen`` (``probe.py``): every method works on the one emitter context
(``self.b`` the builder, ``self.frame`` the stack, ``self.state`` the script, ``self.ctx`` the target).
"""
from __future__ import annotations

from dataclasses import replace

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.mapops import emit_map_delete, emit_map_update
from ebpfpy.isa.builder import FP, R0, R1, R2
from ebpfpy.sys.consts import MapType

from .. import ast, shapes
from ..aggregations import AGGREGATIONS
from ..compiled import ActionPlan, MapPlan
from ..shapes import INT, NONE, POINTER, UINT, Shape
from .context import Val, error, wider

LAST_BUCKET = "last bucket"  # the hidden variable of MapEmitter.last_bucket_slot


def _kind_name(kind: str, value: Shape) -> str:
    return value.describe() if kind == "int" else f"{kind}"


def _describe_keys(key_shapes) -> str:
    return ", ".join(k.describe() for k in key_shapes)


class MapEmitter:
    def map_key(self, node: ast.Map, tail: int = 0) -> tuple:
        """Build the key on the stack; returns (slot, key shapes). ``tail`` extra bytes are left
        at the end of the slot, unwritten, for the caller (a histogram's bucket number)."""
        if not self.env.modern:  # 0.17 prints pointer key parts in hex (map_plan)
            for i, k in enumerate(node.keys):
                if getattr(getattr(k, "type", None), "is_pointer", False):
                    self.state.pointer_keys.setdefault(node.name, set()).add(i)
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
                keys = tuple(wider(o, k) for o, k in zip(old_keys, key_shapes))
                val = wider(old_value, value) if kind != "read" else old_value
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
                if kind == "sum" and not value.signed:
                    plan.unsigned_values = True
                    plan.decode_value = lambda raw, services: fold(raw) % (1 << 64)
                else:
                    plan.decode_value = lambda raw, services: fold(raw)
                key_parts = key_shapes + ((UINT,) if agg.bucketed else ())
            else:
                plan = MapPlan(name, MapType.HASH, key_size, value.size, self.env.map_keys_max,
                               kind="int" if value.is_int else value.kind, keyed=bool(key_shapes))
                plan.decode_value = shapes.decoder(value)
                key_parts = key_shapes
            pointers = self.state.pointer_keys.get(name, ())
            key_parts = tuple(POINTER if i in pointers else k for i, k in enumerate(key_parts))
            if not self.env.modern:  # bpftrace 0.17 prints every integer key as a signed 64-bit value
                key_parts = tuple(replace(k, signed=True) if k.is_int and i < len(key_shapes) else k
                                  for i, k in enumerate(key_parts))
            plan.decode_key = shapes.key_decoder(key_parts) if key_parts else None
            plan.key_shapes = tuple(key_parts)
            plans[name] = plan
        return name

    def assign_map(self, target: ast.Map, expr: ast.Expr) -> None:
        if isinstance(expr, ast.Call) and expr.name in AGGREGATIONS:
            self.aggregate(target, expr)
            return
        self.state.placeholder_read = False
        val = self.expr(expr)
        if not self.final and self.state.placeholder_read:
            return  # its shape comes from a map not written yet: the next first run declares it
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

    def expr_Map(self, node: ast.Map) -> Val:
        b = self.b
        known = self.state.map_shapes.get(node.name)
        if known is None:
            if self.final:
                raise error(f"Undefined map: {node.name}", node)
            self.load_const(R0, 0)
            self.state.read_unwritten_map = True
            # a map that only a later statement or probe writes: an integer of the sign semantic
            # analysis gave it (an untyped map in "@a = @a - 5" makes it unsigned, see promotion);
            # any other type is a placeholder whose shape no map may take (assign_map)
            declared = getattr(node, "type", None)
            if declared is not None and declared.kind not in ("int", "none"):
                self.state.placeholder_read = True
            return Val(UINT if declared is not None and declared.is_int and not declared.signed else INT)
        kind, _, value, _ = known
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
        name = self._map_arg(node)
        self.emit_event(ActionPlan("clear", lambda data, services: (), name), [])
        return Val(NONE)

    def call_zero(self, node: ast.Call) -> Val:
        name = self._map_arg(node)
        self.emit_event(ActionPlan("zero", lambda data, services: (), name), [])
        return Val(NONE)

    def call_print(self, node: ast.Call) -> Val:
        if isinstance(node.args[0], ast.Map) and not node.args[0].keys:
            name = self._map_arg(node)
            top = self.constant(node.args[1]) if len(node.args) > 1 else 0
            div = self.constant(node.args[2]) if len(node.args) > 2 else 1
            # (a map only a later probe writes has no shape yet in the first run)
            if self.state.map_shapes.get(name, ("",))[0] == "stats":
                top, div = 0, 1  # ignored, as semantic analysis warned
            self.emit_event(ActionPlan("print_map", lambda data, services: (), (name, top, div)), [])
            return Val(NONE)
        val = self.expr(node.args[0])
        if self.env.modern and isinstance(val.shape.extra, tuple) and val.shape.extra[:1] == ("btf_inline",):
            val = self.struct_value(val, node.args[0])  # print(*ptr): the whole struct (0.18+)
        vals = [val if val.slot is not None else self.spill(val)]
        self.emit_event(ActionPlan("print_value", shapes.print_decoder(vals[0].shape)), vals)
        return Val(NONE)

    def call_delete(self, node: ast.Call) -> Val:
        target = node.args[0]
        if not isinstance(target, ast.Map):
            raise error("delete() expects a map to be provided", node)
        if target.name not in self.state.map_shapes:
            if self.final:
                raise error(f"Undefined map: {target.name}", target)
            return Val(NONE)
        kind = self.state.map_shapes[target.name][0]
        if kind in ("avg", "stats") and not self.env.modern:
            return self.delete_average(node, target)
        bucketed = kind in AGGREGATIONS and AGGREGATIONS[kind].bucketed
        last = self.last_bucket_slot() if bucketed and target.keys else None
        key, key_shapes = self.map_key(target, tail=8 if last is not None else 0)
        if last is not None:  # one (key, bucket) entry goes, as in 0.17 (see delete_average)
            self.b.ldx(8, R0, FP, last.off)
            self.b.stx(8, FP, R0, key.off + key.size - 8)
        self.declare_map(target, "read", key_shapes, INT)
        self.map_plan(target.name)
        emit_map_delete(self.b, target.name, key)
        if self.env.modern:  # today: a bool, whether there was an entry
            result = self.spill(Val(INT))
            self.check_helper("map_delete_elem", node)
            self.b.ldx(8, R0, FP, result.slot.off)
            return self.deleted(node)
        self.check_helper("map_delete_elem", node)
        return Val(NONE)

    def delete_average(self, node: ast.Call, target: ast.Map) -> Val:
        """delete() of an avg/stats entry as bpftrace 0.17 does it. 0.17 keeps these maps, as
        hist/lhist, as one entry per (key, bucket) (avg/stats: bucket 0 the count, 1 the
        total) and deletes with the user key alone, so the kernel reads the bucket from the
        stack beyond it: 0 for a map without keys, else what the last aggregation before it in
        the same program left there (its bucket; 1 after avg/stats). Only that bucket goes:
        ``delete(@s)`` of a stats map leaves "count 0, average 0, total 5". Our avg/stats
        entries are {count, total} per CPU, so the current CPU's half is zeroed instead."""
        b = self.b
        last = self.last_bucket_slot() if target.keys else None
        key, key_shapes = self.map_key(target)
        self.declare_map(target, "read", key_shapes, INT)
        self.map_plan(target.name)
        done = b.fresh_label("deleted")
        emit_helper_call(b, "map_lookup_elem", target.name, key)
        b.jeq(R0, 0, done)
        if last is None:
            b.st(8, R0, 0, 0)
        else:
            total = b.fresh_label("total")
            b.ldx(8, R1, FP, last.off)
            b.jeq(R1, 1, total)
            b.jne(R1, 0, done)
            b.st(8, R0, 0, 0)
            b.ja(done)
            b.label(total)
            b.st(8, R0, 0, 8)
        b.label(done)
        return Val(NONE)

    def last_bucket_slot(self):
        """The program's slot for the bucket its last aggregation wrote (see ``delete_average``):
        a hidden variable (no script name has a space), zeroed at entry, which aggregations
        keep up to date once a delete() in the program needs it."""
        val = self.variables.get(LAST_BUCKET)
        if val is None:  # discarded first run: the final run allocates it at entry
            self.var_shapes[LAST_BUCKET] = INT
            val = self.variables[LAST_BUCKET] = Val(INT, self.vars_frame.alloc(8, name=LAST_BUCKET))
        return val.slot
