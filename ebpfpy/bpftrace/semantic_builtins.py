"""Semantic analysis of builtins (probe kinds they allow, their types) and of kfunc arguments.

A mixin of ``semantic.Checker``: the methods work on its scope (``self.scope``), maps and reporter.
"""
from __future__ import annotations

import re

from . import ast
from .functions import builtin
from .semantic_rules import (
    ARG_KINDS,
    ARGS_KINDS,
    AVAILABLE_FILTER_FUNCTIONS,
    FUNC_KINDS,
    KFUNC_KINDS,
    RETVAL_KINDS,
    SARG_KINDS,
    UNRESOLVED,
    read_traceable,
)
from .types import NONE, RETVAL_FIELD, UINT64, Field, Type, named, pointer_to, record


class BuiltinChecks:
    def e_Builtin(self, node: ast.Builtin) -> Type:
        name, kinds = node.name, self.scope.kinds
        m = re.fullmatch(r"(s?)arg([0-9]+)", name)
        if m:
            allowed = SARG_KINDS if m.group(1) else ARG_KINDS
            if not kinds <= allowed:
                which = "'kprobes' and 'uprobes'" if m.group(1) else "'kprobes', 'uprobes' and 'usdt'"
                return self.error(f"The {name} builtin can only be used with {which} probes", node.span)
            return UINT64
        if name == "retval" and not kinds <= RETVAL_KINDS:
            hint = " (try to use args->ret instead)" if "tracepoint" in kinds else ""
            return self.error("The retval builtin can only be used with 'kretprobe' and "
                              f"'uretprobe' and 'kfunc' probes{hint}", node.span)
        if name == "retval" and kinds and kinds <= KFUNC_KINDS:
            return self.kfunc_retval(node)
        if name == "func" and not kinds <= FUNC_KINDS:
            bad = min(kinds - FUNC_KINDS)
            return self.error(f"The func builtin can not be used with '{bad}' probes", node.span)
        if name == "cpid" and not self.env.has_child:
            return self.error("cpid cannot be used without child command", node.span)
        if name == "args":
            return self.args_type(node)
        if name == "ctx" and kinds == {"iter"}:  # the iterator's context struct, typed from BTF
            aps = self.scope.attach_points
            return pointer_to(record(f"struct bpf_iter__{aps[0].parts[0] if aps[0].parts else ''}"))
        if name == "ctx":
            if "tracepoint" in kinds:
                return self.error("Use args instead of ctx in tracepoint", node.span)
            if kinds & {"BEGIN", "END"}:
                return self.error("invalid program type", node.span)
        if name == "func" and kinds and kinds <= {"uprobe", "uretprobe", "usdt"}:
            return named("usym")
        found = builtin(name)
        return found[0].type if found else UINT64

    def args_type(self, node: ast.Builtin) -> Type:
        kinds = self.scope.kinds
        if not kinds or not kinds <= ARGS_KINDS:
            return self.error("The args builtin can only be used with tracepoint/kfunc/uprobe"
                              f"probes ({self.probe_kind_name()} used here)", node.span)
        if kinds <= KFUNC_KINDS or kinds == {"rawtracepoint"}:
            self.func_args()
            if self.scope.func_args_failed:
                return NONE
            return pointer_to(record(self.scope.args_name))
        return pointer_to(record("struct args"))

    def kfunc_retval(self, node: ast.Builtin) -> Type:
        """kretfunc's retval has the function's return type (kfunc's is bpftrace's plain u64)."""
        args = self.func_args()
        ret = next((f.type for f in args or () if f.name == RETVAL_FIELD), None)
        if self.scope.func_args_failed:
            return NONE
        if ret is None:
            return UINT64
        if ret.kind == "none":
            aps = self.scope.attach_points
            func = aps[0].parts[-1] if aps and aps[0].parts else ""
            return self.error(f"{func} returns void: kretfunc has no retval", node.span)
        return ret

    def func_args(self) -> list[Field] | None:
        """The probe's kfunc parameters from BTF, as bpftrace's field analyser finds them.

        Every attach point, and every function a wildcard matches, must take
        parameters of the same names ("mixed arguments" otherwise); the first
        one's types are used (codegen reads each function's own slots).  An
        explicit function that cannot be resolved is an error, a wildcard
        match only a warning.  Resolved once per probe, on first use."""
        scope = self.scope
        if scope.func_args is not UNRESOLVED:
            return scope.func_args
        scope.func_args = None
        if scope.kinds == {"rawtracepoint"}:
            return self.raw_tracepoint_args()
        resolve = getattr(self.env.resolver, "func_args", None)
        if resolve is None:
            return None
        result: list[Field] | None = None
        for ap in scope.attach_points:
            if ap.kind not in KFUNC_KINDS:
                continue
            func = ap.parts[-1] if ap.parts else ""
            wildcard = any(c in func for c in "*?[")
            for name in self.kfunc_matches(func) if wildcard else [func]:
                try:
                    args = resolve(name, ap.kind == "kretfunc")
                    reason = None if wildcard else self.kfunc_untraceable(name)
                    if reason:
                        raise LookupError(reason)
                except LookupError as exc:
                    # bpftrace says "kfunc:" for kretfunc too
                    if wildcard:
                        self.warning(f"kfunc:{func}: {exc.args[0]}", None)
                        continue
                    scope.func_args_failed = True
                    self.error(f"kfunc:{func}: {exc.args[0]}", ap.span)
                    return None
                if result is None:
                    result = args
                elif {f.name for f in args} != {f.name for f in result}:
                    self.error("Probe has attach points with mixed arguments", ap.span)
                    break
        scope.func_args = result if result is not None else []
        return scope.func_args

    def raw_tracepoint_args(self) -> list[Field] | None:
        """A raw tracepoint's ``args`` (today's language): the arguments its BTF prototype
        (``btf_trace_NAME``) declares; every attach point must have the same names."""
        scope = self.scope
        resolve = getattr(self.env.resolver, "raw_tracepoint_args", None)
        if resolve is None:
            return None
        result: list[Field] | None = None
        for ap in scope.attach_points:
            name = ap.parts[-1] if ap.parts else ""
            try:
                args = resolve(name)
            except LookupError as exc:
                scope.func_args_failed = True
                self.error(f"rawtracepoint:{name}: {exc.args[0]}", ap.span)
                return None
            if result is None:
                result = args
            elif [f.name for f in args] != [f.name for f in result]:
                self.error("Probe has attach points with mixed arguments", ap.span)
                break
        scope.func_args = result if result is not None else []
        return scope.func_args

    def kfunc_untraceable(self, func: str) -> str | None:
        """Why bpftrace would refuse to resolve an explicit kfunc, when tracefs is consulted."""
        if self.env.traceable is None:
            return None
        if self._traceable is None:
            self._traceable = read_traceable(self.env.traceable)
        if func in self._traceable:
            return None
        if not self._traceable:
            return (f"could not read traceable functions from {AVAILABLE_FILTER_FUNCTIONS} "
                    "(is tracefs mounted?)")
        return 'function not traceable (probably it is inlined or marked as "notrace")'

    def kfunc_matches(self, pattern: str) -> list[str]:
        if self.env.kfuncs is not None:
            return self.env.kfuncs(pattern)
        return self.env.resolver.functions(pattern)
