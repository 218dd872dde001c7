"""ebpfpy installed the way its users get it: a wheel built from this tree, in a fresh venv.

The checkout under test is usually an editable install in a shared interpreter, and
that costs start-up time no user pays: the editable finder imports ``importlib.resources``,
``pathlib`` and ``zipfile`` on every run, and the interpreter's other ``.pth`` files run too
(on the test VM a sandbox's certificate hook imports ``certifi``). Timing pybpftrace from a
venv that holds only the wheel and its declared dependencies measures ebpfpy, not the
machine's site-packages.

The venv is made without network access: the dependencies' files are copied from this
interpreter's installation (their RECORD lists them, byte-compiled files included), so the
venv runs exactly the versions the tests ran.

The wheel is installed by pip running under the venv's python (``pip --python``, pip 22.3
or later), so ``venv/bin/pybpftrace`` is the console script a user gets: it starts the
venv's python, with venv/bin (not the current directory) first on sys.path.
"""
from __future__ import annotations

import glob
import importlib.metadata as md
import os
import shutil
import subprocess
import sys

from harness import ROOT

DEPENDENCIES = ("pyelftools", "cffi", "pycparser", "click")  # pyproject's dependencies, cffi's pycparser
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


def build_wheel(tmp: str) -> str:
    """Build ebpfpy's wheel from a copy of this tree (the build leaves nothing in the checkout)."""
    src = os.path.join(tmp, "src")
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info", "build")
    shutil.copytree(os.path.join(ROOT, "ebpfpy"), os.path.join(src, "ebpfpy"), ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src)
    wheels = os.path.join(tmp, "wheel")
    subprocess.run([*PIP, "wheel", "--no-deps", "-w", wheels, src], check=True, capture_output=True)
    return glob.glob(os.path.join(wheels, "ebpfpy-*.whl"))[0]


def copy_distribution(name: str, site_packages: str) -> None:
    """Copy an installed distribution's files (per its RECORD) into another site-packages."""
    dist = md.distribution(name)
    for f in dist.files or []:
        rel = str(f)
        if rel.startswith(".."):  # console scripts live outside site-packages; not needed here
            continue
        src = os.path.realpath(dist.locate_file(f))
        if not os.path.isfile(src):
            continue
        dst = os.path.join(site_packages, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)  # keeps mtimes, so the copied .pyc files still match their sources


def make_venv(tmp: str, wheel: str) -> str:
    """A venv under ``tmp`` holding the wheel (with its console scripts) and the dependencies."""
    venv = os.path.join(tmp, "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, capture_output=True)
    python = os.path.join(venv, "bin", "python")
    # pip byte-compiles what it installs, as it does for every user. Without PYTHONPATH: one naming
    # the tree would make pip take its egg-info for ebpfpy installed already, and install nothing.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([*PIP, "--python", python, "install", "--no-deps", "--no-index", wheel], check=True,
                   capture_output=True, env=env)
    purelib = subprocess.run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    for name in DEPENDENCIES:
        copy_distribution(name, purelib)
    # -I: from the repository's root, plain -c would find the tree's ebpfpy first.
    subprocess.run([python, "-I", "-c", "import ebpfpy.bpftrace.cli, elftools, cffi, click"], check=True,
                   capture_output=True)
    if not os.access(os.path.join(venv, "bin", "pybpftrace"), os.X_OK):
        raise OSError(f"pip installed no {venv}/bin/pybpftrace")
    return venv
