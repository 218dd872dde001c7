"""A script's ``config = { key = value; ... }`` block (bpftrace 0.20+), and the missing-probe policy.

The block sets what the ``BPFTRACE_*`` environment variables set; as in bpftrace, a variable
set in the environment wins over the block. A key may be spelled ``max_strlen``,
``MAX_STRLEN`` or ``BPFTRACE_MAX_STRLEN``. ``missing_probes`` says what happens to an attach
point that matches nothing (a uprobe on a function the binary lacks): ``error`` (the default
of today's language), ``warn`` (two warnings, and the point is dropped) or ``ignore``
(dropped silently, which is also what bpftrace 0.17 did).
"""
from __future__ import annotations

import dataclasses
import os

from . import ast
from .diagnostics import Diagnostic, Message, Span

# key -> (driver.Options attribute, environment variables that beat the block); attribute
# None: accepted, no effect here (what it tunes does not exist in pybpftrace).
KEYS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "max_strlen": ("strlen", ("BPFTRACE_MAX_STRLEN", "BPFTRACE_STRLEN")),
    "max_map_keys": ("map_keys_max", ("BPFTRACE_MAX_MAP_KEYS", "BPFTRACE_MAP_KEYS_MAX")),
    "max_probes": ("max_probes", ("BPFTRACE_MAX_PROBES",)),
    "perf_rb_pages": ("perf_pages", ("BPFTRACE_PERF_RB_PAGES",)),
    "max_cat_bytes": ("cat_bytes_max", ("BPFTRACE_MAX_CAT_BYTES", "BPFTRACE_CAT_BYTES_MAX")),
    "log_size": ("log_size", ("BPFTRACE_LOG_SIZE",)),
    "missing_probes": ("missing_probes", ()),
    **dict.fromkeys((
        "cache_user_symbols", "cpp_demangle", "lazy_symbolication", "max_bpf_progs", "max_type_res_iterations",
        "on_stack_limit", "print_maps_on_exit", "show_debug_info", "stack_mode", "str_trunc_trailer",
        "symbol_source", "license", "use_blazesym"), (None, ())),
}
RENAMED = {"strlen": "max_strlen"}
NO_EFFECT = frozenset(("unstable_macro", "unstable_map_decl", "unstable_import", "unstable_addr",
                       "unstable_tseries"))
MISSING_PROBES = ("error", "warn", "ignore")
# kinds whose attach points can match nothing without the script being wrong
MAY_BE_MISSING = frozenset(("uprobe", "uretprobe", "usdt"))


def _key(raw: str) -> str:
    key = raw.lower()
    return key[len("bpftrace_"):] if key.startswith("bpftrace_") else key


def apply(program: ast.Program, options, environ=None):
    """``options`` with the script's config block applied, and the block's warnings;
    raises Diagnostic for an unknown key or a bad value."""
    environ = os.environ if environ is None else environ
    changes: dict = {}
    errors: list[Message] = []
    warnings: list[Message] = []
    for entry in program.config:
        key = _key(entry.key)
        if key in RENAMED:
            warnings.append(Message(f"{key} has been renamed, please use {RENAMED[key]}", entry.span, "WARNING"))
            key = RENAMED[key]
        if key in NO_EFFECT:
            warnings.append(Message(f"{entry.key} is deprecated and has no effect", entry.span, "WARNING"))
            continue
        if key not in KEYS:
            errors.append(Message(f"{entry.key}: not a known configuration option", entry.span))
            continue
        attr, env_names = KEYS[key]
        if attr is None or any(name in environ for name in env_names):
            continue
        if attr == "missing_probes":
            if entry.value not in MISSING_PROBES:
                errors.append(Message(f"Invalid value for missing_probes: valid values are "
                                      f"{', '.join(MISSING_PROBES)}", entry.span))
                continue
            changes[attr] = entry.value
        elif not isinstance(entry.value, int) or entry.value <= 0:
            errors.append(Message(f"Invalid value for {key}: expected a positive integer", entry.span))
        else:
            changes[attr] = entry.value
    if errors:
        raise Diagnostic(errors, source=options.source, filename=options.filename)
    return dataclasses.replace(options, **changes), warnings


def own_span(span: Span, source: str) -> Span:
    """An attach point's span from its first character: 0.17's starts where the token
    before it ended (often the line before), today's messages underline the point alone."""
    if not span.end_line:
        return span
    lines = source.split("\n")
    text = lines[span.end_line - 1] if span.end_line <= len(lines) else ""
    return Span(span.end_line, len(text) - len(text.lstrip()) + 1, span.col_end)


def drop_missing(program: ast.Program, policy: str, matches, source: str = "",
                 filename: str = "stdin") -> tuple[ast.Program, list[Message]]:
    """The program without the attach points that match nothing (``matches(raw)`` is False),
    by ``policy``: ``error`` raises Diagnostic, ``warn`` returns bpftrace's two warnings, and
    ``ignore`` drops them silently. A probe left with no attach point goes too."""
    messages: list[Message] = []
    probes = []
    for probe in program.probes:
        kept = []
        for ap in probe.attach_points:
            if ap.kind not in MAY_BE_MISSING or matches(ap.raw):
                kept.append(ap)
                continue
            text = f"No matches for {ap.kind.replace('uretprobe', 'uprobe')} {':'.join(ap.parts)}."
            span = own_span(ap.span, source)
            if policy == "error":
                raise Diagnostic([Message(text, span)], source=source, filename=filename)
            if policy == "warn":
                messages.append(Message(f"{text} Skipping.", span, "WARNING"))
        if kept:
            probes.append(dataclasses.replace(probe, attach_points=tuple(kept)))
        elif policy == "warn":
            messages.append(Message("Probe has no valid attach points. It is being removed which may cause "
                                    "issues with program behavior.", own_span(probe.attach_points[0].span, source),
                                    "WARNING"))
    return dataclasses.replace(program, probes=tuple(probes)), messages


def system_matches(pid: int = -1):
    """Whether an attach point names at least one target on this system (the attach layer's expansion)."""
    from ebpfpy.attach.errors import AttachError
    from ebpfpy.attach.provider import split_probe

    def matches(raw: str) -> bool:
        try:
            prov, rest = split_probe(raw)
            return bool(prov.expand(rest, pid=pid))
        except AttachError:
            return False
    return matches
