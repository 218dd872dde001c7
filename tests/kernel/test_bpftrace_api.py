"""ebpfpy.bpftrace's Python API on the real kernel: maps read live and at the end, events,
exit(), the CLI's teardown guarantees, and the CLI's own text for the same script."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers import open_fds
from test_attach_common import compile_c, dynamic_events

from ebpfpy.bpftrace import Event, Histogram, MapValues, RunError, Script, Stats
from ebpfpy.sys import bpf
from ebpfpy.sys.errors import BPFError

pytestmark = pytest.mark.kernel

GETTERS = {"prog": bpf.prog_get_fd_by_id, "map": bpf.map_get_fd_by_id, "link": bpf.link_get_fd_by_id}


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bpftrace_api"))
    return {"getpid_loop": compile_c("getpid_loop.c", out, "-O2"),
            "uprobe_target": compile_c("uprobe_target.c", out, "-O2")}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "ebpfpy.bpftrace", *args], capture_output=True, text=True,
                          timeout=120)


def wait_until(condition, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def held_ids() -> dict:
    """Kernel ids of the bpf objects this process holds fds for (from /proc/self/fdinfo)."""
    ids = {"prog": set(), "map": set(), "link": set()}
    for name in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{name}") as fh:
                fields = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
        except OSError:
            continue
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        for kind in ("link", "map", "prog"):
            if f"{kind}_id" in fields:
                ids[kind].add(int(fields[f"{kind}_id"]))
                break
    return ids


def still_alive(ids: dict, timeout: float = 10.0) -> list:
    """Those of ``ids`` that still exist after ``timeout`` (the kernel frees some from a work queue)."""
    def alive():
        found = []
        for kind, group in ids.items():
            for obj_id in group:
                try:
                    GETTERS[kind](obj_id).close()
                    found.append((kind, obj_id))
                except BPFError:
                    pass
        return found

    deadline = time.monotonic() + timeout
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def map_names_in_kernel() -> set:
    names = set()
    for map_id in bpf.iter_ids(bpf.map_get_next_id):
        try:
            fd = bpf.map_get_fd_by_id(map_id)
        except BPFError:
            continue
        with fd:
            names.add(bpf.map_info(fd).name)
    return names


# -- maps ----------------------------------------------------------------------------------------

def test_counts_the_getpid_calls_of_a_command_exactly(progs):
    script = Script("tracepoint:syscalls:sys_enter_getpid /pid == cpid/ { @ = count(); @by[comm] = count(); }",
                    command=f"{progs['getpid_loop']} 1000")
    with script.run() as run:
        assert run.cpid > 0 and run.probe_count == 1
        assert run.wait(timeout=60)  # the run ends when the command does, as with -c
        assert run.exited
    assert run.maps["@"] == 1000
    assert run.maps["@by"] == {"getpid_loop": 1000}
    assert not os.path.exists(f"/proc/{run.cpid}")  # reaped


def test_maps_are_read_live_while_running(progs):
    loop = subprocess.Popen([progs["getpid_loop"], "1000", "--wait"], stdin=subprocess.PIPE)
    try:
        script = Script("tracepoint:syscalls:sys_enter_getpid /pid == $1/ { @ = count(); }",
                        params=[loop.pid], warnings=False)
        with script.run() as run:
            assert run.maps["@"] == 0  # an unset count() reads 0, as bpftrace prints it
            loop.stdin.write(b"go")
            loop.stdin.close()
            wait_until(lambda: run.maps["@"] == 1000, what="1000 getpid calls")
            assert loop.wait(timeout=60) == 0
            assert not run.exited  # $1 is only a number: the run goes on
        assert run.exited
        assert run.maps["@"] == 1000  # the final value, after the run
    finally:
        loop.kill()
        loop.wait()


def test_pid_option_ends_the_run_with_the_process(progs):
    loop = subprocess.Popen([progs["getpid_loop"], "10", "--wait"], stdin=subprocess.PIPE)
    try:
        script = Script("tracepoint:syscalls:sys_enter_getpid /pid == $1/ { @ = count(); }",
                        params=[loop.pid], pid=loop.pid, warnings=False)
        with script.run() as run:
            loop.stdin.write(b"go")
            loop.stdin.close()
            assert run.wait(timeout=60)
        assert run.maps["@"] == 10
    finally:
        loop.kill()
        loop.wait()


SHAPES = r"""BEGIN {
  @h = hist(5); @h = hist(0); @h = hist(-3); @h = hist(1500);
  @l = lhist(5, 0, 10, 2); @l = lhist(100, 0, 10, 2); @l = lhist(-1, 0, 10, 2);
  @s = stats(10); @s = stats(21);
  @a = avg(3); @a = avg(4);
  @k[1, "a"] = count(); @k[2, "b"] = count(); @k[2, "b"] = count();
  @by["x"] = sum(5); @by["y"] = sum(-2);
  @mn = min(3); @mn = min(-4); @mx = max(7);
  @str = "hello"; @t[1] = (1, "b");
  @hk["one"] = hist(1); @hk["two"] = hist(2); @hk["two"] = hist(3);
  printf("%s=%d %5d|%-4s|%x\n", "n", 42, -7, "ab", 255);
  print(@by); print(@k, 1); print(@a); print(5); print((1, "two"));
  exit();
}
END { printf("end %d\n", 1); }
"""


def test_values_have_python_shapes_and_the_cli_text():
    script = Script(SHAPES)
    with script.run() as run:
        events = list(run.events())
    maps = run.maps
    assert maps["@h"] == [(None, 0, 1), (0, 1, 1), (1, 2, 0), (2, 4, 0), (4, 8, 1),
                          *[(1 << i, 2 << i, 0) for i in range(3, 10)], (1024, 2048, 1)]
    assert isinstance(maps["@h"], Histogram) and maps["@h"].labels[-1] == "[1K, 2K)"
    assert maps["@l"] == [(None, 0, 1), (0, 2, 0), (2, 4, 0), (4, 6, 1), (6, 8, 0), (8, 10, 0), (10, None, 1)]
    assert maps["@s"] == Stats(count=2, average=15, total=31)
    assert maps["@a"] == 3
    assert maps["@k"] == {(1, "a"): 1, (2, "b"): 2} and isinstance(maps["@k"], MapValues)
    assert list(maps["@by"].items()) == [("y", -2), ("x", 5)]  # bpftrace's order: by value
    assert (maps["@mn"], maps["@mx"]) == (-4, 7)
    assert maps["str"] == "hello" and maps["@t"] == {1: (1, "b")}
    assert maps["@hk"] == {"one": [(1, 2, 1)], "two": [(2, 4, 2)]}
    assert sorted(maps) == script.map_names

    # Each event's text and the final maps are what pybpftrace prints for the same script.
    out = cli("-e", SHAPES)
    assert out.returncode == 0, out.stderr
    printed = "".join(event.text for event in events)
    assert out.stdout == f"Attaching {run.probe_count} probes...\n" + printed + "\n\n" + maps.text

    assert [e.kind for e in events] == ["printf", "print", "print", "print", "print", "print", "printf"]
    first = events[0]
    assert isinstance(first, Event)
    assert first.format == "%s=%d %5d|%-4s|%x\n" and first.args == ("n", 42, -7, "ab", 255)
    assert first.text == "n=42    -7|ab  |ff\n"
    assert events[1].args == ({"y": -2, "x": 5},) and events[1].args[0].name == "@by"
    assert events[2].args == ({(2, "b"): 2},)  # print(@k, 1): the top entry
    assert events[3].args == (3,) and events[4].args == (5,) and events[5].args == ((1, "two"),)
    assert events[5].text == "(1, two)\n"
    assert events[-1].text == "end 1\n" and events[-1].args == (1,)


def test_json_event_text_is_the_cli_json():
    source = 'BEGIN { printf("a %d\\n", 1); time("%Y\\n"); exit(); }'
    with Script(source).run(fmt="json") as run:
        events = list(run.events())
    assert [e.kind for e in events] == ["printf", "time"]
    assert events[1].format == "%Y\n" and events[1].args == ()
    out = cli("-f", "json", "-e", source)
    assert out.stdout.splitlines()[1:3] == [e.text.rstrip("\n") for e in events]


# -- events and the end of a run -----------------------------------------------------------------

def test_events_timeout_bounds_the_wait():
    with Script('interval:ms:20 { printf("tick\\n"); } END { printf("end\\n"); }').run() as run:
        start = time.monotonic()
        ticks = list(run.events(timeout=0.5))
        elapsed = time.monotonic() - start
        assert 0.5 <= elapsed < 10
        assert ticks and {e.text for e in ticks} == {"tick\n"} and not run.exited
        start = time.monotonic()
        list(run.events(timeout=0))  # what is there, without waiting
        assert time.monotonic() - start < 1
        assert not run.exited
    assert run.exited
    assert [e.text for e in run.events()][-1] == "end\n"  # END ran when the block was left


def test_exit_ends_the_run_and_the_events():
    script = Script('BEGIN { @i = 0; } interval:ms:10 { @i = @i + 1; if (@i == 3) { printf("bye\\n"); exit(); } } '
                    'END { @end = 1; printf("end\\n"); }')
    with script.run() as run:
        texts = [e.text for e in run.events()]  # no timeout: until exit()
        assert run.exited
        assert texts == ["bye\n", "end\n"]
        assert run.maps["@i"] >= 3 and run.maps["@end"] == 1
    with script.run() as run:
        assert run.wait(timeout=60) and run.exited
    assert run.maps["@end"] == 1


def test_exit_in_begin_ends_before_the_block():
    with Script("BEGIN { @x = 1; exit(); } END { @y = 2; }").run() as run:
        assert run.exited
        assert (run.maps["@x"], run.maps["@y"]) == (1, 2)


# -- nothing left behind -------------------------------------------------------------------------

TEARDOWN = """
BEGIN { @begin = 1; }
tracepoint:syscalls:sys_enter_getpid /pid == $1/ { @tp = count(); }
uprobe:{target}:work { @u = count(); }
uretprobe:{target}:work { @ur = count(); }
interval:ms:50 { @ticks = count(); }
END { @end = 1; printf("end\\n"); }
"""


def leftover_uprobe_events(target: str) -> list:
    return [line for text in dynamic_events().values() for line in text.splitlines() if target in line]


@pytest.mark.uprobes
@pytest.mark.parametrize("how", ["normal", "KeyboardInterrupt", "Ctrl-C while waiting", "error"])
def test_nothing_is_left_behind(progs, how):
    target = progs["uprobe_target"]
    script = Script(TEARDOWN.replace("{target}", target), params=[os.getpid()], warnings=False)
    with script.run():  # once, so that what the first run caches (symbols, BTF) is open already
        pass
    fds, before = open_fds(), held_ids()
    raised = {"normal": None, "KeyboardInterrupt": KeyboardInterrupt, "Ctrl-C while waiting": KeyboardInterrupt,
              "error": ValueError}[how]
    try:
        with script.run() as run:
            held = held_ids()
            ours = {kind: held[kind] - before[kind] for kind in held}
            assert len(ours["prog"]) == 6 and ours["map"] and ours["link"]
            subprocess.run([target, "3"], check=True, capture_output=True)
            wait_until(lambda: run.maps["@u"] == 3 and run.maps["@ur"] == 3, what="the uprobes")
            if how == "KeyboardInterrupt":
                signal.raise_signal(signal.SIGINT)  # Ctrl-C
            elif how == "Ctrl-C while waiting":
                threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
                run.wait()  # the script never exits: only the signal ends this
            elif how == "error":
                raise ValueError("an error in the with block")
    except BaseException as err:
        assert raised is not None and isinstance(err, raised)
    else:
        assert raised is None
    assert run.exited
    assert still_alive(ours) == []
    assert open_fds() == fds
    assert leftover_uprobe_events(target) == []
    assert run.maps["@u"] == 3  # the final values stay readable, whatever the end
    ended_in_order = how != "error"  # an error releases everything at once, without END
    assert run.maps["@end"] == (1 if ended_in_order else None)
    assert [e.text for e in run.events()] == (["end\n"] if ended_in_order else [])


def test_a_probe_that_cannot_attach_raises_and_leaves_nothing():
    name = f"@apifail{os.getpid() % 1000000}"
    source = f"tracepoint:syscalls:sys_enter_getpid {{ {name} = count(); }}\nkprobe:no_such_function_xyz {{ }}"
    script = Script(source)
    fds = open_fds()
    with pytest.raises(RunError) as caught:
        script.run().start()
    assert "Error attaching probe: 'kprobe:no_such_function_xyz'" in str(caught.value)
    # the command line prints the same error, after 0.17's warning that tracefs does not list
    # the function (the API keeps warnings apart from the error)
    assert cli("-e", source).stderr.endswith(caught.value.text)
    assert open_fds() == fds
    assert "_" + name[1:15] not in map_names_in_kernel()


def test_command_is_ended_with_the_run():
    script = Script("BEGIN { @t = 1; }", command="/bin/sleep 30")
    with script.run() as run:
        assert run.maps["@t"] == 1 and not run.exited
        assert os.path.exists(f"/proc/{run.cpid}")
    assert not os.path.exists(f"/proc/{run.cpid}")


# -- the README's example ------------------------------------------------------------------------

def test_readme_example_runs_as_written():
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    with open(readme) as fh:
        section = fh.read().split("## Use from Python and Jupyter", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    proc = subprocess.run([sys.executable, "-W", "error", "-c", block], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["6", "{1: 1, 10: 1, 100: 1, 4096: 1, 1000: 2}"]
    assert re.fullmatch(r"printf \((\d+),\) 'tracing pid \1\\n'", lines[2]), lines[2]
    assert lines[3] == "printf (4096,) 'big write: 4096 bytes\\n'"
    assert lines[4] == "Bucket(low=4096, high=8192, count=1)"
    assert lines[5].startswith("[1]                    1 |") and lines[-2].startswith("[4K, 8K)               1 |")
    assert lines[-1] == "['done\\n']"


MODERN = ('begin { @st = stats(10); @st = stats(21); @h = hist(5); @r[1] = (name = "bob", age = 42); '
          '@b[false] = (int64)3; @hk = has_key(@b, false); print((name = "x", n = 1)); exit(); }')


def test_todays_language_and_texts_through_the_api():
    """compat="0.26": values, event texts and map texts are 0.26's, the same as the CLI's in 0.26 mode."""
    script = Script(MODERN, compat="0.26")
    with script.run() as run:
        events = list(run.events())
    maps = run.maps
    assert maps["@r"] == {1: {"name": "bob", "age": 42}}
    assert maps["@hk"] is True and maps["@b"] == {False: 3}
    assert events[0].args == ({"name": "x", "n": 1},) and events[0].text == "{ .name = x, .n = 1 }\n"
    assert "@st: { .count = 2, .average = 15, .total = 31 }\n" in maps.text
    out = cli("--compat=0.26", "-e", MODERN)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "".join(e.text for e in events) + "\n\n" + maps.text
    old = Script('BEGIN { @st = stats(10); exit(); }', compat="0.17")
    with old.run() as run:
        list(run.events())
    assert run.maps.text == "@st: count 1, average 10, total 10\n\n"  # (0.17: an empty line after)
