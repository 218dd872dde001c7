"""`tests/vm/run [runner options] [--] [pytest args...]`: the kernel matrix entry point."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from . import corpus, guest, initramfs, kernels, prebuild

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/vm
PROJECT_ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE_DIR = os.path.join(HERE, "cache")
# Runner statuses, outside pytest's own 0-5.
TIMEOUT = 124  # the guest was killed after --timeout seconds
NO_MARKER = 125  # the guest stopped without reporting a pytest status (panic, crash)
SETUP_FAILED = (
    126  # no guest was started: missing tool, unknown kernel, download or build failure
)

USAGE = """\
usage: tests/vm/run [--kernel SPEC] [--timeout S] [--smp N] [--memory SIZE] [--with-dist D] [--show-boot]
                    [--] [pytest args...]

Boots Debian's cloud kernel under qemu (TCG) with this checkout and the Python
that runs this script (a virtual environment's too: its interpreter, its
site-packages) in an initramfs, runs `python3 -m pytest [pytest args...]` in
the guest, and exits with pytest's status.

  --kernel SPEC   6.1 (default: newest 6.1 in apt), 6.12, a release such as
                  6.1.0-47 or 6.1.0-47-cloud-amd64, a package version such as
                  6.1.170-3, or `all` (each kernel the archive's meta packages name)
  --timeout S     kill the guest after S seconds (default 900)
  --smp N         guest CPUs (default 2)
  --memory SIZE   guest memory (default 2G)
  --with-dist D   also ship installed distribution D (repeatable) although
                  ebpfpy's metadata does not require it
  --show-boot     print the guest's boot log too
Runner options must come before the pytest arguments.

Exit status: pytest's in the guest (the first non-zero one for --kernel all);
124 guest timed out, 125 guest stopped without a status, 126 setup failed.
"""


@dataclass
class Options:
    kernel: str | None = None
    timeout: float = 900.0
    smp: int = 2
    memory: str = "2G"
    show_boot: bool = False
    extra_dists: list[str] = field(default_factory=list)
    pytest_args: list[str] = field(default_factory=list)


_VALUED = {
    "--kernel": "kernel",
    "--timeout": "timeout",
    "--smp": "smp",
    "--memory": "memory",
    "--with-dist": "extra_dists",
}
_CONVERT = {"timeout": float, "smp": int}


def parse_args(argv: list[str]) -> Options:
    """Leading runner options, then everything else verbatim for pytest (so `-m`, `-k` pass through)."""
    options = Options()
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, has_value, value = arg.partition("=")
        if arg == "--":
            index += 1
            break
        if name in _VALUED:
            if not has_value:
                index += 1
                if index >= len(argv):
                    raise SystemExit(f"tests/vm/run: {name} needs a value")
                value = argv[index]
            attr = _VALUED[name]
            if attr == "extra_dists":
                options.extra_dists.append(value)
            else:
                setattr(options, attr, _CONVERT.get(attr, str)(value))
        elif arg == "--show-boot":
            options.show_boot = True
        elif arg in ("-h", "--help") and index == 0:
            print(USAGE, end="")
            raise SystemExit(0)
        else:
            break
        index += 1
    options.pytest_args = argv[index:]
    return options


def log(message: str) -> None:
    print(f"[vm] {message}", file=sys.stderr, flush=True)


def _emit(line: str) -> None:
    print(line, flush=True)


def _extra_env() -> dict[str, str]:
    size = shutil.get_terminal_size((100, 40))
    return {
        "COLUMNS": str(size.columns),
        "LINES": str(size.lines),
        "PY_COLORS": "1" if sys.stdout.isatty() else "0",
    }


def run_one(kernel: kernels.Kernel, options: Options) -> int:
    started = time.monotonic()
    vmlinuz_cached = os.path.exists(
        os.path.join(CACHE_DIR, "kernels", kernel.release, "vmlinuz")
    )
    vmlinuz = kernels.fetch(kernel, CACHE_DIR)
    fetched = time.monotonic()
    base = initramfs.base_archive(CACHE_DIR, tuple(options.extra_dists))
    if base.missing:
        log(f"not installed for {sys.executable}, so not in the guest either: {', '.join(base.missing)}")
    programs = prebuild.build_all(PROJECT_ROOT, os.path.join(CACHE_DIR, "prebuilt"))
    programs.update(prebuild.build_bpf_objects(PROJECT_ROOT, os.path.join(CACHE_DIR, "prebuilt")))
    # The libbpf-tools objects and bpftool for tests/kernel/test_elf_corpus.py (vmrun/corpus.py).
    extra, corpus_env = corpus.guest_files(CACHE_DIR)
    env = initramfs.guest_env(PROJECT_ROOT, kernel.release, {**_extra_env(), **corpus_env}, base.path_dirs)
    pytest_args = ["-p", "no:cacheprovider", *options.pytest_args]
    run = initramfs.run_archive(PROJECT_ROOT, pytest_args, env, programs, extra)
    with tempfile.NamedTemporaryFile(
        dir=CACHE_DIR, prefix="initrd-", suffix=".cpio"
    ) as initrd:
        initramfs.assemble(base, run, initrd.name)
        packed = time.monotonic()
        log(
            f"{kernel.release}: booting ({kernel.package} {kernel.version}); "
            f"pytest {' '.join(options.pytest_args) or '(defaults)'}"
        )
        command = guest.qemu_command(
            vmlinuz, initrd.name, smp=options.smp, memory=options.memory
        )
        result = guest.run(command, options.timeout, _emit)
    if options.show_boot or result.status is None:
        shown = result.boot_log if options.show_boot else result.boot_log[-60:]
        for line in shown:
            print(f"[guest] {line}", file=sys.stderr)
    log(f"{kernel.release}: guest {result.banner or '(no banner)'}")
    log(
        f"{kernel.release}: timing: kernel {fetched - started:.1f}s ({'cached' if vmlinuz_cached else 'downloaded'}), "
        f"initramfs {packed - fetched:.1f}s (base {'built' if base.built else 'cached'}, "
        f"{(base.size + len(run)) / 1e6:.0f} MB), guest {result.seconds:.1f}s, total {time.monotonic() - started:.1f}s"
    )
    if result.timed_out:
        log(f"{kernel.release}: TIMEOUT after {options.timeout:.0f}s; guest killed")
        return TIMEOUT
    if result.status is None:
        log(
            f"{kernel.release}: the guest never printed EBPFPY-VM-EXIT (qemu exit {result.qemu_status}); "
            "boot log above"
        )
        return NO_MARKER
    log(f"{kernel.release}: pytest exit status {result.status}")
    return result.status


REQUIRED_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "busybox": "busybox-static",
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "ldd": "libc-bin",
}


def missing_tools() -> list[str]:
    return [
        f"{tool} (apt: {package})"
        for tool, package in REQUIRED_TOOLS.items()
        if not shutil.which(tool)
    ]


def main(argv: list[str]) -> int:
    # SIGTERM (CI cancelling a job) unwinds like Ctrl-C: qemu is killed, the temporary initrd removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    options = parse_args(argv)
    missing = missing_tools()
    if missing:
        log("missing: " + ", ".join(missing))
        return SETUP_FAILED
    os.makedirs(CACHE_DIR, exist_ok=True)
    try:
        matrix = kernels.resolve(options.kernel)
    except kernels.KernelNotFound as exc:
        log(str(exc))
        return SETUP_FAILED
    statuses = {}
    for kernel in matrix:
        try:
            statuses[kernel.release] = run_one(kernel, options)
        except (OSError, subprocess.CalledProcessError) as exc:
            log(f"{kernel.release}: setting up the guest failed: {exc}")
            statuses[kernel.release] = SETUP_FAILED
    if len(statuses) > 1:
        for release, status in statuses.items():
            log(f"matrix: {release:32} exit {status}")
    return next((status for status in statuses.values() if status != 0), 0)
