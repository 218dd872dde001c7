"""``pybpftrace --emulate``: run a script's BEGIN, END, interval and profile probes in ``ebpfpy.vm``.

No kernel and no root: the compiled programs run in the pure-Python interpreter, on its
emulated maps and helpers, and the events they send go through an emulated perf buffer
into the runtime's own decoders. `EmulatedRuntime` replaces only the runtime's seam to
the kernel (create the maps, load and attach the programs, read the events); the run's
order (BEGIN, the event loop, END, the maps at exit) and every line printed are the
runtime's, so the output is the kernel run's.

What the helpers report is this process, as BEGIN in the kernel sees it (BEGIN runs by
BPF_PROG_TEST_RUN on our own thread there): pid, tid, uid, gid, comm and cgroup are ours,
``nsecs`` reads CLOCK_MONOTONIC. ``interval`` and ``profile`` probes run on real time, as
the kernel's timers do: ``interval:ms:10`` fires every 10 ms from the moment it is attached,
on CPU 0. A ``profile`` probe's tick runs the program once for each online CPU, one after the
other on our one thread, with ``cpu`` and the per-CPU map slots set to that CPU; BEGIN and END
run on CPU 0. A probe kind that needs the kernel, or a helper the VM does not emulate, is a script
error pointing at the source; a fault inside an emulated program is one too.
"""
from __future__ import annotations

import contextlib
import math
import os
import select
import time

from ebpfpy.vm import VM, VMError

from .compiled import EVENTS_MAP
from .diagnostics import Diagnostic, Message, Reporter, Span
from .runtime import Runtime, ScriptError

# The probe kinds the emulator runs (as the attach table names them, aliases resolved).
KINDS = ("BEGIN", "END", "interval", "profile")
_PT_REGS = bytes(21 * 8)  # x86-64 pt_regs, zeroed: an interval or profile tick has no registers to show
_RAW_TP_CTX = bytes(8)  # BEGIN and END: a raw tracepoint run with no arguments, as in the kernel


def check_probes(program, source: str = "", filename: str = "stdin") -> None:
    """Every attach point the emulator cannot run, as bpftrace-style errors; raises Diagnostic."""
    reporter = Reporter(source, filename)
    for probe in program.probes:
        for point in probe.attach_points:
            if point.kind not in KINDS:
                reporter.error("--emulate runs begin, end, interval and profile probes; "
                               f"{point.raw} needs the kernel", _one_line(point.span, point.raw))
    reporter.check()


def _one_line(span: Span, text: str) -> Span:
    """An attach point's span starts where the whitespace before it ended (bpftrace's quirk);
    when that is on an earlier line, the span of the text itself, so the line can be shown."""
    if not span.end_line or span.end_line == span.line:
        return span
    return Span(span.end_line, max(1, span.col_end - len(text.encode("utf-8", "surrogateescape"))), span.col_end)


def emulated_vm() -> VM:
    """A VM whose "system" is this process: what BEGIN sees of it in the kernel."""
    from ebpfpy.sys.perf import possible_cpus

    vm = VM(ncpus=max(possible_cpus(), default=0) + 1, cpu=0, pid=_thread_id(), tgid=os.getpid(),
            uid=os.getuid(), gid=os.getgid(), cgroup_id=_cgroup_id(), comm=_comm(),
            seed=int.from_bytes(os.urandom(8), "little"))
    vm.add_helper("ktime_get_ns", lambda vm, *args: time.monotonic_ns())
    vm.add_helper("ktime_get_boot_ns", lambda vm, *args: time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    return vm


def _thread_id() -> int:
    import threading

    return threading.get_native_id()


def _comm() -> bytes:
    try:
        with open("/proc/thread-self/comm", "rb") as fh:
            return fh.read().rstrip(b"\n")[:15]
    except OSError:
        return b"python3"


def _cgroup_id() -> int:
    """Our cgroup v2 id (its directory's inode number, as the kernel's id is); 1, the root's,
    when there is no cgroup v2 hierarchy."""
    from ebpfpy.bpffs import find_cgroup2

    try:
        root = find_cgroup2()
        with open("/proc/self/cgroup") as fh:
            path = next((line.split(":", 2)[2].strip() for line in fh if line.startswith("0::")), None)
        if root is None or path is None:
            return 1
        return os.stat(os.path.join(root, path.lstrip("/"))).st_ino
    except (OSError, IndexError):
        return 1


class _Events:
    """The perf buffer's part, over the VM's perf event array: records go to the runtime's
    ``_on_event`` padded as the kernel pads raw samples (u32 size plus data: a multiple of 8)."""

    def __init__(self, events_map, callback):
        self._map = events_map
        self._callback = callback

    def poll(self, timeout_ms: int = -1) -> int:
        return self.consume()  # the emulated programs ran already: nothing to wait for

    def consume(self) -> int:
        records = self._map.consume()
        by_cpu: dict[int, list] = {}
        for cpu, data in records:
            by_cpu.setdefault(cpu, []).append(data + bytes(-(len(data) + 4) % 8))
        for cpu, samples in by_cpu.items():
            self._callback(cpu, samples)
        return len(records)

    def watch(self, fd: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Probe:
    """One emulated program on one probe; ``fire()`` runs it once (BEGIN, END, a timer tick).
    ``spans`` are the program's source spans per slot, for errors."""

    def __init__(self, runtime: EmulatedRuntime, prog, spans: list, plan, period_ns: int = 0, cpus: tuple = (0,)):
        self.runtime, self.prog, self.spans, self.plan = runtime, prog, spans, plan
        self.cpus = cpus
        self.probe = plan.probe
        self.period_ns = period_ns
        self.due = time.monotonic_ns() + period_ns  # the kernel's timer starts at attach
        # a timer's context is struct bpf_perf_event_data: pt_regs, sample_period, addr
        self.ctx = _RAW_TP_CTX if not period_ns else _PT_REGS + period_ns.to_bytes(8, "little") + bytes(8)

    def fire(self) -> int:
        return self.runtime.run_program(self)

    def advance(self, now: int) -> None:
        """The next tick after ``now``; ticks missed while we were busy are skipped, as an
        overrun perf timer does."""
        self.due += self.period_ns * max(1, (now - self.due) // self.period_ns + 1)

    def close(self) -> None:
        pass


class EmulatedRuntime(Runtime):
    """`Runtime` with the kernel replaced by ``ebpfpy.vm``: same run, same output."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.vm = emulated_vm()
        self._timers: list[_Probe] = []

    # -- the seam: maps, programs, attachments, events --------------------------------------

    def _create_maps(self, stack: contextlib.ExitStack) -> None:
        for plan in self.script.maps.values():
            try:
                m = self.vm.create_map(plan.map_type, plan.key_size, plan.value_size, plan.max_entries,
                                       name=plan.name)
                for key, value in plan.initial.items():
                    m.update(key, value)
            except (VMError, ValueError) as err:
                raise ScriptError(f"--emulate: map {plan.name}: {err}") from None
            self.maps[plan.name] = m

    def _open_perf_buffer(self) -> _Events:
        return _Events(self.maps[EVENTS_MAP], self._on_event)

    def _load(self, plan):
        from ebpfpy.vm.source import span_lines

        insns = plan.builder.build(maps=self.maps)
        spans = list(getattr(plan.builder, "spans", None) or ())
        _check_helpers(self.vm, insns, spans, plan)
        name = plan.label or plan.probe
        try:
            prog = self.vm.load(insns, name=name, lines=span_lines(spans))
        except VMError as err:
            raise ScriptError(f"--emulate: cannot run the program for {name}: {err}") from None
        return prog, spans

    def _attach_all(self, stack: contextlib.ExitStack):
        from ebpfpy.attach.perf_event import TIME_UNITS, timer_target

        begin, end, count = [], [], 0
        self._attached = attached = []
        for plan in self.script.probes:
            kind, _, spec = plan.probe.partition(":")
            kind = _kind(kind)
            if kind not in KINDS:  # check_probes stopped it at compile time; a plan made elsewhere
                raise ScriptError(f"--emulate runs begin, end, interval and profile probes; "
                                  f"{plan.probe} needs the kernel")
            prog, spans = self._load(plan)
            period = 0
            if kind in ("interval", "profile"):
                target = timer_target(kind, spec)
                period = target.sample_period or max(1, TIME_UNITS["s"] // target.sample_freq)
            probe = _Probe(self, prog, spans, plan, period, target.cpus if period else (0,))
            attached.append(probe)
            count += len(plan.covers) or 1
            if kind == "BEGIN":
                begin.append(probe)
            elif kind == "END":
                end.append(probe)
            else:
                self._timers.append(probe)
        return begin, end, count

    # -- running -------------------------------------------------------------------------

    def run_program(self, probe: _Probe) -> int:
        vm = self.vm
        try:
            for cpu in probe.cpus:
                vm.cpu = cpu
                ret = vm.run(probe.prog, probe.ctx)
            return ret
        except VMError as err:
            raise _fault(err, probe.spans, probe.plan) from None
        finally:
            vm.cpu = 0

    def serve(self, timeout: int = 100) -> None:
        """One turn: wait for the next timer tick (or a signal, at most ``timeout`` ms), run
        the probes that are due, then the runtime's own turn serves their events."""
        if not self._stop:
            self._tick(timeout)
        super().serve(0)

    def _tick(self, timeout: int) -> None:
        now = time.monotonic_ns()
        wait = timeout
        if self._timers:
            first = min(t.due for t in self._timers)
            wait = max(0, min(timeout, math.ceil((first - now) / 1e6)))
        if wait:
            if self._wakeup is not None:
                waiter = select.poll()
                waiter.register(self._wakeup, select.POLLIN)
                waiter.poll(wait)
            else:
                time.sleep(wait / 1000)
        now = time.monotonic_ns()
        for timer in sorted(self._timers, key=lambda t: t.due):
            if self._stop or timer.due > now:
                break
            timer.fire()
            timer.advance(now)
            self._drain(self._events)  # exit() in this tick stops the ticks after it


def _kind(name: str) -> str:
    from ebpfpy.attach.errors import ProbeSpecError
    from ebpfpy.attach.provider import kind_of

    try:
        return kind_of(name).name
    except ProbeSpecError:  # an unknown kind: reported as one the emulator does not run
        return name


def _check_helpers(vm: VM, insns: list, spans: list, plan) -> None:
    """Every helper the program calls must be emulated: a script error at the call's source
    line otherwise, before anything runs (as the kernel refuses a program at load)."""
    from ebpfpy.isa.opcodes import CallKind
    from ebpfpy.vm.helpers import TAIL_CALL, helper_name

    reporter = Reporter()
    seen = set()
    slot = 0
    for insn in insns:
        if insn.is_call and insn.src == CallKind.HELPER and insn.imm != TAIL_CALL and insn.imm not in vm.helpers:
            span = _span(spans, slot)
            if (insn.imm, span) not in seen:
                seen.add((insn.imm, span))
                name = helper_name(insn.imm)
                name = name.split("#")[0] if name.startswith("bpf_") else name
                reporter.error(f"--emulate: helper {name} is not emulated (called for {plan.label or plan.probe}); "
                               "this needs the kernel", span)
        slot += insn.size
    reporter.check()


def _span(spans: list, slot: int) -> Span | None:
    span = spans[slot] if 0 <= slot < len(spans) else None
    return Span(*span[:3]) if span else None


def _fault(err: VMError, spans: list, plan) -> Diagnostic:
    """A run of an emulated program that went wrong, at the source line that made the instruction."""
    span = _span(spans, err.index) if err.index is not None else None
    where = f" (instruction {err.index} of {plan.label or plan.probe})" if err.index is not None else ""
    return Diagnostic(Message(f"--emulate: {err.message}{where}", span))
