"""Expressions: literals, variables, operators, comparisons, ternaries, tuples, casts, sizeof.

A mixin of ``ProbeCodegen`` (``probe.py``): every method works on the one emitter context
(``self.b`` the builder, ``self.frame`` the stack, ``self.state`` the script, ``self.ctx`` the target).
"""
from __future__ import annotations

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.stack import StackSlot
from ebpfpy.isa.builder import FP, R0, R1, R2

from .. import ast, shapes
from ..helper_errors import prefix_op_span
from ..promotion import binary_signed, pointee_size, pointer_binary, unary_mask, unary_type
from ..semantic_rules import param_number
from ..shapes import BOOL, INT, UINT, Shape
from .context import InternalCompilerError, Val, error, round8

_COMPARE = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


_SIGNED_COMPARE = {"lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"}


_NEGATE = {"eq": "ne", "ne": "eq", "lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}


_ALU = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "&": "and", "|": "or", "^": "xor",
        "<<": "lsh", ">>": "rsh"}




class ExpressionEmitter:
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
        # 64-bit arithmetic, as 0.17's: a literal folded past the range wraps (-0xffffffffffffffff is 1)
        value = (value + (1 << 63)) % (1 << 64) - (1 << 63)
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
            value = param_number(self.param(node.index) or "0")
            if value is not None:
                return value
        raise error(message, node)

    def param(self, index: int) -> str:
        params = self.env.params
        return params[index - 1] if 0 < index <= len(params) else ""

    def expr_Integer(self, node: ast.Integer) -> Val:
        self.load_const(R0, node.value)
        return Val(INT)

    def literal_size(self, text: str) -> int:
        # a literal is never truncated
        return round8(max(self.env.strlen, len(text.encode("utf-8", "surrogateescape")) + 1))

    def expr_String(self, node: ast.String) -> Val:
        size = self.literal_size(node.value)
        slot = self.frame.alloc(size, name="string literal")
        self.write_literal(node.value, slot, zeroed=True)
        return Val(shapes.string(size), slot)

    def write_literal(self, text: str, slot: StackSlot, zeroed: bool) -> None:
        """Store a string's bytes into a slot, NUL-padded to its size."""
        data = text.encode("utf-8", "surrogateescape")
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
        value = param_number(text or "0")  # (an unset parameter is 0)
        if value is not None:
            self.load_const(R0, value)
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
            self.var_reads.append((id(node), self.var_alias.get(node.name, node.name)))
            if self.in_callback:
                self.note_loop_use(self.var_alias.get(node.name, node.name))
        if val.shape.in_register:
            self.b.ldx(8, R0, FP, val.slot.off)
            return Val(val.shape)
        return val

    def expr_Binop(self, node: ast.Binop) -> Val:
        b = self.b
        if node.op in ("&&", "||"):
            out = b.fresh_label("logic")
            left = self.int_value(node.left)
            short = 0 if node.op == "&&" else 1
            b.mov(R1, short)
            b.jmp("eq" if node.op == "&&" else "ne", R0, 0, out + "_short")
            right = self.int_value(node.right)
            b.mov(R1, 1)
            b.jne(R0, 0, out)
            b.mov(R1, 0)
            b.ja(out)
            b.label(out + "_short")
            b.mov(R1, short)
            b.label(out)
            b.mov(R0, R1)
            return Val(INT if binary_signed(node.op, left.signed, right.signed) else UINT)
        left = self.expr(node.left)
        return self.finish_binop(node, left)

    def right_operand(self, node: ast.Binop, left_shape: Shape):
        """With the left operand in r0: the right one as an immediate, or in r1 (left back in r0).
        Also whether the operation is signed (``promotion``: its result and its compare)."""
        b = self.b
        if isinstance(node.right, ast.Integer) and -(1 << 31) <= node.right.value < (1 << 31):
            return node.right.value, binary_signed(node.op, left_shape.signed, True)  # an int64 literal
        parked = self.spill(Val(left_shape))
        rshape = self.int_value(node.right)
        b.mov(R1, R0)
        b.ldx(8, R0, FP, parked.slot.off)
        return R1, binary_signed(node.op, left_shape.signed, rshape.signed)

    def finish_binop(self, node: ast.Binop, left: Val) -> Val:
        b = self.b
        if left.shape.kind == "str" and node.op in ("==", "!="):
            return self.string_compare(node, left)
        if left.slot is not None:
            if not left.shape.in_register:
                raise error(f"Invalid operand type {left.shape.describe()} for '{node.op}'", node)
            b.ldx(8, R0, FP, left.slot.off)
        how = pointer_binary(node.op, _is_pointer(node.left), _is_pointer(node.right)) \
            if _is_pointer(node.left) or _is_pointer(node.right) else None
        if how in ("left", "right"):
            return self.pointer_arith(node, left.shape, how)
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
            return Val(INT if signed else UINT)
        op = _ALU.get(node.op)
        if op is None:
            raise error(f"operator {node.op} is not supported", node)
        # '/' and '%' divide unsigned and '>>' shifts in zeros whatever the signs, as in bpftrace 0.17
        b.alu(op, R0, operand)
        return Val(INT if signed else UINT)

    def pointer_arith(self, node: ast.Binop, left_shape: Shape, how: str) -> Val:
        """``p + n``, ``n + p``, ``p - n`` (left operand in r0): ``n`` elements of what ``p``
        points to, ``n`` zero-extended from its width as bpftrace 0.17 does (see promotion)."""
        b = self.b
        pointer, index = (node.left, node.right) if how == "left" else (node.right, node.left)
        size = pointee_size(pointer.type.elems[0].size)
        parked = self.spill(Val(left_shape))
        right_shape = self.int_value(node.right)
        b.mov(R1, R0)
        b.ldx(8, R0, FP, parked.slot.off)
        reg = R1 if how == "left" else R0
        declared = getattr(index, "type", None)
        if declared is not None and declared.is_int and declared.size == 4:
            b.mov32(reg, reg)
        elif declared is not None and declared.is_int and declared.size < 4:
            b.and_(reg, (1 << declared.size * 8) - 1)
        if size != 1:
            b.mul(reg, size)
        b.alu(_ALU[node.op], R0, R1)
        return Val(left_shape if how == "left" else right_shape)

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
                    self.literal_jump(left, cond.right.value.encode("utf-8", "surrogateescape"), cond.op == "==", label)
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
            return self.literal_compare(node, left, node.right.value.encode("utf-8", "surrogateescape"))
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
        if node.op == "&":
            return self.address_of(node)  # today's `&$v` (emit/newer.py)
        if node.op == "*":
            shape = self.int_value(node.operand)
            if self.env.modern and isinstance(shape.extra, tuple) and shape.extra[:1] == ("btf",):
                # today's *ptr of a struct: the struct by value (its address, read when used)
                return Val(Shape("int", 8, False, extra=("btf_inline", *shape.extra[1:])))
            slot = self.frame.alloc(8, name="deref")
            emit_helper_call(b, "probe_read_kernel", slot, 8, R0)
            self.check_helper(self.read_name(node.operand), node)
            b.ldx(8, R0, FP, slot.off)
            return Val(INT)
        shape = self.int_value(node.operand)
        # the operand's width and sign as semantic analysis typed it ((uint16)x is 16 bits wide)
        declared = getattr(node.operand, "type", None)
        bits = declared.size * 8 if declared is not None and declared.is_int else 64
        _, signed = unary_type(node.op, bits, shape.signed)
        if node.op == "!":
            done = b.fresh_label("not")
            b.mov(R1, R0)
            b.mov(R0, 1)
            b.jeq(R1, 0, done)
            b.mov(R0, 0)
            b.label(done)
        elif node.op == "-":
            b.neg(R0)
        elif node.op == "~":
            b.xor(R0, -1)
        else:
            raise error(f"operator {node.op} is not supported", node)
        if node.op == "!" and shape == BOOL:
            return Val(BOOL)
        mask = unary_mask(node.op, bits, shape.signed)
        if mask == 0xFFFF_FFFF:
            b.mov32(R0, R0)  # zero-extends the low half (the mask is no 32-bit immediate)
        elif mask is not None:
            b.and_(R0, mask)
        return Val(INT if signed else UINT)

    def expr_Ternary(self, node: ast.Ternary) -> Val:
        b = self.b
        other, done = b.fresh_label("tern_else"), b.fresh_label("tern_end")
        size = self.literal_choice_size(node)
        if size is not None:
            return self.literal_ternary(node, size)
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

    def literal_choice_size(self, node: ast.Expr) -> int | None:
        """The slot size of a string literal or of ternaries choosing among literals
        (``c ? "a" : d ? "b" : "c"``), else None."""
        if isinstance(node, ast.String):
            return self.literal_size(node.value)
        if isinstance(node, ast.Ternary):
            left, right = self.literal_choice_size(node.left), self.literal_choice_size(node.right)
            return None if left is None or right is None else max(left, right)
        return None

    def literal_ternary(self, node: ast.Ternary, size: int) -> Val:
        """Ternaries choosing among literals: each branch writes its literal straight into the one
        result slot, however deep they nest (a slot per branch soon fills the 512-byte stack)."""
        result = self.frame.alloc(size, zero=False, name="ternary")
        self.write_literal_choice(node, result)
        return Val(shapes.string(size), result)

    def write_literal_choice(self, node: ast.Expr, result) -> None:
        if isinstance(node, ast.String):
            self.write_literal(node.value, result, zeroed=False)
            return
        b = self.b
        other, done = b.fresh_label("tern_else"), b.fresh_label("tern_end")
        with self.frame.scope():  # the condition's temporaries
            self.jump_if_false(node.cond, other)
        self.write_literal_choice(node.left, result)
        b.ja(done)
        b.label(other)
        self.write_literal_choice(node.right, result)
        b.label(done)

    def expr_Tuple(self, node: ast.Tuple) -> Val:
        if not node.elems:  # today's `()`: semantic analysis refuses it where it checks
            raise error("none type can not be used as a value", node)
        hints = [self.state.shape_hints.get((id(e), self.target.probe)) for e in node.elems]
        if self.final and all(hints):
            # the layout is known: each element is evaluated straight into its place, so its
            # temporaries (a string literal's 64 bytes) are given back before the next one
            shape = shapes.tuple_of(hints)
            slot = self.frame.alloc(shape.size, zero=False, name="tuple")
            for elem, hint, off in zip(node.elems, hints, shape.offsets()):
                with self.frame.scope():
                    self.expr_into(elem, slot.field(off, hint.size), hint)
            return Val(shape, slot)
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
        return self.tuple_element(self.expr(node.expr), node.index, node)

    def tuple_element(self, val: Val, index: int, node: ast.Expr) -> Val:
        """Element ``index`` of the tuple ``val`` (``$t.1``, and today's ``$t[1]``)."""
        if val.shape.kind != "tuple" or not 0 <= index < len(val.shape.elems):
            raise error(f"Invalid tuple index: {index}", node)
        elem = val.shape.elems[index]
        off = val.shape.offsets()[index]
        slot = val.slot.field(off, elem.size)
        if elem.in_register:
            self.b.ldx(8, R0, FP, slot.off)
            return Val(elem)
        return Val(elem, slot)

    def expr_Cast(self, node: ast.Cast) -> Val:
        self.int_value(node.expr)
        bits = {"int8": 8, "uint8": 8, "int16": 16, "uint16": 16, "int32": 32, "uint32": 32,
                "int64": 64, "uint64": 64}.get(node.type_name)
        if node.pointer and node.type_name.startswith(("struct ", "union ")):
            if " ".join(node.type_name.split()) in self.state.c_structs:  # defined in the script
                return Val(Shape("int", 8, False, extra=("cstruct", " ".join(node.type_name.split()))))
            return Val(Shape("int", 8, False, extra=("btf", self.btf_struct(node.type_name, node))))
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

    def expr_Identifier(self, node: ast.Identifier) -> Val:
        """An enumerator from BTF (bpftrace 0.17 has no other bare names; ``true`` and
        ``false`` are the kernel's own enum): an unsigned 64-bit constant."""
        value = self.env.enum_value(node.name)
        if value is None:
            raise error(f"Unknown identifier: '{node.name}'", node)
        self.load_const(R0, value & (1 << 64) - 1)
        return Val(UINT)

    def expr_Sizeof(self, node: ast.Sizeof) -> Val:
        """The size semantic analysis found (``semantic.e_Sizeof``); an expression whose type
        has no size is sized by our layout of its value (integers are 8 bytes)."""
        size = node.size
        if size is None:
            if node.type_name is not None:
                raise InternalCompilerError(f"sizeof({node.type_name}) was not sized by semantic analysis")
            size = self.expr(node.expr).shape.size
        self.load_const(R0, size)
        return Val(UINT)


def _is_pointer(node: ast.Expr) -> bool:
    """Whether semantic analysis typed ``node`` as a pointer."""
    t = getattr(node, "type", None)
    return t is not None and t.kind == "pointer"
