"""Builtins (pid, comm, probe, retval, argN, stacks, ...): one small method each.

A mixin of ``ProbeCodegen`` (``probe.py``): every method works on the one emitter context
(``self.b`` the builder, ``self.frame`` the stack, ``self.state`` the script, ``self.ctx`` the target).
"""
from __future__ import annotations

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.ctx import emit_arg_load, emit_reg_load, emit_retval_load
from ebpfpy.isa.builder import FP, R0, R1, R3, R6
from ebpfpy.sys.consts import BPF_F_USER_STACK, MapType

from .. import ast, shapes
from ..functions import builtin
from ..shapes import INT, UINT, Shape
from .context import STACK_DEPTH, CompileError, Val, error


class BuiltinEmitter:
    def expr_Builtin(self, node: ast.Builtin) -> Val:
        """A builtin by its row in ``functions.BUILTINS``: a helper call and a few ALU
        operations for the simple ones, else the method the row names."""
        found = builtin(node.name)
        if found is None:
            raise error(f"Unknown identifier: '{node.name}'", node)
        row, index = found
        if row.helper:
            emit_helper_call(self.b, row.helper)
            for op, imm in row.post:
                self.b.alu(op, R0, imm)
            return Val(row.shape)
        method = getattr(self, row.emit)
        return method(node) if index is None else method(node, index)

    def builtin_elapsed(self, node) -> Val:
        emit_helper_call(self.b, "ktime_get_ns")
        self.load_const(R1, self.env.start_ns)
        self.b.sub(R0, R1)
        return Val(UINT)

    def builtin_ctx(self, node) -> Val:
        """The probe's context pointer (what the program was called with) as an address; an
        iterator's is typed (``struct bpf_iter__NAME``): its members are read directly."""
        self.b.mov(R0, R6)
        if self.ctx.args == "iter":
            tid = self.btf_struct(self.target.context_struct, node)
            return Val(Shape("int", 8, False, extra=("btf_ctx", tid)))
        return Val(UINT)

    def builtin_curtask(self, node) -> Val:
        emit_helper_call(self.b, "get_current_task")
        try:
            return Val(Shape("int", 8, False, extra=("btf", self.btf_struct("struct task_struct", node))))
        except CompileError:
            return Val(UINT)  # no BTF: still an address

    def builtin_cpid(self, node) -> Val:
        if not self.env.cpid:
            raise error("cpid cannot be used without child command", node)
        self.load_const(R0, self.env.cpid)
        return Val(UINT)

    def builtin_comm(self, node) -> Val:
        slot = self.frame.alloc(16, name="comm")
        emit_helper_call(self.b, "get_current_comm", slot, 16)
        return Val(shapes.string(16), slot)

    def builtin_probe(self, node) -> Val:
        if self.probe_slot is not None:  # a syscall dispatch program: the index is data
            self.b.ldx(8, R0, FP, self.probe_slot.off)
            return Val(Shape("probe", 8, False, extra=self.state.probe_names))
        index = self.state.probe_index(self.target.probe)
        self.probe_sites.append(self.b.mark())  # patched per target when programs are shared
        self.b.mov(R0, index)
        return Val(Shape("probe", 8, False, extra=self.state.probe_names))

    def builtin_retval(self, node) -> Val:
        if not self.ctx.retval:
            raise error("The retval builtin can only be used with 'kretprobe' and 'uretprobe' and "
                        "'kfunc' probes", node)
        if self.ctx.args == "btf_func":
            proto = self.ctx.func_proto
            if not proto.type:
                raise error(f"{self.target.function} returns void: kretfunc has no retval", node)
            return self.btf_ctx_slot(8 * len(proto.params), proto.type, node, "retval")
        emit_retval_load(self.b, R0, R6)
        return Val(INT)

    def builtin_arg(self, node, n: int) -> Val:
        if self.ctx.args == "usdt":
            from ebpfpy.attach.usdt import emit_usdt_arg

            if n >= len(self.ctx.usdt_args):
                raise error(f"usdt probe has only {len(self.ctx.usdt_args)} arguments", node)
            emit_usdt_arg(self.b, self.ctx.usdt_args[n], R0, R6)
            return Val(INT)
        if self.ctx.args == "raw_tp":  # the context is the tracepoint's arguments as u64s
            self.b.ldx(8, R0, R6, 8 * n)
            return Val(UINT)
        if self.ctx.args != "pt_regs":
            raise error(f"The {node.name} builtin can only be used with 'kprobes', 'uprobes' and "
                        "'usdt' probes", node)
        if n >= 6:
            raise error(f"x86_64 doesn't support {node.name}", node)
        emit_arg_load(self.b, R0, R6, n)
        return Val(UINT)

    def builtin_sarg(self, node, n: int) -> Val:
        """The n-th argument passed on the stack: above the return address at sp (x86-64)."""
        if self.ctx.args != "pt_regs":
            raise error(f"The {node.name} builtin can only be used with 'kprobes', 'uprobes' and "
                        "'usdt' probes", node)
        b = self.b
        slot = self.frame.alloc(8, name=node.name)
        emit_reg_load(b, R3, R6, "sp")
        b.add(R3, 8 * (n + 1))
        user = self.ctx.space == "user"
        emit_helper_call(b, "probe_read_user" if user else "probe_read_kernel", slot, 8, R3)
        b.ldx(8, R0, FP, slot.off)
        return Val(INT)

    def builtin_func(self, node) -> Val:
        if self.ctx.args == "btf_func":  # one program per kernel function: its name is a constant
            return self.expr_String(ast.String(self.target.function, span=node.span))
        if self.ctx.args not in ("pt_regs", "usdt"):
            raise error("The func builtin can only be used with kprobes, uprobes and kfuncs", node)
        kind = self.target.probe.split(":", 1)[0]
        symbol = self.target.probe.rsplit(":", 1)[-1]
        if kind in ("uprobe", "kprobe") and symbol.isidentifier():
            # the probed function is known here: no need to symbolise (maybe after the process died)
            return self.expr_String(ast.String(symbol, span=node.span))
        emit_reg_load(self.b, R0, R6, "ip")
        if self.ctx.space == "user":
            return self.user_symbol()
        return Val(Shape("ksym", 8, False))

    def user_symbol(self) -> Val:
        b = self.b
        slot = self.frame.alloc(16, name="usym")
        b.stx(8, FP, R0, slot.off)
        emit_helper_call(b, "get_current_pid_tgid")
        b.rsh(R0, 32)
        b.stx(8, FP, R0, slot.off + 8)
        return Val(Shape("usym", 16, False), slot)

    def stack_map(self, space: str, limit: int) -> str:
        """The stack-trace map for stacks of ``limit`` frames: one per depth, as in bpftrace,
        because the kernel keeps (and compares, to give one id per distinct stack) only as
        many frames as a map value holds; so kstack(1) of two different callers is one key."""
        name = f"${space}" if limit == STACK_DEPTH else f"${space}_{limit}"
        return self.state.need_map(name, MapType.STACK_TRACE, 4, 8 * max(1, limit), 4096)

    def builtin_kstack(self, node, limit: int = STACK_DEPTH, mode: str = "bpftrace") -> Val:
        name = self.stack_map("kstack", limit)
        emit_helper_call(self.b, "get_stackid", R6, name, 0)
        return Val(Shape("kstack", 8, False, extra=(name, limit, mode)))

    def builtin_ustack(self, node, limit: int = STACK_DEPTH, mode: str = "bpftrace") -> Val:
        b = self.b
        name = self.stack_map("ustack", limit)
        slot = self.frame.alloc(16, name="ustack")
        emit_helper_call(b, "get_stackid", R6, name, BPF_F_USER_STACK)
        b.stx(8, FP, R0, slot.off)
        emit_helper_call(b, "get_current_pid_tgid")
        b.rsh(R0, 32)
        b.stx(8, FP, R0, slot.off + 8)
        return Val(Shape("ustack", 16, False, extra=(name, limit, mode)), slot)

    def builtin_args(self, node) -> Val:
        raise error("args can only be used to access fields (args->field)", node)

    def call_kstack(self, node: ast.Call) -> Val:
        mode, limit = self._stack_args(node)
        return self.builtin_kstack(node, limit, mode)

    def call_ustack(self, node: ast.Call) -> Val:
        mode, limit = self._stack_args(node)
        return self.builtin_ustack(node, limit, mode)

    def _stack_args(self, node: ast.Call):
        mode, limit = "bpftrace", STACK_DEPTH
        for arg in node.args:
            if isinstance(arg, ast.StackMode) or isinstance(arg, ast.Identifier):
                mode = arg.name
            else:
                limit = self.constant(arg)
        return mode, limit
