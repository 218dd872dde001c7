"""The compile environment, the value of an expression, compile errors, and what a script's programs share."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ebpfpy.codegen.stack import StackSlot
from ebpfpy.sys.consts import PERF_MAX_STACK_DEPTH, MapType

from .. import ast
from ..compiled import EVENTS_MAP, CompiledScript, MapPlan
from ..diagnostics import Diagnostic, Message
from ..shapes import Shape
from .world import SystemWorld, World

STACK_DEPTH = PERF_MAX_STACK_DEPTH
# The discarded first run cannot know the variables' sizes: it gets room it is never held to
# (within the 16-bit offsets instructions can encode); the final run gets the real 512 bytes.
FIRST_RUN_VARS = 8192
FIRST_RUN_STACK = 16384


@dataclass
class Env:
    """Everything the compiler needs from the command line and the system."""

    strlen: int = 64
    map_keys_max: int = 4096
    params: tuple = ()  # positional parameters $1..$N as strings
    # today's named program options (getopt): name -> value, read and checked (program_options.py)
    program_options: dict = field(default_factory=dict)
    cpid: int = 0
    pid: int = -1
    unsafe: bool = False
    start_ns: int = field(default_factory=time.monotonic_ns)
    source: str = ""
    filename: str = "stdin"
    helper_errors: int = 0  # -k / -kk: which helper calls are followed by a check (helper_errors.py)
    warnings: bool = True
    # the value of an enumerator named in the script (true, TCP_SYN_SENT), None when unknown:
    # semantic analysis's resolver (BTF), which has already checked every name
    enum_value: Callable[[str], int | None] = lambda name: None
    # -v: bpftrace loads (and reports) one program per target, so no multi-target links
    per_target_programs: bool = False
    # today's language (compat.is_modern) rather than bpftrace 0.17's, whose quirks codegen keeps
    modern: bool = True
    # what codegen reads from the system (BTF, symbols, probe targets, CPUs): see world.py
    world: World = field(default_factory=SystemWorld)



@dataclass
class Val:
    """A value produced by an expression: in r0 (``slot`` None) or in a stack slot."""

    shape: Shape
    slot: StackSlot | None = None



class CompileError(Diagnostic):
    pass


class InternalCompilerError(Exception):
    """A case earlier passes rule out reached codegen: a bug in pybpftrace, not in the script.
    The driver reports it as "internal compiler error", apart from the script's own errors."""



def stack_overflow_error(probe: ast.Probe) -> CompileError:
    """bpftrace 0.17 has no source position for this one (LLVM reports it), so neither do we:
    its exact text, naming the probe as written, with kinds spelled out."""
    name = ",".join(":".join((p.kind, *p.parts)) for p in probe.attach_points)
    return CompileError([Message(f"<unknown>:0:0: in function {name} i64 (i8*): Looks like the BPF stack "
                                 "limit of 512 bytes is exceeded. Please move large on stack variables "
                                 "into BPF per-cpu array map.\n\n", None, "error")])



def error(message: str, node: ast.Node | None) -> CompileError:
    span = getattr(node, "span", None)
    return CompileError([Message(message, span if span and span.line else None)])



class ScriptState:
    """What all programs of one script share: maps, actions, probe names, variable layouts."""

    def __init__(self, env: Env):
        self.env = env
        self.script = CompiledScript()
        self.map_shapes: dict[str, tuple] = {}  # name -> (kind, key shapes, value shape, lhist)
        self.probe_names: list[str] = []
        self.c_structs: dict = {}  # "struct X" -> [types.Field]: structs the script defines
        self.printf_actions: dict = {}
        # (node id, target) -> Shape, recorded by the first run so the final one can lay out
        # an event before evaluating its arguments straight into it
        self.shape_hints: dict = {}
        # the first run read a map no statement had written yet (a later probe writes it):
        # it runs again, so the reading statements see the map's shape
        self.read_unwritten_map = False
        self.placeholder_read = False  # ... and of a type other than an integer
        # for loops (emit/newer.py): per probe, the $variables their bodies use and the deepest
        # loop level using each; every program of the probe lays them out first, deepest first,
        # so a loop's callback copies only those its level needs
        self.loop_names: dict[int, dict[str, int]] = {}
        self.pointer_keys: dict[str, set] = {}  # 0.17: map name -> key parts that are pointers

    def need_map(self, name: str, map_type: MapType, key_size: int, value_size: int, max_entries: int) -> str:
        if name not in self.script.maps:
            self.script.maps[name] = MapPlan(name, map_type, key_size, value_size, max_entries)
        return name

    def events(self) -> str:
        # one slot per CPU number (BPF_F_CURRENT_CPU indexes it by the running CPU's)
        return self.need_map(EVENTS_MAP, MapType.PERF_EVENT_ARRAY, 4, 4, max(self.env.world.possible_cpus()) + 1)

    def probe_index(self, name: str) -> int:
        """The index ``probe`` loads for a target, into the names the runtime prints. Today's
        language names a raw tracepoint with its module (``rawtracepoint:vmlinux:sched_switch``)."""
        if self.env.modern and name.startswith("rawtracepoint:") and name.count(":") == 1:
            name = "rawtracepoint:vmlinux:" + name.split(":", 1)[1]
        if name not in self.probe_names:
            self.probe_names.append(name)
        return self.probe_names.index(name)



def round8(n: int) -> int:
    return (n + 7) // 8 * 8

def wider(old: Shape, new: Shape) -> Shape:
    """The larger of two string shapes; anything else keeps its first shape."""
    if old.kind == "str" and new.kind == "str" and new.size > old.size:
        return new
    return old

