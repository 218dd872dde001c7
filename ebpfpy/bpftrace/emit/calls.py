"""Function calls without a family of their own: symbols, addresses, signals, registers.

A mixin of ``ProbeCodegen`` (``probe.py``): every method works on the one emitter context
(``self.b`` the builder, ``self.frame`` the stack, ``self.state`` the script, ``self.ctx`` the target).
"""
from __future__ import annotations

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.ctx import emit_reg_load
from ebpfpy.isa.builder import R0, R1, R2, R6

from .. import ast
from ..functions import FUNCTIONS
from ..shapes import NONE, UINT, Shape
from .context import InternalCompilerError, Val, error


class CallEmitter:
    def expr_Call(self, node: ast.Call) -> Val:
        """A call by its row in ``functions.FUNCTIONS``. Semantic analysis has checked the
        name, the arity and the family (aggregations only as map assignments; functions we
        cannot compile stop there), so anything else here is a compiler bug."""
        row = FUNCTIONS.get(node.name)
        if row is None or not row.emit:
            raise InternalCompilerError(f"no emitter for {node.name}() (semantic analysis let it through)")
        return getattr(self, row.emit)(node)

    def call_kptr(self, node: ast.Call) -> Val:
        """kptr()/uptr() only tell bpftrace which address space a pointer is in: the value is
        unchanged (ours picks the read helper per use, so nothing more to record)."""
        return self.expr(node.args[0])

    call_uptr = call_kptr

    def call_bswap(self, node: ast.Call) -> Val:
        """The argument's bytes reversed at its own width (an 8-bit value is itself); 16 and
        32-bit results are zero-extended, as bpftrace prints them."""
        typ = getattr(node.args[0], "type", None)
        size = typ.size if typ is not None and typ.is_int else 8
        self.int_value(node.args[0])
        if size > 1:
            self.b.bswap(R0, size * 8)
        return Val(UINT)

    def call_strerror(self, node: ast.Call) -> Val:
        """An error number, printed as the C library's text for it."""
        return self.rendered_int(node, "strerror", signed=True)

    def rendered_int(self, node: ast.Call, kind: str, signed: bool = False) -> Val:
        """f(x) for an integer x that only the runtime turns into text (a symbol, an error
        message): the value travels as is, under a shape that names its renderer."""
        self.int_value(node.args[0])
        return Val(Shape(kind, 8, signed))

    def call_ksym(self, node: ast.Call) -> Val:
        return self.rendered_int(node, "ksym")

    def call_usym(self, node: ast.Call) -> Val:
        self.int_value(node.args[0])
        return self.user_symbol()

    def call_kaddr(self, node: ast.Call) -> Val:
        if not isinstance(node.args[0], ast.String):
            raise error("kaddr() expects a string literal", node)
        addr = self.world.kernel_symbol(node.args[0].value)
        if addr is None:
            raise error(f"Failed to resolve kernel symbol: {node.args[0].value}", node)
        self.load_const(R0, addr)
        return Val(UINT)

    def call_reg(self, node: ast.Call) -> Val:
        if not isinstance(node.args[0], ast.String):
            raise error("reg() expects a string literal", node)
        emit_reg_load(self.b, R0, R6, node.args[0].value)
        return Val(UINT)

    def call_signal(self, node: ast.Call) -> Val:
        if not self.env.unsafe:
            raise error("signal() is an unsafe function being used in safe mode", node)
        arg = node.args[0]
        if isinstance(arg, ast.String):
            import signal as _signal

            name = arg.value.upper()
            number = getattr(_signal, name if name.startswith("SIG") else "SIG" + name, None)
            if number is None:
                raise error(f"{arg.value} is not a valid signal", node)
            self.load_const(R1, int(number))
        else:
            self.int_value(arg)
            self.b.mov(R1, R0)
        emit_helper_call(self.b, "send_signal", R1)
        self.check_helper("send_signal", node)
        return Val(NONE)

    def call_override(self, node: ast.Call) -> Val:
        """``override(rc)``: the probed kernel function returns ``rc`` without running
        (bpf_override_return; the kernel allows it only for functions on its error-injection list)."""
        missing = self.world.feature("override_return") if self.final else ""
        if missing:
            raise error("override() is not supported by this kernel: " + missing, node)
        self.int_value(node.args[0])
        self.b.mov(R2, R0)
        emit_helper_call(self.b, "override_return", R6, R2)
        return Val(NONE)

    def _user_memory(self) -> bool:
        """Whether this context's pointers point into user memory (uprobe/usdt registers, syscall
        tracepoint args): the provider says so in ``ProbeContext.space``."""
        return self.ctx.space == "user"

    def call_cgroupid(self, node: ast.Call) -> Val:
        if not isinstance(node.args[0], ast.String):
            raise error("cgroupid() expects a string literal", node)
        ident = self.world.cgroup_id(node.args[0].value)
        if ident is None:
            raise error(f"Failed to get cgroupid for path '{node.args[0].value}'", node)
        self.load_const(R0, ident)
        return Val(UINT)

    def call_cgroup_path(self, node: ast.Call) -> Val:
        """The id; the runtime finds its paths (``events.cgroups``). The filter is known here: a
        literal, or (as in 0.17) a non-literal one that matches no hierarchy."""
        self.int_value(node.args[0])
        if len(node.args) < 2:
            pattern = "*"
        else:
            pattern = node.args[1].value if isinstance(node.args[1], ast.String) else None
        return Val(Shape("cgroup_path", 8, False, extra=(pattern, not self.env.modern)))

    def call_uaddr(self, node: ast.Call) -> Val:
        if not isinstance(node.args[0], ast.String):
            raise error("uaddr() expects a string literal", node)
        _, _, rest = self.target.probe.partition(":")
        if self.ctx.space != "user" or self.ctx.args not in ("pt_regs", "usdt"):  # user registers: a binary
            raise error("uaddr can only be used with uprobes and usdt probes", node)
        binary = rest.split(":", 1)[0]
        addr = self.world.data_symbol(binary, node.args[0].value)
        if addr is None:
            raise error(f"Could not resolve symbol: {binary}:{node.args[0].value}", node)
        self.load_const(R0, addr)
        return Val(UINT)
