"""``pybpftrace -l [pattern]``, ``-lv`` and ``--info``: what this system offers, printed like bpftrace.

bpftrace 0.17 treats the query as a little program: ``struct``/``union``/``enum``
names aside, it parses the comma-separated attach points (a wildcard kind, or a
query without ``:``, expands to every kind it could mean), checks them like a
script (errors point at the query: ``stdin:1:1-N: ERROR: ...``), and then lists
each one in turn. ``software:``/``hardware:``/``profile:`` queries are echoed,
not expanded (``software:*:``). We follow the same steps, so output, warnings
and exit status match; probe lines come from ``ebpfpy.attach.listing``.
"""
from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Iterator

from .diagnostics import Diagnostic, Message, Span
from .probes import KINDS, split_parts

# The kinds a wildcard in the kind position expands to (bpftrace's PROBE_LIST, sorted as a set):
# kernel kinds, unless the pattern names a path or a pid is given; kfunc only where fentry works.
KERNEL_KINDS = ("hardware", "iter", "kfunc", "kprobe", "software", "tracepoint")
USER_KINDS = ("uprobe", "usdt")
# Iterators bpftrace 0.17 knows, each listed when vmlinux BTF has its context struct.
ITERATORS = ("task", "task_file")
FILTER_FUNCTIONS = "/sys/kernel/tracing/available_filter_functions"


class ListingAbort(Exception):
    """bpftrace 0.17 aborts (SIGABRT, exit 134) after printing this text."""


def _wild(text: str) -> bool:
    return any(c in text for c in "*?[")


def _split_points(search: str) -> list[str]:
    """Attach points of a listing query: ``a,b`` outside quotes."""
    points, cur, quoted = [], [], False
    for ch in search:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            points.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    points.append("".join(cur))
    return points


def _kinds_for(parts: list[str], pid: int) -> list[str]:
    """``*`` or ``u*`` in the kind position: the kinds it matches, as bpftrace expands them."""
    from ebpfpy import features

    query = "*" if len(parts) == 1 else parts[0]
    if pid > 0 or (len(parts) >= 2 and "/" in parts[1]):
        pool = USER_KINDS
    else:
        pool = tuple(k for k in KERNEL_KINDS if k != "kfunc" or features.has("fentry"))
    return [k for k in pool if fnmatch.fnmatchcase(k, query)]


class _Query:
    """One ``-l`` query, checked like a script (errors point at the query) and then listed."""

    def __init__(self, search: str, verbose: bool, pid: int):
        self.search, self.verbose, self.pid = search, verbose, pid
        self.ap_span = Span(1, 1, len(search) + 1)
        self.errors: list[Message] = []

    def fail(self, text: str) -> Diagnostic:
        return Diagnostic(Message(text, self.ap_span), source=self.search)

    def report(self, text: str) -> None:
        """A semantic error: bpftrace reports every one of them before giving up."""
        self.errors.append(Message(text, self.ap_span))

    def points(self) -> list[tuple[str, list[str]]]:
        """(kind, parts after the kind) for every attach point, wildcard kinds expanded."""
        out, self.errors, col, made_up = [], [], 1, []
        for raw in _split_points(self.search):
            parts = split_parts(raw)
            self.ap_span = Span(1, col, col + len(raw))
            col += len(raw) + 1
            if _wild(parts[0]):
                # bpftrace keeps a one-part query whole as the first part (its erase_prefix quirk)
                rest = parts if len(parts) == 1 else parts[1:]
                kinds = _kinds_for(parts, self.pid)
                if not kinds:
                    raise Diagnostic([Message(f"No probe type matched for {parts[0]}", self.ap_span),
                                      Message("No attach points for probe", Span(1, 1, 1))], source=self.search)
                if len(kinds) > 1:  # bpftrace makes up one attach point per kind, at the end of the
                    made_up += [(kind, list(rest)) for kind in kinds]  # list and with no location
                    continue
                out.append((kinds[0], self.check(kinds[0], list(rest), lenient=False)))
                continue
            kind = KINDS.get(parts[0])
            if kind is None or parts[0] in ("rawtracepoint", "rt"):
                # bpftrace 0.17 aborts here ("FATAL: Invalid probe type made it to attachpoint
                # parser"): we say it as its other errors, at the attach point
                raise Diagnostic([Message(f"Invalid probe type: {parts[0]}", self.ap_span)], source=self.search)
            out.append((kind.name, self.check(kind.name, parts[1:], lenient=False)))
        self.ap_span = Span(1, 1, 1)
        for kind, rest in made_up:  # misfits among them are skipped quietly
            checked = self.check(kind, rest, lenient=True)
            if checked is not None:
                out.append((kind, checked))
        if self.errors:
            raise Diagnostic(self.errors, source=self.search)
        if not out:
            raise Diagnostic(Message("No attach points for probe", Span(1, 1, 1)), source=self.search)
        return out

    def check(self, kind: str, rest: list[str], lenient: bool) -> list[str] | None:
        """The attach point's parts (None: skipped), after bpftrace's parser and semantic checks.

        Parser errors (the count of parts) stop at once, unless the kind came from a
        wildcard matching several kinds (then the misfit is skipped quietly, and so is
        the software/hardware event name check); semantic errors are collected in ``self.errors``.
        """
        if rest == [""] and kind in ("BEGIN", "END"):
            rest = []
        if kind == "tracepoint" and len(rest) == 1 and _wild(rest[0]):
            rest = ["*", rest[0]]
        if kind == "usdt" and len(rest) == 1 and self.pid > 0:
            rest = ["*", "*", rest[0]]  # -p: every binary the process maps
        elif kind in ("uprobe", "uretprobe", "usdt") and len(rest) == 1 and "/" in rest[0] and not lenient:
            # Differs on purpose (the seed example): 0.17 says "requires 2 arguments";
            # we list every function (probe) of the binary, as later bpftrace versions do.
            rest = [rest[0], "*"]
        spec = KINDS[kind]
        if len(rest) not in spec.nparts:
            if lenient:
                return None
            raise self.fail(f"{kind} probe type {spec.count_msg}")
        if kind in ("profile", "interval"):
            from .probes import parse_spec

            parse_spec(":".join([kind, *rest]), self.ap_span)
        elif kind == "asyncwatchpoint" and (rest[0].startswith("0x") or rest[0].isdigit()):
            raise self.fail("asyncwatchpoint requires a function name")
        elif kind in ("software", "hardware") and not _wild(rest[0]) and not lenient:
            from ebpfpy.attach.perf_event import COUNTERS

            if not any(rest[0] in (ev.name, ev.alias) for ev in COUNTERS[kind][1]):
                self.report(f"{rest[0]} is not a {kind} probe")
        elif kind in ("uprobe", "uretprobe", "usdt"):
            self.check_binary(kind, rest)
        elif kind in ("kfunc", "kretfunc") and not _wild(":".join(rest)):
            from ebpfpy import features

            if not features.has("fentry"):
                self.report("kfunc/kretfunc not available for your kernel version.")
        elif kind == "iter" and rest[0] in ITERATORS:
            self.report(f"iter {rest[0]} not available for your kernel version.")
        return rest

    def check_binary(self, kind: str, rest: list[str]) -> None:
        from ebpfpy.attach.binary import resolve_binaries

        path = rest[0]
        if not _wild(path) and path and (self.pid <= 0 or kind == "usdt"):
            try:
                resolve_binaries(path)
            except Exception:
                what = "usdt" if kind == "usdt" else "uprobe"
                self.report(f"{what} target file '{path}' does not exist or is not executable")
                return
        if kind != "usdt" and not rest[-1]:
            self.report("uprobe should be attached to a function and/or address")

    def lines(self, kind: str, rest: list[str]) -> Iterator[str]:
        """The listing lines of one attach point (with -lv detail lines)."""
        from ebpfpy.attach import listing

        if kind in ("BEGIN", "END"):
            yield "special::"
        elif kind in ("software", "hardware"):
            yield f"{kind}:{rest[0]}:"  # bpftrace 0.17 echoes the event, wildcards and all
        elif kind in ("profile", "interval"):
            yield f"{kind}:"
        elif kind in ("watchpoint", "asyncwatchpoint"):
            yield f"{kind}::"
        elif kind == "iter":
            yield from self.described(f"iter:{name}" for name in _iterators() if fnmatch.fnmatchcase(name, rest[0]))
        elif kind in ("kprobe", "kretprobe"):
            if _filter_functions_error():
                _warn(f"WARNING: Could not read symbols from {FILTER_FUNCTIONS}: {_filter_functions_error()}")
                return
            yield from self.described(listing.list_probes(f"{kind}:{rest[0]}", pid=self.pid))
        elif kind in ("kfunc", "kretfunc"):
            from ebpfpy import features

            if not features.has("fentry"):
                err = _filter_functions_error() or "No such file or directory"
                # (bpftrace 0.17 dies of an uncaught exception with this text)
                raise ListingAbort(f"ERROR: Could not read symbols from {FILTER_FUNCTIONS}: {err}", 1)
            yield from self.described(listing.list_probes(f"{kind}:{':'.join(rest)}", pid=self.pid))
        elif kind in ("uprobe", "uretprobe"):
            if rest[-1].startswith("0x") or rest[-1].isdigit():
                yield f"{kind}:{rest[0]}:"
                return
            found = list(listing.list_probes(f"{kind}:{rest[0]}:{rest[-1]}", pid=self.pid))
            if self.verbose and kind == "uprobe":
                _warn_no_dwarf(found)
            yield from found
        elif kind == "usdt":
            target, ns, func = (rest[0], "*", rest[1]) if len(rest) == 2 else rest
            found = listing.list_probes(f"usdt:{target}:{ns}:{func}", pid=self.pid)
            if self.pid > 0:  # bpftrace names the binaries as the process sees them
                root = f"/proc/{self.pid}/root"
                found = sorted({"usdt:" + root + line[5:] if not line.startswith("usdt:" + root) else line
                                for line in found})
            yield from found
        else:  # tracepoints: sorted as whole strings, like bpftrace's std::set ("fib6:" < "fib:")
            yield from self.described(sorted(listing.list_probes(f"{kind}:{':'.join(rest)}", pid=self.pid)))

    def described(self, lines) -> Iterator[str]:
        from ebpfpy.attach import listing

        for line in lines:
            yield line
            if self.verbose:
                yield from listing.describe(line)


def _warn(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _filter_functions_error() -> str | None:
    """Why available_filter_functions cannot be read (bpftrace's kprobe source), or None."""
    try:
        with open(FILTER_FUNCTIONS):
            return None
    except OSError as err:
        return err.strerror


def _iterators() -> list[str]:
    from ebpfpy.attach.fentry import _btf
    from ebpfpy.btf import Kind

    try:
        btf = _btf()
        return [name for name in ITERATORS if btf.find_all(f"bpf_iter__{name}", Kind.STRUCT)]
    except Exception:
        return []


_warned_paths: set = set()


def _warn_no_dwarf(lines: list[str]) -> None:
    """-lv on uprobes: bpftrace prints DWARF parameters; we do not read DWARF, and say so once per file."""
    from ebpfpy.attach.binary import elf_image

    for line in lines:
        path = line.split(":", 2)[1]
        if path in _warned_paths:
            continue
        _warned_paths.add(path)
        try:
            has_dwarf = ".debug_info" in elf_image(path).sections
        except Exception:
            has_dwarf = False
        if has_dwarf:
            _warn(f'WARNING: pybpftrace does not read DWARF: no parameter info for "{path}"')
        else:
            _warn(f'WARNING: No DWARF found for "{path}", cannot show parameter info')


def _list_types(search: str, verbose: bool) -> Iterator[str]:
    """``-l 'struct task_s*'``: named structs, unions and enums of vmlinux BTF; with -v their definitions."""
    from ebpfpy.attach.fentry import _btf
    from ebpfpy.btf import Kind
    from ebpfpy.btf.cformat import format_definition

    btf = _btf()
    words = {Kind.STRUCT: "struct", Kind.UNION: "union", Kind.ENUM: "enum"}
    found = {}
    for tid in btf.ids():
        word = words.get(btf.kind_of(tid))
        name = btf.name_of(tid)
        if word and name:
            found.setdefault(f"{word} {name}", tid)
    for decl in sorted(found):
        if fnmatch.fnmatchcase(decl, search):
            yield (format_definition(btf, found[decl]) + "\n") if verbose else decl


def probe_lines(pattern: str | None, verbose: bool = False, pid: int = -1) -> Iterator[str]:
    """bpftrace 0.17's ``-l`` output: the query is checked first (errors raise Diagnostic), then listed."""
    search = "*:*" if pattern is None else pattern
    if ":" not in search and search.startswith(("struct", "union", "enum")):
        yield from _list_types(search, verbose)
        return
    if not search:
        raise ListingAbort("ERROR: No attach points for probe", 1)  # (0.17 first logs an internal complaint)
    if "{" in search:
        raise Diagnostic(Message("unexpected listing query format", Span(1, 1, len(search) + 1)), source=search)
    query = _Query(search, verbose, pid)
    for kind, rest in query.points():
        yield from query.lines(kind, rest)


def raw_tracepoint_lines(pattern: str) -> list | None:
    """Today's language lists raw tracepoints as ``rawtracepoint:vmlinux:NAME`` (0.17 has no such
    kind): the lines for a query of that kind (``rt:sched_*``, ``rawtracepoint:vmlinux:*``), else None."""
    head, _, rest = pattern.partition(":")
    if "," in pattern or head.lower() not in ("rawtracepoint", "rt"):
        return None
    module, _, name = rest.rpartition(":")
    if module not in ("", "vmlinux", "*"):
        return []
    from ebpfpy import btf
    from ebpfpy.btf import Kind

    try:  # the kernel's raw tracepoints: its btf_trace_NAME typedefs (tracefs also lists events that are not)
        spec = btf.vmlinux()
    except OSError:
        return []
    typedefs = (spec.name_of(i) for i in spec.ids() if spec.kind_of(i) == Kind.TYPEDEF)
    events = (n[len("btf_trace_"):] for n in typedefs if n.startswith("btf_trace_"))
    names = sorted({e for e in events if fnmatch.fnmatchcase(e, name or "*")})
    return [f"rawtracepoint:vmlinux:{n}" for n in names]


def list_probes(pattern: str | None, verbose: bool = False, pid: int = -1, modern: bool = False) -> int:
    from ebpfpy.attach.errors import AttachError

    raw = raw_tracepoint_lines(pattern) if modern and pattern else None
    if raw is not None:
        sys.stdout.write("".join(line + "\n" for line in raw))
        sys.stdout.flush()
        return 0
    try:
        for line in probe_lines(pattern, verbose, pid):
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except Diagnostic as diag:
        sys.stdout.flush()
        sys.stderr.write(diag.format(pattern or ""))
        return 1
    except ListingAbort as abort:
        sys.stdout.flush()
        sys.stderr.write(abort.args[0] + "\n")
        return abort.args[1] if len(abort.args) > 1 else 134
    except AttachError as err:
        sys.stderr.write(f"ERROR: {err}\n")
        return 1
    except BrokenPipeError:
        # like `bpftrace -l | head`: stop quietly, and keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def info_text() -> str:
    """``--info``: bpftrace's report layout, answered by ``ebpfpy.features`` (real probes of this kernel).

    Where bpftrace says only "no" we add the reason, since the point of the
    report is to tell the user what will not work and why.
    """
    from ebpfpy import features

    uname = os.uname()
    report = features.report()

    def row(label: str, name: str) -> str:
        ok, why = report[name]
        return f"  {label}: {_yes(ok)}" + (f" ({why})" if not ok and why else "") + "\n"

    out = ["System\n", f"  OS: {uname.sysname} {uname.release} {uname.version}\n", f"  Arch: {uname.machine}\n\n"]
    out += ["Build\n", "  version: v0.17.0 (pybpftrace, ebpfpy)\n", "  LLVM: none (instructions are built in Python)\n",
            "  unsafe uprobe: no\n\n"]
    out += ["Kernel helpers\n", "  probe_read: yes\n", "  probe_read_str: yes\n",
            row("probe_read_kernel", "probe_read_kernel"), row("probe_read_user", "probe_read_kernel"), "\n"]
    out += ["Kernel features\n", row("btf", "btf"), row("map batch", "batch_ops"), row("ringbuf", "ringbuf"),
            row("bpf_link for perf events", "perf_link"), row("BPF_PROG_TEST_RUN for BEGIN/END", "test_run_raw_tp"),
            row("tracefs", "tracefs"), "\n"]
    out += ["Probe types\n", row("kprobe", "kprobes"), "  tracepoint: " + _yes(report["tracefs"][0]) + "\n",
            "  perf_event: yes\n", row("uprobe", "uprobes"), row("kfunc", "fentry")]
    return "".join(out)
