"""pybpftrace's command line without the kernel: getopt rules, env vars, usage, messages, writers."""
import io
import os

import pytest

from ebpfpy.bpftrace import cli, driver
from ebpfpy.bpftrace.output.writer import make_writer
from ebpfpy.sys.errors import failing_insn


def test_combined_short_flags_like_getopt():
    opts = cli.parse_args(["-lv", "t:syscalls:sys_enter_execve"])
    assert opts.listing and opts.verbose and opts.args == ["t:syscalls:sys_enter_execve"]
    opts = cli.parse_args(["-kk", "-dd", "-qe", "BEGIN{}"])
    assert opts.helper_errors == 2 and opts.debug == 2 and opts.quiet and opts.program == "BEGIN{}"


def test_attached_and_separate_arguments():
    assert cli.parse_args(["-eBEGIN{}"]).program == "BEGIN{}"
    assert cli.parse_args(["-f", "json", "-o", "out", "x.bt"]).fmt == "json"
    assert cli.parse_args(["-fjson", "x.bt"]).fmt == "json"
    assert cli.parse_args(["--include", "a.h", "--include=b.h", "x.bt"]).includes == ["a.h", "b.h"]


def test_options_after_operands_are_still_options():
    # GNU getopt permutes: `pybpftrace script.bt 1 -q` is quiet with one positional parameter
    opts = cli.parse_args(["script.bt", "1", "-q"])
    assert opts.quiet and opts.args == ["script.bt", "1"]


def test_double_dash_ends_options():
    opts = cli.parse_args(["-e", "BEGIN{}", "--", "-5", "x"])
    assert opts.args == ["-5", "x"]


def test_stdin_dash_is_an_operand():
    assert cli.parse_args(["-"]).args == ["-"]


@pytest.mark.parametrize("argv,message", [
    (["-x"], "pybpftrace: invalid option -- 'x'"),
    (["-e"], "pybpftrace: option requires an argument -- 'e'"),
    (["--foo"], "pybpftrace: unrecognized option '--foo'"),
    (["--include"], "pybpftrace: option '--include' requires an argument"),
    (["--unsafe=1"], "pybpftrace: option '--unsafe' doesn't allow an argument"),
])
def test_getopt_errors(argv, message):
    with pytest.raises(cli.UsageError) as err:
        cli.parse_args(argv)
    assert str(err.value) == message


@pytest.mark.parametrize("argv,message", [
    (["-B", "foo", "-e", "x"], "ERROR: USAGE: -B must be either 'line', 'full', or 'none'.\n"),
    (["-p", "abc"], "ERROR: pid 'abc' is not a valid decimal number\n"),
    (["-p", "0"], "ERROR: pid '0' out of valid pid range [1,4194304]\n"),
    (["-p", "-5"], "ERROR: pid '-5' out of valid pid range [1,4194304]\n"),
])
def test_flag_value_errors_exit_1_with_bpftraces_text(argv, message, capsys):
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == message


def test_usage_on_no_arguments_and_errors(capsys):
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("USAGE:\n    pybpftrace [options] filename\n")
    assert "TROUBLESHOOTING OPTIONS:" in err and "BPFTRACE_PERF_RB_PAGES" in err
    assert cli.main(["-x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pybpftrace: invalid option -- 'x'\nUSAGE:\n")
    assert cli.main(["-p", "1", "-c", "/bin/true", "-e", "BEGIN{}"]) == 1
    assert capsys.readouterr().err.startswith("ERROR: USAGE: Cannot use both -c and -p.\nUSAGE:\n")


def test_help_goes_to_stderr_with_status_0_and_version_to_stdout(capsys):
    assert cli.main(["-h"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("USAGE:")
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == "pybpftrace v0.17.0\n"


def test_usage_lists_every_flag_we_accept():
    text = cli.USAGE.format(prog="p")
    for flag in cli.SHORT:
        if flag != "b":  # deprecated and undocumented in bpftrace too
            assert f"-{flag}" in text
    for name in cli.LONG:
        if name != "btf":
            assert f"--{name}" in text


def test_env_defaults_and_values():
    env = cli.read_env({})
    assert env["strlen"] == 64 and env["map_keys_max"] == 4096 and env["max_probes"] == 512
    assert env["perf_pages"] == 64 and env["cat_bytes_max"] == 10240 and env["no_user_symbols"] == 0
    env = cli.read_env({"BPFTRACE_STRLEN": "16", "BPFTRACE_NO_USER_SYMBOLS": "1"})
    assert env["strlen"] == 16 and env["no_user_symbols"] == 1


@pytest.mark.parametrize("value", ["abc", "0", ""])
def test_env_invalid_value(value, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.read_env({"BPFTRACE_STRLEN": value})
    assert stop.value.code == 1
    assert capsys.readouterr().err == ("ERROR: Env var 'BPFTRACE_STRLEN' did not contain a valid uint64_t, "
                                       "or was zero-valued.\n")


def test_strlen_over_200_is_refused(capsys):
    assert driver.run(driver.Options(source="BEGIN{}", strlen=201)) == 1
    assert "BPFTRACE_STRLEN too large to use on stack (201)" in capsys.readouterr().err


def test_missing_script_file(capsys):
    assert cli.main(["/nonexistent/script.bt"]) == 1
    assert capsys.readouterr().err == "ERROR: failed to open file '/nonexistent/script.bt': No such file or directory\n"


def test_failing_instruction_is_the_last_one_the_verifier_walked():
    log = "0: (b7) r0 = 0\n1: (bf) r1 = r10\n2: (79) r0 = *(u64 *)(r1 +8)\ninvalid read from stack\n"
    assert failing_insn(log) == 2
    assert failing_insn("no instructions here") is None


def test_attach_failure_keeps_bpftraces_line():
    text = driver.attach_failure_text("tracepoint:x:y", OSError("boom"))
    assert text.splitlines()[0] == "ERROR: Error attaching probe: 'tracepoint:x:y'"
    assert "boom" in text


@pytest.mark.parametrize("buffering,flushed", [("line", True), ("none", True), ("full", False)])
def test_writer_buffering_modes(buffering, flushed):
    class Stream(io.StringIO):
        flushes = 0

        def flush(self):
            Stream.flushes += 1

    stream = Stream()
    writer = make_writer("text", stream, buffering)
    writer.printf("a\n")
    assert (Stream.flushes > 0) == flushed
    assert stream.getvalue() == "a\n"


def test_exit_separator_goes_to_its_own_stream_under_dash_o():
    out, sep = io.StringIO(), io.StringIO()
    writer = make_writer("json", out)
    writer.separator_stream = sep
    writer.attached(2)
    writer.exit_separator()
    assert out.getvalue() == '{"type": "attached_probes", "data": {"probes": 2}}\n'
    assert sep.getvalue() == "\n\n"


def test_lost_events_text_and_json():
    t, j = io.StringIO(), io.StringIO()
    make_writer("text", t).lost(7)
    make_writer("json", j).lost(7)
    assert t.getvalue() == "Lost 7 events\n"
    assert j.getvalue() == '{"type": "lost_events", "data": {"events": 7}}\n'


def test_invalid_format():
    with pytest.raises(ValueError, match="Invalid output format"):
        make_writer("xml", io.StringIO())


def test_no_user_symbols_prints_user_addresses_as_hex():
    from ebpfpy.bpftrace.services import Services

    assert Services({}, user_symbols=False).usym(0x7F0012345678, os.getpid()) == "0x7f0012345678"


def _break_the_elapsed_builtin(monkeypatch):
    """A compiler bug on purpose: the emitter of the 'elapsed' builtin raises."""
    from ebpfpy.bpftrace.emit.builtins import BuiltinEmitter

    def broken(self, node):
        raise KeyError("deliberately broken emitter")

    monkeypatch.setattr(BuiltinEmitter, "builtin_elapsed", broken)


def test_a_compiler_bug_is_an_internal_compiler_error_not_a_script_error(monkeypatch, capsys):
    _break_the_elapsed_builtin(monkeypatch)
    monkeypatch.delenv("PYBPFTRACE_DEBUG", raising=False)
    status = driver.run(driver.Options(source="BEGIN { @x = elapsed; }", debug=1))
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("ERROR: internal compiler error: KeyError: 'deliberately broken emitter'")
    assert "Traceback" not in err and "stdin:" not in err


def test_pybpftrace_debug_adds_the_traceback(monkeypatch, capsys):
    _break_the_elapsed_builtin(monkeypatch)
    monkeypatch.setenv("PYBPFTRACE_DEBUG", "1")
    assert driver.run(driver.Options(source="BEGIN { @x = elapsed; }", debug=1)) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "deliberately broken emitter" in err
    assert "internal compiler error" in err
