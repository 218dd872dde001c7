"""Strings and buffers: str(), path(), buf(), join(), string compares and network addresses.

A mixin of ``ProbeCodegen`` (``probe.py``): every method works on the one emitter context
(``self.b`` the builder, ``self.frame`` the stack, ``self.state`` the script, ``self.ctx`` the target).
"""
from __future__ import annotations

from ebpfpy.codegen.calls import emit_helper_call
from ebpfpy.codegen.stack import StackSlot
from ebpfpy.isa.builder import FP, R0, R1, R2, R3, R4, R6, R8, R9
from ebpfpy.sys.consts import BPF_F_CURRENT_CPU, MapType

from .. import ast, shapes
from ..compiled import ActionPlan
from ..semantic_rules import is_data_loc_field
from ..shapes import BOOL, NONE, UINT, Shape
from .context import Val, error, round8

JOIN_ARGS = 16  # bpftrace reads at most 16 argv entries


def _join_decoder(strlen: int, count: int, delim: str):
    def decode(data: bytes, services) -> tuple:
        parts = []
        for i in range(count):
            raw = bytes(data[i * strlen:(i + 1) * strlen]).split(b"\0", 1)[0]
            if not raw:
                break
            parts.append(raw.decode("utf-8", "replace"))
        return (delim.join(parts),)
    return decode


def _is_literal(node: ast.Expr) -> bool:
    """An integer known while compiling, in the forms ``ProbeCodegen.constant`` folds: a
    literal, a negated literal, or a positional parameter."""
    if isinstance(node, ast.Unop) and node.op == "-":
        return isinstance(node.operand, ast.Integer)
    return isinstance(node, (ast.Integer, ast.PositionalParam))


class StringEmitter:
    def call_str(self, node: ast.Call, dest: StackSlot | None = None) -> Val:
        if isinstance(node.args[0], ast.PositionalParam):
            return self.str_param(node)
        if is_data_loc_field(node.args[0]) and self.ctx.args == "tracepoint":
            return self.tracepoint_field(node.args[0], strlen=self.str_size(node))
        val = self.expr(node.args[0])
        if val.shape.kind == "str":
            return val
        if len(node.args) == 2 and not _is_literal(node.args[1]):
            return self.str_runtime_length(node, val)
        if val.slot is not None:
            self.b.ldx(8, R0, FP, val.slot.off)
        b = self.b
        size = self.str_size(node)
        if dest is not None and dest.size == round8(size):
            slot = dest  # an event field: bytes after the NUL need not be zero
            if size % 8:
                b.st(8, FP, 0, slot.off + slot.size - 8)  # the padding the helper will not write
        else:
            slot = self.frame.alloc(round8(size), name="str")  # zeroed: strings are also map keys
        emit_helper_call(b, "probe_read_str", StackSlot(slot.off, size), size, R0)
        self.check_helper(self.read_name(node.args[0], string=True), node)
        return Val(shapes.string(round8(size)), slot)

    def str_size(self, node: ast.Call) -> int:
        """The bytes ``str(x)``/``str(x, n)`` (n known while compiling) takes: BPFTRACE_STRLEN,
        or n characters plus the terminating NUL if fewer, as bpftrace 0.17 keeps them."""
        size = self.env.strlen
        if len(node.args) == 2:
            size = max(1, min(size, self.constant(node.args[1], "str() length must be an integer literal") + 1))
        return size

    def str_runtime_length(self, node: ast.Call, pointer: Val) -> Val:
        """str(p, n) with n known only at run time (``str(args->buf, args->count)``): n
        characters and the NUL, at most BPFTRACE_STRLEN bytes; a negative n, huge unsigned,
        is cut there too. The bound is checked before the read, so the verifier knows it."""
        b = self.b
        if pointer.slot is None:
            pointer = self.spill(pointer)
        size = self.env.strlen
        self.int_value(node.args[1])
        within = b.fresh_label("str_n")
        b.add(R0, 1)
        b.jle(R0, size, within)
        b.mov(R0, size)
        b.label(within)
        b.mov(R2, R0)
        b.ldx(8, R3, FP, pointer.slot.off)
        slot = self.frame.alloc(round8(size), name="str")  # zeroed: strings are also map keys
        emit_helper_call(b, "probe_read_str", StackSlot(slot.off, size), R2, R3)
        self.check_helper(self.read_name(node.args[0], string=True), node)
        return Val(shapes.string(round8(size)), slot)

    def str_param(self, node: ast.Call) -> Val:
        """``str($1)``: the parameter's text, cut like any str() to BPFTRACE_STRLEN (or n) - 1 bytes."""
        size = self.str_size(node)
        text = self.param(node.args[0].index).encode("utf-8", "surrogateescape")[:size - 1].decode(
            "utf-8", "surrogateescape")
        slot = self.frame.alloc(round8(size), name="str")
        self.write_literal(text, slot, zeroed=True)
        return Val(shapes.string(round8(size)), slot)

    def call_path(self, node: ast.Call) -> Val:
        """path(p): the file path of a ``struct path`` (bpf_d_path), given as a typed pointer
        (``args->path``) or as a member (``args->filp->f_path``). Only kfunc probes have such
        pointers the verifier trusts, and it allows d_path only in functions it lists
        (security_inode_getattr, security_file_open, filp_close, ...)."""
        val = self.expr(node.args[0])
        extra = val.shape.extra
        if not (isinstance(extra, tuple) and extra[:1] in (("btf",), ("btf_inline",))
                and self.world.btf().name_of(extra[1]) == "path"):
            raise error("path() expects a struct path: a pointer to one or a member that is one", node)
        if val.slot is not None:
            self.b.ldx(8, R0, FP, val.slot.off)
        size = self.env.strlen
        slot = self.frame.alloc(round8(size), name="path")
        emit_helper_call(self.b, "d_path", R0, StackSlot(slot.off, size), size)
        self.check_helper("d_path", node)
        return Val(shapes.string(round8(size)), slot)

    def call_strcontains(self, node: ast.Call) -> Val:
        """1 when the first string contains the second (an empty needle is in every string).

        A bounded loop over where the needle may start, and for each start the needle's
        bytes compared one by one, unrolled over the needle's slot: each comparison is then
        a branch the verifier sees once per start, not once per (start, position) state,
        which kept a 64-by-64 search under its 1M-instruction budget only just. No helper
        is called inside, so r1-r5 are free for the index and the bytes."""
        hay, needle = self.expr(node.args[0]), self.expr(node.args[1])
        if hay.shape.kind != "str" or needle.shape.kind != "str":
            raise error("strcontains() expects two strings", node)
        b = self.b
        outer, next_i = b.fresh_label("sc_start"), b.fresh_label("sc_next")
        found, missing, done = b.fresh_label("sc_found"), b.fresh_label("sc_missing"), b.fresh_label("sc_done")
        h, n = hay.slot, needle.slot

        def load_hay_byte(index) -> None:
            """r1 = haystack[index register] (bounded by the caller's check)."""
            b.mov(R1, FP)
            b.add(R1, h.off)
            b.add(R1, index)
            b.ldx(1, R1, R1, 0)

        b.mov(R4, 0)                          # i: where the needle is tried in the haystack
        b.label(outer)
        b.jge(R4, h.size, missing)
        for j in range(n.size):
            matched = b.fresh_label("sc_match")
            b.ldx(1, R2, FP, n.off + j)       # needle[j]
            b.jeq(R2, 0, found)
            b.mov(R3, R4)
            if j:
                b.add(R3, j)
            b.jge(R3, h.size, missing)
            load_hay_byte(R3)                 # haystack[i + j]
            # a match jumps and a mismatch falls through: the verifier follows the fall-through
            # first and stacks the jumps, so this keeps its stack of pending branches a few per
            # start deep (jumping on mismatch stacked two per compared byte: over its 8192 limit
            # at BPFTRACE_STRLEN=200)
            b.jeq(R1, R2, matched)
            b.ja(next_i)
            b.label(matched)
        b.ja(found)                           # the needle filled its slot, every byte matched
        b.label(next_i)
        load_hay_byte(R4)
        b.jeq(R1, 0, missing)                 # the haystack ended
        b.add(R4, 1)
        b.ja(outer)
        b.label(found)
        b.mov(R0, 1)
        b.ja(done)
        b.label(missing)
        b.mov(R0, 0)
        b.label(done)
        return Val(BOOL if self.env.modern else UINT)  # a bool in today's language

    def call_ntop(self, node: ast.Call) -> Val:
        import socket

        b = self.b
        arg = node.args[-1]
        slot = self.frame.alloc(24, name="inet")
        val = self.expr(arg)
        if val.shape.kind == "bytes":
            length = val.shape.extra
            family = socket.AF_INET if length == 4 else socket.AF_INET6
            b.st(8, FP, family, slot.off)
            self.copy(StackSlot(val.slot.off, min(16, round8(length))), slot.field(8, min(16, round8(length))))
        else:
            if val.slot is not None:
                b.ldx(8, R0, FP, val.slot.off)
            b.st(8, FP, socket.AF_INET, slot.off)
            b.stx(4, FP, R0, slot.off + 8)
        return Val(Shape("inet", 24, False), slot)

    def call_strncmp(self, node: ast.Call) -> Val:
        left, right = self.expr(node.args[0]), self.expr(node.args[1])
        n = self.constant(node.args[2])
        if left.shape.kind != "str" or right.shape.kind != "str":
            raise error("strncmp() expects two strings", node)
        b = self.b
        count = min(n, left.shape.size, right.shape.size)
        if count <= 0:  # no byte to compare: equal (and no code the kernel would find unreachable)
            b.mov(R0, 0)
            return Val(UINT)  # unsigned, as semantic analysis types it (so are comparisons)
        differ, done = b.fresh_label("ncmp_ne"), b.fresh_label("ncmp")
        for pos in range(count):
            b.ldx(1, R1, FP, left.slot.off + pos)
            b.ldx(1, R2, FP, right.slot.off + pos)
            b.jne(R1, R2, differ)
            b.jeq(R1, 0, done)
        b.label(done)
        b.mov(R0, 0)
        end = b.fresh_label("ncmp_end")
        b.ja(end)
        b.label(differ)
        b.mov(R0, 1)
        b.label(end)
        return Val(UINT)

    def call_join(self, node: ast.Call) -> Val:
        """join(argv[, delim]): up to 16 user strings, built in a per-CPU scratch value (too big for the stack)."""
        delim = " "
        if len(node.args) == 2:
            if not isinstance(node.args[1], ast.String):
                raise error("join() expects a string literal as the second argument", node)
            delim = node.args[1].value
        b = self.b
        strlen, count = self.env.strlen, JOIN_ARGS
        size = 8 + count * strlen
        scratch = self.state.need_map("$join", MapType.PERCPU_ARRAY, 4, size, 1)
        action_id = self.state.script.add_action(
            ActionPlan("join", _join_decoder(strlen, count, delim))) if self.final else 0
        self.int_value(node.args[0])
        b.mov(R8, R0)  # argv: callee-saved across the helper calls below
        key = self.frame.alloc(8, name="join key")
        done = b.fresh_label("join_done")
        emit_helper_call(b, "map_lookup_elem", scratch, StackSlot(key.off, 4))
        b.jeq(R0, 0, done)
        b.mov(R9, R0)
        self.load_const(R1, action_id)
        b.stx(8, R9, R1, 0)
        for i in range(count):
            b.st(1, R9, 0, 8 + i * strlen)
        ptr = self.frame.alloc(8, zero=False, name="argv[i]")
        send = b.fresh_label("join_send")
        user = self._user_memory()
        for i in range(count):
            b.mov(R3, R8)
            b.add(R3, 8 * i)
            emit_helper_call(b, "probe_read_user" if user else "probe_read_kernel", ptr, 8, R3)
            b.ldx(8, R3, FP, ptr.off)
            b.jeq(R3, 0, send)
            b.mov(R1, R9)
            b.add(R1, 8 + i * strlen)
            emit_helper_call(b, "probe_read_user_str" if user else "probe_read_kernel_str", R1, strlen, R3)
        b.label(send)
        emit_helper_call(b, "perf_event_output", R6, self.state.events(), BPF_F_CURRENT_CPU, R9, size)
        b.label(done)
        return Val(NONE)

    def call_buf(self, node: ast.Call) -> Val:
        """buf(p, n): n bytes (n a literal, at most BPFTRACE_STRLEN) after a u64 length, for %r."""
        val = self.expr(node.args[0])
        if val.shape.kind in ("str", "bytes"):
            data = val.shape.extra if val.shape.kind == "bytes" else val.shape.size
            n = self.constant(node.args[1]) if len(node.args) == 2 else data
            n = min(n, data)
            slot = self.frame.alloc(8 + round8(n), name="buf")
            self.b.st(8, FP, n, slot.off)
            self.copy(StackSlot(val.slot.off, round8(n)), slot.field(8, round8(n)))
            return Val(Shape("buffer", slot.size, False, extra=n), slot)
        if len(node.args) != 2:
            raise error("buf() requires a length argument for pointers", node)
        if not _is_literal(node.args[1]):
            return self.buf_runtime_length(node, val)
        n = min(self.constant(node.args[1]), self.env.strlen)
        if val.slot is not None:
            self.b.ldx(8, R0, FP, val.slot.off)
        slot = self.frame.alloc(8 + round8(n), name="buf")
        self.b.st(8, FP, n, slot.off)
        read = "probe_read_user" if self._user_memory() else "probe_read_kernel"
        emit_helper_call(self.b, read, StackSlot(slot.off + 8, n), n, R0)
        self.check_helper(self.read_name(node.args[0]), node)
        return Val(Shape("buffer", slot.size, False, extra=n), slot)

    def buf_runtime_length(self, node: ast.Call, pointer: Val) -> Val:
        """buf(p, n) with n known only at run time (``buf($skb->data, $skb->len)``): room for
        BPFTRACE_STRLEN bytes, n clamped to it, the clamped length in the header."""
        b, most = self.b, self.env.strlen
        if pointer.slot is None:
            pointer = self.spill(pointer)
        slot = self.frame.alloc(8 + round8(most), name="buf")  # zeroed: the event sends it whole
        self.int_value(node.args[1])
        fits = b.fresh_label("buf_fits")
        b.jle(R0, most, fits)  # unsigned: a negative length takes the most too
        b.mov(R0, most)
        b.label(fits)
        b.stx(8, FP, R0, slot.off)
        b.ldx(8, R3, FP, pointer.slot.off)
        read = "probe_read_user" if self._user_memory() else "probe_read_kernel"
        emit_helper_call(b, read, StackSlot(slot.off + 8, most), R0, R3)
        self.check_helper(self.read_name(node.args[0]), node)
        return Val(Shape("buffer", slot.size, False, extra=most), slot)

    def call_strftime(self, node: ast.Call) -> Val:
        if not isinstance(node.args[0], ast.String):
            raise error("strftime() expects a string literal as the first argument", node)
        self.int_value(node.args[1])
        return Val(Shape("strftime", 8, False, extra=node.args[0].value))

    def call_macaddr(self, node: ast.Call) -> Val:
        val = self.expr(node.args[0])
        slot = self.frame.alloc(8, name="macaddr")
        if val.shape.kind == "bytes" and val.shape.extra != 6:
            raise error("macaddr() argument must be 6 bytes in size", node)
        if val.shape.kind == "bytes":
            self.copy(StackSlot(val.slot.off, 8), slot)
        else:
            if val.slot is not None:
                self.b.ldx(8, R0, FP, val.slot.off)
            read = "probe_read_user" if self._user_memory() else "probe_read_kernel"
            emit_helper_call(self.b, read, StackSlot(slot.off, 6), 6, R0)
        return Val(Shape("macaddr", 8, False), slot)

    def call_pton(self, node: ast.Call) -> Val:
        import socket

        if not isinstance(node.args[0], ast.String):
            raise error("pton() expects a string literal", node)
        text = node.args[0].value
        try:
            raw = socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
        except OSError:
            raise error(f"pton() expects a valid IPv4 or IPv6 address: {text}", node) from None
        slot = self.frame.alloc(round8(len(raw)), name="pton")
        padded = raw + bytes(-len(raw) % 8)
        for pos in range(0, len(padded), 8):
            self.load_const(R1, int.from_bytes(padded[pos:pos + 8], "little", signed=True))
            self.b.stx(8, FP, R1, slot.off + pos)
        return Val(Shape("bytes", slot.size, False, extra=len(raw)), slot)
