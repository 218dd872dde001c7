"""Errors of the attach layer: each names the probe, binary or symbol at fault.

Kernel failures during an attach keep surfacing as `ebpfpy.sys.errors.BPFError`
(errno + command); these are the failures found before or around the syscall:
a spec that does not parse, a target that does not exist, a probe kind this
kernel or machine cannot provide.
"""


class AttachError(Exception):
    """Base of every attach-layer error."""


class ProbeSpecError(AttachError, ValueError):
    """A probe spec that does not parse (`profile:hz` without a rate, ...)."""


class ProbeNotFoundError(AttachError, LookupError):
    """The tracepoint, binary, symbol or USDT probe named does not exist."""


class ProbeUnavailableError(AttachError):
    """The probe kind exists but not on this kernel or machine (no kprobes, no PMU)."""
