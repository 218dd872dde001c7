"""Pure helpers of bench/harness.py: statistics, the ratio/target verdicts, the writers; and
that the ebpfpy it times never comes from the current directory."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))

import harness
from harness import Metric, Target, fmt, interleave, median, ratio, render_markdown, spread


def test_median_odd_even_and_empty():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    assert median([]) is None
    assert median([None, 5]) == 5


def test_spread():
    assert spread([3, 1, 2]) == (1, 3)
    assert spread([]) is None


def test_ratio_edges():
    assert ratio(1, 4) == 0.25
    assert ratio(None, 4) is None
    assert ratio(0, 0) == 1.0
    assert ratio(3, 0) is None


@pytest.mark.parametrize("target,value,expected", [
    (Target("le", 0.5), 0.5, True),
    (Target("le", 0.5), 0.51, False),
    (Target("ge", 1.0), 0.99, False),
    (Target("ge", 1.0), 1.0, True),
    (Target("report"), 3.0, None),
    (Target("le", 1.0), None, None),
])
def test_target_met(target, value, expected):
    assert target.met(value) is expected


def test_metric_uses_medians_and_verdict():
    m = Metric("x", "s", Target("le", 0.5), "how")
    m.samples = {"ebpfpy": [1.0, 9.0, 2.0], "bpftrace": [4.0, 4.0, 100.0]}
    assert m.result("ebpfpy") == 2.0
    assert m.result("bpftrace") == 4.0
    assert m.ratio() == 0.5
    assert m.met() is True
    m.samples["ebpfpy"] = [3.0]
    assert m.met() is False


def test_metric_na_has_no_ratio_or_verdict():
    m = Metric("x", "s", Target("le", 0.5), "how")
    m.samples = {"ebpfpy": [], "bpftrace": [1.0]}
    m.na = {"ebpfpy": "parse error"}
    assert m.ratio() is None
    assert m.met() is None
    assert m.cell("ebpfpy") == "n/a (parse error)"


def test_not_more_target_compares_absolute_values():
    m = Metric("lost", "events", Target("not_more"), "how")
    m.samples = {"ebpfpy": [10], "bpftrace": [0]}
    assert m.met() is False
    m.samples = {"ebpfpy": [0], "bpftrace": [0]}
    assert m.met() is True


def test_ratio_fn_overrides():
    m = Metric("x", "", Target("le", 1.0), "how", ratio_fn=lambda m: 1.2)
    m.samples = {"ebpfpy": [1], "bpftrace": [1]}
    assert m.ratio() == 1.2 and m.met() is False


def test_interleave_alternates_and_records_failures():
    calls = []

    def ok(name):
        def f():
            calls.append(name)
            return len(calls)
        return f

    def bad():
        calls.append("bad")
        raise harness.ToolFailed("boom")

    samples, errors = interleave(3, {"ebpfpy": ok("a"), "bpftrace": bad})
    assert calls == ["a", "bad", "a", "a"]  # a tool that never worked is not retried
    assert samples["ebpfpy"] == [1, 3, 4]
    assert errors == {"bpftrace": "boom"}


def test_fmt():
    assert fmt(None) == "n/a"
    assert fmt(0) == "0"
    assert fmt(12345.6) == "12,346"
    assert fmt(0.01234) == "0.0123"
    assert fmt(1.5) == "1.50"


def test_markdown_table_and_json(tmp_path):
    good = Metric("fast", "s", Target("le", 0.5), "timed")
    good.samples = {"ebpfpy": [0.1, 0.2, 0.3], "bpftrace": [1.0]}
    slow = Metric("slow", "s", Target("le", 0.5), "timed too")
    slow.samples = {"ebpfpy": [2.0], "bpftrace": [1.0]}
    na = Metric("broken", "s", Target("le", 0.5), "never")
    na.na = {"ebpfpy": "unsupported"}
    na.samples["bpftrace"] = [1.0]
    env = {"date": "today", "kernel": "k"}
    text = render_markdown([good, slow, na], env, [("lib", [1.0, 2.0], "s", ""), ("gone", "missing", "s", "")])
    lines = text.splitlines()
    assert "| metric | ebpfpy | bpftrace | ratio | target | met? |" in lines
    assert any(line.startswith("| fast |") and line.endswith("| yes |") for line in lines)
    assert any(line.startswith("| slow |") and "**NO**" in line for line in lines)
    assert any(line.startswith("| broken |") and "n/a (unsupported)" in line for line in lines)
    assert "Targets missed: slow." in lines
    assert "- kernel: k" in lines
    assert "| gone | n/a (missing) | |" in lines
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    harness.write_results([good, slow], env, [], str(md), str(js))
    data = json.loads(js.read_text())
    row = data["metrics"]["slow"]
    assert row["ebpfpy"] == 2.0 and row["bpftrace"] == 1.0 and row["ratio"] == 2.0
    assert row["met"] is False and row["target"] == "<= 0.5"
    assert row["samples"]["ebpfpy"] == [2.0]


def test_proc_finds_a_line_that_arrived_in_the_same_chunk():
    # Both lines come in one write: the second must still be found (no select() on buffered data).
    with harness.Proc(["sh", "-c", "printf 'Attaching 1 probe...\\nfirst event\\n'; exec sleep 5"]) as p:
        assert p.wait_for(harness.attaching, 5) is not None
        t = p.wait_for(lambda line: line.startswith("first event"), 2)
        assert t is not None and t < 2
        p.stop(5)
        assert p.maxrss_mb is not None and p.maxrss_mb > 0


def test_proc_wait_reports_exit_status_and_error_line():
    with harness.Proc(["sh", "-c", "echo 'ERROR: Unknown error -1: couldn''t set RLIMIT_MEMLOCK' >&2; "
                       "echo 'ERROR: real reason' >&2; exit 3"]) as p:
        p.drain(5)
        assert p.wait(5) == 3
        assert p.error_text() == "ERROR: real reason"


@pytest.fixture
def spawn(tmp_path, monkeypatch):
    """Proc runs its commands under bench/spawn.c (built here with gcc), as bench/run.py does."""
    monkeypatch.setattr(harness, "SPAWN", harness.build_c(str(tmp_path), "spawn"))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_spawn_reports_the_tools_own_peak_rss(spawn):
    # Started straight from this (large) pytest process, a small tool's ru_maxrss could not be
    # below this process's RSS; under spawn it is the tool's own.
    # exec: a shell that is waiting for a child defers SIGINT until the child ends (dash
    # does), which made the stop below time out whenever the signal came after the fork.
    with harness.Proc(["sh", "-c", "echo ready; exec sleep 5"]) as p:
        assert p.wait_for(lambda line: line.startswith("ready"), 5) is not None
        assert p.tool_pid != p.pid
        with open(f"/proc/{p.tool_pid}/comm") as f:
            assert f.read().strip() in ("sh", "sleep")  # before or after the exec
        p.stop(5)  # SIGINT to spawn reaches the tool, which dies of it
        assert p.status == -2
        assert 0 < p.maxrss_mb < min(8.0, _rss_mb() / 2)


def test_spawn_passes_the_exit_status_on(spawn):
    with harness.Proc(["sh", "-c", "exit 7"]) as p:
        p.drain(5)
        assert p.wait(5) == 7


def test_error_line_names_a_tracebacks_exception():
    tb = ("Traceback (most recent call last):\n  File \"<frozen runpy>\", line 198, in _run_module_as_main\n"
          "    import x\nModuleNotFoundError: No module named 'ebpfpy.sys._shim'\n")
    assert harness.error_line(tb) == "ModuleNotFoundError: No module named 'ebpfpy.sys._shim'"
    assert harness.error_line("WARNING: couldn't set RLIMIT_MEMLOCK\nERROR: bad\nmore\n") == "ERROR: bad"
    assert harness.error_line("\n\n") == ""


def test_proc_error_text_of_a_python_traceback():
    with harness.Proc([sys.executable, "-c", "import no_such_module_here"]) as p:
        p.drain(30)
        assert p.wait(30) == 1
        assert p.error_text() == "ModuleNotFoundError: No module named 'no_such_module_here'"


@pytest.fixture
def shadow_tree(tmp_path, monkeypatch):
    """A current directory holding an ``ebpfpy`` package that must never be imported (as the
    repository's root holds the unbuilt tree), and TOOLS/PYTHON restored afterwards."""
    pkg = tmp_path / "ebpfpy"
    (pkg / "bpftrace").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise SystemExit('imported the shadowing tree')\n")
    (pkg / "bpftrace" / "__main__.py").write_text("raise SystemExit('imported the shadowing tree')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(harness.TOOLS, "ebpfpy", list(harness.TOOLS["ebpfpy"]))
    monkeypatch.setattr(harness, "PYTHON", list(harness.PYTHON))
    monkeypatch.setattr(harness, "ENV_DROP", set(harness.ENV_DROP))
    return tmp_path


def test_checkout_tool_keeps_the_current_directory_off_sys_path(shadow_tree):
    harness.use_checkout()
    assert harness.TOOLS["ebpfpy"][:2] == [sys.executable, *harness.SAFE_PATH]
    # The same interpreter and flags as the tool, asked where ebpfpy would come from.
    code = "import importlib.util as u; s = u.find_spec('ebpfpy'); print(s.origin if s else None)"
    out = subprocess.run([*harness.TOOLS["ebpfpy"][:-2], "-c", code], capture_output=True, text=True, check=True)
    assert str(shadow_tree) not in out.stdout


def test_in_install_runs_in_a_child_that_ignores_the_current_directory(shadow_tree):
    harness.use_checkout()
    report = harness.in_install("harness", "median", [3, 1, 2])
    assert report["result"] == 2
    assert str(shadow_tree) not in report["ebpfpy"]


def test_in_install_failure_is_the_exception_line(shadow_tree):
    with pytest.raises(harness.ToolFailed, match=r"^AttributeError: .*no_such_function"):
        harness.in_install("harness", "no_such_function")


def test_use_venv_runs_the_console_script_without_pythonpath(shadow_tree, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(shadow_tree))
    harness.use_venv("/v")
    assert harness.TOOLS["ebpfpy"] == ["/v/bin/pybpftrace"]
    assert harness.PYTHON == ["/v/bin/python"]
    assert "PYTHONPATH" not in harness.tool_env({"X": "1"}) and harness.tool_env({"X": "1"})["X"] == "1"
    harness.use_checkout()
    assert harness.tool_env()["PYTHONPATH"] == str(shadow_tree)


@pytest.mark.parametrize("before,others,quiet", [
    ([0.1, 0.2, 0.3], 0.02, True),
    ([0.5, 0.2, 0.3], 0.10, True),   # at the bounds (2 CPUs: 0.25 x 2 = 0.5)
    ([0.51, 0.2, 0.3], 0.0, False),  # busy before
    ([0.0, 0.0, 0.0], 0.11, False),  # others ran during the run
])
def test_quiet_rule(before, others, quiet):
    load = harness.judge_quiet(before, [1.5, 1.0, 0.5], 2, others)
    assert load["quiet"] is quiet
    assert load["rule"] == harness.QUIET_RULE and load["after"] == [1.5, 1.0, 0.5]


def test_load_watch_and_its_lines_in_results():
    watch = harness.LoadWatch()
    start = harness.own_cpu_seconds()
    while harness.own_cpu_seconds() - start < 0.05:  # some CPU time of our own
        sum(range(10000))
    load = watch.finish()
    assert len(load["before"]) == 3 and len(load["after"]) == 3
    assert 0 <= load["others_cpu_share"] and isinstance(load["quiet"], bool)
    text = render_markdown([], {"date": "today", "load": load})
    assert "- load average (1, 5, 15 min): " in text
    assert f"- quiet run: {'yes' if load['quiet'] else '**NO**'} ({harness.QUIET_RULE})" in text
