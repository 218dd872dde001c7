"""Run a compiled script: create maps, load and attach programs, serve events, print maps at exit.

Everything the kernel holds for us is owned by one ``ExitStack`` and held
through fds (programs, maps, perf events, links), so whatever way the process
ends, including SIGKILL, the kernel drops it all; a normal exit, Ctrl-C,
SIGTERM or SIGHUP detaches the probes first, runs END and prints the maps
(the detaching goes on in background threads meanwhile), then closes the
rest. SIGUSR1 prints the maps and goes on.

Signals only set flags here; the event loop looks at them between polls
(at most 100 ms apart), so a signal never lands in the middle of printing.
A library caller (``ebpfpy.bpftrace.api``, ``trap_signals=False``) keeps
Python's KeyboardInterrupt instead, and leaving ``with runtime:`` by it ends
the run in the same order as SIGINT does.
"""
from __future__ import annotations

import contextlib
import importlib
import math
import os
import select
import signal
import struct
import time

from ebpfpy.attach.errors import AttachError
from ebpfpy.codegen.funcinfo import func_info_load_args
from ebpfpy.events.perfbuf import PerfBuffer
from ebpfpy.maps import Map
from ebpfpy.progs import Program
from ebpfpy.sys._libc import sched_getcpu
from ebpfpy.sys.errors import BPFError

from .compiled import EVENTS_MAP, CompiledScript, MapPlan
from .mapread import _fold_buckets, _int_column_map, _int_keys, _read_int_columns, _summed_values
from .output.printf import PrintfFormat
from .output.values import MapData
from .output.writer import Writer
from .services import Services

# The module: `import ebpfpy.attach.provider as ...` would give ebpfpy.attach's function of that name.
providers = importlib.import_module("ebpfpy.attach.provider")

_ACTION_ID = struct.Struct("<Q")
# After a poll that delivered fewer than this many records, pause this long before the next.
_FEW_RECORDS = 64
_PAUSE = 0.0005


# probe kinds whose attachment -p/-c limits to one process (others are system-wide, as in bpftrace)
PID_SCOPED_KINDS = frozenset(("uprobe", "uretprobe", "usdt"))


class ScriptError(Exception):
    """A failure at run time that the CLI reports as ``ERROR: ...`` with exit status 1."""


class Runtime:
    def __init__(self, script: CompiledScript, writer: Writer, *, pid: int = -1,
                 child: Child | None = None, quiet: bool = False, unsafe: bool = False,
                 perf_pages: int = 64, verbose: bool = False, log=None, cat_bytes_max: int = 10240,
                 log_size: int = 1000000, user_symbols: bool = True, trap_signals: bool = True):
        self.script = script
        self.writer = writer
        self.pid = pid
        self.child = child
        self.quiet = quiet
        self.unsafe = unsafe
        self.perf_pages = perf_pages
        self.verbose = verbose
        self._verbose_blocks: list[str] = []
        self.log = log
        self.cat_bytes_max = cat_bytes_max
        self.log_size = log_size
        self.user_symbols = user_symbols
        self._print_maps_requested = False
        self._wakeup: int | None = None  # read end of the signal wake-up pipe while running
        self.maps: dict[str, Map] = {}
        self.services = Services(self.maps, pid=pid, user_symbols=user_symbols)
        self._stop = False
        self._discard = False  # after exit(): bpftrace drops the events still queued
        self.exit_code = 0  # today's exit(code)
        # The run's phases (see "the run" below): "new", "running", "finished" (END ran), "closed".
        self.state = "new"
        self.trap_signals = trap_signals  # the CLI's; a library caller keeps Python's own SIGINT
        # 0.17 (driver.make_runtime): a SIGINT once the run has stopped kills it (_sigint_kills)
        self.sigint_kills_when_stopped = False
        # today's language (driver.make_runtime): a run of BEGIN/END probes alone ends after BEGIN
        self.stop_after_begin = False
        self.attached_count = 0  # the probes attached, as "Attaching N probes..." counts them
        self._stack: contextlib.ExitStack | None = None  # what start() holds until finish()/close()
        self._detaching: _Detach | None = None
        self._events: PerfBuffer | None = None
        self._begin: list = []
        self._end: list = []
        self._iters: list = []
        self._on_usr1: list = []  # today's self:signal:SIGUSR1 probes, run at each SIGUSR1
        # SIGUSR1 without such a probe: bpftrace 0.17 prints the maps, 0.22+ nothing (make_runtime)
        self.usr1_prints_maps = True  # iterator probes (today's language): run once after BEGIN, then the end
        self._attached: list = []
        self._printf_cache: dict[int, PrintfFormat] = {}
        self._handlers = {
            "printf": self._on_printf,
            "exit": self._on_exit,
            "print_map": self._on_print_map,
            "print_value": self._on_print_value,
            "clear": self._on_clear,
            "zero": self._on_zero,
            "time": self._on_time,
            "system": self._on_system,
            "cat": self._on_cat,
            "join": self._on_join,
            "helper_error": self._on_helper_error,
            "errorf": self._on_runtime_message,
            "warnf": self._on_runtime_message,
        }

    # -- setup -----------------------------------------------------------------

    def _create_maps(self, stack: contextlib.ExitStack) -> None:
        # One after the other: creating preallocated per-CPU maps from several
        # threads was measured slower (the kernel serialises per-CPU allocation).
        for plan in self.script.maps.values():
            m = Map.create(plan.map_type, plan.key_size, plan.value_size, plan.max_entries,
                           name=_kernel_name(plan.name))
            stack.callback(m.close)
            self.maps[plan.name] = m
            for key, value in plan.initial.items():
                m.update(key, value)

    def _load(self, plan) -> Program:
        insns = plan.builder.build(maps=self.maps)
        # level 1: on success the kernel keeps only its "processed N insns" line, as bpftrace -v shows
        extra = {"log_level": 1, "log_size": min(self.log_size, 1 << 24)} if self.verbose else {}
        extra.update(func_info_load_args(plan.builder.subprograms))  # for loops' callbacks
        try:
            prog = Program.load(plan.prog_type, insns, name=_kernel_name(plan.label or plan.probe),
                                expected_attach_type=plan.expected_attach_type,
                                attach_btf_id=getattr(plan, "attach_btf_id", 0) or None, **extra)
        except BPFError as err:
            raise VerifierRejection(plan, err) from None
        finally:
            if "prog_btf_fd" in extra:
                extra["prog_btf_fd"].close()
        if self.verbose:
            self._verbose_load(prog, plan)
        return prog

    def _verbose_load(self, prog: Program, plan) -> None:
        """``-v``: bpftrace's lines for each load: the program id and the verifier's statistics
        on stdout, after the "Attaching N probes..." line (held until then), and
        "Attaching <probe>" on stderr."""
        import sys

        try:
            prog_id = prog.info().id
        except (BPFError, OSError, AttributeError):
            prog_id = "?"
        log = (prog.verifier_log or "").strip("\n\0 ")
        self._verbose_blocks.append(f"\nProgram ID: {prog_id}\n\nThe verifier log: \n{log}\n\n")
        sys.stderr.write(f"Attaching {plan.probe}\n")
        sys.stderr.flush()

    def _flush_verbose(self) -> None:
        import sys

        if self._verbose_blocks:
            sys.stdout.write("".join(self._verbose_blocks))
            sys.stdout.flush()
            self._verbose_blocks = []

    def _open_perf_buffer(self) -> PerfBuffer:
        try:
            return PerfBuffer(self.maps[EVENTS_MAP], self._on_event, pages=self.perf_pages,
                              lost_callback=self._on_lost)
        except ValueError:
            # bpftrace: "mmap: Invalid argument" then "ERROR: Failed to open perf buffer"
            raise ScriptError("Failed to open perf buffer: BPFTRACE_PERF_RB_PAGES must be a power of two "
                              f"(it is {self.perf_pages})") from None
        except OSError as err:
            raise ScriptError(f"Failed to open perf buffer: {err.strerror or err}") from None

    def _attach_all(self, stack: contextlib.ExitStack):
        begin, end, count = [], [], 0
        attached: list = []
        self._attached = attached
        stack.callback(_close_all, attached)
        for plan in self.script.probes:
            prog = self._load(plan)
            stack.callback(prog.close)
            # -p/-c scope uprobes and USDT to the process; bpftrace 0.17 attaches perf events
            # (profile, interval, software, hardware) on every CPU whatever the pid
            prov, _ = providers.split_probe(plan.probe)
            pid = self.pid if prov.kind in PID_SCOPED_KINDS else -1
            try:
                attachments = providers.attach(prog, plan.probe, pid=pid, targets=plan.targets or None)
            except AttachError as err:
                raise AttachFailure(plan.probe, err) from None
            attached.extend(attachments)
            count += len(plan.covers) or len(attachments)
            if prov.kind == "iter":
                self._iters.extend(attachments)
            if prov.kind == "self":
                self._on_usr1.extend(attachments)
            if plan.probe == "BEGIN":
                begin.extend(attachments)
            elif plan.probe == "END":
                end.extend(attachments)
        return begin, end, count

    # -- the run -----------------------------------------------------------------
    #
    # start() creates, loads and attaches; serve() is one turn of the event
    # loop; finish() ends the run in order (detach, END, the exit output);
    # close() releases whatever is left. ``with runtime:`` and wait() put them
    # together: the CLI (run()) and ebpfpy.bpftrace.api go through them alike.

    def run(self) -> int:
        """The CLI's run: serve until exit(), a signal or the end of -c/-p, then END and the maps."""
        with self:
            self.wait()
        return self.exit_code

    def __enter__(self) -> Runtime:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Leaving normally, or by KeyboardInterrupt (the Ctrl-C the CLI traps), ends the run in
        order, as SIGINT does; any other error releases everything at once, without END."""
        try:
            if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
                self.finish()
        finally:
            self.close()

    @property
    def stopped(self) -> bool:
        """exit() ran, a signal came, or the -c command or -p process has ended."""
        return self._stop

    def start(self) -> None:
        """Create the maps, load and attach every probe, run BEGIN; on failure nothing stays held."""
        if EVENTS_MAP in self.script.maps and any(p.probe.upper() in ("BEGIN", "END") for p in self.script.probes):
            _current_cpu()  # its first call looks sched_getcpu up in libc: now, before any probe could see that
        with contextlib.ExitStack() as stack:
            self._create_maps(stack)
            events = None
            if EVENTS_MAP in self.maps:
                events = self._open_perf_buffer()
                stack.callback(events.close)
            self._events = events
            self._begin, self._end, count = self._attach_all(stack)
            self.attached_count = count
            if self.trap_signals:
                # before "Attaching ...": whoever waits for that line may signal at once
                restore = self._trap_signals()
                stack.callback(restore)
            if not self.quiet:
                self.writer.attached(count)
            self._flush_verbose()
            # 0.17 runs BEGIN before it attaches the other probes: BEGIN's records (on the CPU
            # it ran on) print before whatever the probes attached here wrote meanwhile
            with _on_one_cpu(bool(self._begin) and isinstance(events, PerfBuffer)) as begin_cpu:
                for att in self._begin:
                    att.fire()
            if begin_cpu is not None:
                events.consume(first_cpu=begin_cpu)
            self._drain(events)
            if self._iters:  # on one CPU, so that their records come back in the order they ran
                with _on_one_cpu(isinstance(events, PerfBuffer)) as iter_cpu:
                    for att in self._iters:
                        att.run()
                if iter_cpu is not None:
                    events.consume(first_cpu=iter_cpu)
                self._drain(events)
                self._stop = True
            if self.child is not None:
                self.child.release()
            wakeup = self._wakeup
            if events is not None and wakeup is not None:
                events.watch(wakeup)
            self._stack = stack.pop_all()
            self.state = "running"
            if self.stop_after_begin:
                self._stop = True

    def serve(self, timeout: int = 100) -> None:
        """One turn of the event loop: wait up to ``timeout`` ms for events (or a signal), serve
        them; notice that the -c command or the -p process has ended."""
        events, wakeup = self._events, self._wakeup
        if events is not None:
            if 0 < events.poll(timeout) < _FEW_RECORDS:
                # Events trickle in one or two per wake-up: let them pile
                # up a little. Each wake-up costs the traced task a
                # wake-up of this process and us a poll. A big batch
                # means we are behind: then drain again at once, so the
                # rings never fill up because of the pause.
                time.sleep(_PAUSE)
        elif wakeup is not None:
            # poll, not select: select() fails on fds >= 1024 (hundreds of probes, a raised NOFILE)
            waiter = select.poll()
            waiter.register(wakeup, select.POLLIN)
            waiter.poll(timeout)
        else:
            time.sleep(timeout / 1000)
        if wakeup is not None:
            _empty_pipe(wakeup)
        if self._print_maps_requested:
            self._print_maps_requested = False
            if self._on_usr1:
                for att in self._on_usr1:
                    att.trigger()
                self._drain(events)
            elif self.usr1_prints_maps:
                self.print_all_maps()
        if self.child is not None and self.child.exited():
            self._stop = True
        elif self.pid > 0 and not _alive(self.pid):
            self._stop = True

    def wait(self, timeout: float | None = None) -> bool:
        """Serve events until the run stops, then end it (``serve_once``), or until ``timeout``
        seconds have passed; True when the run is over."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.serve_once(deadline):
            pass
        return self.state != "running"

    def serve_once(self, deadline: float | None = None) -> bool:
        """One turn of at most 100 ms, and not past ``deadline`` (``time.monotonic()``); once the
        run has stopped, finish and close it. False when the run is over or the deadline passed."""
        if self.state != "running":
            return False
        if not self._stop:
            timeout = 100
            if deadline is not None:
                timeout = max(0, min(timeout, math.ceil((deadline - time.monotonic()) * 1000)))
            self.serve(timeout)
        if self._stop:
            try:
                self.finish()
            finally:
                self.close()
            return False
        return deadline is None or time.monotonic() < deadline

    def finish(self) -> None:
        """End a running run in order: detach (in the background), END, the exit output."""
        if self.state != "running":
            return
        self.state = "finished"
        self._stop = True
        if self.trap_signals and self.sigint_kills_when_stopped:
            self._sigint_kills()
        events, begin, end = self._events, self._begin, self._end
        stack, self._stack = self._stack, None
        with stack:
            # Detach first, as bpftrace does, but from background threads: the
            # kernel waits an RCU grace period per tracepoint (tens of ms each),
            # and END, the map printing and the closing of the rest run
            # meanwhile. The detacher takes the probes over; _close_all (on the
            # stack) keeps only BEGIN and END: no attachment is closed twice.
            specials = {id(att) for att in begin + end}
            probes = [att for att in self._attached if id(att) not in specials]
            self._attached[:] = begin + end
            self._detaching = detaching = _Detach(probes)
            try:
                if self._discard:
                    self._drain(events)
                self._discard = False
                # END's records print after what the probes wrote before it, as bpftrace's
                # (which reads the rings that filled first, first): END runs on a known CPU
                # whose ring is read last, even while a flood goes on until the detach is done
                with _on_one_cpu(bool(end) and isinstance(events, PerfBuffer)) as end_cpu:
                    for att in end:
                        att.fire()
                if end_cpu is not None:
                    events.consume(last_cpu=end_cpu)
                self._drain(events)
                self.exit_output()
                if self.child is not None:
                    # now, while the signal handlers are still ours (the stack restores them):
                    # a late SIGTERM must not kill us with the -c command left running
                    self.child.terminate()
            except BaseException:
                self._detaching = None
                detaching.join()
                raise

    def exit_output(self) -> None:
        """What the end of a run prints: bpftrace's two blank lines, then every map."""
        self.writer.exit_separator()
        self.print_all_maps()

    def close(self) -> None:
        """Release everything (again: a no-op). After finish(), wait for the background detach,
        last: the closing of maps and programs overlapped its waits. While still running (an
        error), close it all at once, without END. Then end the -c command."""
        self.state = "closed"
        stack, self._stack = self._stack, None
        detaching, self._detaching = self._detaching, None
        try:
            try:
                if stack is not None:
                    stack.close()
            finally:
                if detaching is not None:
                    detaching.join()
        finally:
            if self.child is not None:
                self.child.terminate()

    def _trap_signals(self):
        """SIGINT/SIGTERM/SIGHUP: stop in order (END, maps); SIGUSR1: print the maps now."""
        def stop(signum, frame):
            self._stop = True

        def print_maps(signum, frame):
            self._print_maps_requested = True

        handlers = {signal.SIGINT: stop, signal.SIGTERM: stop, signal.SIGHUP: stop, signal.SIGUSR1: print_maps}
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        # A signal also writes a byte to a pipe the event loop waits on, so
        # Ctrl-C is served at once, not when the 100 ms poll runs out (the
        # interpreter restarts an interrupted wait with the time left).
        read_end = write_end = None
        old_wakeup = -1
        try:
            read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            old_wakeup = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
            self._wakeup = read_end
        except (ValueError, OSError):  # not the main thread: poll timeouts still notice the flag
            for fd in (read_end, write_end):
                if fd is not None:
                    os.close(fd)
            read_end = write_end = None

        def restore():
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if write_end is not None:
                signal.set_wakeup_fd(old_wakeup)
                self._wakeup = None
                os.close(read_end)
                os.close(write_end)

        return restore

    def _sigint_kills(self) -> None:
        """bpftrace 0.17 takes SIGINT only until the run stops: a second Ctrl-C during END or
        the map printing kills it there and then (status 130, the rest unprinted), while
        SIGTERM and SIGHUP are still ignored. The -c command goes first, as close() would."""
        def die(signum, frame):
            if self.child is not None:
                self.child.terminate()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)

        with contextlib.suppress(ValueError):  # not the main thread: nothing to change
            signal.signal(signal.SIGINT, die)

    def _drain(self, events) -> None:
        if events is not None:
            events.consume()

    # -- maps --------------------------------------------------------------------

    def read_map(self, plan: MapPlan) -> MapData:
        m = self.maps[plan.name]
        if _int_column_map(plan, m):
            return _read_int_columns(plan, m)
        raw_keys, raw_values = m.raw_columns()
        services = self.services
        values = _summed_values(plan, m, raw_values)
        if values is None:
            split, decode_value = m._decode_value, plan.decode_value
            values = [decode_value(split(raw), services) for raw in raw_values]
        keys = _int_keys(plan, raw_keys)
        if keys is not None:
            entries = list(zip(keys, values))
        elif plan.decode_key:
            decode_key = plan.decode_key
            entries = [(decode_key(raw, services), value) for raw, value in zip(raw_keys, values)]
        else:
            entries = [((), value) for value in values]
        if plan.bucket_key:
            entries = _fold_buckets(plan, entries)
        if not entries and plan.kind == "count" and not plan.keyed:
            entries = [((), 0)]  # bpftrace 0.17 prints an unset keyless count() as 0
        return MapData(plan.name, plan.kind, entries, keyed=plan.keyed)

    def user_maps(self) -> list[str]:
        """The maps bpftrace prints at exit (every ``@`` map), in its order."""
        return sorted(n for n in self.script.maps if n.startswith("@"))

    def print_all_maps(self) -> None:
        for name in self.user_maps():
            self.writer.map(self.read_map(self.script.maps[name]))

    # -- events ------------------------------------------------------------------

    def _on_event(self, cpu: int, records: list) -> None:
        actions, handlers, services = self.script.actions, self._handlers, self.services
        unpack, n_actions = _ACTION_ID.unpack_from, len(actions)
        self.writer.begin_batch()  # one flush per ring read under -B line, not one per record
        try:
            for record in records:
                if self._discard:
                    return
                action_id = unpack(record)[0]
                if action_id >= n_actions:
                    continue
                action = actions[action_id]
                handlers[action.kind](action, action.decode(record[8:], services))
        finally:
            self.writer.end_batch()

    def _on_lost(self, cpu: int, count: int) -> None:
        self.writer.lost(count)

    def _on_printf(self, action, args) -> None:
        self.writer.printf(action.data.format(args))

    def _on_exit(self, action, args) -> None:
        if args and not self._stop:
            self.exit_code = args[0] & 0xFF  # exit(code): the first exit() wins
        self._stop = True
        self._discard = True

    def _on_runtime_message(self, action, args) -> None:
        """errorf()/warnf() (today's language): ``action.data`` is (format, filename, span)."""
        fmt, filename, span = action.data
        self.writer.runtime_message(action.kind, fmt.format(args), filename, span)

    def _on_print_map(self, action, args) -> None:
        name, top, div = action.data
        self.writer.map(self.read_map(self.script.maps[name]), top, div)

    def _on_print_value(self, action, args) -> None:
        self.writer.value(args[0])

    def _on_clear(self, action, args) -> None:
        self.maps[action.data].clear()

    def _on_zero(self, action, args) -> None:
        m = self.maps[action.data]
        zero = bytes(m.value_size)
        for key in list(m.keys()):
            m[key] = [zero] * m.ncpus if m.props.percpu else zero

    def _on_time(self, action, args) -> None:
        self.writer.raw("time", time.strftime(action.data))

    def _on_system(self, action, args) -> None:
        command = action.data.format(args)
        import subprocess

        out = subprocess.run(command, shell=True, stdout=subprocess.PIPE, text=True).stdout
        self.writer.raw("syscall", out)

    def _on_cat(self, action, args) -> None:
        path = action.data.format(args)
        try:
            with open(path, errors="replace") as fh:
                self.writer.raw("cat", fh.read(self.cat_bytes_max))
        except OSError as err:
            self.writer.raw("cat", f"ERROR: failed to open file '{path}': {err.strerror}\n")

    def _on_helper_error(self, action, args) -> None:
        """``-k``: a checked helper call failed; ``action.data`` is its ``HelperSite``."""
        self.writer.helper_error(action.data, args[0])

    def _on_join(self, action, args) -> None:
        from .output.writer import JsonWriter

        # text output ends the joined line; JSON carries it bare, as in bpftrace
        self.writer.raw("join", args[0] if isinstance(self.writer, JsonWriter) else args[0] + "\n")


class VerifierRejection(ScriptError):
    """The kernel refused a generated program: a compiler bug, reported with the log and the source."""

    def __init__(self, plan, err: BPFError):
        self.plan = plan
        self.error = err
        super().__init__(f"Error loading program: {plan.label or plan.probe} ({err.strerror or err})")


class AttachFailure(ScriptError):
    """A probe that the kernel would not attach; the driver adds why, in plain words."""

    def __init__(self, probe: str, err: Exception):
        self.probe = probe
        self.error = err
        super().__init__(f"Error attaching probe: '{probe}'")


def _empty_pipe(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _close_all(attachments: list) -> None:
    """Detach everything, many at a time (see ``_Detach``); a no-op for what is already closed."""
    if len(attachments) < 2:
        for att in attachments:
            att.close()
        return
    _Detach(attachments).join()


class _Detach:
    """Close attachments from up to 64 threads, started at once; ``join`` waits and re-raises.

    Each tracepoint perf event and its link wait for an RCU grace period
    when they are released (30-50 ms each here); closing them from several
    threads lets the waits overlap: the teardown of a 4-tracepoint script
    drops from ~0.3 s to ~0.2 s, and of a 360-probe wildcard by half. The
    waits are in close(), which releases the GIL, so the main thread meanwhile
    runs END and prints the maps. Plain threads, not concurrent.futures: its
    import (logging and all) costs more than the pool saves.
    """

    def __init__(self, attachments: list):
        import threading

        self._todo = list(attachments)
        self._errors: list = []
        self._threads = [threading.Thread(target=self._work, name="ebpfpy-detach", daemon=True)
                         for _ in range(min(64, len(self._todo)))]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        todo = self._todo
        while True:
            try:
                att = todo.pop()  # atomic under the GIL: each attachment goes to one thread
            except IndexError:
                return
            try:
                att.close()
            except BaseException as err:  # keep detaching the rest; join() reports the first
                self._errors.append(err)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()
        self._threads = []
        if self._errors:
            err, self._errors = self._errors[0], []
            raise err


@contextlib.contextmanager
def _on_one_cpu(wanted: bool = True):
    """Run the block pinned to the CPU it runs on now (a busy traced task is most likely on
    another one), which it is given; None when not ``wanted`` or the affinity cannot be set."""
    allowed = cpu = None
    if wanted:
        try:
            allowed = os.sched_getaffinity(0)
            cpu = _current_cpu()
            if cpu not in allowed:
                cpu = min(allowed)
            os.sched_setaffinity(0, {cpu})
        except OSError:
            allowed = cpu = None
    try:
        yield cpu
    finally:
        if allowed:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, allowed)


def _current_cpu() -> int | None:
    """The CPU this thread runs on: libc's sched_getcpu (rseq or the vDSO), which opens no
    file and makes no system call a probe of the script could see; start() resolves it
    before attaching anything (its first call looks the symbol up in libc)."""
    cpu = sched_getcpu()
    return cpu if cpu >= 0 else None


def _kernel_name(name: str) -> str:
    """BPF object names: at most 15 characters of [A-Za-z0-9_.]."""
    cleaned = "".join(c if c.isalnum() or c in "_." else "_" for c in name)
    return cleaned[:15]


def _alive(pid: int) -> bool:
    """Whether ``-p PID`` still runs: a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


class Child:
    """``-c CMD``: the command is started held at a pipe, traced from its first instruction.

    The forked child blocks in one read() of the pipe until the probes are
    attached, then execs the command; so ``cpid`` is known at compile time and
    nothing the command does is missed. Like bpftrace, the release is an
    8-byte write, so the one read a script may see from this handshake
    returns 8, as it does under bpftrace.
    """

    def __init__(self, command: str):
        argv = command.split()
        if not argv:
            raise ScriptError("Failed to parse command: empty")
        import shutil

        binary = argv[0] if "/" in argv[0] else shutil.which(argv[0])
        if binary is None or not os.access(binary, os.X_OK):
            raise ScriptError(f"Failed to fork child: path '{argv[0]}' does not exist or is not executable")
        read_end, self._release_fd = os.pipe()
        # fork/exec by hand: subprocess.Popen would wait for the exec, which waits for us.
        pid = os.fork()
        if pid == 0:  # the child: wait for the go, then become the command
            try:
                os.close(self._release_fd)
                os.read(read_end, 8)
                os.close(read_end)
                os.execv(binary, [binary, *argv[1:]])
            finally:
                os._exit(127)
        os.close(read_end)
        self.pid = pid
        self.status = None

    def release(self) -> None:
        if self._release_fd is not None:
            os.write(self._release_fd, (1).to_bytes(8, "little"))
            os.close(self._release_fd)
            self._release_fd = None

    def exited(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None

    def terminate(self) -> None:
        if self._release_fd is not None:
            os.close(self._release_fd)  # the child's read returns 0 and it exits
            self._release_fd = None
        if not self.exited():
            os.kill(self.pid, signal.SIGTERM)
            for _ in range(20):
                if self.exited():
                    return
                time.sleep(0.1)
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = -9
