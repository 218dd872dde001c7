"""pybpftrace's code generator: bpftrace AST -> eBPF programs, emitted directly through ebpfpy's builder.

One program per concrete probe target: a wildcard tracepoint becomes one small
program per tracepoint, each knowing its own ``args`` layout and ``probe`` name;
a wildcard whose body ignores the target (apart from ``probe``) is compiled
once, and each target gets a copy with its probe index patched in; such a
wildcard over many syscall tracepoints (``t:syscalls:sys_enter_*``) becomes
one program on the raw tracepoint behind ``raw_syscalls`` that finds the probe
index by syscall number.

Modules: ``program`` (the script: expansion, grouping, the compile driver),
``probe`` (one program: ``ProbeCodegen``, composed of one mixin per construct
family: ``statements``, ``expressions``, ``maps``, ``aggregate``, ``fields``,
``builtins``, ``calls``, ``strings``, ``events``), ``context`` (environment,
values, errors, shared script state), ``kernel`` (what is read from the
running system), ``targets`` (AST questions that decide program sharing).
"""
from .context import CompileError, Env
from .program import DISPATCH_MIN, NoProbesError, compile_script, expand_probes

__all__ = ["DISPATCH_MIN", "CompileError", "Env", "NoProbesError", "compile_script", "expand_probes"]
