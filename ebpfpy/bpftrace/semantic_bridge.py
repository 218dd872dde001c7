"""Run semantic analysis before codegen, when the analyser is available.

The analyser finds type errors with bpftrace's exact messages; codegen also
checks what it must to emit correct code.
"""
from __future__ import annotations


def check(program, options) -> None:
    try:
        from . import semantic
    except ImportError:
        return
    analyse = getattr(semantic, "analyse", None)
    if analyse is not None:
        analyse(program)
