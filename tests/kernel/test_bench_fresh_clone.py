"""bench/run.py in a fresh clone, started from the clone's root, measures the wheel it builds.

``python -m ebpfpy.bpftrace`` puts the current directory first on sys.path: run from a
repository's root, the bench used to import the unbuilt tree (no ``ebpfpy.sys._shim`` in a
fresh clone) and every ebpfpy cell read "n/a (Traceback ...)". The clone here is this
repository's HEAD with the working tree's uncommitted changes laid over it, so it has no
build products (extension, egg-info, __pycache__), as on a new machine. A short run
(--runs 1, the startup and library groups, --out a temporary directory so the committed
results stay as they are) must give every ebpfpy cell a number.
"""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIT = ["git", "-c", "safe.directory=*"]

pytestmark = [pytest.mark.kernel, pytest.mark.bpftrace, pytest.mark.slow]


def _git(*args, cwd=ROOT) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _fresh_clone(dst: str) -> str:
    """``git clone`` of ROOT's HEAD into dst, with ROOT's uncommitted changes laid over it."""
    _git("clone", "--quiet", "--no-hardlinks", ROOT, dst)
    # Staged or not: what differs from HEAD (added, changed, deleted), and untracked files.
    changed = _git("diff", "HEAD", "--name-only", "--no-renames", "-z").split("\0")
    changed += _git("ls-files", "-z", "--others", "--exclude-standard").split("\0")
    for rel in filter(None, changed):
        src, out = os.path.join(ROOT, rel), os.path.join(dst, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copy2(src, out)
        elif os.path.lexists(out) and not os.path.lexists(src):
            os.unlink(out)
    return dst


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _table_cells(md: str, header: str) -> list:
    """The rows (lists of cells) of the markdown table whose header line starts with ``header``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("bench/run.py needs root")
    missing = [tool for tool in ("git", "gcc", "bpftool", "bpftrace") if not shutil.which(tool)]
    if missing:
        pytest.skip(f"bench/run.py needs {', '.join(missing)}")
    try:
        _git("rev-parse", "--verify", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the source tree is not a git checkout")
    tmp = tmp_path_factory.mktemp("bench-clone")
    clone = _fresh_clone(str(tmp / "clone"))
    committed = {name: open(os.path.join(clone, "bench", name), "rb").read()
                 for name in ("results.md", "results.json")}
    out = str(tmp / "out")
    argv = [sys.executable, "bench/run.py", "--quick", "--runs", "1", "--only", "startup", "library", "--out", out]
    run = subprocess.run(argv, cwd=clone, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    for name, data in committed.items():
        assert open(os.path.join(clone, "bench", name), "rb").read() == data, f"--out did not keep bench/{name}"
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(out, "results.md")) as f:
        md = f.read()
    return results, md, run.stderr


def test_the_fresh_venvs_wheel_is_what_runs(bench_run):
    results, md, stderr = bench_run
    env = results["env"]
    assert env["pybpftrace"].startswith("venv/bin/pybpftrace"), stderr[-4000:]
    assert env["ebpfpy imported from"].startswith("<venv>/"), env
    assert "- ebpfpy imported from: <venv>/" in md


def test_every_ebpfpy_cell_is_a_number(bench_run):
    results, md, _ = bench_run
    metrics = results["metrics"]
    assert any(name.startswith("start to exit") for name in metrics)
    assert any(name.startswith("compile time") for name in metrics)
    for name, row in metrics.items():
        assert "ebpfpy" not in row["na"], f"{name}: {row['na']['ebpfpy']}"
        assert _is_number(row["ebpfpy"]), f"{name}: {row['ebpfpy']!r}"
    assert results["library"], "no library rows"
    for name, row in results["library"].items():
        assert "na" not in row, f"{name}: {row.get('na')}"
        assert _is_number(row["median"]), f"{name}: {row['median']!r}"
    for cells in _table_cells(md, "| metric | ebpfpy |"):
        assert not cells[1].startswith("n/a"), cells
    for cells in _table_cells(md, "| path | median |"):
        assert not cells[1].startswith("n/a"), cells


def test_in_process_kernel_floor_ran_in_the_venv(bench_run):
    results, _, _ = bench_run
    row = results["metrics"]["start to exit: 5 probes, exit from interval:ms:1"]
    assert "kernel_floor" in row.get("raw", {}), row["notes"]
    assert not any("kernel floor not measured" in note for note in row["notes"]), row["notes"]


def test_the_load_is_recorded_with_the_quiet_rule(bench_run):
    results, md, _ = bench_run
    load = results["env"]["load"]
    assert len(load["before"]) == 3 and len(load["after"]) == 3
    assert all(_is_number(x) and x >= 0 for x in load["before"] + load["after"])
    assert isinstance(load["quiet"], bool) and load["rule"].startswith("quiet = ")
    assert "- load average (1, 5, 15 min): " in md
    assert f"- quiet run: {'yes' if load['quiet'] else '**NO**'} (quiet = " in md
