"""pybpftrace: bpftrace 0.17's language on ebpfpy, as a command (``cli``) and from Python (``api``).

``from ebpfpy.bpftrace import Script`` and the other names of ``api.__all__``
are imported on first use, so the command line does not pay for them.
"""
from __future__ import annotations

__all__ = [
    "BpftraceError",
    "BpftraceWarning",
    "Bucket",
    "CompileError",
    "Event",
    "Histogram",
    "MapValues",
    "Maps",
    "Run",
    "RunError",
    "Script",
    "Stats",
]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
