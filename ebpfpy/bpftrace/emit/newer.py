"""Emitters for the language bpftrace added after 0.17 (0.18 to 0.26): see docs/pybpftrace.md.

Most of today's syntax is lowered before codegen to forms the other mixins already emit
(the parser turns ``delete(@m, k)`` into ``delete(@m[k])`` and ``ppid`` into a field chain;
semantic analysis turns ``ptr.field`` into ``ptr->field``). What is left has its code here.
"""
from __future__ import annotations

from dataclasses import replace

from ebpfpy.codegen.calls import Func, emit_helper_call
from ebpfpy.codegen.stack import MAX_STACK, StackError, StackFrame, StackSlot
from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R4, R6
from ebpfpy.sys.consts import BPF_F_USER_STACK, MapType

from .. import ast
from ..shapes import BOOL, INT, UINT, Shape, tuple_of
from .context import FIRST_RUN_STACK, STACK_DEPTH, InternalCompilerError, Val, error

# the hidden variables that carry the program's context pointer into loop callbacks, and the
# probe index of a syscall dispatch program (kept on its stack: see probe.emit_syscall_dispatch)
PROG_CTX = "$$ctx"
PROBE_INDEX = "$$probe"
EVERY_LEVEL = 1 << 30  # (their loop level: every loop body needs them)


def _round32(n: int) -> int:
    return (n + 31) // 32 * 32


# `let @m = kind(N);` (bpftrace 0.24+): the BPF map type for the kind, by whether the value is
# stored per CPU (aggregations) or not
_DECLARED_TYPES = {
    "hash": {False: MapType.HASH, True: MapType.PERCPU_HASH},
    "lruhash": {False: MapType.LRU_HASH, True: MapType.LRU_PERCPU_HASH},
    "percpuhash": {True: MapType.PERCPU_HASH},
    "percpulruhash": {True: MapType.LRU_PERCPU_HASH},
}


def apply_map_declarations(script, decls: tuple[ast.MapDecl, ...]) -> None:
    """Give each declared map (that the script uses) its declared type and size; semantic
    analysis has checked the kinds and that per-CPU kinds hold aggregations."""
    for decl in decls:
        plan = script.maps.get(decl.name)
        if plan is None:
            continue
        percpu = plan.map_type in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
        map_type = _DECLARED_TYPES[decl.kind].get(percpu)
        if map_type is None:
            raise InternalCompilerError(f"{decl.kind} map {decl.name} holds a value of its kind's other storage")
        plan.map_type, plan.max_entries = map_type, decl.max_entries


class NewerLanguageEmitter:
    """Construct-family mixin of ``ProbeCodegen`` for today's bpftrace language."""

    def stmt_Let(self, stmt: ast.Let) -> None:
        """``let $x = expr``: the assignment (a bare ``let $x;`` only declares, for semantic
        analysis; the variable gets its slot at its first assignment)."""
        if stmt.expr is not None:
            self.assign_variable(stmt.var, stmt.expr)

    def lookup_key(self, target: ast.Map):
        """Look an indexed map's key up (has_key, find): r0 the value's address or 0; the map's
        (kind, value shape), or None in the first run when only a later probe writes the map."""
        known = self.state.map_shapes.get(target.name)
        if known is None:
            if self.final:
                raise error(f"Undefined map: {target.name}", target)
            self.load_const(R0, 0)  # a later probe writes the map: the final run emits the lookup
            return None
        key, key_shapes = self.map_key(target)
        self.declare_map(target, "read", key_shapes, known[2])
        self.map_plan(target.name)
        emit_helper_call(self.b, "map_lookup_elem", target.name, key)
        return known[0], known[2]

    def call_has_key(self, node: ast.Call) -> Val:
        """``has_key(@m[key])``: 1 when a lookup of the key finds an entry, else 0."""
        if self.lookup_key(node.args[0]) is None:
            return Val(UINT)
        missing = self.b.fresh_label("nokey")
        self.b.jeq(R0, 0, missing)  # not found: r0 is already 0
        self.b.mov(R0, 1)
        self.b.label(missing)
        return Val(BOOL)

    def call_find(self, node: ast.Call) -> Val:
        """``find(@m, key, $v)`` (0.25; the parser made it ``find(@m[key], key, $v)``): when the map
        holds the key, its value goes into ``$v`` and the result is true; else ``$v`` is left
        as it was and the result is false. One lookup."""
        b = self.b
        target, _, var = node.args
        found_map = self.lookup_key(target)
        if found_map is None:
            return Val(BOOL)
        kind, value = found_map
        missing, done = b.fresh_label("notfound"), b.fresh_label("found")
        b.jeq(R0, 0, missing)
        if value.in_register or kind != "int":  # an aggregation reads as its (this CPU's) integer
            b.ldx(8, R0, R0, 8 if kind in ("avg", "stats") else 0)
            found = Val(value if kind == "int" else INT)
        else:
            found = Val(value, self.frame.alloc(value.size, zero=False, name="found value"))
            b.mov(R1, R0)
            for pos in range(0, value.size, 8):
                b.ldx(8, R2, R1, pos)
                b.stx(8, FP, R2, found.slot.off + pos)
        self.store_variable(var, found)
        b.mov(R0, 1)
        b.ja(done)
        b.label(missing)
        b.mov(R0, 0)
        b.label(done)
        return Val(BOOL)

    def deleted(self, node: ast.Call) -> Val:
        """After map_delete_elem (today's delete(), a bool): 1 when an entry went, else 0."""
        b = self.b
        missing = b.fresh_label("notdeleted")
        b.mov(R1, R0)
        b.mov(R0, 0)
        b.jne(R1, 0, missing)
        b.mov(R0, 1)
        b.label(missing)
        return Val(BOOL)

    def expr_Boolean(self, node: ast.Boolean) -> Val:
        self.load_const(R0, int(node.value))
        return Val(BOOL)

    def expr_Offsetof(self, node: ast.Offsetof) -> Val:
        """The offset semantic analysis found (``semantic.e_Offsetof``)."""
        if node.size is None:
            raise InternalCompilerError(f"offsetof({node.type_name}) was not resolved by semantic analysis")
        self.load_const(R0, node.size)
        return Val(UINT)

    def expr_BlockExpr(self, node: ast.BlockExpr) -> Val:
        """``{ stmts; expr }``: the statements, then the value."""
        self.block(node.stmts)
        if self.dead:
            raise error("a block expression must end with its value: exit(), return, break and continue "
                        "inside one are not supported yet", node)
        return self.expr(node.expr)

    def address_of(self, node: ast.Unop) -> Val:
        """``&$v``: the address of the variable's stack slot (semantic analysis allows integer
        variables, whose slots hold 8 bytes: ``*$p`` reads them back with probe_read_kernel)."""
        self.expr(node.operand)  # (notes the read, for loop bodies and the first run)
        val = self.variables[node.operand.name]
        self.b.mov(R0, FP)
        self.b.add(R0, val.slot.off)
        return Val(UINT)

    def expr_Record(self, node: ast.Record) -> Val:
        """A tuple whose shape carries the field names, for ``.name`` and the printers."""
        val = self.expr_Tuple(node)
        return Val(replace(val.shape, extra=("record", node.names)), val.slot)

    def expr_Elvis(self, node: ast.Elvis) -> Val:
        """``a ?: b``: ``a`` once, into r0; ``b`` only when it is 0 (semantic analysis allows
        integers and pointers only, which travel in a register)."""
        done = self.b.fresh_label("elvis_end")
        shape = self.int_value(node.left)
        self.b.jne(R0, 0, done)
        self.int_value(node.right)
        self.b.label(done)
        return Val(shape)

    def expr_ArrayAccess(self, node: ast.ArrayAccess) -> Val:
        """Today's ``$t[1]`` (a tuple's element, constant index) and ``$s[i]`` (a string's
        char, sign-extended as bpftrace's int8; 0 past the end of the string's slot)."""
        val = self.expr(node.expr)
        if val.shape.kind == "tuple" and isinstance(node.index, ast.Integer):
            return self.tuple_element(val, node.index.value, node)
        if val.shape.kind != "str" or val.slot is None:
            raise error("The array index operator [] is not supported here yet", node)
        b, size = self.b, val.shape.size
        if isinstance(node.index, ast.Integer):
            if 0 <= node.index.value < size:
                b.ldx(1, R0, FP, val.slot.off + node.index.value)
            else:
                b.mov(R0, 0)
        else:
            outside, done = b.fresh_label("strindex_out"), b.fresh_label("strindex_end")
            self.int_value(node.index)
            b.jge(R0, size, outside)  # unsigned: negative indices are outside too
            b.mov(R1, FP)
            b.add(R1, val.slot.off)
            b.add(R1, R0)
            b.ldx(1, R0, R1, 0)
            b.ja(done)
            b.label(outside)
            b.mov(R0, 0)
            b.label(done)
        b.lsh(R0, 56)
        b.arsh(R0, 56)
        return Val(INT)

    def call_len(self, node: ast.Call) -> Val:
        """``len(@m)``: bpf_for_each_map_elem returns how many entries it visited; its callback
        (one per program) only says "go on"."""
        target = node.args[0]
        if not isinstance(target, ast.Map):
            return self.stack_length(target)
        known = self.state.map_shapes.get(target.name)
        if known is None:
            if self.final:
                raise error(f"Undefined map: {target.name}", target)
            self.load_const(R0, 0)
            return Val(UINT)
        _, key_shapes, value, lhist = known
        self.declare_map(target, "read", key_shapes, value, lhist)
        self.map_plan(target.name)
        if self.len_callback is None:
            self.len_callback = label = self.b.fresh_label("len_callback")
            self.callbacks.append(lambda: self.emit_go_on(label))
        emit_helper_call(self.b, "for_each_map_elem", target.name, Func(self.len_callback), 0, 0)
        return Val(UINT)

    def stack_length(self, node: ast.Expr) -> Val:
        """``len(kstack)``, ``len(ustack(5))`` (bpftrace 0.23+): how many frames the stack has
        now, from bpf_get_stack into a per-CPU scratch buffer (a stack-trace map cannot be read
        from a program)."""
        b = self.b
        limit = self._stack_args(node)[1] if isinstance(node, ast.Call) else STACK_DEPTH
        buffer = self.state.need_map("$len_stack", MapType.PERCPU_ARRAY, 4, 8 * STACK_DEPTH, 1)
        with self.frame.scope():
            key = self.frame.alloc(8, name="key")  # zeroed: entry 0
            emit_helper_call(b, "map_lookup_elem", buffer, key)
        done = b.fresh_label("stack_len")
        b.jeq(R0, 0, done)  # (never: an array's entry 0 is always there) r0 is 0 then
        flags = BPF_F_USER_STACK if node.name == "ustack" else 0
        emit_helper_call(b, "get_stack", R6, R0, 8 * max(1, min(limit, STACK_DEPTH)), flags)
        b.jsge(R0, 0, done + "_bytes")
        b.mov(R0, 0)
        b.label(done + "_bytes")
        b.rsh(R0, 3)  # bytes written -> frames
        b.label(done)
        return Val(UINT)

    def emit_go_on(self, label: str) -> None:
        self.b.label(label)
        self.b.mov(R0, 0)
        self.b.exit()

    def call_errorf(self, node: ast.Call) -> Val:
        """errorf(fmt, ...): the runtime prints ``FILE:L:C-C: ERROR: msg`` on stderr."""
        return self._format_call(node, "errorf")

    def call_warnf(self, node: ast.Call) -> Val:
        return self._format_call(node, "warnf")

    def call_syscall_name(self, node: ast.Call) -> Val:
        """The number, named by the runtime (shapes.py)."""
        self.int_value(node.args[0])
        return Val(Shape("syscall_name", 8, False))

    def call_getopt(self, node: ast.Call) -> Val:
        """The option's value, read from the command line before compiling (program_options.py)."""
        from ..program_options import default_of

        name = node.args[0].value
        kind, default = default_of(node)
        value = self.env.program_options.get(name, default)
        if kind == "string":
            return self.expr_String(ast.String(value, span=node.span))
        self.load_const(R0, int(value))
        return Val(BOOL if kind == "bool" else INT)

    def call_signal_name(self, node: ast.Call) -> Val:
        self.int_value(node.args[0])
        return Val(Shape("signal_name", 8, False))

    # -- for loops: callbacks of bpf_loop / bpf_for_each_map_elem --------------------------
    #
    # The body of a for loop is a subprogram the helper calls once per element. Its own stack
    # frame starts with a copy of the enclosing frame's $variables, at the same offsets, so
    # the body's code reads and writes variables as the probe's code does: the callback copies
    # them in from the caller's frame (through the context pointer the helper passes on) when
    # it starts and back when it returns. The program's context pointer travels the same way,
    # in a hidden variable, for the helpers that need it (perf_event_output).

    def note_loop_use(self, name: str, level: int | None = None) -> None:
        """First run: loop bodies ``level`` deep (default: this one) use the variable."""
        level = self.in_callback if level is None else level
        if level > self.loop_names.get(name, 0):
            self.loop_names[name] = level

    def loop_variable(self, name: str, shape, level: int) -> Val:
        """A variable slot of the loop's own (a name unique to this loop; the body sees it under
        the script's name through ``var_alias``), used by loop bodies ``level`` deep."""
        self.note_loop_use(name, level)
        known = self.var_shapes.get(name)
        if known is None or (not self.final and known != shape):
            self.var_shapes[name] = known = shape
        slot = self.variables.get(name)
        if slot is None or slot.shape != known:
            slot = self.variables[name] = Val(known, self.vars_frame.alloc(known.size, name=name))
        return slot

    def stmt_For(self, stmt: ast.For) -> None:
        b = self.b
        key = f"{stmt.var.name}#{stmt.span.line}:{stmt.span.col_start}"
        level = self.in_callback + 1  # of the loop's body
        progctx = self.loop_variable(PROG_CTX, UINT, EVERY_LEVEL)
        b.stx(8, FP, R6, progctx.slot.off)
        if self.probe_slot is not None and not self.in_callback:
            index = self.loop_variable(PROBE_INDEX, UINT, EVERY_LEVEL)
            b.ldx(8, R0, FP, self.probe_slot.off)
            b.stx(8, FP, R0, index.slot.off)
        it = stmt.iterable
        if isinstance(it, ast.Range):
            self.loop_variable(key, INT, level)
            start = self.loop_variable(key + "#start", INT, level)
            self.int_value(it.start)
            b.stx(8, FP, R0, start.slot.off)
            self.int_value(it.end)
            b.ldx(8, R1, FP, start.slot.off)
            b.sub(R0, R1)  # iterations: end - start, none when end <= start (bpf_loop takes up to 2^23)
            empty = b.fresh_label("range_empty")
            b.jsgt(R0, 0, empty)
            b.mov(R0, 0)
            b.label(empty)
            label = b.fresh_label("for_range")
            self.callbacks.append((label, stmt, key, key + "#start", self.frame, self.outer_depth,
                                   dict(self.var_alias), level))
            emit_helper_call(b, "loop", R0, Func(label), self.loop_context(level), 0)
            return
        known = self.state.map_shapes.get(it.name)
        if known is None:
            if self.final:
                raise error(f"Undefined map: {it.name}", it)
            self.state.read_unwritten_map = True  # a later probe writes it: the next run emits the loop
            return
        _, key_shapes, value, _ = known
        key_shape = key_shapes[0] if len(key_shapes) == 1 else tuple_of(key_shapes)
        self.loop_variable(key, tuple_of((key_shape, value)), level)
        self.declare_map(it, "read", key_shapes, value)
        self.map_plan(it.name)
        label = b.fresh_label("for_map")
        self.callbacks.append((label, stmt, key, None, self.frame, self.outer_depth, dict(self.var_alias),
                               level))
        emit_helper_call(b, "for_each_map_elem", it.name, Func(label), self.loop_context(level), 0)

    def loop_area_size(self, level: int) -> int:
        """The bytes at the top of the frame that hold the $variables loop bodies ``level`` deep
        use (laid out deepest first: ``ProbeCodegen._generate``)."""
        if not self.final:
            return self.vars_frame.used
        return sum(s.size for n, s in self.var_shapes.items() if self.loop_levels.get(n, 0) >= level)

    def loop_context(self, level: int) -> StackSlot:
        """What the helper hands a callback ``level`` deep: those variables, in this frame."""
        used = self.loop_area_size(level)
        return StackSlot(-used, used, "loop context")

    def emit_callbacks(self) -> None:
        """Emit the loop bodies met so far (and those they contain) as subprograms after the program."""
        while self.callbacks:
            entry = self.callbacks.pop(0)
            if callable(entry):
                entry()
                continue
            label, stmt, key, start, caller, caller_depth, aliases, level = entry
            # the kernel limits the stack of a chain of calls: the callers' frames come first
            depth = caller_depth + _round32(max(caller.peak, caller.used))
            try:
                self.emit_callback(label, stmt, key, start, depth, aliases, level)
            except StackError:
                raise error(f"this loop's body does not fit the BPF stack: a probe and the loops it runs share "
                            f"{MAX_STACK} bytes, and each loop body keeps its own copy of the "
                            f"{self.loop_area_size(level)} bytes of variables it uses", stmt) from None

    def emit_callback(self, label: str, stmt: ast.For, key: str, start_key: str | None, depth: int,
                      aliases: dict[str, str], level: int) -> None:
        """One loop body, ``level`` loops deep, as a subprogram; ``aliases``: the variables of
        the loops around it; ``depth``: the stack its callers take."""
        b = self.b
        var = self.variables[key]
        start = self.variables[start_key] if start_key else None
        saved = (self.frame, self.loops, self.exit_label, self.outer_depth, self.dead, self.probe_slot)
        if self.probe_slot is not None:
            self.probe_slot = self.variables[PROBE_INDEX].slot
        used = self.loop_area_size(level)
        self.outer_depth = depth
        self.frame = StackFrame(b, limit=(MAX_STACK - depth) // 32 * 32 if self.final else FIRST_RUN_STACK)
        self.frame.used = used
        parent = self.frame.alloc(8, zero=False, name="loop context pointer")
        progctx = self.variables[PROG_CTX].slot.off
        ctx_reg = R2 if start is not None else R4
        self.dead = False
        b.label(label)
        if start is None:  # for_each_map_elem(map, key, value, ctx): $kv = (key, value)
            key_size = var.shape.elems[0].size
            for pos in range(0, key_size, 8):
                b.ldx(8, R0, R2, pos)
                b.stx(8, FP, R0, var.slot.off + pos)
            for pos in range(0, var.shape.elems[1].size, 8):
                b.ldx(8, R0, R3, pos)
                b.stx(8, FP, R0, var.slot.off + key_size + pos)
        b.stx(8, FP, ctx_reg, parent.off)
        for pos in range(0, used, 8):
            if start is None and var.slot.off <= -used + pos < var.slot.off + var.shape.size:
                continue  # $kv: just written
            b.ldx(8, R0, ctx_reg, pos)
            b.stx(8, FP, R0, -used + pos)
        if start is not None:  # bpf_loop(n, callback, ctx, 0): $i = start + index
            b.ldx(8, R0, FP, start.slot.off)
            b.add(R0, R1)
            b.stx(8, FP, R0, var.slot.off)
        b.ldx(8, R6, FP, progctx)
        cont, brk = b.fresh_label("for_continue"), b.fresh_label("for_break")
        self.loops = [(cont, brk)]
        self.exit_label = brk
        outer_aliases = self.var_alias
        self.var_alias = {**aliases, stmt.var.name: key}
        shadowed = {name: self.variables.get(name) for name in self.var_alias}
        for name, slot_name in self.var_alias.items():
            self.variables[name] = self.variables[slot_name]
        self.in_callback = level
        try:
            self.block(stmt.body)
        finally:
            self.in_callback = 0
            self.var_alias = outer_aliases
            for name, val in shadowed.items():
                if val is None:
                    self.variables.pop(name, None)
                else:
                    self.variables[name] = val
        exits = [(cont, 0)] if not self.dead or cont in self.jump_targets else []
        if brk in self.jump_targets:
            exits.append((brk, 1))
        for lbl, result in exits:
            b.label(lbl)
            b.ldx(8, R1, FP, parent.off)
            for pos in range(0, used, 8):
                if -used + pos != progctx:
                    b.ldx(8, R0, FP, -used + pos)
                    b.stx(8, R1, R0, pos)
            b.mov(R0, result)
            b.exit()
        self.frame, self.loops, self.exit_label, self.outer_depth, self.dead, self.probe_slot = saved
