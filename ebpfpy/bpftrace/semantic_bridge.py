"""Run semantic analysis before codegen, with the world it needs: tracepoint formats and options.

The analyser (``semantic.py``) finds type errors with bpftrace's exact
messages; this module feeds it the live system's tracepoint layouts, so the
analyser itself stays testable with plain tables.
"""
from __future__ import annotations

from collections.abc import Sequence


class TracefsFormats:
    """``args`` layouts read from tracefs ``format`` files, on demand."""

    def fields(self, category: str, event: str) -> Sequence | None:
        from ebpfpy.attach.errors import AttachError
        from ebpfpy.attach.tracefs import tracepoint_format

        from .types import Field, array_of, data_loc_string, int_type, pointer_to, string_type

        if "*" in category or "*" in event or "?" in category + event:
            return None
        try:
            fmt = tracepoint_format(category, event)
        except (AttachError, OSError, KeyError):
            return None
        out = []
        for f in fmt.args:
            if f.data_loc:
                typ = data_loc_string(64)
            elif f.array_len:
                elem = int_type(f.element_size * 8, f.signed)
                typ = string_type(f.size) if "char" in f.type and f.element_size == 1 else array_of(elem, f.array_len)
            elif f.is_pointer:
                typ = pointer_to(_pointee(f.type))
            else:
                typ = int_type(min(f.size, 8) * 8 if f.size in (1, 2, 4, 8) else 64, f.signed)
            out.append(Field(f.name, f.offset, typ))
        return out


def _pointee(ctype: str):
    """``struct timespec *`` points to a record the BTF resolver knows; anything else to bytes."""
    from .types import int_type, record

    base = ctype.replace("const ", "").replace("__user", "").rstrip("* ").strip()
    if base.startswith(("struct ", "union ")):
        return record(base)
    return int_type(8, True)


def check(program, options) -> None:
    from functools import lru_cache

    from .semantic import Env, analyse, system_binaries, system_kfuncs, system_traceable
    from .types import BTFResolver

    kfuncs = lru_cache(maxsize=None)(system_kfuncs)  # analysis repeats; tracefs is read once

    env = Env(resolver=BTFResolver(), binaries=system_binaries, tracepoints=TracefsFormats(),
              unsafe=options.unsafe, has_child=bool(options.command), pid=options.pid,
              strlen=options.strlen, params=tuple(options.params), kfuncs=kfuncs,
              has_d_path=_has_fentry, traceable=system_traceable, compat=options.compat)
    return analyse(program, env, source=options.source, filename=options.filename)


def _has_fentry() -> bool:
    """d_path is a tracing-program helper: where fentry programs load, it is there."""
    from ebpfpy import features

    return features.has("fentry")
