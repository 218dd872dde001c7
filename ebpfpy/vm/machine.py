"""`VM`: programs, maps, memory and helpers of one emulated machine, and the dispatch loop.

    >>> from ebpfpy.vm import VM
    >>> vm = VM()
    >>> vm.run(vm.load("r0 = 6\\nr0 *= 7\\nexit"))
    42

A VM holds any number of programs (tail calls jump between them), each compiled once, when
loaded, into one closure per slot (see `decode`). All programs share one table of closures,
so a jump, a call, an exit or a tail call is just the index of the next closure to run.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ebpfpy.isa.errors import ISAError
from ebpfpy.isa.insn import Insn, decode

from . import maps as vmmaps
from .decode import MAX_FRAMES, Halt, Return, compile_program
from .errors import VMError
from .helpers import HELPERS
from .memory import (
    CTX_BASE,
    FUNC_BASE,
    M64,
    MEM_BASE,
    PACKET_BASE,
    STACK_BASE,
    WINDOW,
    AddressSpace,
    Region,
    reserved_area,
)
from .source import SourceLine, asm_lines, span_lines

STACK_SIZE = 512  # bytes per frame, as the kernel's MAX_BPF_STACK
MAX_LOOPS = 1 << 23  # backward jumps and calls per run, as the kernel's BPF_MAX_LOOPS
_FUNC_STRIDE = 8


@dataclass(frozen=True)
class Step:
    """One executed instruction, as a ``trace=`` callback receives it: registers before and
    after (after is None when the program ended here)."""

    program: VMProgram
    index: int
    insn: Insn
    before: tuple[int, ...]
    after: tuple[int, ...] | None

    @property
    def line(self) -> SourceLine | None:
        return self.program.lines.get(self.index)

    def changed(self) -> dict[int, int]:
        """Register number -> new value, for the registers this instruction changed."""
        if self.after is None:
            return {}
        return {r: v for r, (u, v) in enumerate(zip(self.before, self.after)) if u != v}


class VMProgram:
    """A program loaded into a `VM`: its instructions, source lines, and where its code starts
    in the VM's table (``base``). ``run(...)`` is ``vm.run(self, ...)``."""

    def __init__(self, vm: VM, insns: list[Insn], *, name: str = "", section: str = "",
                 lines: dict[int, SourceLine] | None = None, fd_array: Sequence | None = None) -> None:
        self.vm = vm
        self.insns = insns
        self.name = name
        self.section = section
        self.lines = lines or {}
        self.fd_array = list(fd_array or ())
        self.base = 0
        self.index = 0
        self._slots = []
        slot = 0
        for insn in insns:
            self._slots.append((slot, insn))
            slot += insn.size
        self.nslots = slot
        self._by_slot = dict(self._slots)

    def slots(self) -> Iterator[tuple[int, Insn]]:
        return iter(self._slots)

    def insn_at(self, slot: int) -> Insn | None:
        return self._by_slot.get(slot)

    def map_by_index(self, i: int) -> vmmaps.VMMap:
        if not 0 <= i < len(self.fd_array):
            raise VMError(f"ld_imm64 refers to fd_array[{i}], and the program has {len(self.fd_array)} entries")
        m = self.fd_array[i]
        return m if isinstance(m, vmmaps.VMMap) else self.vm.maps[int(m)]

    def run(self, *args, **kwargs) -> int:
        return self.vm.run(self, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<VMProgram {self.name or '#' + str(self.index)} {self.nslots} slots>"


class _TracerFailed(BaseException):  # a carrier, past the loop's `except Exception`
    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def _trampoline(pc):
    raise Return


class VM:
    """An emulated machine: ``load`` programs, ``create_map`` maps, ``run`` a program.

    ``ncpus``: CPUs of per-CPU maps; ``cpu``: the one the program runs on. ``seed`` seeds
    ``get_prandom_u32``. ``max_loops``: backward jumps plus calls a run may take before it is
    stopped as endless. The rest is what helpers report about "the system"; all are attributes
    that can be changed between runs.
    """

    def __init__(self, *, ncpus: int = 1, cpu: int = 0, seed: int = 0, max_loops: int = MAX_LOOPS,
                 pid: int = 1000, tgid: int | None = None, uid: int = 0, gid: int = 0, cgroup_id: int = 1,
                 comm: str | bytes = "ebpfpy-vm", ktime_ns: int = 1_000_000_000, ktime_step: int = 0,
                 kernel_stack: Sequence[int] = (), user_stack: Sequence[int] = ()) -> None:
        if ncpus < 1 or not 0 <= cpu < ncpus:
            raise VMError(f"cpu {cpu} is not one of the {ncpus} CPUs")
        self.ncpus, self.cpu = ncpus, cpu
        self.max_loops = max_loops
        self.pid, self.tgid = pid, pid if tgid is None else tgid
        self.uid, self.gid = uid, gid
        self.cgroup_id = cgroup_id
        self.comm = comm
        self.ktime_ns, self.ktime_step = ktime_ns, ktime_step
        self.kernel_stack, self.user_stack = list(kernel_stack), list(user_stack)
        self.random = random.Random(seed)
        self.trace_lines: list[str] = []
        self.helpers: dict[int, Callable[..., int]] = dict(HELPERS)
        self.space = AddressSpace()
        self.regs: list[int] = [0] * 11
        self.maps: dict[int, vmmaps.VMMap] = {}
        self.programs: list[VMProgram] = []
        self._handles: dict[int, vmmaps.VMMap] = {}
        self._code: list = [_trampoline]  # slot 0: where a callback returns to its helper
        self._bases: list[int] = []
        self._frames: list[tuple] = []
        self._budget = [0]
        self._may_goto = [0]
        self._tail_calls = [0]
        self._tracer: Callable | None = None
        self._stacks = [
            self.space.add(Region(STACK_BASE + i * WINDOW, bytearray(STACK_SIZE), f"stack frame {i}"))
            for i in range(MAX_FRAMES)
        ]
        self.ctx_region: Region | None = None
        self.mem_region: Region | None = None
        self.packet_region: Region | None = None
        self._next_fd = 1

    # -- maps, helpers, memory -------------------------------------------------------------

    def create_map(self, map_type, key_size: int | None = None, value_size: int | None = None,
                   max_entries: int | None = None, *, key=None, value=None, name: str = "", flags: int = 0,
                   fd: int | None = None) -> vmmaps.VMMap:
        """An emulated map (arguments as ``ebpfpy.maps.Map.create``); its ``fd`` is what programs
        name it by. fds count from 1 unless given."""
        if fd is None:
            while self._next_fd in self.maps:
                self._next_fd += 1
            fd = self._next_fd
        elif fd in self.maps or fd < 0:
            raise VMError(f"map fd {fd} is taken" if fd >= 0 else f"bad map fd {fd}")
        m = vmmaps.create(self, map_type, key_size, value_size, max_entries, fd=fd, key=key, value=value,
                          name=name, flags=flags)
        self.maps[fd] = m
        self._handles[m.handle] = m
        return m

    def map_at(self, addr: int) -> vmmaps.VMMap | None:
        """The map whose handle (what ``ld_map_fd`` loads) is ``addr``."""
        return self._handles.get(addr)

    def map_named(self, name: str) -> vmmaps.VMMap:
        for m in self.maps.values():
            if m.name == name:
                return m
        raise KeyError(name)

    def add_helper(self, name_or_id: str | int, fn: Callable[..., int]) -> None:
        """Emulate a helper with ``fn(vm, r1, r2, r3, r4, r5) -> r0``."""
        from ebpfpy.isa.helpers import helper

        self.helpers[helper(name_or_id).id] = fn

    def map_memory(self, addr: int, data: bytes | bytearray, *, name: str = "", writable: bool = True) -> Region:
        """Place a memory image at ``addr`` (for ``probe_read`` and direct loads)."""
        area = reserved_area(addr)
        if area is not None and area != MEM_BASE:
            raise VMError(f"address {addr:#x} is in the VM's own area at {area:#x}")
        return self.space.add(Region(addr, bytearray(data), name or f"memory at {addr:#x}", writable))

    def unmap_memory(self, region: Region) -> None:
        self.space.remove(region)

    def read(self, addr: int, n: int) -> bytes:
        return self.space.read(addr, n)

    def write(self, addr: int, data: bytes) -> None:
        self.space.write(addr, data)

    # -- programs --------------------------------------------------------------------------

    def load(self, program: Any, *, name: str = "", section: str = "", lines: dict[int, SourceLine] | None = None,
             filename: str = "", source: str | None = None, fd_array: Sequence | None = None) -> VMProgram:
        """Compile ``program`` for this VM: assembly text (a ``str``), instruction bytes, a list of
        ``Insn``, or a ``Builder`` (built here; its spans become source lines, with the text of
        ``source`` if given). Map fds in it must name maps of this VM."""
        try:
            insns, found_lines = _instructions(program, filename, source)
        except ISAError as e:
            raise VMError(f"{filename + ': ' if filename else ''}{e}") from None
        if not insns:
            raise VMError("the program is empty")
        prog = VMProgram(self, insns, name=name, section=section, lines=lines or found_lines, fd_array=fd_array)
        prog.base = len(self._code)
        prog.index = len(self.programs)
        try:
            code = compile_program(self, prog)
        except VMError as e:
            e.program = e.program or name or None
            raise
        self._code.extend(code)
        self.programs.append(prog)
        self._bases.append(prog.base)
        return prog

    def load_object(self, path: str):
        """Maps and programs of a clang-built object file (see `ebpfpy.vm.objects`)."""
        from .objects import load_object

        return load_object(self, path)

    def function_at(self, addr: int, what: str) -> int:
        """The code index of the subprogram whose address (``ld_imm64`` of a function) is ``addr``."""
        pc, rest = divmod(addr - FUNC_BASE, _FUNC_STRIDE)
        if rest or not 0 < pc < len(self._code):
            raise VMError(f"{what}: {addr:#x} is not a function of the program")
        return pc

    def locate(self, pc: int) -> tuple[VMProgram, int] | None:
        i = bisect.bisect_right(self._bases, pc) - 1
        if i < 0:
            return None
        prog = self.programs[i]
        return prog, pc - prog.base

    # -- running ---------------------------------------------------------------------------

    def run(self, program: VMProgram, ctx: bytes | None = None, *, mem: bytes | None = None,
            packet: bytes | None = None, args: Sequence[int] | None = None,
            trace: Callable[[Step], None] | None = None) -> int:
        """Run ``program`` once and return r0.

        ``ctx`` becomes the context region (r1 points to it), ``mem`` a memory image at
        ``MEM_BASE`` (without ``ctx``, r1 points to it and r2 holds its length, as
        bpf_conformance passes memory), ``packet`` the packet the legacy ``LD_ABS``/``LD_IND``
        loads read (at ``PACKET_BASE``). ``args`` sets r1..r5 outright. ``trace`` is called
        with a `Step` after each instruction."""
        if program.vm is not self:
            raise VMError("the program was loaded into another VM")
        R = self.regs
        R[:] = [0] * 11
        self._frames.clear()
        self._budget[0] = self.max_loops
        self._may_goto[0] = MAX_LOOPS
        self._tail_calls[0] = 0
        self.ctx_region = self._replace(self.ctx_region, CTX_BASE, ctx, "context")
        self.mem_region = self._replace(self.mem_region, MEM_BASE, mem, "memory image")
        self.packet_region = self._replace(self.packet_region, PACKET_BASE, packet, "packet")
        frame = self._stacks[0]
        frame.buf[:] = bytes(STACK_SIZE)
        R[10] = frame.end
        if args is not None:
            for i, value in enumerate(list(args)[:5], 1):
                R[i] = value & M64
        elif ctx is not None:
            R[1] = CTX_BASE
        elif mem is not None:
            R[1], R[2] = MEM_BASE, len(mem)
        self._tracer = None if trace is None else self._stepper(trace)
        try:
            return self._loop(program.base, nested=False)
        finally:
            self._tracer = None

    def _replace(self, old: Region | None, base: int, data: bytes | None, name: str) -> Region | None:
        if old is not None:
            self.space.remove(old)
        if data is None:
            return None
        return self.space.add(Region(base, bytearray(data), name))

    def invoke(self, pc: int, args: Sequence[int]) -> int:
        """Call the subprogram at code index ``pc`` with ``args`` in r1.. (a helper's callback);
        it runs in a frame of its own and its r0 is returned."""
        frames, R = self._frames, self.regs
        depth = len(frames) + 1
        if depth >= MAX_FRAMES:
            raise VMError(f"call depth exceeds {MAX_FRAMES} frames")
        frames.append((0, R[6], R[7], R[8], R[9], R[10]))
        stack = self._stacks[depth]
        stack.buf[:] = bytes(STACK_SIZE)
        R[10] = stack.end
        for i, value in enumerate(args, 1):
            R[i] = value & M64
        return self._loop(pc, nested=True)

    def _over_budget(self) -> None:
        raise VMError(f"the program did not finish within {self.max_loops} backward jumps and calls "
                      "(an endless loop?); raise vm.max_loops to let it run longer")

    def _loop(self, pc: int, nested: bool) -> int:
        code = self._code
        tracer = self._tracer
        try:
            if tracer is None:
                while True:
                    pc = code[pc](pc)
            else:
                while True:
                    before = tuple(self.regs)
                    try:
                        nxt = code[pc](pc)
                    except Halt:
                        self._call_tracer(tracer, pc, before, None)
                        raise
                    self._call_tracer(tracer, pc, before, nxt)
                    pc = nxt
        except _TracerFailed as e:
            if nested:
                raise
            raise e.error from None
        except Return:
            return self.regs[0]
        except Halt:
            if nested:
                raise
            return self.regs[0]
        except VMError as e:
            self._place(e, pc)
            raise
        except RecursionError:
            raise VMError("callbacks nested too deeply") from None
        except Exception as e:  # a bug of ours or of a user's helper: still one clear error
            error = VMError(f"internal error: {type(e).__name__}: {e}")
            self._place(error, pc)
            raise error from e

    @staticmethod
    def _call_tracer(tracer: Callable, pc: int, before: tuple[int, ...], nxt: int | None) -> None:
        try:
            tracer(pc, before, nxt)
        except BaseException as e:  # the caller's exception, not the program's: passed on as it is
            raise _TracerFailed(e) from None

    def _place(self, error: VMError, pc: int) -> None:
        if error.index is not None:
            return
        where = self.locate(pc)
        if where is not None:
            prog, error.index = where
            error.program = error.program or prog.name or None

    def _stepper(self, trace: Callable[[Step], None]) -> Callable:
        def tracer(pc: int, before: tuple[int, ...], nxt: int | None) -> None:
            where = self.locate(pc)
            if where is None:
                return
            prog, slot = where
            insn = prog.insn_at(slot)
            if insn is None:
                return
            trace(Step(prog, slot, insn, before, None if nxt is None else tuple(self.regs)))

        return tracer


# -- program sources -------------------------------------------------------------------------


def _instructions(program: Any, filename: str, source: str | None) -> tuple[list[Insn], dict[int, SourceLine]]:
    if isinstance(program, str):
        from ebpfpy.isa.asm import assemble

        insns = assemble(program)
        return insns, asm_lines(program, insns, filename)
    if isinstance(program, (bytes, bytearray, memoryview)):
        return decode(bytes(program)), {}
    if hasattr(program, "build") and hasattr(program, "spans"):  # a Builder
        insns = program.build()
        return insns, span_lines(program.spans, filename, source)
    insns = list(program)
    for insn in insns:
        if not isinstance(insn, Insn):
            raise ISAError(f"not an instruction: {insn!r}")
        insn.check()
    return insns, {}


__all__ = ["MAX_LOOPS", "STACK_SIZE", "VM", "SourceLine", "Step", "VMProgram"]
