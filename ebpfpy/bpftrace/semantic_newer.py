"""Semantic analysis of today's statements (bpftrace 0.22 to 0.26, ``compat.is_modern``):
block scoping, ``let`` declarations and ``for`` loops over maps and ranges.

A mixin of ``semantic.Checker``, as ``emit/newer.py`` is of the code generator.
"""
from __future__ import annotations

from . import ast
from .diagnostics import Verbatim
from .semantic_rules import kind_word
from .types import INT64, NONE, Type, compatible, int_type, tuple_type

CHAR = int_type(8, True)  # a string's element, `$s[i]` (bpftrace 0.25+)
# the map kinds of `let @m = kind(N);` (bpftrace 0.24+); the per-CPU ones hold aggregations only here
MAP_DECL_KINDS = ("hash", "lruhash", "percpuhash", "percpulruhash")
# the name that marks the pointer type of `&$v` (bpftrace 0.26): an address in this program's stack
# frame, meaningless in a map, and not one a for loop's body (a callback with a frame of its own) can use
STACK_ADDRESS = "&"
STACK_ADDRESS_IN_LOOP = "the address of a variable (&$v) can not be used in a for loop's body yet"


class NewerChecks:
    def block(self, stmts: tuple[ast.Stmt, ...]) -> None:
        """A nested block. In today's language its variables end with it (bpftrace 0.22+);
        in 0.17's, a variable lives from its first assignment to the end of the probe."""
        if not self.modern:
            self.stmts(stmts)
            return
        self.scope.blocks.append(set())
        self.stmts(stmts)
        for name in self.scope.blocks.pop():
            self.scope.vars.pop(name, None)
            self.scope.declared.pop(name, None)

    def let(self, node: ast.Let) -> None:
        """``let $x [: type] [= expr]``: a new variable of this block; shadowing one that is
        visible is an error, as in bpftrace."""
        name = node.var.name
        first = self.scope.declared.get(name)
        if first is not None or name in self.scope.vars:
            self.error(f"Variable {name} was already declared. Variable shadowing is not allowed.",
                       node.var.span)
            if first is not None:
                self.error("This is the initial declaration.", first)
            return
        self.scope.declared[name] = node.var.span
        self.scope.blocks[-1].add(name)
        if node.expr is not None:
            value = self.expr(node.expr, assigned="var")
            if value.kind == "none":
                self.scope.vars.setdefault(name, NONE)
            else:
                self.assign_var(node.var, value, node.span)

    def for_loop(self, node: ast.For) -> None:
        """``for ($kv : @map)`` ($kv is ``(key, value)``, ``((k1, k2), value)`` for several keys)
        or ``for ($i : a..b)`` ($i an int64): the variable lives in the loop's body."""
        it, name = node.iterable, node.var.name
        var_t = NONE
        if isinstance(it, ast.Range):
            for end in (it.start, it.end):
                t = self.expr(end)
                if t.kind not in ("int", "none"):
                    self.error(f"Loop range requires an integer, got '{t}'", end.span)
            var_t = INT64
        elif isinstance(it, ast.Map):
            info = self.maps.get(it.name)
            if info is None:
                self.final_error(f"Undefined map: {it.name}", it.span)
            elif info.value.is_aggregate or not info.keys:
                self.error("for-loops over maps without keys or of aggregations are not supported yet",
                           it.span)
            else:
                key = info.keys[0] if len(info.keys) == 1 else tuple_type(info.keys)
                var_t = tuple_type((key, info.value))
        else:
            self.error("for-loops iterate over a map or a range (a..b)", it.span)
        if name in self.scope.vars or name in self.scope.declared:
            self.error(f"Loop declaration shadows existing variable: {name}", node.var.span)
            return
        self.scope.blocks.append({name})
        self.scope.vars[name] = var_t
        ast.set_type(node.var, var_t)
        self.scope.loops += 1
        self.scope.fors += 1
        self.stmts(node.body)
        self.scope.fors -= 1
        self.scope.loops -= 1
        for var in self.scope.blocks.pop():
            self.scope.vars.pop(var, None)
            self.scope.declared.pop(var, None)

    def e_Elvis(self, node: ast.Elvis) -> Type:
        """``a ?: b`` (bpftrace 0.26): ``a`` is the condition and the value, so both sides are
        integers (bools, pointers) of one kind; codegen keeps ``a`` in a register."""
        left, right = self.expr(node.left), self.expr(node.right)
        if left.kind == "none" or right.kind == "none":
            return NONE
        if left.kind not in ("int", "pointer"):
            return self.error(f"Elvis operator (?:) needs an integer or a pointer on its left, found "
                              f"'{kind_word(left)}'", node.span)
        if not compatible(left, right):
            return self.final_error("Ternary operator must return the same type: have "
                                    f"'{kind_word(left)}' and '{kind_word(right)}'", node.span)
        return left

    def map_declarations(self, decls: tuple[ast.MapDecl, ...]) -> None:
        """``let @m = lruhash(N);`` (bpftrace 0.24+): a known kind, once per map."""
        seen: set[str] = set()
        for decl in decls:
            if decl.kind not in MAP_DECL_KINDS:
                self.error(f"Invalid bpf map type: {decl.kind}", decl.span)
                self.r.messages.append(Verbatim("HINT: Valid map types: " + ", ".join(MAP_DECL_KINDS), None))
            if decl.name in seen:
                self.error(f"Map {decl.name} is declared more than once", decl.span)
            seen.add(decl.name)

    def declared_map_values(self, decls: tuple[ast.MapDecl, ...]) -> None:
        """After the probes: a per-CPU declaration needs an aggregation's value (only those are
        read back per CPU, and summed, here)."""
        for decl in decls:
            info = self.maps.get(decl.name)
            if info is not None and decl.kind.startswith("percpu") and not info.value.is_aggregate:
                self.final_error(f"{decl.kind} maps hold aggregations (count(), sum()...) in pybpftrace; "
                                 f"{decl.name} holds '{info.value}', not supported yet", decl.span)

    def address_of(self, node: ast.Unop) -> Type:
        """``&$v`` (bpftrace 0.26): a pointer to the variable's slot on the BPF stack, which
        ``*$p`` reads back. Only integer variables here."""
        t = self.expr(node.operand)
        if t.kind == "none":
            return NONE
        if self.scope.fors:
            return self.error(STACK_ADDRESS_IN_LOOP, node.span)
        if not t.is_int:
            return self.error(f"pybpftrace takes the address (&) of integer variables only, not of '{t}' "
                              "(not supported yet)", node.span)
        return Type("pointer", 8, elems=(t,), name=STACK_ADDRESS)

    def e_BlockExpr(self, node: ast.BlockExpr) -> Type:
        """``{ stmts; expr }`` (bpftrace 0.24+): a block of its own (its variables end with it)."""
        self.scope.blocks.append(set())
        self.stmts(node.stmts)
        t = self.expr(node.expr)
        for name in self.scope.blocks.pop():
            self.scope.vars.pop(name, None)
            self.scope.declared.pop(name, None)
        return t

    def e_Record(self, node: ast.Record) -> Type:
        elems = [self.expr(e) for e in node.elems]
        if any(e.kind == "none" for e in elems):
            return NONE
        return tuple_type(elems, node.names)

    def record_field(self, node: ast.FieldAccess, t: Type) -> Type:
        """``$r.name`` on a record (bpftrace 0.25+)."""
        if node.field not in t.names:
            return self.error(f"Record does not contain a field named '{node.field}'", node.span)
        return t.elems[t.names.index(node.field)]

    def index_tuple_or_string(self, node: ast.ArrayAccess, t: Type, idx: Type) -> Type:
        """``$t[1]`` (a tuple's element: a constant index only) and ``$s[i]`` (the integer value
        of a string's char; a constant index past the end is an error), bpftrace 0.25+."""
        index = node.index.value if isinstance(node.index, ast.Integer) else None
        if not idx.is_int:
            return self.final_error(f"The array index operator [] only accepts integer indices, found {idx}.",
                                    node.span)
        if t.kind == "tuple":
            if index is None:
                return self.error("The index of a tuple must be a constant integer", node.index.span)
            if not 0 <= index < len(t.elems):
                return self.final_error(f"Invalid tuple index: {index}. Found {len(t.elems)} elements in tuple.",
                                        node.span)
            return t.elems[index]
        if index is not None and not 0 <= index < t.size:
            return self.error(f"the index {index} is out of bounds for array of size {t.size}", node.span)
        return CHAR
