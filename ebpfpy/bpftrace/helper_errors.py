"""``-k`` / ``-kk``: which helper calls are checked, and how a failure is reported.

A checked call is followed, in the generated code, by a test of its return
value that sends one event (the site's action id and the return code) when
it failed; the runtime turns the event into bpftrace 0.17's warning. The
tables and the formatting live here so codegen, runtime and writers agree
on one definition, and so the text can be tested without a kernel.

Observed with bpftrace 0.17 on the test machine:

* ``-k`` checks the helpers whose failure loses data or an action:
  ``map_update_elem`` (a full map), ``map_delete_elem`` (a missing key),
  ``send_signal``; ``-kk`` adds every ``probe_read*`` and ``map_lookup_elem``
  (a missing key is reported as ``Failed to map_lookup_elem: 0``).
  ``get_stackid`` and ``perf_event_output`` are not checked.
* The warning goes to the output stream (stdout, or the ``-o`` file), in
  order with printf output; ``--no-warnings`` drops it from text output, not from JSON.
* ``map_lookup_elem`` fails by returning NULL: codegen reports it on the
  null path, with return code 0, and prints no errno text for it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from . import ast
from .diagnostics import Message, Span

# bpftrace's helper name -> the lowest -k level that checks it.
LEVELS = {
    "map_update_elem": 1,
    "map_delete_elem": 1,
    "send_signal": 1,
    "map_lookup_elem": 2,
    "probe_read": 2,
    "probe_read_str": 2,
    "probe_read_kernel": 2,
    "probe_read_kernel_str": 2,
    "probe_read_user": 2,
    "probe_read_user_str": 2,
}

# Builtins holding pointers whose address space is the probe's: user memory in uprobes, USDT
# and syscall tracepoints, kernel memory in kprobes and kfuncs.
_PROBE_POINTERS = frozenset({"args", "retval", "ctx"} | {f"arg{i}" for i in range(10)}
                            | {f"sarg{i}" for i in range(10)})
_SPACE_SUFFIX = {"user": "_user", "kernel": "_kernel", "": ""}


def checked(helper: str, level: int) -> bool:
    """Whether ``-k`` repeated ``level`` times checks ``helper``."""
    return 0 < LEVELS.get(helper, 99) <= level


def address_space(expr: ast.Expr, probe_space: str) -> str:
    """``user``, ``kernel`` or ``""`` (not known): the address space bpftrace 0.17 gives the
    pointer ``expr``, which picks the read helper it calls and names in its warning
    (``str(0)``: ``probe_read_str``; ``str(args->filename)`` in a syscall tracepoint:
    ``probe_read_user_str``). ``probe_space`` is that of the probe's own pointers."""
    if isinstance(expr, ast.Call):
        return {"uptr": "user", "kptr": "kernel"}.get(expr.name, "")
    if isinstance(expr, ast.Builtin):
        return "kernel" if expr.name == "curtask" else probe_space if expr.name in _PROBE_POINTERS else ""
    if isinstance(expr, ast.Binop):
        return address_space(expr.left, probe_space) or address_space(expr.right, probe_space)
    inner = getattr(expr, "expr", None) or getattr(expr, "operand", None)
    if isinstance(expr, (ast.Cast, ast.Unop, ast.FieldAccess, ast.ArrayAccess)) and inner is not None:
        return address_space(inner, probe_space)
    return ""


def read_helper(expr: ast.Expr, probe_space: str, string: bool = False) -> str:
    """The name of the read bpftrace calls for ``expr`` (``probe_read_user_str``, ``probe_read``, ...)."""
    return "probe_read" + _SPACE_SUFFIX[address_space(expr, probe_space)] + ("_str" if string else "")


@dataclass(frozen=True)
class HelperSite:
    """One checked call in the source: what the runtime needs to word its warning."""

    helper: str
    span: Span
    source: str = ""
    filename: str = "stdin"
    warnings: bool = True  # False under --no-warnings: text output drops the warning


def _reason(retcode: int) -> str:
    if retcode < 0:
        return f"{os.strerror(-retcode)} ({retcode})"
    return str(retcode)


def text_warning(site: HelperSite, retcode: int) -> str:
    """``stdin:L:C-C: WARNING: Failed to <helper>: <strerror> (<rc>)`` with source line and underline."""
    return Message(f"Failed to {site.helper}: {_reason(retcode)}", site.span, "WARNING").format(
        site.source, site.filename)





def prefix_op_span(op: str, name: str, span: Span, source: str) -> Span:
    """The ``++``/``--`` token of ``++x``, which bpftrace reports where ``span`` covers ``++x``.

    The token starts where ``span`` does (the lexer's spans start where the last blank ended,
    which may be several tokens earlier) and ends after the last ``op`` that is followed by
    the operand ``name``.
    """
    lines = source.split("\n")
    text = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
    end = span.col_start + len(op)
    at = text.find(op, span.col_start - 1)
    while 0 <= at < span.col_end - 1:
        if text[at + len(op):].lstrip(" \t").startswith(name):
            end = at + len(op) + 1
        at = text.find(op, at + 1)
    return Span(span.line, span.col_start, end)
