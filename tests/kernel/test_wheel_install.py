"""`pip install .` needs no compiler: the wheel is py3-none-any and traces from a fresh venv.

The wheel is built and installed with no C compiler to be found (PATH without gcc/cc/clang,
CC=/bin/false); the venv gets the run-time dependencies from pip's cache or PyPI, or, when
neither is reachable, from this interpreter's site-packages (``--system-site-packages``,
then ebpfpy itself still comes from the wheel). Then the venv's console scripts trace as root.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.kernel]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPILERS = ("gcc", "cc", "c99", "clang", "x86_64-linux-gnu-gcc")


def no_compiler_env(tmp_path, venv_bin: str | None = None) -> dict[str, str]:
    """PATH with the venv's scripts and the basic tools only; every compiler name is /bin/false."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for name in ("sh", "true", "cat", "uname", "ls", "env"):
        for base in ("/usr/bin", "/bin"):
            if os.path.exists(f"{base}/{name}") and not (tools / name).exists():
                (tools / name).symlink_to(f"{base}/{name}")
    for name in COMPILERS:
        if not (tools / name).exists():
            (tools / name).symlink_to("/bin/false")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=os.pathsep.join(p for p in (venv_bin, str(tools)) if p), CC="/bin/false", CXX="/bin/false",
               LDSHARED="/bin/false", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def run(args, env, cwd, timeout=600):
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def test_wheel_is_pure_and_traces_from_a_fresh_venv(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("tracing needs root")
    if importlib.util.find_spec("pip") is None or importlib.util.find_spec("venv") is None:
        pytest.skip("no pip or venv here (the qemu guest's initramfs carries neither)")
    env = no_compiler_env(tmp_path)
    # Built from a copy: setuptools leaves build/ and *.egg-info in the tree it builds.
    src = tmp_path / "src"
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info", "build")
    shutil.copytree(os.path.join(ROOT, "ebpfpy"), src / "ebpfpy", ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(os.path.join(ROOT, name), src / name)
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", str(src), "-w", str(dist)], env, tmp_path)
    (wheel,) = dist.glob("ebpfpy-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        tag = z.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
    assert "Root-Is-Purelib: true" in tag and "Tag: py3-none-any" in tag, tag
    assert not [n for n in names if n.endswith((".so", ".c", ".h"))], names
    assert "ebpfpy/sys/_libc_ffi.py" in names

    venv = tmp_path / "venv"
    bin_dir = str(venv / "bin")
    run([sys.executable, "-m", "venv", str(venv)], env, tmp_path)
    venv_env = no_compiler_env(tmp_path, bin_dir)
    installed = subprocess.run([f"{bin_dir}/python", "-m", "pip", "install", "-q", str(wheel)], env=venv_env,
                               cwd=tmp_path, capture_output=True, text=True, timeout=600)
    if installed.returncode != 0:  # no PyPI and no cache: the dependencies from this interpreter
        venv = tmp_path / "venv-system"
        bin_dir = str(venv / "bin")
        run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], env, tmp_path)
        venv_env = no_compiler_env(tmp_path, bin_dir)
        run([f"{bin_dir}/python", "-m", "pip", "install", "-q", "--no-deps", str(wheel)], venv_env, tmp_path)
    where = run([f"{bin_dir}/python", "-c", "import ebpfpy, sys; print(ebpfpy.__file__)"], venv_env, tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's copy, not this checkout

    hello = run([f"{bin_dir}/pybpftrace", "-e", 'BEGIN { printf("hello\\n"); exit(); }'], venv_env, tmp_path,
                timeout=120)
    assert "hello" in hello.stdout, hello.stdout
    traced = run([f"{bin_dir}/pybpftrace", "-c", "/bin/cat /etc/hostname", "-e",
                  "tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @opens = count(); }"],
                 venv_env, tmp_path, timeout=120)
    assert "@opens: " in traced.stdout, traced.stdout
    listed = run([f"{bin_dir}/ebpfpy", "map", "list"], venv_env, tmp_path, timeout=120)
    assert "Traceback" not in listed.stderr
