"""Unit tests for the pure parts of the qemu runner (tests/vm/vmrun): no qemu, no kernel."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vmrun import cli, corpus, guest, initramfs, kernels, prebuild, rootfs
from vmrun.cpio import CpioWriter


def read_newc(data: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    """(name, mode, payload, rdev) per member, checking magic and 4-byte alignment on the way."""
    members, offset = [], 0
    while True:
        assert offset % 4 == 0
        header = data[offset : offset + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, namesize = (
            fields[1],
            fields[6],
            (fields[9], fields[10]),
            fields[11],
        )
        name_start = offset + 110
        name = data[name_start : name_start + namesize - 1].decode()
        assert data[name_start + namesize - 1] == 0
        body = name_start + namesize + (-(110 + namesize) & 3)
        payload = data[body : body + size]
        offset = body + size + (-size & 3)
        if name == "TRAILER!!!":
            assert offset == len(data)
            return members
        members.append((name, mode, payload, rdev))


def sample_archive(tmp_path) -> bytes:
    source = tmp_path / "hello.txt"
    source.write_bytes(b"hello, guest\n")
    source.chmod(0o751)
    stream = io.BytesIO()
    writer = CpioWriter(stream)
    writer.file("/opt/a/b/hello.txt", str(source))
    writer.data("/init", b"#!/bin/sh\n", mode=0o755)
    writer.symlink("/lib", "usr/lib")
    writer.chardev("/dev/console", 5, 1)
    writer.dir("/opt/a")  # already emitted as a parent: not repeated
    writer.close()
    return stream.getvalue()


def test_cpio_members_parents_first_with_modes(tmp_path):
    members = read_newc(sample_archive(tmp_path))
    names = [m[0] for m in members]
    assert names == [
        "opt",
        "opt/a",
        "opt/a/b",
        "opt/a/b/hello.txt",
        "init",
        "lib",
        "dev",
        "dev/console",
    ]
    by_name = {m[0]: m for m in members}
    assert by_name["opt/a/b/hello.txt"][2] == b"hello, guest\n"
    assert stat.S_IMODE(by_name["opt/a/b/hello.txt"][1]) == 0o751
    assert stat.S_ISLNK(by_name["lib"][1]) and by_name["lib"][2] == b"usr/lib"
    assert stat.S_ISCHR(by_name["dev/console"][1]) and by_name["dev/console"][3] == (
        5,
        1,
    )
    assert stat.S_ISDIR(by_name["opt"][1])


@pytest.mark.skipif(not shutil.which("cpio"), reason="cpio(1) not installed")
def test_cpio_archive_extracts_with_gnu_cpio(tmp_path):
    data = sample_archive(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    # GNU cpio cannot mknod as non-root; list everything, extract the rest.
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=data, capture_output=True, check=True
    )
    assert listing.stdout.decode().split() == [
        "opt",
        "opt/a",
        "opt/a/b",
        "opt/a/b/hello.txt",
        "init",
        "lib",
        "dev",
        "dev/console",
    ]
    subprocess.run(
        ["cpio", "-id", "--quiet", "opt/*", "init"], input=data, cwd=out, check=True
    )
    assert (out / "opt/a/b/hello.txt").read_bytes() == b"hello, guest\n"
    assert (out / "init").read_bytes() == b"#!/bin/sh\n"


def test_cpio_rejects_paths_escaping_the_root():
    writer = CpioWriter(io.BytesIO())
    with pytest.raises(ValueError):
        writer.data("/../etc/passwd", b"")


@pytest.mark.parametrize(
    "argv, kernel, pytest_args",
    [
        ([], None, []),
        (["-m", "kernel"], None, ["-m", "kernel"]),
        (["--kernel", "6.12", "-m", "kprobes", "-q"], "6.12", ["-m", "kprobes", "-q"]),
        (["--kernel=all", "tests/vm"], "all", ["tests/vm"]),
        (["--timeout", "60", "--", "--kernel", "x"], None, ["--kernel", "x"]),
        (
            ["-k", "foo", "--kernel", "6.1"],
            None,
            ["-k", "foo", "--kernel", "6.1"],
        ),  # only leading options
    ],
)
def test_runner_options_come_first_and_the_rest_goes_to_pytest(
    argv, kernel, pytest_args
):
    options = cli.parse_args(argv)
    assert options.kernel == kernel
    assert options.pytest_args == pytest_args


def test_runner_option_values_are_converted():
    options = cli.parse_args(
        [
            "--timeout",
            "60",
            "--smp",
            "1",
            "--with-dist",
            "a",
            "--with-dist=b",
            "--show-boot",
        ]
    )
    assert (options.timeout, options.smp, options.extra_dists, options.show_boot) == (
        60.0,
        1,
        ["a", "b"],
        True,
    )


def test_console_parser_separates_boot_tests_and_status():
    shown = []
    parser = guest.ConsoleParser(shown.append)
    text = (
        b"[    0.5] early boot\r\n"
        b"EBPFPY-VM-GUEST kernel=6.1.0-56-cloud-amd64 kprobe_pmu=6\r\n"
        b"EBPFPY-VM-BEGIN\r\n"
        b"collecting ... \rcollected 3 items\r\n"
        b"E   assert 'EBPFPY-VM-EXIT=0' == ''\r\n"
        b"3 passed in 1.00s\r\n"
        b"EBPFPY-VM-EXIT=1\r\n"
        b"[   12.0] reboot: Power down\r\n"
    )
    for index in range(0, len(text), 7):  # arbitrary chunk boundaries
        parser.feed(text[index : index + 7])
    parser.finish()
    assert shown == [
        "collected 3 items",
        "E   assert 'EBPFPY-VM-EXIT=0' == ''",
        "3 passed in 1.00s",
    ]
    assert parser.status == 1
    assert parser.banner == "kernel=6.1.0-56-cloud-amd64 kprobe_pmu=6"
    assert parser.boot_log == ["[    0.5] early boot", "[   12.0] reboot: Power down"]


def test_console_parser_without_marker_has_no_status():
    parser = guest.ConsoleParser(lambda line: None)
    parser.feed(b"Kernel panic - not syncing: Attempted to kill init!\r\n")
    parser.finish()
    assert parser.status is None and parser.boot_log[-1].startswith("Kernel panic")


def test_qemu_command_uses_tcg_serial_console_and_no_reboot():
    command = guest.qemu_command("/k", "/i", smp=2, memory="2G")
    assert command[command.index("-accel") + 1].startswith("tcg")
    assert (
        command[command.index("-kernel") + 1] == "/k"
        and command[command.index("-initrd") + 1] == "/i"
    )
    assert "-no-reboot" in command and command[command.index("-serial") + 1] == "stdio"
    assert "console=ttyS0" in command[command.index("-append") + 1]


def test_apt_stanzas_and_version_shapes():
    text = (
        "Package: linux-image-cloud-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-cloud-amd64 "
        "(= 6.1.192-2)\nDescription: meta\n more text\n\nPackage: linux-image-cloud-amd64\nVersion: 6.1.176-1\n"
    )
    stanzas = kernels.parse_stanzas(text)
    assert [s["Version"] for s in stanzas] == ["6.1.192-2", "6.1.176-1"]
    assert stanzas[0]["Description"] == "meta\nmore text"
    assert (
        kernels.as_release("6.1.170-3") is None
    )  # a package version, looked up in apt instead
    assert kernels.as_release("6.1.0-47") == "6.1.0-47-cloud-amd64"
    assert kernels.as_release("6.12.117+deb12") == "6.12.117+deb12-cloud-amd64"
    assert kernels.as_release("6.1.0-50-cloud-amd64") == "6.1.0-50-cloud-amd64"
    assert kernels._version_key("6.1.192-2") > kernels._version_key("6.1.176-1")
    assert kernels.Kernel("6.12.117+deb12-cloud-amd64", "p", "v").series == "6.12"


def test_host_path_recreates_symlinked_directories(tmp_path):
    real = tmp_path / "usr" / "lib"
    real.mkdir(parents=True)
    (real / "libx.so.1.2").write_bytes(b"\x7fELF")
    (real / "libx.so.1").symlink_to("libx.so.1.2")
    (tmp_path / "lib").symlink_to("usr/lib")
    entries = rootfs.host_path(str(tmp_path / "lib" / "libx.so.1"))
    assert [(e.kind, e.path, e.source) for e in entries] == [
        ("symlink", str(tmp_path / "lib"), "usr/lib"),
        ("symlink", str(real / "libx.so.1"), "libx.so.1.2"),
        ("file", str(real / "libx.so.1.2"), str(real / "libx.so.1.2")),
    ]


def test_libraries_glibc_dlopens_are_shipped():
    """libgcc_s: dlopened by glibc for pthread_exit, so ldd never names it (test_guest_python)."""
    (path,) = rootfs.dlopened_libraries(["libgcc_s.so.1"])
    assert os.path.basename(os.path.realpath(path)).startswith("libgcc_s.so")
    shipped = {e.path for e in rootfs.with_libraries([]) if e.kind == "file"}
    assert os.path.realpath(path) in shipped
    with pytest.raises(OSError, match=r"libnosuch\.so\.9"):
        rootfs.dlopened_libraries(["libnosuch.so.9"])


def test_distribution_closure_follows_ebpfpy_requirements():
    names = {
        rootfs._normalise(d.metadata["Name"]) for d in rootfs.distribution_closure().dists
    }
    assert {
        "pytest",
        "pluggy",
        "hypothesis",
        "cffi",
        "pycparser",
        "click",
        "pyelftools",
    } <= names
    assert "ebpfpy" not in names and "numpy" not in names


PROBE_ENVIRONMENT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from vmrun import initramfs, rootfs
python = rootfs.python_environment()
print(json.dumps({
    "executable": sys.executable,
    "paths": [e.path for e in python.entries],
    "dists": {d.metadata["Name"]: rootfs.distribution_site(d) for d in python.closure.dists},
    "missing": python.closure.missing,
    "path_dirs": python.path_dirs,
    "PATH": initramfs.guest_env("/checkout", "k", {}, tuple(python.path_dirs))["PATH"],
    "PYTHONPATH": initramfs.guest_env("/checkout", "k", {}, tuple(python.path_dirs))["PYTHONPATH"],
}))
"""


def _fake_dist(site, name: str, requires: list[str], files: dict[str, str]) -> None:
    """An installed distribution as pip leaves it: `<name>-1.0.dist-info` with METADATA and a
    RECORD naming `files` ({path relative to site: content}) and itself."""
    info = f"{name.replace('-', '_')}-1.0.dist-info"
    (site / info).mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0"]
    lines += [f"Requires-Dist: {text}" for text in requires]
    (site / info / "METADATA").write_text("\n".join(lines) + "\n")
    for relative, content in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(content)
    record = [*files, f"{info}/METADATA", f"{info}/RECORD"]
    (site / info / "RECORD").write_text("".join(f"{path},,\n" for path in record))


def test_the_running_interpreters_environment_is_shipped(tmp_path):
    """Started from a virtual environment, the runner ships that environment: the guest's PATH
    leads to the venv's own `bin/python3` (so CPython finds its `pyvenv.cfg`), and the
    distributions come from where that interpreter imports them. Here the venv holds its own
    `ebpfpy` metadata (an editable install's: the package itself comes from the checkout),
    requiring a dependency only the venv has and one nobody has, and sees pytest through a
    `.pth` naming this interpreter's site directory, which the guest must get on PYTHONPATH."""
    from importlib import metadata

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = venv.glob("lib/python*/site-packages")
    outer = {rootfs.distribution_site(metadata.distribution(name)) for name in ("pytest", "packaging")}
    (site / "outer.pth").write_text("".join(f"{path}\n" for path in sorted(outer)))
    _fake_dist(site, "ebpfpy", ["vmrun-probe-dep", "vmrun-not-installed-anywhere", 'pytest; extra == "test"'],
               {"__editable__.ebpfpy-1.0.pth": "# an editable install's hook\n",
                "ebpfpy/__init__.py": "# a non-editable copy: the checkout's is used\n"})
    _fake_dist(site, "vmrun-probe-dep", [], {"vmrun_probe_dep.py": "VALUE = 1\n"})
    # Not run in the checkout: `-c` puts the working directory first on sys.path, and its
    # ebpfpy.egg-info would answer for ebpfpy (tests/vm/run has its own directory there instead).
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", PROBE_ENVIRONMENT, cli.HERE],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shipped = json.loads(proc.stdout)
    assert shipped["executable"] == str(venv / "bin" / "python")
    assert shipped["PATH"].split(":")[0] == str(venv / "bin")
    paths = set(shipped["paths"])
    assert {str(venv / "bin" / "python3"), str(venv / "pyvenv.cfg")} <= paths
    assert os.path.realpath(venv / "bin" / "python3") in paths  # the binary the venv's links lead to
    assert shipped["dists"]["vmrun-probe-dep"] == str(site)
    assert str(site / "vmrun_probe_dep.py") in paths
    assert {str(site / "ebpfpy-1.0.dist-info" / "METADATA"), str(site / "__editable__.ebpfpy-1.0.pth")} <= paths
    assert str(site / "ebpfpy" / "__init__.py") not in paths
    # ebpfpy's requirements are the venv's metadata's: this interpreter's ebpfpy would bring cffi.
    assert "pytest" in shipped["dists"] and "cffi" not in shipped["dists"]
    assert shipped["dists"]["pytest"] in outer
    assert shipped["missing"] == ["vmrun-not-installed-anywhere"]
    assert set(shipped["path_dirs"]) == outer
    assert shipped["PYTHONPATH"].split(":")[0] == "/checkout"


def test_this_interpreter_is_the_guests():
    """Run from the system Python or a venv alike, the guest's `python3` is the one running."""
    entries = rootfs.interpreter_entries()
    paths = {e.path for e in entries}
    assert os.path.realpath(sys.executable) in paths
    assert rootfs.guest_bin_dir() == os.path.dirname(os.path.abspath(sys.executable))
    assert os.path.join(rootfs.guest_bin_dir(), "python3") in paths
    assert (os.path.join(sys.prefix, "pyvenv.cfg") in paths) == (sys.prefix != sys.base_prefix)
    env = initramfs.guest_env("/checkout", "k", {})
    assert env["PATH"].startswith(rootfs.guest_bin_dir() + ":")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_requirements_from_the_checkout_when_ebpfpy_is_not_installed():
    """A venv that imports ebpfpy through PYTHONPATH only: the requirements come from pyproject.toml."""
    closure = rootfs.distribution_closure(root="vmrun-no-such-project")
    assert closure.project is None
    names = {rootfs._normalise(d.metadata["Name"]) for d in closure.dists}
    assert {"pyelftools", "cffi", "click", "pytest"} <= names
    with pytest.raises(OSError, match="--with-dist vmrun-no-such-dist"):
        rootfs.distribution_closure(also=("vmrun-no-such-dist",))


def test_stdlib_selection_skips_test_suites_and_gui():
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    paths = {os.path.relpath(e.path, stdlib) for e in rootfs.stdlib_entries(stdlib)}
    assert "os.py" in paths and "json/decoder.py" in paths
    assert not any(
        p.startswith(("test/", "idlelib/", "tkinter/", "ensurepip/", "site-packages/"))
        for p in paths
    )


@pytest.mark.skipif(not shutil.which(prebuild.BPF_CLANG), reason=f"needs {prebuild.BPF_CLANG}")
def test_marked_bpf_objects_are_prebuilt(tmp_path):
    """Only tests/bpf_objects sources with the marker line are built (against a vmlinux.h made
    once in the cache directory), and a built object is reused while newer than its source."""
    src = tmp_path / "tests" / "bpf_objects"
    src.mkdir(parents=True)
    body = "int x = 1;\n"
    (src / "marked.bpf.c").write_text(f"/* {prebuild.BPF_MARKER} */\n" + body)
    (src / "plain.bpf.c").write_text(body)
    out = tmp_path / "cache"
    out.mkdir()
    (out / "vmlinux.h").write_text("/* stand-in */\n")
    built = prebuild.build_bpf_objects(str(tmp_path), str(out))
    assert list(built) == ["marked.bpf.o"]
    with open(built["marked.bpf.o"], "rb") as f:
        assert f.read(4) == b"\x7fELF"
    mtime = os.path.getmtime(built["marked.bpf.o"])
    assert prebuild.build_bpf_objects(str(tmp_path), str(out)) == built
    assert os.path.getmtime(built["marked.bpf.o"]) == mtime


def _elf_image(machine: int, body: bytes) -> bytes:
    """A minimal ELF64 LE image: header, `body`, then one section header at e_shoff."""
    shoff = 64 + len(body)
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    header[18:20] = machine.to_bytes(2, "little")
    header[0x28:0x30] = shoff.to_bytes(8, "little")
    header[0x3A:0x3E] = (64).to_bytes(2, "little") + (1).to_bytes(2, "little")
    return bytes(header) + body + b"\x00" * 64


def test_corpus_cuts_embedded_bpf_images_and_names_them_by_executable(tmp_path):
    """Only EM_BPF images are cut, each ending at its section header table; a second image in
    one executable is `NAME-1`; the guest side finds them again by name."""
    bpf_a, bpf_b = _elf_image(corpus.EM_BPF, b"A" * 8), _elf_image(corpus.EM_BPF, b"B" * 16)
    host = _elf_image(62, b"x86 code")  # EM_X86_64: the executable itself
    (tmp_path / "tool").write_bytes(host + b"pad" + bpf_a + b"tail" + bpf_b)
    (tmp_path / "other").write_bytes(host)
    assert corpus.embedded_bpf_objects((tmp_path / "tool").read_bytes()) == [bpf_a, bpf_b]
    out = tmp_path / "out"
    objs = corpus.extract([str(tmp_path / "tool"), str(tmp_path / "other")], str(out))
    assert list(objs) == ["tool", "tool-1"]
    assert (out / "tool.bpf.o").read_bytes() == bpf_a and (out / "tool-1.bpf.o").read_bytes() == bpf_b
    assert corpus.objects_in(str(out)) == objs


def test_corpus_ships_nothing_without_the_package(tmp_path, monkeypatch):
    """No libbpf-tools on the host: no files, no variables (the guest test then skips)."""
    monkeypatch.setattr(corpus, "package_version", lambda package=corpus.PACKAGE: None)
    assert corpus.guest_files(str(tmp_path)) == ({}, {})
    assert not (tmp_path / corpus.PACKAGE).exists()


def test_corpus_ships_objects_and_bpftool_off_path(tmp_path, monkeypatch):
    """The objects land under /vm/libbpf-tools, bpftool at /vm/tools/bpftool (not on PATH),
    both named in the guest's environment; a finished cut is reused."""
    exe = tmp_path / "tool"
    exe.write_bytes(_elf_image(corpus.EM_BPF, b"A" * 8))
    tool = tmp_path / "bpftool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(corpus, "package_version", lambda package=corpus.PACKAGE: "1.0-1")
    monkeypatch.setattr(corpus, "package_files", lambda package=corpus.PACKAGE: [str(exe)])
    files, env = corpus.guest_files(str(tmp_path / "cache"))
    assert env == {corpus.OBJECTS_ENV: "/vm/libbpf-tools", corpus.BPFTOOL_ENV: "/vm/tools/bpftool"}
    assert files["/vm/tools/bpftool"] == str(tool)
    cut = files["/vm/libbpf-tools/tool.bpf.o"]
    assert cut.startswith(str(tmp_path / "cache" / corpus.PACKAGE / "1.0-1"))
    monkeypatch.setattr(corpus, "package_files", lambda package=corpus.PACKAGE: pytest.fail("cut again"))
    assert corpus.guest_files(str(tmp_path / "cache")) == (files, env)
