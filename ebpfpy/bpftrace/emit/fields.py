"""Field access: tracepoint ``args``, kfunc arguments, BTF struct members, script-defined structs, bitfields.

A mixin of ``ProbeCodegen`` (``probe.py``): every method works on the one emitter context
(``self.b`` the builder, ``self.frame`` the stack, ``self.state`` the script, ``self.ctx`` the target).
"""
from __future__ import annotations

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.ctx import pt_regs_offset
from ebpfpy.codegen.memory import emit_probe_read
from ebpfpy.codegen.stack import StackSlot
from ebpfpy.isa.builder import FP, R0, R1, R3, R6, Builder

from .. import ast, shapes
from ..shapes import INT, UINT, Shape
from .context import Val, error, round8


def _load_extended(b: Builder, size: int, signed: bool, dst, src, off: int) -> None:
    """Load ``size`` bytes, sign-extended when ``signed``.

    A plain load and two shifts rather than the ISA v4 sign-extending load,
    which kernels before 6.6 reject ("BPF_LDX uses reserved fields").
    """
    b.ldx(size, dst, src, off)
    if signed and size < 8:
        b.lsh(dst, 64 - 8 * size)
        b.arsh(dst, 64 - 8 * size)


def _typed_space(space: str) -> tuple:
    """The tail a typed pointer's shape extra carries: nothing for kernel memory (the default),
    ``("user",)`` for a struct in user memory."""
    return ("user",) if space == "user" else ()


def _tracepoint_struct(target) -> str:
    parts = target.probe.split(":")
    return f"struct _tracepoint_{parts[-2]}_{parts[-1]}" if len(parts) >= 3 else "args"


def _struct_pointee(field) -> str | None:
    """``struct NAME`` (or union) for a tracepoint field declared as a pointer to one, else None."""
    if not field.is_pointer:
        return None
    base = field.type.replace("const ", "").replace("__user", "").rstrip("* ").strip()
    if field.type.count("*") != 1 or not base.startswith(("struct ", "union ")):
        return None
    return " ".join(base.split())


class FieldEmitter:
    def btf_struct(self, type_name: str, node) -> int:
        """The BTF id of ``struct NAME``/``union NAME`` in the kernel compiled for."""
        tid = self.world.btf_struct(type_name)
        if tid is None:
            raise error(f"Unknown struct/union: '{type_name}'", node)
        return tid

    def expr_FieldAccess(self, node: ast.FieldAccess) -> Val:
        if isinstance(node.expr, ast.Builtin) and node.expr.name == "args" and self.dispatch is not None:
            return self.dispatched_syscall_field(node)
        if isinstance(node.expr, ast.Builtin) and node.expr.name == "args" and self.ctx.args == "tracepoint":
            return self.tracepoint_field(node)
        if isinstance(node.expr, ast.Builtin) and node.expr.name == "args" and self.ctx.args in ("btf_func", "raw_tp"):
            return self.kfunc_param(node)  # (a raw tracepoint's arguments are u64 slots too)
        base = self.expr(node.expr)
        extra = base.shape.extra
        if isinstance(extra, tuple) and extra[:1] == ("btf_ctx",):  # an iterator's context member
            return self.ctx_member(extra[1], node)
        if base.shape.kind == "tuple" and isinstance(extra, tuple) and extra[:1] == ("record",):
            if node.field not in extra[1]:  # (semantic analysis reports it first)
                raise error(f"Record does not contain a field named '{node.field}'", node)
            return self.tuple_element(base, extra[1].index(node.field), node)  # today's records
        if not (isinstance(extra, tuple) and extra and extra[0] in ("btf", "btf_inline", "cstruct")):
            raise error(f"Can not access field '{node.field}' on expression of type "
                        f"'{base.shape.describe()}'", node)
        if base.slot is not None:
            self.b.ldx(8, R0, FP, base.slot.off)
        if extra[0] == "cstruct":
            return self.script_struct_member(node, extra[1])
        return self.btf_member(node, extra[1], extra[2] if len(extra) > 2 else "kernel")

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
            return Val(Shape("int", 8, False, extra=("btf_inline", self.btf_struct(t.name, node))))
        read = "probe_read_user" if self._user_memory() else "probe_read_kernel"
        if t.kind in ("string", "array"):
            size = t.size
            slot = self.frame.alloc(round8(size + 1), name=node.field)
            emit_helper_call(b, read, StackSlot(slot.off, size), size, R0)
            if t.kind == "string":
                return Val(shapes.string(round8(size + 1)), slot)
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
                return Val(Shape("int", 8, False, extra=("btf", self.btf_struct(pointee.name, node))))
            return Val(UINT)
        _load_extended(b, t.size, t.signed, R0, FP, slot.off)
        return Val(INT if t.signed else UINT)

    def btf_member(self, node: ast.FieldAccess, struct_tid: int, space: str = "kernel") -> Val:
        """r0 holds the address of a struct of BTF type ``struct_tid`` in ``space`` (kernel
        memory, or user memory for the structs a syscall tracepoint's pointers point to): read
        one member; pointers stay typed, in the same space."""
        from ebpfpy.btf import Kind

        spec = self.world.btf()
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
            return self.btf_bitfield(node, shift, bits, space)
        if member.bit_offset % 8:
            raise error(f"member '{node.field}' is not byte-aligned", node)
        b.add(R0, member.bit_offset // 8)
        typed = _typed_space(space)
        read = "probe_read_user" if space == "user" else "probe_read_kernel"
        if kind in (Kind.STRUCT, Kind.UNION):
            return Val(Shape("int", 8, False, extra=("btf_inline", tid, *typed)))  # an address, read later
        if kind == Kind.ARRAY:
            arr = spec[tid]
            elem = spec.resolve(arr.type)
            size = spec.size_of(tid)
            if spec.kind_of(elem) == Kind.INT and spec.size_of(elem) == 1:
                slot = self.frame.alloc(round8(size + 1), name=node.field)
                emit_helper_call(b, read, StackSlot(slot.off, size), size, R0)
                return Val(shapes.string(round8(size + 1)), slot)
            slot = self.frame.alloc(round8(size), name=node.field)
            emit_helper_call(b, read, StackSlot(slot.off, size), size, R0)
            return Val(Shape("bytes", slot.size, False, extra=size), slot)
        size = spec.size_of(tid)
        if size not in (1, 2, 4, 8):
            raise error(f"member '{node.field}' of size {size} is not supported", node)
        slot = self.frame.alloc(8, name=node.field)
        emit_helper_call(b, read, StackSlot(slot.off, size), size, R0)
        if kind == Kind.PTR:
            b.ldx(8, R0, FP, slot.off)
            pointee = spec.resolve(spec[tid].type)
            if spec.kind_of(pointee) in (Kind.STRUCT, Kind.UNION):
                return Val(Shape("int", 8, False, extra=("btf", pointee, *typed)))
            return Val(UINT)
        signed = kind == Kind.INT and spec[tid].signed
        _load_extended(b, size, signed, R0, FP, slot.off)
        return Val(INT if signed else UINT)

    def btf_bitfield(self, node: ast.FieldAccess, bit_offset: int, bits: int, space: str = "kernel") -> Val:
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
        read = "probe_read_user" if space == "user" else "probe_read_kernel"
        emit_helper_call(b, read, StackSlot(slot.off, nbytes), nbytes, R0)
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
        """``args->NAME`` in a kfunc (slot i of the u64 array the trampoline passes) or a raw
        tracepoint (today's language: slot i of the tracepoint's arguments)."""
        if self.ctx.func_proto is None:
            raise error(f"No BTF for the arguments of {self.target.probe}", node)
        params = self.ctx.func_proto.params
        for i, param in enumerate(params):
            if param.name == node.field:
                return self.btf_ctx_slot(8 * i, param.type, node, node.field)
        raise error(f"Can't find function parameter {node.field}", node)

    def ctx_member(self, struct_tid: int, node: ast.FieldAccess) -> Val:
        """``ctx.task`` in an iterator: a u64-sized member of the context, loaded directly (the
        verifier types the context's pointers from the iterator's registration)."""
        spec = self.world.btf()
        try:
            member = spec.member(struct_tid, node.field)
        except KeyError:
            raise error(f"Struct/union of type '{spec.describe(struct_tid)}' does not contain "
                        f"a field named '{node.field}'", node) from None
        val = self.btf_ctx_slot(member.bit_offset // 8, member.type, node, node.field)
        if isinstance(val.shape.extra, tuple) and val.shape.extra[:1] == ("btf",):
            # the verifier types it pointer-or-NULL: no arithmetic on it before a check (a NULL
            # becomes a plain 0, which reads nothing)
            ok = self.b.fresh_label("nonnull")
            self.b.jne(R0, 0, ok)
            self.b.mov(R0, 0)
            self.b.label(ok)
        return val

    def btf_ctx_slot(self, off: int, tid: int, node, what: str) -> Val:
        """Read a kfunc argument or return value of BTF type ``tid`` at ``ctx + off``.

        The verifier checks these loads against the prototype: 8-byte loads at
        8-aligned offsets, narrower integers extended here by shifts. Pointers
        to structs come back as typed pointers (``->`` reads members through
        ``btf_member``); pointers the verifier will not load directly (to
        pointers, enums, functions) are copied out with probe_read_kernel."""
        from ebpfpy.btf import Kind

        spec, b = self.world.btf(), self.b
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
            slot = self.frame.alloc(round8(size), name=f.name)
            b.ldx(4, R1, R6, f.offset)
            b.and_(R1, 0xFFFF)  # the low half is the string's offset in the record
            b.add(R1, R6)
            emit_helper_call(b, "probe_read_kernel_str", StackSlot(slot.off, size), size, R1)
            return Val(shapes.string(round8(size)), slot)
        if f.array_len and f.element_size == 1 and "char" in f.type:
            size = round8(f.size)
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
        pointee = _struct_pointee(f)
        if pointee is not None:
            # ``struct timespec *rqtp``: typed through BTF, so ``args->rqtp->tv_sec`` reads the
            # member, in the memory the tracepoint's pointers point to (user for syscalls)
            tid = self.world.btf_struct(pointee)
            if tid is not None:
                return Val(Shape("int", 8, False, extra=("btf", tid, *_typed_space(self.ctx.space))))
        return Val(INT if f.signed else UINT)

    def dispatched_syscall_field(self, node: ast.FieldAccess) -> Val:
        """``args->NAME`` in a raw_syscalls program standing for many syscall tracepoints: the
        value the tracepoint would have recorded, from where it takes it. A syscall tracepoint
        records each argument as one u64 after ``__syscall_nr`` (offset 16 + 8i: argument i,
        the saved register of the syscall ABI), and ``ret``, the raw tracepoint's second
        argument; the syscall number is the saved ``orig_ax``."""
        b = self.b
        f = self.dispatch_fields.get(node.field)
        if f is None:
            raise error(f"Struct/union of type 'struct _tracepoint_syscalls' does not contain a field "
                        f"named '{node.field}'", node)
        exit_event = self.target.name == "sys_exit"
        if f.name == "ret" and exit_event:
            b.ldx(8, R0, R6, 8)  # (struct pt_regs *regs, long ret)
        else:
            reg = "orig_ax" if f.name == "__syscall_nr" else SYSCALL_ARG_REGS[(f.offset - 16) // 8]
            slot = self.frame.alloc(8, name=f.name)
            b.ldx(8, R3, R6, 0)  # ctx[0]: struct pt_regs *
            b.add(R3, pt_regs_offset(reg))
            emit_helper_call(b, "probe_read_kernel", slot, 8, R3)
            b.ldx(8, R0, FP, slot.off)
        if f.size < 8:  # (__syscall_nr, an int)
            b.lsh(R0, 64 - 8 * f.size)
            b.arsh(R0, 64 - 8 * f.size) if f.signed else b.rsh(R0, 64 - 8 * f.size)
        pointee = _struct_pointee(f)
        if pointee is not None:
            tid = self.world.btf_struct(pointee)
            if tid is not None:
                return Val(Shape("int", 8, False, extra=("btf", tid, *_typed_space("user"))))
        return Val(INT if f.signed else UINT)

    def struct_value(self, val: Val, node: ast.Node) -> Val:
        """A struct by value (today's ``*ptr``, r0 its address) read whole into the stack and
        laid out for print(): ``{ .tv_sec = 0, .tv_nsec = 250000000 }`` (bpftrace 0.18+, E14)."""
        spec = self.world.btf()
        tid, space = val.shape.extra[1], "user" if "user" in val.shape.extra[2:] else "kernel"
        size = spec.size_of(tid)
        if size > MAX_STRUCT_PRINT:
            raise error(f"{spec.describe(tid)} is {size} bytes: too large to print (at most "
                        f"{MAX_STRUCT_PRINT})", node)
        slot = self.frame.alloc(round8(size), name="struct")
        emit_probe_read(self.b, StackSlot(slot.off, size), R0, space=space)
        return Val(Shape("struct", slot.size, False, extra=struct_layout(spec, tid)), slot)


# x86-64's syscall ABI: the saved registers holding a syscall's arguments 0..5
SYSCALL_ARG_REGS = ("di", "si", "dx", "r10", "r8", "r9")

# print(*ptr) copies the struct onto the 512-byte stack; bigger ones are refused with a message
MAX_STRUCT_PRINT = 256


def struct_layout(spec, tid: int) -> tuple:
    """How to decode a struct's bytes (shapes.py's ``struct`` decoder): per member, its name,
    byte offset, size, what it is (``int``, ``uint``, ``str`` for char arrays, ``array``,
    ``ptr``, ``struct``, ``bits``) and what that needs (element layout, nested layout)."""
    from ebpfpy.btf import Kind

    out = []
    for m in spec.members(tid):
        mtid = spec.resolve(m.type)
        kind = spec.kind_of(mtid)
        off, size = m.bit_offset // 8, spec.size_of(mtid)
        name = m.name or ""
        if m.bitfield_size or (kind == Kind.INT and spec[mtid].bits != 8 * size):
            bits = m.bitfield_size or spec[mtid].bits
            out.append((name, off, size, "bits", (m.bit_offset % 8, bits)))
        elif kind in (Kind.STRUCT, Kind.UNION):
            out.append((name, off, size, "struct", struct_layout(spec, mtid)))
        elif kind == Kind.ARRAY:
            arr = spec[mtid]
            elem = spec.resolve(arr.type)
            esize = spec.size_of(elem)
            if spec.kind_of(elem) == Kind.INT and esize == 1:
                out.append((name, off, size, "str", None))
            else:
                how = "int" if spec.kind_of(elem) in (Kind.INT, Kind.ENUM) and _signed(spec, elem) else "uint"
                out.append((name, off, size, "array", (how, esize, size // esize if esize else 0)))
        elif kind == Kind.PTR:
            out.append((name, off, size, "ptr", None))
        else:
            out.append((name, off, size, "int" if _signed(spec, mtid) else "uint", None))
    return tuple(out)


def _signed(spec, tid: int) -> bool:
    from ebpfpy.btf import Kind

    kind, t = spec.kind_of(tid), spec[tid]
    if kind == Kind.INT:
        return bool(t.signed)
    return kind == Kind.ENUM and bool(getattr(t, "signed", False))

