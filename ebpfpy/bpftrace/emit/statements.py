"""Statements and control flow: assignment, if, while, unroll, break/continue/return.

A mixin of ``ProbeCodegen`` (``probe.py``): every method works on the one emitter context
(``self.b`` the builder, ``self.frame`` the stack, ``self.state`` the script, ``self.ctx`` the target).
"""
from __future__ import annotations

from ebpfpy.codegen.stack import StackError
from ebpfpy.isa.builder import BuildError

from .. import ast
from ..semantic_rules import unroll_count
from .context import Val, error, wider


class StatementEmitter:
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
        if isinstance(stmt.count, ast.PositionalParam):  # base 10, unlike $N elsewhere
            count = unroll_count(self.param(stmt.count.index) or "0") or 0
        else:
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
        target = top if stmt.kind == "continue" else done
        self.jump_targets.add(target)  # (a for loop's callback emits only the exits it needs)
        self.goto(target)

    def assign_variable(self, target: ast.Variable, expr: ast.Expr) -> None:
        if isinstance(expr, ast.Tuple) and self.final and self.tuple_into_variable(target, expr):
            return
        self.store_variable(target, self.expr(expr))

    def tuple_into_variable(self, target: ast.Variable, expr: ast.Tuple) -> bool:
        """``$t = (a, b, c)``: build the tuple in the variable's own slot, as LLVM would, when its
        layout is the variable's and it does not read the variable (``$t = ($t.1, $t.0)``);
        a tuple of strings then needs no second copy on the 512-byte stack."""
        held = self.variables.get(target.name)
        hint = self.state.shape_hints.get((id(expr), self.target.probe))
        if held is None or hint != held.shape or any(
                isinstance(n, ast.Variable) and n.name == target.name for n in ast.walk(expr)):
            return False
        with self.frame.scope():
            self.expr_into(expr, held.slot, held.shape)
        return True

    def store_variable(self, target: ast.Variable, val: Val) -> None:
        """``$x = value``: the variable takes the value's shape at its first assignment (strings:
        the widest any assignment gives), and the value is stored into its slot."""
        known = self.var_shapes.get(target.name)
        if known is not None and not self.final:
            self.var_shapes[target.name] = known = wider(known, val.shape)
        if known is None:
            self.var_shapes[target.name] = known = val.shape
        elif known.kind != val.shape.kind:
            raise error(f"Type mismatch for {target.name}: trying to assign value of type "
                        f"'{val.shape.describe()}' when variable already contains a value of type "
                        f"'{known.describe()}'", target)
        if self.in_callback and not self.final:
            self.note_loop_use(target.name)
        slot = self.variables.get(target.name)
        if slot is None or slot.shape != known:
            # discarded first run: give it a slot now (or a wider one) so the rest of the body can use it
            slot = self.variables[target.name] = Val(known, self.vars_frame.alloc(known.size, name=target.name))
        self.store(val, slot.slot, known.size)
