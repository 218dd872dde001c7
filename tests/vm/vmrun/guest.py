"""Boot a kernel + initramfs under qemu (TCG) and read the guest's verdict off the serial console.

The guest's /init prints `EBPFPY-VM-BEGIN` before pytest starts and
`EBPFPY-VM-EXIT=<status>` after it ends, each on a line of its own. Lines in
between are pytest's output and are passed through as they arrive; lines
before (the boot) are kept and shown only when something went wrong.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BEGIN = "EBPFPY-VM-BEGIN"
BANNER = "EBPFPY-VM-GUEST"
EXIT = re.compile(r"^EBPFPY-VM-EXIT=(\d+)$")
# Kernel command line: serial console, no chatter, power off (not reboot) on panic via -no-reboot.
# mitigations=off: page-table isolation costs a TLB flush per syscall, which TCG pays dearly for.
APPEND = "console=ttyS0 quiet panic=-1 mitigations=off"


@dataclass(frozen=True)
class GuestResult:
    """`status` is pytest's exit status, None when the guest never printed the exit marker."""

    status: int | None
    seconds: float
    timed_out: bool = False
    banner: str = ""
    boot_log: tuple[str, ...] = field(default_factory=tuple)
    qemu_status: int | None = None


def qemu_command(
    vmlinuz: str,
    initrd: str,
    smp: int = 2,
    memory: str = "2G",
    accel: str = "tcg,thread=multi",
) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-accel",
        accel,
        "-cpu",
        "max",
        "-smp",
        str(smp),
        "-m",
        memory,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        vmlinuz,
        "-initrd",
        initrd,
        "-append",
        APPEND,
    ]


def _visible(raw: bytes) -> str:
    """What a terminal would show of a console line: the serial tty adds \r before \n, and
    pytest redraws its "collecting ..." line with bare \r, so keep the text after the last one."""
    text = raw.decode("utf-8", "replace").rstrip("\r")
    return text.rsplit("\r", 1)[-1]


class ConsoleParser:
    """Splits console output into boot log, pytest output and the exit marker, line by line."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._pending = b""
        self.in_tests = False
        self.status: int | None = None
        self.banner = ""
        self.boot_log: list[str] = []

    def feed(self, chunk: bytes) -> None:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for raw in lines:
            self.line(_visible(raw))

    def finish(self) -> None:
        if self._pending:
            self.line(_visible(self._pending))
            self._pending = b""

    def line(self, text: str) -> None:
        match = EXIT.match(text)
        if match:
            self.status = int(match.group(1))
            self.in_tests = False
        elif text == BEGIN:
            self.in_tests = True
        elif text.startswith(BANNER + " "):
            self.banner = text[len(BANNER) + 1 :]
        elif self.in_tests:
            self._emit(text)
        else:
            self.boot_log.append(text)


def _pump(proc: subprocess.Popen, parser: ConsoleParser, deadline: float) -> bool:
    """Feed qemu's output to `parser` until it closes; True when `deadline` passed first."""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if not selector.select(min(remaining, 1.0)):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                return False
            parser.feed(chunk)


def run(command: list[str], timeout: float, emit: Callable[[str], None]) -> GuestResult:
    """Run qemu until it exits or `timeout` seconds pass (then kill it); pass pytest lines to `emit`."""
    start = time.monotonic()
    parser = ConsoleParser(emit)
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        timed_out = _pump(proc, parser, start + timeout)
    finally:
        # Timed out, or the runner was interrupted: never leave qemu behind.
        if proc.poll() is None:
            proc.kill()
    parser.finish()
    qemu_status = proc.wait()
    proc.stdout.close()
    return GuestResult(
        status=parser.status,
        seconds=time.monotonic() - start,
        timed_out=timed_out,
        banner=parser.banner,
        boot_log=tuple(parser.boot_log),
        qemu_status=qemu_status,
    )
