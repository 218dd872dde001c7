"""BEGIN and END probes: run a program exactly once, in our own process, when told; and
bpftrace's ``test:NAME`` and ``bench:NAME`` probes, run the same way when a test or a benchmark
asks (``run_once`` per test, per benchmark iteration).

The program is loaded as BPF_PROG_TYPE_RAW_TRACEPOINT and run with
BPF_PROG_TEST_RUN, synchronously, on the calling thread. Why this and not a
uprobe on a trigger function of our own:

- it touches no kernel state: nothing to detach, nothing left if we crash;
- it is ordered by construction: `fire()` returns after the program ran, so
  BEGIN's output precedes every other probe's and END's follows them;
- it works on every kernel we target (raw_tp test runs exist since 5.10; the
  6.1 guest and this 6.18 VM both have them) and needs no uprobe PMU;
- it is what bpftrace 0.17 does, so helper availability matches
  (`bpf_get_current_pid_tgid()` and friends see our own process).

The attachment only remembers the program: `fire()` runs it once (a second
call raises), `close()` forgets it without running it.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ebpfpy.sys.consts import ProgType
from ebpfpy.sys.fd import fd_number

from .errors import AttachError, ProbeSpecError
from .provider import ProbeContext

SPECIAL = ("BEGIN", "END")
NAMED = ("test", "bench")  # kinds whose probes have a name: `test:passes`
# today's `self:signal:SIGUSR1` (bpftrace 0.22+): run each time the tracer itself gets the signal
SELF = "self"
SELF_EVENTS = ("signal:SIGUSR1",)


@dataclass(frozen=True)
class SpecialTarget:
    which: str

    @property
    def probe(self) -> str:
        return self.which


class SpecialAttachment:
    """A BEGIN/END program waiting to be fired once."""

    def __init__(self, prog: Any, which: str):
        self.probe = which
        self.target = SpecialTarget(which)
        self._prog = prog
        self.fired = False
        self.retval: int | None = None

    @property
    def closed(self) -> bool:
        return self._prog is None

    def fire(self) -> int:
        """Run the program now (once); returns its return value."""
        if self._prog is None:
            raise AttachError(f"{self.probe} probe is closed")
        if self.fired:
            raise AttachError(f"{self.probe} probe already fired: BEGIN and END run exactly once")
        self.fired = True
        self.retval = run_once(self._prog)
        return self.retval

    def trigger(self) -> int:
        """Run the program now, as often as asked (``self:signal:SIGUSR1``, at each signal)."""
        if self._prog is None:
            raise AttachError(f"{self.probe} probe is closed")
        return run_once(self._prog)

    def run_timed(self, times: int) -> int:
        """Run the program ``times`` times (a benchmark's batch; not counted as the one
        ``fire()``); the nanoseconds it took, system calls included."""
        if self._prog is None:
            raise AttachError(f"{self.probe} probe is closed")
        start = time.monotonic_ns()
        for _ in range(times):
            run_once(self._prog)
        return time.monotonic_ns() - start

    def close(self) -> None:
        self._prog = None

    def __enter__(self) -> SpecialAttachment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SpecialAttachment {self.probe} fired={self.fired}>"


def run_once(prog: Any) -> int:
    """BPF_PROG_TEST_RUN a raw_tp program with an empty argument array."""
    from ebpfpy.sys import bpf

    return bpf.prog_test_run(fd_number(prog), ctx_in=bytes(8)).retval


class SpecialProvider:
    def __init__(self, kind: str, which: str):
        if which not in (*SPECIAL, *NAMED, SELF):
            raise ValueError(which)
        self.kind = kind
        self.which = which

    def expand(self, spec: str, pid: int = -1) -> list[SpecialTarget]:
        if self.which == SELF:
            if spec not in SELF_EVENTS:
                raise ProbeSpecError(f"self:{spec}: the only self probe is self:signal:SIGUSR1")
            return [SpecialTarget(f"self:{spec}")]
        if self.which in NAMED:
            if not spec:
                raise ProbeSpecError(f"{self.which} probes need a name ({self.which}:NAME)")
            return [SpecialTarget(f"{self.which}:{spec}")]
        if spec:
            raise ProbeSpecError(f"{self.which} takes no arguments (got {self.which}:{spec})")
        return [SpecialTarget(self.which)]

    def context(self, target: SpecialTarget) -> ProbeContext:
        return ProbeContext(ProgType.RAW_TRACEPOINT, "none")

    def attach(self, prog: Any, target: SpecialTarget, pid: int = -1) -> SpecialAttachment:
        return SpecialAttachment(prog, target.which)

    def list(self, pattern: str, pid: int = -1) -> Iterator[str]:
        return iter(())


def attach_special(prog: Any, which: str) -> SpecialAttachment:
    """`attach_special(prog, "BEGIN")`; call `.fire()` when the probe should run."""
    if which not in SPECIAL:
        raise ProbeSpecError(f"special probe must be BEGIN or END, not {which!r}")
    return SpecialAttachment(prog, which)
