"""Semantic analysis of function calls: arity and family from functions.py, then each function's own check.

A mixin of ``semantic.Checker``: the methods work on its scope (``self.scope``), maps and reporter.
"""
from __future__ import annotations

from . import ast
from .diagnostics import Message
from .functions import FUNCTIONS
from .output.printf import check_arguments, find_specifiers
from .semantic_rules import DEBUGF_MAX_ARGS, arity_message, is_data_loc_field, kind_word
from .types import BOOL, NONE, UINT64, Type, array_of, buffer_type, int_type, named, pointer_to, string_type


class CallChecks:
    def e_Call(self, node: ast.Call, statement: bool = False, assigned: str = "") -> Type:
        name, args = node.name, node.args
        row = FUNCTIONS.get(name)
        if row is None:  # the lexer reads only the table's names as calls
            return self.error(f"Unknown function: {name}", node.span)
        if row.unsupported:
            self.unsupported.append(Message(f"{name}() is not supported by pybpftrace yet: {row.unsupported}",
                                            node.span))
        modern = self.modern and (row.modern_args or row.modern_value)
        if assigned and row.void and not (modern and row.modern_value):
            self.error(f"{name}() should not be used in an assignment or as a map key", node.span)
        lo, hi = row.modern_args if modern and row.modern_args else (row.min_args, row.max_args)
        if len(args) < lo or (hi is not None and len(args) > hi):
            return self.error(arity_message(name, lo, hi, len(args)), node.span)
        if row.unsafe and not self.env.unsafe:
            self.error(f"{name}() is an unsafe function being used in safe mode", node.span)
        if row.family == "map":
            return self.map_func(node)
        types = [self.arg_type(name, i, a) for i, a in enumerate(args)]
        if row.family == "aggregate":
            return self.aggregate(node, types, assigned)
        if row.check:
            return getattr(self, row.check)(node, types)
        return NONE

    def arg_type(self, name: str, i: int, arg: ast.Expr) -> Type:
        if i == 0 and name in ("print", "len"):
            if isinstance(arg, ast.Map) and arg.indexed:
                return NONE  # reported by c_print, c_len
            return self.whole_map(arg)
        if isinstance(arg, ast.String) and ((i == 0 and name == "printf") or name == "cgroupid"):
            t = self.e_String(arg, checked=False)  # never in the program: any length
            ast.set_type(arg, t)
            return t
        if i > 0 and name == "find":
            return NONE  # the key is typed in the indexed map (args[0]); the variable by c_find
        if i == 0 and name == "str" and isinstance(arg, ast.PositionalParam):
            t = string_type(self.env.strlen)  # str($1): the parameter's text
            ast.set_type(arg, t)
            return t
        return self.expr(arg)

    def whole_map(self, arg: ast.Expr) -> Type:
        """print(@m): the whole map, whatever its keys."""
        if isinstance(arg, ast.Map) and not arg.indexed and arg.name in self.maps:
            t = self.maps[arg.name].value
            ast.set_type(arg, t)
            return t
        return self.expr(arg)

    def map_func(self, node: ast.Call) -> Type:
        arg = node.args[0]
        if not isinstance(arg, ast.Map):
            return self.error(f"{node.name}() expects a map to be provided", node.span)
        if node.name != "delete" and arg.indexed:
            return self.error(f"The map passed to {node.name}() should not be indexed by a key",
                              node.span)
        if arg.name not in self.maps:
            for k in arg.keys:
                self.expr(k)
            return self.final_error(f"Undefined map: {arg.name}", arg.span)
        if node.name == "delete":
            self.expr(arg)
            return BOOL if self.modern else NONE  # today: whether there was an entry to delete
        ast.set_type(arg, self.maps[arg.name].value)
        return NONE

    def c_has_key(self, node: ast.Call, types: list[Type]) -> Type:
        """``has_key(@m, key)`` (the parser made it ``has_key(@m[key])``): 1 when the map holds
        the key. The indexed map was typed as a read, which checked its keys."""
        arg = node.args[0]
        if not isinstance(arg, ast.Map) or not arg.indexed:
            return self.error("has_key() expects a map and a key: has_key(@map, key)", node.span)
        return BOOL

    def c_find(self, node: ast.Call, types: list[Type]) -> Type:
        """``find(@m, key, $v)`` (the parser made it ``find(@m[key], key, $v)``): the indexed map
        was typed as a read, which checked its keys; ``$v`` takes the map's value type."""
        arg, _, var = node.args
        if not isinstance(arg, ast.Map) or not arg.indexed or not isinstance(var, ast.Variable):
            return self.error("find() expects a map, a key and a variable: find(@map, key, $var)", node.span)
        if types[0].kind != "none":
            value = types[0] if not types[0].is_aggregate else int_type(64, True)
            self.assign_var(var, value, node.span)
        return BOOL

    def c_len(self, node: ast.Call, types: list[Type]) -> Type:
        """``len(@m)`` (today's language): how many entries the map holds; ``len(kstack)``:
        how many frames."""
        arg = node.args[0]
        if types[0].kind in ("kstack", "ustack"):
            return UINT64  # the frames of a stack (0.23+)
        if not isinstance(arg, ast.Map) or arg.indexed:
            return self.error("len() expects a map with no keys (len(@map)) or a stack (len(kstack))",
                              node.span)
        return UINT64

    def c_getopt(self, node: ast.Call, types: list[Type]) -> Type:
        """``getopt("name"[, default[, "description"]])`` (0.24+): a named program option, typed
        by its literal default (none: a bool); its value is a constant (program_options.py)."""
        from .program_options import literal_int

        if not self._literal(node, 0, types[0]) or (len(node.args) > 2 and not self._literal(node, 2, types[2])):
            return NONE
        if len(node.args) < 2 or isinstance(node.args[1], ast.Boolean):
            return BOOL
        default = node.args[1]
        if isinstance(default, ast.String):
            return string_type(max(self.env.strlen, len(default.value.encode()) + 1))
        if literal_int(default) is None:
            return self.error("getopt() expects a literal default value (an integer, a string or a bool), "
                              f"{kind_word(types[1])} provided", node.span)
        return int_type(64, True)

    def c_syscall_name(self, node: ast.Call, types: list[Type]) -> Type:
        """``syscall_name(nr)``: the name, looked up by the runtime."""
        return named("syscall_name") if self._integer(node, types[0]) else NONE

    def c_signal_name(self, node: ast.Call, types: list[Type]) -> Type:
        """``signal_name(n)``: strsignal's text, looked up by the runtime."""
        return named("signal_name") if self._integer(node, types[0]) else NONE

    def aggregate(self, node: ast.Call, types: list[Type], assigned: str) -> Type:
        name = node.name
        if assigned != "map":
            return self.error(f"{name}() should be directly assigned to a map", node.span)
        if name in ("sum", "min", "max", "avg", "stats", "hist", "lhist") and \
                types[0].kind not in ("int", "none"):
            return self.final_error(f"{name}() only supports integer arguments "
                              f"({kind_word(types[0])} provided)", node.span)
        if name == "lhist":
            self.check_lhist(node)
        return named(name)

    def check_lhist(self, node: ast.Call) -> None:
        lits = []
        for a in node.args[1:]:
            if isinstance(a, ast.Integer):
                lits.append(a.value)
            elif isinstance(a, ast.PositionalParam):
                lits.append(self.param_value(a.index))
            else:
                self.error(f"lhist() expects a integer literal ({kind_word(a.type)} provided)",
                           node.span)
                return
        lo, hi, step = lits
        if lo < 0:
            self.final_error(f"lhist() min must be non-negative (provided min {lo})", node.span)
            return
        if step < 1:
            self.final_error(f"lhist() step must be >= 1 ({step} provided)", node.span)
            return
        if lo > hi:
            self.final_error(f"lhist() min must be less than max (provided min {lo} and max {hi})",
                       node.span)
        if step > hi - lo:
            self.final_error(f"lhist() step is too large for the given range (provided step {step} "
                       f"for range {hi - lo})", node.span)

    def check_format(self, node: ast.Call, types: list[Type]) -> None:
        fmt_node = node.args[0]
        if not isinstance(fmt_node, ast.String):
            self.error(f"{node.name}() expects a string literal ({kind_word(types[0])} provided)",
                       node.span)
            return
        # One set of specifier rules, shared with the runtime that prints.
        # An argument whose type is already an error ("none") takes the kind
        # its specifier wants, so that it is reported once, not twice.
        specs = find_specifiers(fmt_node.value)
        kinds = [spec.kind if t.kind == "none" else kind_word(t)
                 for spec, t in zip(specs, types[1:])]
        kinds += [kind_word(t) for t in types[1 + len(specs):]]
        problem = check_arguments(fmt_node.value, kinds, node.name)
        if problem:
            self.final_error(problem, node.span)

    def c_printf(self, node: ast.Call, types: list[Type]) -> Type:
        self.check_format(node, types)
        return NONE

    c_system = c_cat = c_printf

    def c_debugf(self, node: ast.Call, types: list[Type]) -> Type:
        """debugf(): bpf_trace_printk, which takes at most three values; bpftrace warns first."""
        fmt = node.args[0]
        if isinstance(fmt, ast.String):
            self.warning("The debugf() builtin is not recommended for production use. For more "
                         "information see bpf_trace_printk in bpf-helpers(7).", node.span)
        if isinstance(fmt, ast.String) and len(find_specifiers(fmt.value)) > DEBUGF_MAX_ARGS:
            return self.final_error(f"debugf: Cannot use more than {DEBUGF_MAX_ARGS} conversion specifiers",
                                    node.span)
        self.check_format(node, types)
        return NONE

    def _probe_only(self, node: ast.Call, what: str) -> bool:
        special = self.scope.kinds & {"BEGIN", "END"}
        if special:
            self.error(f'{what} can not be used with "{min(special)}" probes', node.span)
            return False
        return True

    def c_signal(self, node: ast.Call, types: list[Type]) -> Type:
        self._probe_only(node, "signal")
        return NONE

    def c_override(self, node: ast.Call, types: list[Type]) -> Type:
        if not self.scope.kinds <= {"kprobe"} or not self.scope.kinds:
            self.error("override can only be used with kprobes.", node.span)
        return NONE

    def c_exit(self, node: ast.Call, types: list[Type]) -> Type:
        if self.modern and self.scope.fors:  # bpftrace 0.25+ words it so
            self.error("'return' statement is not allowed in a for-loop", node.span)
        if types:
            self._integer(node, types[0])
        return NONE

    def c_str(self, node: ast.Call, types: list[Type]) -> Type:
        t = types[0]
        # a "none" (a map no pass has typed yet, or an unknown name) is refused in every pass, as
        # bpftrace does: `str(@m)` before the statement that writes @m is an error there
        if t.kind not in ("int", "pointer", "array") and not \
                isinstance(node.args[0], ast.PositionalParam) and not is_data_loc_field(node.args[0]):
            return self.error("str() expects an integer or a pointer type as first argument "
                              f"({t} provided)", node.span)
        size = self.env.strlen
        if len(node.args) == 2 and isinstance(node.args[1], ast.Integer):
            size = min(size, node.args[1].value + 1)
        return string_type(size)

    def c_buf(self, node: ast.Call, types: list[Type]) -> Type:
        if len(node.args) == 1 and types[0].kind not in ("array", "string", "none"):
            return self.final_error("buf() expects a length argument for non-array type "
                              f"{kind_word(types[0])}", node.span)
        size = self.env.strlen
        if len(node.args) == 2 and isinstance(node.args[1], ast.Integer):
            size = node.args[1].value
        elif types[0].kind in ("array", "string"):
            size = types[0].size
        return buffer_type(size + 1)

    def _int_or_pointer(self, node: ast.Call, t: Type) -> bool:
        if t.kind in ("int", "pointer", "none"):
            return True
        self.error(f"{node.name}() expects an integer or pointer argument", node.span)
        return False

    def _literal(self, node: ast.Call, i: int, t: Type) -> bool:
        if isinstance(node.args[i], ast.String):
            return True
        # (bpftrace checks these three only in its last pass)
        report = self.final_error if node.name in ("join", "strftime", "time") else self.error
        report(f"{node.name}() expects a string literal ({kind_word(t)} provided)", node.span)
        return False

    def _integer(self, node: ast.Call, t: Type) -> bool:
        if t.kind in ("int", "none"):
            return True
        report = self.error if node.name == "bswap" else self.final_error
        report(f"{node.name}() only supports integer arguments ({kind_word(t)} provided)", node.span)
        return False

    def c_ksym(self, node: ast.Call, types: list[Type]) -> Type:
        return named("ksym") if self._int_or_pointer(node, types[0]) else NONE

    def c_usym(self, node: ast.Call, types: list[Type]) -> Type:
        return named("usym", 16) if self._int_or_pointer(node, types[0]) else NONE

    def c_join(self, node: ast.Call, types: list[Type]) -> Type:
        if len(node.args) == 2:
            self._literal(node, 1, types[1])
        return NONE

    def c_kaddr(self, node: ast.Call, types: list[Type]) -> Type:
        if not isinstance(node.args[0], ast.String):
            return self.error(f"kaddr() expects a string literal ({kind_word(types[0])} provided)",
                              node.span)
        return UINT64

    def c_uaddr(self, node: ast.Call, types: list[Type]) -> Type:
        if not self._probe_only(node, "uaddr"):
            return NONE
        return pointer_to(UINT64)

    def c_reg(self, node: ast.Call, types: list[Type]) -> Type:
        ok = self._probe_only(node, "reg")
        if not self._literal(node, 0, types[0]) or not ok:
            return NONE
        return UINT64

    def c_ntop(self, node: ast.Call, types: list[Type]) -> Type:
        addr = types[-1]
        if addr.kind not in ("int", "none") and addr.size not in (4, 16):
            return self.error(f"{node.name}() argument must be 4 or 16 bytes in size", node.span)
        return named("inet", 24)

    def c_pton(self, node: ast.Call, types: list[Type]) -> Type:
        arg = node.args[0]
        n = 16 if isinstance(arg, ast.String) and ":" in arg.value else 4
        return array_of(int_type(8, False), n)

    def c_print(self, node: ast.Call, types: list[Type]) -> Type:
        arg = node.args[0]
        if isinstance(arg, ast.Tuple) and not arg.elems:  # today's `()`, the none type
            self.final_error("none type passed to print() is not printable", node.span)
        elif isinstance(arg, ast.Map) and arg.indexed:
            self.error("The map passed to print() should not be indexed by a key", node.span)
        elif len(node.args) > 1 and not isinstance(node.args[0], ast.Map):
            self.error(f"Non-map print() only takes 1 argument, {len(node.args)} found", node.span)
        elif len(node.args) > 1 and types[0].kind == "stats":
            self.warning("print()'s top and div arguments are ignored when used on stats() maps.",
                         node.span)
        elif not isinstance(arg, ast.Map) and types[0].kind in ("pointer", "none"):
            self.final_error(f"{types[0]} type passed to print() is not printable", node.span)
        return NONE

    def c_cgroupid(self, node: ast.Call, types: list[Type]) -> Type:
        return UINT64 if self._literal(node, 0, types[0]) else NONE

    def c_time(self, node: ast.Call, types: list[Type]) -> Type:
        if node.args and not isinstance(node.args[0], ast.String):
            self.final_error(f"time() expects a string literal ({kind_word(types[0])} provided)",
                             node.span)
        return NONE

    def c_strftime(self, node: ast.Call, types: list[Type]) -> Type:
        if not self._literal(node, 0, types[0]) or not self._integer(node, types[1]):
            return NONE
        return named("timestamp", 16)

    def c_strncmp(self, node: ast.Call, types: list[Type]) -> Type:
        wrong = [t for t in types[:2] if not t.is_string and t.kind != "none"]
        for t in wrong:  # one error per argument, as bpftrace reports them
            self.final_error(f"strncmp() only supports string arguments ({kind_word(t)} provided)", node.span)
        if wrong:
            return NONE
        n = node.args[2]
        if isinstance(n, ast.Integer) and n.value < 0:
            return self.error("Builtin strncmp requires a non-negative size", node.span)
        return UINT64

    def c_strcontains(self, node: ast.Call, types: list[Type]) -> Type:
        return BOOL if self.modern else UINT64

    def c_macaddr(self, node: ast.Call, types: list[Type]) -> Type:
        t = types[0]
        if t.kind not in ("array", "pointer") and not (t.kind == "array" and t.size == 6):
            return self.error("macaddr() argument must be 6 bytes in size", node.span)
        return named("mac_address", 16)

    def c_cgroup_path(self, node: ast.Call, types: list[Type]) -> Type:
        """``cgroup_path(id[, "filter"])``: the id, named by the runtime (events/cgroups.py)."""
        return named("cgroup_path", 8) if self._integer(node, types[0]) else NONE

    def c_bswap(self, node: ast.Call, types: list[Type]) -> Type:
        return types[0] if self._integer(node, types[0]) else NONE

    def c_uptr(self, node: ast.Call, types: list[Type]) -> Type:
        return types[0]

    c_kptr = c_uptr

    def c_path(self, node: ast.Call, types: list[Type]) -> Type:
        """path(): bpftrace 0.17's two checks, in its order (the kernel's helper, then the probe)."""
        if self.env.has_d_path is not None and not self.env.has_d_path():
            self.error("BPF_FUNC_d_path not available for your kernel version", node.span)
        if not self.scope.kinds or not self.scope.kinds <= {"kfunc", "kretfunc", "iter"}:
            return self.error("The path function can only be used with 'kfunc', 'kretfunc', 'iter' probes",
                              node.span)
        return string_type(self.env.strlen)

    def c_strerror(self, node: ast.Call, types: list[Type]) -> Type:
        return named("strerror", 8) if self._integer(node, types[0]) else NONE

    def c_kstack(self, node: ast.Call, types: list[Type]) -> Type:
        return named(node.name)

    c_ustack = c_kstack
