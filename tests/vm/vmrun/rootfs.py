"""What the guest's root file system holds, as a list of entries.

The guest runs the Python that runs the runner, a virtual environment's
included (same paths, so `sys.prefix`, `pyvenv.cfg` and the RUNPATH of the
interpreter stay valid), with only the parts the test suite needs: the standard
library minus its tests and GUI modules, the C extensions, and the installed
distributions that ebpfpy and its `test` extra require (found from that
interpreter's package metadata, so a new dependency follows by itself, and
shipped from wherever it imports them). Shared libraries come from `ldd`, stored under their real paths with
the host's symlinks (e.g. /lib -> usr/lib) recreated along the way.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata

from .cpio import CpioWriter

# Standard library folders the guest never imports (relative to the stdlib dir).
STDLIB_SKIP_DIRS = frozenset(
    {
        "site-packages",
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "unittest/test",
        "ctypes/test",
        "distutils/tests",
        "sqlite3/test",
        "tkinter/test",
        "lib-dynload",
    }
)
STDLIB_SKIP_PREFIXES = ("config-",)
# C extensions that pull in GUI, terminal or NIS libraries or only exist for CPython's tests.
DYNLOAD_SKIP = re.compile(
    r"^(_tkinter|_test\w*|_xxtestfuzz|_xxsubinterpreters|xxlimited\w*|_ctypes_test|nis|"
    r"_curses\w*|readline|ossaudiodev|spwd)\."
)
# Roots of the site-packages closure: ebpfpy with its test extra.
PROJECT_DIST = "ebpfpy"
PROJECT_EXTRAS = frozenset({"test"})
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

ETC_FILES = {
    "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "/etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    "/etc/hosts": b"127.0.0.1 localhost ebpfpy-vm\n::1 localhost\n",
    "/etc/hostname": b"ebpfpy-vm\n",  # init.sh sets the same name
}
LD_SO_CACHE = "/etc/ld.so.cache"
# Host programs the suite runs that busybox lacks: guest path -> host path. Their libraries follow via ldd.
HOST_TOOLS = {
    "/sbin/ldconfig": "/sbin/ldconfig",  # `ldconfig -p`: library lookup by name (ebpfpy.attach.binary)
}
# Libraries glibc loads with dlopen, so `ldd` never names them: libgcc_s unwinds a thread
# that leaves through pthread_exit (CPython ends a daemon thread that wakes during
# interpreter shutdown that way); without it the process aborts ("libgcc_s.so.1 must be
# installed for pthread_exit to work"), status 134 after a green run.
DLOPENED_LIBRARIES = ("libgcc_s.so.1",)
EMPTY_DIRS = ("/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/bin", "/sbin", "/mnt")


@dataclass(frozen=True)
class Entry:
    """One archive member: `kind` is file (copied from `source`), data, symlink, dir or chardev."""

    kind: str
    path: str
    source: str = ""
    payload: bytes = b""
    mode: int = 0o644
    rdev: tuple[int, int] = (0, 0)

    def fingerprint(self) -> str:
        """Cheap identity for cache keys: files by size and mtime, the rest by content."""
        if self.kind == "file":
            info = os.stat(self.source)
            return f"file {self.path} {self.source} {info.st_size} {info.st_mtime_ns}"
        digest = hashlib.sha256(self.payload).hexdigest()[:16]
        return (
            f"{self.kind} {self.path} {self.source} {digest} {self.mode:o} {self.rdev}"
        )


def write(entries: Iterable[Entry], writer: CpioWriter) -> None:
    for entry in entries:
        if entry.kind == "file":
            try:
                writer.file(entry.path, entry.source)
            except FileNotFoundError:
                if not entry.path.endswith(
                    ".pyc"
                ):  # a cache file may vanish; nothing else may
                    raise
        elif entry.kind == "data":
            writer.data(entry.path, entry.payload, entry.mode)
        elif entry.kind == "symlink":
            writer.symlink(entry.path, entry.source)
        elif entry.kind == "dir":
            writer.dir(entry.path, entry.mode)
        elif entry.kind == "chardev":
            writer.chardev(entry.path, *entry.rdev, mode=entry.mode)
        else:
            raise ValueError(f"unknown entry kind {entry.kind!r}")


def dedupe(entries: Iterable[Entry]) -> list[Entry]:
    """Keep the first entry per guest path, in order."""
    seen: dict[str, Entry] = {}
    for entry in entries:
        seen.setdefault(entry.path, entry)
    return list(seen.values())


def fingerprint(entries: Iterable[Entry]) -> str:
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(entry.fingerprint().encode() + b"\n")
    return digest.hexdigest()


# -- host paths and shared libraries -------------------------------------------------------


def host_path(path: str) -> list[Entry]:
    """Entries that make `path` resolve in the guest as on the host: symlinked components, then the file."""
    entries: list[Entry] = []
    parts = os.path.abspath(path).strip("/").split("/")
    current = "/"
    hops = 0
    while parts:
        candidate = os.path.join(current, parts.pop(0))
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(f"symlink loop resolving {path}")
            target = os.readlink(candidate)
            entries.append(Entry("symlink", candidate, source=target))
            resolved = os.path.normpath(os.path.join(current, target))
            parts = resolved.strip("/").split("/") + parts
            current = "/"
        else:
            current = candidate
    entries.append(Entry("file", current, source=current))
    return entries


_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def shared_libraries(binaries: Iterable[str]) -> list[str]:
    """Absolute paths of the libraries `ldd` reports for these ELF files (empty for static ones)."""
    found: dict[str, None] = {}
    for binary in binaries:
        result = subprocess.run(
            ["ldd", binary], capture_output=True, text=True, check=False
        )
        for line in result.stdout.splitlines():
            if "not found" in line:
                raise OSError(f"{binary}: {line.strip()}")
            match = _LDD_LINE.search(line)
            if match:
                found.setdefault(match.group(1), None)
    return list(found)


_LDCONFIG_LINE = re.compile(r"^\s*(\S+) \(([^)]*)\) => (/\S+)$")


def dlopened_libraries(names: Iterable[str] = DLOPENED_LIBRARIES) -> list[str]:
    """Host paths of the 64-bit libraries in `names`, looked up in the loader's cache
    (`ldconfig -p`) as dlopen finds them (the guest is x86-64 only)."""
    wanted = list(names)
    result = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False)
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        match = _LDCONFIG_LINE.match(line)
        if match and match.group(1) in wanted and "x86-64" in match.group(2):
            found.setdefault(match.group(1), match.group(3))
    missing = [name for name in wanted if name not in found]
    if missing:
        raise OSError(f"not in the loader cache (ldconfig -p): {', '.join(missing)}")
    return [found[name] for name in wanted]


def with_libraries(entries: list[Entry]) -> list[Entry]:
    """Add every shared library the ELF files among `entries` need, those glibc dlopens,
    and what those in turn need."""
    elves = [e.source for e in entries if e.kind == "file" and _is_elf(e.source)]
    extra = dlopened_libraries()
    libraries = dict.fromkeys(shared_libraries(elves) + extra + shared_libraries(extra))
    return entries + [entry for lib in libraries for entry in host_path(lib)]


def _is_elf(path: str) -> bool:
    if not (path.endswith(".so") or ".so." in path or os.access(path, os.X_OK)):
        return False
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


# -- Python ---------------------------------------------------------------------------------


def _pycs_for(source: str, rewritten: bool) -> list[str]:
    """Compiled forms of `source` in its __pycache__: the plain one, and pytest's
    assertion-rewritten ones (`<tag>-pytest-<version>.pyc`) when `rewritten`.
    Optimised (`.opt-N`) variants are never imported by the guest."""
    directory, name = os.path.split(source)
    cache = os.path.join(directory, "__pycache__")
    prefix = f"{name[:-3]}.{sys.implementation.cache_tag}"
    if not rewritten:
        plain = os.path.join(cache, prefix + ".pyc")
        return [plain] if os.path.exists(plain) else []
    return sorted(
        path
        for path in glob.glob(
            os.path.join(glob.escape(cache), glob.escape(prefix) + "*.pyc")
        )
        if ".opt-" not in os.path.basename(path)
    )


def python_file(path: str, rewritten: bool = False) -> list[Entry]:
    """A file plus, for a .py, the compiled forms the host has: Python validates them
    by source size and mtime (which the archive keeps), and compiling under TCG is slow."""
    entries = [Entry("file", path, source=path)]
    if path.endswith(".py"):
        entries += [
            Entry("file", pyc, source=pyc) for pyc in _pycs_for(path, rewritten)
        ]
    return entries


def stdlib_entries(stdlib: str) -> Iterator[Entry]:
    for root, dirs, files in os.walk(stdlib):
        rel = os.path.relpath(root, stdlib)
        rel = "" if rel == "." else rel + "/"
        dirs[:] = sorted(
            d
            for d in dirs
            if d != "__pycache__"
            and rel + d not in STDLIB_SKIP_DIRS
            and not d.startswith(STDLIB_SKIP_PREFIXES)
        )
        for name in sorted(files):
            if not name.endswith((".pyc", ".exe")):
                yield from python_file(os.path.join(root, name))


def dynload_entries(dynload: str) -> Iterator[Entry]:
    for name in sorted(os.listdir(dynload)):
        if name.endswith(".so") and not DYNLOAD_SKIP.match(name):
            yield Entry(
                "file", os.path.join(dynload, name), source=os.path.join(dynload, name)
            )


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def guest_bin_dir() -> str:
    """The directory the guest finds `python3` in (first on its PATH): that of `sys.executable`
    as started, not resolved, so that from a virtual environment the guest starts the venv's own
    `bin/python3`. CPython looks for `pyvenv.cfg` beside (or one level above) the path it was
    started as, without resolving symlinks, and takes `sys.prefix` and site-packages from there;
    the standard library and libpython come from the base installation the symlinks lead to."""
    return os.path.dirname(os.path.abspath(sys.executable))


def interpreter_entries() -> list[Entry]:
    """The running interpreter: the real binary with the base installation's names for it
    (`python3`, `python`, `python3.X`), and, when it runs in a virtual environment, the venv's
    `bin/` names for it (symlinks kept, so they lead to the binary as on the host) and its
    `pyvenv.cfg`."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    real = os.path.realpath(sys.executable)
    entries = [Entry("file", real, source=real)]
    for alias in ("python3", "python", version):
        link = os.path.join(os.path.dirname(real), alias)
        if link != real:
            entries.append(Entry("symlink", link, source=os.path.basename(real)))
    bin_dir = guest_bin_dir()
    if bin_dir != os.path.dirname(real):
        started = os.path.basename(sys.executable)
        for alias in dict.fromkeys((started, "python3", "python", version)):
            path = os.path.join(bin_dir, alias)
            if os.path.lexists(path):
                entries += host_path(path)
        if not os.path.lexists(os.path.join(bin_dir, "python3")):  # init.sh runs `python3`
            entries.append(Entry("symlink", os.path.join(bin_dir, "python3"), source=started))
    if sys.prefix != sys.base_prefix:
        config = os.path.join(sys.prefix, "pyvenv.cfg")
        entries.append(Entry("file", config, source=config))
    return entries


def _pyproject_requirements(project_dir: str) -> list[str]:
    """ebpfpy's requirements as `Requires-Dist` lines, from the checkout's pyproject.toml: for an
    environment that imports ebpfpy from the checkout (PYTHONPATH) without having installed it."""
    path = os.path.join(project_dir, "pyproject.toml")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise OSError(f"{PROJECT_DIST} is not installed for {sys.executable} (pip install -e .)") from None
    with open(path, "rb") as handle:
        project = tomllib.load(handle)["project"]
    lines = list(project.get("dependencies", ()))
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines += [f'{text}; extra == "{extra}"' for text in requirements]
    return lines


@dataclass
class Closure:
    """The installed distributions the guest gets, found in the running interpreter's environment
    (`importlib.metadata` searches its `sys.path`): `project` is ebpfpy's own metadata (None when
    the checkout is used without being installed), `dists` what it and its extras need, transitively,
    and `missing` what they declare but this environment lacks (so the guest lacks it too, and the
    tests needing it skip or fail there as they would on the host)."""

    project: metadata.Distribution | None
    dists: list[metadata.Distribution]
    missing: list[str]


def distribution_closure(
    root: str = PROJECT_DIST,
    extras: frozenset[str] = PROJECT_EXTRAS,
    also: tuple[str, ...] = (),
    project_dir: str = PROJECT_ROOT,
) -> Closure:
    """Installed distributions `root` (with `extras`) and `also` need, transitively, excluding `root`
    itself. A distribution named in `also` (`--with-dist`) must be installed; a declared one that is
    not is listed in `missing`."""
    # packaging is a pytest dependency, so always present where the suite runs.
    from packaging.requirements import Requirement

    try:
        project = metadata.distribution(root)
        requires = list(project.requires or ())
    except metadata.PackageNotFoundError:
        project, requires = None, _pyproject_requirements(project_dir)
    for name in also:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise OSError(f"--with-dist {name}: not installed for {sys.executable}") from None
    found: dict[str, metadata.Distribution] = {}
    missing: dict[str, None] = {}
    pending = [(text, extras) for text in requires] + [(name, frozenset()) for name in also]
    while pending:
        text, wanted = pending.pop()
        requirement = Requirement(text)
        environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
        if requirement.marker is not None and not any(requirement.marker.evaluate(env) for env in environments):
            continue
        key = _normalise(requirement.name)
        if key in found or key in missing or key == _normalise(root):
            continue
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            missing[key] = None
            continue
        found[key] = dist
        pending += [(sub, frozenset(requirement.extras)) for sub in dist.requires or ()]
    return Closure(
        project,
        sorted(found.values(), key=lambda d: _normalise(d.metadata["Name"])),
        sorted(missing),
    )


def distribution_site(dist: metadata.Distribution) -> str:
    """The directory the distribution is installed in (the parent of its `.dist-info`): the venv's
    site-packages, the base installation's, Debian's dist-packages, a user site, ..."""
    return os.path.normpath(str(dist.locate_file("")))


def distribution_entries(dist: metadata.Distribution, skip_top: frozenset[str] = frozenset()) -> Iterator[Entry]:
    """The distribution's installed files (from RECORD) that live in its site directory (not the
    console scripts in bin/), minus the top-level directories in `skip_top`."""
    site = distribution_site(dist)
    for record in dist.files or ():
        path = os.path.normpath(str(dist.locate_file(record)))
        if not path.startswith(site + os.sep) or "__pycache__" in path or not os.path.isfile(path):
            continue
        if os.path.relpath(path, site).split(os.sep)[0] in skip_top:
            continue
        yield from python_file(path)


@dataclass
class PythonEnv:
    """What the guest gets of the running interpreter: the archive entries, the closure they come
    from, and the directories holding shipped distributions that the guest's `site` would not put on
    `sys.path` by itself (for its PYTHONPATH: a PYTHONPATH directory of the host, a non-root user's
    `~/.local`)."""

    entries: list[Entry]
    closure: Closure
    path_dirs: list[str]


def _site_dirs() -> set[str]:
    """The site directories the guest's interpreter adds by itself (as root, HOME=/root)."""
    import site

    dirs = set(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.expanduser("~") == "/root":
        dirs.add(site.getusersitepackages())
    return {os.path.normpath(d) for d in dirs}


def python_environment(extra_dists: tuple[str, ...] = ()) -> PythonEnv:
    """The interpreter running the runner with its standard library (its base installation's, for a
    venv), and the distributions ebpfpy and its test extra need, from wherever that interpreter
    imports them; of ebpfpy's own distribution only the metadata and what an editable install puts
    beside it (the package itself comes from the checkout, first on the guest's PYTHONPATH)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    entries = interpreter_entries()
    entries += stdlib_entries(stdlib)
    entries += dynload_entries(os.path.join(stdlib, "lib-dynload"))
    closure = distribution_closure(also=extra_dists)
    shipped = closure.dists
    if closure.project is not None and distribution_site(closure.project) != os.path.normpath(PROJECT_ROOT):
        entries += distribution_entries(closure.project, skip_top=frozenset({PROJECT_DIST}))
        shipped = [closure.project, *shipped]
    for dist in closure.dists:
        entries += distribution_entries(dist)
    default = _site_dirs()
    path_dirs = [site for site in dict.fromkeys(distribution_site(d) for d in shipped) if site not in default]
    return PythonEnv(entries, closure, path_dirs)


# -- the rest of a minimal system -----------------------------------------------------------


def busybox_entries() -> list[Entry]:
    """A static busybox at /bin/busybox; /init installs the applet links at boot."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if shared_libraries([busybox]):
        raise OSError(f"{busybox} is dynamically linked; install busybox-static")
    return [
        Entry("file", "/bin/busybox", source=os.path.realpath(busybox), mode=0o755),
        Entry("symlink", "/bin/sh", source="busybox"),
    ]


def system_entries() -> list[Entry]:
    entries = [Entry("dir", path) for path in EMPTY_DIRS]
    for guest_path, host in HOST_TOOLS.items():
        if os.path.exists(host):
            entries.append(Entry("file", guest_path, source=os.path.realpath(host)))
    if os.path.exists(
        LD_SO_CACHE
    ):  # library lookups by name (ctypes.util, ebpfpy's uprobe resolver) read it
        entries.append(Entry("file", LD_SO_CACHE, source=LD_SO_CACHE))
    entries.append(Entry("chardev", "/dev/console", mode=0o600, rdev=(5, 1)))
    entries += [
        Entry("data", path, payload=payload) for path, payload in ETC_FILES.items()
    ]
    return entries


def base_entries(python: PythonEnv) -> list[Entry]:
    """Everything that changes only when the running Python or its packages change: a minimal
    system, busybox, and `python` (`python_environment`; its `extra_dists` adds installed
    distributions ebpfpy does not declare, a stopgap: an undeclared import failing in the guest
    usually means pyproject.toml lacks it)."""
    entries = system_entries() + busybox_entries() + python.entries
    return dedupe(with_libraries(entries))
