"""Which bpftrace language pybpftrace speaks: 0.17's (Debian stable's) or today's (0.26).

One switch, read in one place: ``--compat=VERSION`` on the command line, else the
environment variable ``PYBPFTRACE_COMPAT``, else ``DEFAULT``. The passes that
behave differently take the version as an argument (``parse(compat=...)``,
``semantic.Env.compat``), so each can be tested in both modes without touching the
environment. ``is_modern`` is the one question they ask.

The differential tests against the installed bpftrace 0.17 run with
``PYBPFTRACE_COMPAT=0.17`` (their ``conftest.py`` sets it).
"""
from __future__ import annotations

import os

V017 = "0.17"
V026 = "0.26"
VERSIONS = (V017, V026)
DEFAULT = V026
ENV_VAR = "PYBPFTRACE_COMPAT"


class CompatError(ValueError):
    """A version we do not speak; ``str()`` is the ``ERROR: ...`` line the CLI prints."""


def check(version: str, where: str = "--compat") -> str:
    """``version`` normalised (``0.17.0`` and ``v0.17`` are 0.17); CompatError when unknown."""
    text = version.strip().lstrip("v")
    for known in VERSIONS:
        if text == known or text.startswith(known + "."):
            return known
    raise CompatError(f"ERROR: {where}: unknown bpftrace version '{version}' (known: {', '.join(VERSIONS)})")


def default(environ=None) -> str:
    """The version when none is given: ``PYBPFTRACE_COMPAT`` if set, else ``DEFAULT``."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV_VAR)
    return check(value, ENV_VAR) if value else DEFAULT


def resolve(version: str | None) -> str:
    """``version`` checked, or the default when it is None."""
    return default() if version is None else check(version)


def is_modern(version: str | None) -> bool:
    """Whether ``version`` (None: the default) is today's language rather than 0.17's."""
    return resolve(version) != V017
