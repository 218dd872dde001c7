"""Emitters for the language bpftrace added after 0.17 (0.18 to 0.26): see docs/pybpftrace.md.

Most of today's syntax is lowered before codegen to forms the other mixins already emit
(the parser turns ``delete(@m, k)`` into ``delete(@m[k])`` and ``ppid`` into a field chain;
semantic analysis turns ``ptr.field`` into ``ptr->field``). What is left has its code here.
"""
from __future__ import annotations

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.isa.builder import R0

from .. import ast
from ..shapes import UINT
from .context import Val, error


class NewerLanguageEmitter:
    """Construct-family mixin of ``ProbeCodegen`` for today's bpftrace language."""

    def stmt_Let(self, stmt: ast.Let) -> None:
        """``let $x = expr``: the assignment (a bare ``let $x;`` only declares, for semantic
        analysis; the variable gets its slot at its first assignment)."""
        if stmt.expr is not None:
            self.assign_variable(stmt.var, stmt.expr)

    def call_has_key(self, node: ast.Call) -> Val:
        """``has_key(@m[key])``: 1 when a lookup of the key finds an entry, else 0."""
        target = node.args[0]
        known = self.state.map_shapes.get(target.name)
        if known is None:
            if self.final:
                raise error(f"Undefined map: {target.name}", target)
            self.load_const(R0, 0)  # a later probe writes the map: the final run emits the lookup
            return Val(UINT)
        key, key_shapes = self.map_key(target)
        self.declare_map(target, "read", key_shapes, known[2])
        self.map_plan(target.name)
        emit_helper_call(self.b, "map_lookup_elem", target.name, key)
        missing = self.b.fresh_label("nokey")
        self.b.jeq(R0, 0, missing)  # not found: r0 is already 0
        self.b.mov(R0, 1)
        self.b.label(missing)
        return Val(UINT)
