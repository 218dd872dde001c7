"""tracefs: where it is, tracepoint ids, and each tracepoint's record layout.

Attaching never writes to tracefs (uprobes and kprobes go through their perf
PMUs, so the kernel removes them when our fds close); tracefs is only *read*:
a tracepoint's numeric id for perf_event_open, the `format` file that gives
`args->field` its offset, size and signedness, and `available_events` for
`bpftrace -l`. On machines where nothing mounted it yet, root can mount it.
"""
from __future__ import annotations

import errno as _errno
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from ebpfpy import bpffs
from ebpfpy.bpffs import TRACEFS_CANDIDATES

from .errors import AttachError, ProbeNotFoundError

MOUNT_POINT = bpffs.TRACEFS


class TracefsError(AttachError):
    """tracefs is missing and could not be mounted."""


def _is_tracefs(path: str) -> bool:
    return os.path.exists(os.path.join(path, "available_events")) or os.path.isdir(
        os.path.join(path, "events")
    )


def _mount_tracefs() -> None:
    """Mount tracefs at MOUNT_POINT through libc's mount(2); no subprocess needed."""
    try:
        bpffs.mount("nodev", MOUNT_POINT, "tracefs")
    except OSError as exc:
        raise TracefsError(
            f"tracefs is not mounted and mounting it at {MOUNT_POINT} failed: "
            f"{os.strerror(exc.errno)}; run `mount -t tracefs nodev {MOUNT_POINT}` as root"
        ) from None


_root_cache: list[str] = []


def _unreadable_mount() -> TracefsError | None:
    """The error for a tracefs that is mounted but that this process may not read (its root is
    mode 0700 on current kernels): permission, not a missing mount, is then the cause."""
    for cand in TRACEFS_CANDIDATES:
        try:
            os.listdir(cand)
        except PermissionError as exc:
            from ebpfpy.sys.privileges import explain_path

            return TracefsError(f"cannot read tracefs at {cand}: {explain_path(cand, exc.errno, 'tracefs')}")
        except OSError:
            continue
    return None


def tracefs_root(mount: bool = True) -> str:
    """The tracefs directory; mounts it at /sys/kernel/tracing when missing and root."""
    if _root_cache and _is_tracefs(_root_cache[0]):
        return _root_cache[0]
    for cand in TRACEFS_CANDIDATES:
        if _is_tracefs(cand):
            _root_cache[:] = [cand]
            return cand
    unreadable = _unreadable_mount()
    if unreadable is not None:
        raise unreadable
    if not mount:
        raise TracefsError(f"tracefs is not mounted (looked in {', '.join(TRACEFS_CANDIDATES)})")
    if not os.path.isdir(MOUNT_POINT):
        raise TracefsError(f"tracefs is not mounted and {MOUNT_POINT} does not exist: "
                           f"this kernel has no tracefs (CONFIG_TRACING is off)")
    if os.geteuid() != 0:
        raise TracefsError(
            f"tracefs is not mounted, and mounting it needs CAP_SYS_ADMIN: "
            f"run `mount -t tracefs nodev {MOUNT_POINT}` as root"
        )
    _mount_tracefs()
    if not _is_tracefs(MOUNT_POINT):
        raise TracefsError(f"mounted tracefs at {MOUNT_POINT} but it has no events/")
    _root_cache[:] = [MOUNT_POINT]
    return MOUNT_POINT


def tracefs_path(*parts: str) -> str:
    return os.path.join(tracefs_root(), *parts)


def _check_name(part: str, what: str) -> None:
    # Names come from users: forbid path tricks before touching the filesystem.
    if not part or "/" in part or part in (".", ".."):
        raise ProbeNotFoundError(f"invalid {what}: {part!r}")


def _event_file(category: str, name: str, leaf: str) -> str:
    """The text of events/<category>/<name>/<leaf>, the names checked first."""
    _check_name(category, "tracepoint category")
    _check_name(name, "tracepoint name")
    path = tracefs_path("events", category, name, leaf)
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        raise ProbeNotFoundError(f"tracepoint not found: {category}:{name}") from None
    except PermissionError as exc:
        from ebpfpy.sys.privileges import explain_path

        raise AttachError(f"cannot read {path}: {explain_path(path, exc.errno, 'tracefs')}") from None


def tracepoint_id(category: str, name: str) -> int:
    """The perf config (event id) of tracepoint category:name."""
    return int(_event_file(category, name, "id").strip())


def available_events() -> list[tuple[str, str]]:
    """Every tracepoint as (category, name), in the kernel's order."""
    out = []
    with open(tracefs_path("available_events")) as f:
        for line in f:
            line = line.strip()
            if ":" in line:
                cat, name = line.split(":", 1)
                out.append((cat, name))
    return out


# ---------------------------------------------------------------------------
# format files

@dataclass(frozen=True)
class TracepointField:
    """One field of a tracepoint record, as the format file declares it.

    `type` is the C type without the field name or array suffix (for
    `__data_loc char[] name` it is `char[]` with `data_loc` set: the record
    holds a u32 `(length << 16) | offset` locating the string in the record).
    """

    name: str
    type: str
    offset: int
    size: int
    signed: bool
    array_len: int | None = None
    data_loc: bool = False
    rel_loc: bool = False
    common: bool = False

    @property
    def decl(self) -> str:
        """The declaration as `bpftrace -lv` prints it."""
        prefix = "__data_loc " if self.data_loc else "__rel_loc " if self.rel_loc else ""
        suffix = f"[{self.array_len}]" if self.array_len is not None else ""
        return f"{prefix}{self.type} {self.name}{suffix}"

    @property
    def is_pointer(self) -> bool:
        return self.type.rstrip().endswith("*")

    @property
    def element_size(self) -> int:
        """Size of one array element (the whole field when not an array)."""
        if self.array_len:
            return self.size // self.array_len
        return self.size


@dataclass(frozen=True)
class TracepointFormat:
    category: str
    name: str
    id: int
    fields: tuple[TracepointField, ...]
    print_fmt: str = ""

    @property
    def args(self) -> tuple[TracepointField, ...]:
        """The event's own fields (the `common_*` header left out): `args->X`."""
        return tuple(f for f in self.fields if not f.common)

    def field(self, name: str) -> TracepointField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"tracepoint {self.category}:{self.name} has no field {name!r}")


_FIELD_RE = re.compile(
    r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
    r"(?:\s*signed:(?P<signed>-?\d+);)?"
)
_DECL_RE = re.compile(r"^(?P<type>.*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<len>[^\]]*)\])?\s*$")
_LOC_PREFIXES = {"__data_loc": "data_loc", "__rel_loc": "rel_loc"}


def parse_field_decl(decl: str) -> tuple[str, str, int | None, dict[str, bool]]:
    """Split `const char * filename` / `char comm[16]` / `__data_loc char[] name`."""
    decl = decl.strip()
    flags = {"data_loc": False, "rel_loc": False}
    for prefix, flag in _LOC_PREFIXES.items():
        if decl.startswith(prefix + " "):
            flags[flag] = True
            decl = decl[len(prefix) + 1 :].strip()
    m = _DECL_RE.match(decl)
    if not m:
        raise ValueError(f"cannot parse tracepoint field declaration {decl!r}")
    ctype = m.group("type").strip()
    length = m.group("len")
    array_len: int | None = None
    if length is not None and length.strip():
        try:
            array_len = int(length, 0)
        except ValueError:
            array_len = None  # a macro the format file left unexpanded
    return ctype, m.group("name"), array_len, flags


def parse_format(text: str, category: str = "", name: str = "") -> TracepointFormat:
    """Parse the text of events/<category>/<name>/format."""
    ident = 0
    fields: list[TracepointField] = []
    print_fmt = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("name:") and not name:
            name = stripped.split(":", 1)[1].strip()
        elif stripped.startswith("ID:"):
            ident = int(stripped.split(":", 1)[1])
        elif stripped.startswith("print fmt:"):
            print_fmt = stripped.split(":", 1)[1].strip()
        elif stripped.startswith("field:"):
            m = _FIELD_RE.match(stripped)
            if not m:
                continue
            ctype, fname, array_len, flags = parse_field_decl(m.group("decl"))
            fields.append(
                TracepointField(
                    name=fname,
                    type=ctype,
                    offset=int(m.group("offset")),
                    size=int(m.group("size")),
                    signed=m.group("signed") == "1",
                    array_len=array_len,
                    common=fname.startswith("common_"),
                    **flags,
                )
            )
    return TracepointFormat(category, name, ident, tuple(fields), print_fmt)


@lru_cache(maxsize=512)
def tracepoint_format(category: str, name: str) -> TracepointFormat:
    """The parsed format of category:name (cached: formats never change while booted)."""
    return parse_format(_event_file(category, name, "format"), category, name)


def iter_event_dirs() -> Iterator[tuple[str, str]]:
    """(category, name) from the events/ tree, for kernels without available_events."""
    root = tracefs_path("events")
    for cat in sorted(os.listdir(root)):
        catdir = os.path.join(root, cat)
        if not os.path.isdir(catdir):
            continue
        for name in sorted(os.listdir(catdir)):
            if os.path.isdir(os.path.join(catdir, name)):
                yield cat, name


def dynamic_events() -> dict[str, str]:
    """Contents of uprobe_events / kprobe_events (tests check we leave none behind)."""
    out = {}
    for fname in ("uprobe_events", "kprobe_events"):
        try:
            with open(tracefs_path(fname)) as f:
                out[fname] = f.read()
        except OSError as exc:
            if exc.errno not in (_errno.ENOENT,):
                raise
    return out
