"""End to end: tests/vm/run boots Debian's 6.1 cloud kernel and the kprobe proof passes there.

Takes ~20-30 s (a TCG boot plus pytest start-up in the guest; the first run
also downloads the kernel package and builds the initramfs), hence `slow`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(ROOT, "tests", "vm", "run")


def _missing_tools() -> list[str]:
    return [
        tool
        for tool in ("qemu-system-x86_64", "apt-get", "dpkg-deb", "busybox")
        if not shutil.which(tool)
    ]


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("EBPFPY_VM")), reason="already inside the qemu guest"
)
@pytest.mark.skipif(
    bool(_missing_tools()), reason=f"missing {' '.join(_missing_tools())}"
)
def test_guest_runs_the_kprobe_proof_and_reports_its_status():
    result = subprocess.run(
        [RUNNER, "--timeout", "300", "tests/vm/test_guest_kprobe.py", "-q", "-rs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "3 passed" in result.stdout, report
    assert "SKIPPED" not in result.stdout, report  # the kprobe tests ran for real
    assert "kprobe_pmu=none" not in result.stderr and "btf=yes" in result.stderr, report


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("EBPFPY_VM")), reason="already inside the qemu guest"
)
@pytest.mark.skipif(
    bool(_missing_tools()), reason=f"missing {' '.join(_missing_tools())}"
)
def test_guest_failure_status_reaches_the_host():
    """A failing selection must fail the runner: pytest's status 4 (usage error) comes back as is."""
    result = subprocess.run(
        [RUNNER, "--timeout", "300", "--no-such-pytest-option"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert "pytest exit status 4" in result.stderr
