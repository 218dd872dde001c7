"""The `ebpfpy` command: a click group whose subcommands load lazily.

Each subcommand lives in its own module; importing the group costs almost
nothing, so `ebpfpy disasm` does not pay for the loader or the bpftrace
compiler.
"""
import importlib
import os
import sys

import click

# Subcommands that live in another module but belong to a group: (group, name) -> "module:attribute".
NESTED = {
    ("prog", "loadall"): "ebpfpy.cli.objects:loadall",
}

# name -> "module:attribute"; one row per subcommand.
SUBCOMMANDS = {
    "asm": "ebpfpy.cli.isa:asm",
    "disasm": "ebpfpy.cli.isa:disasm",
    "prog": "ebpfpy.cli.inspect:prog",
    "map": "ebpfpy.cli.inspect:map_",
    "btf": "ebpfpy.cli.btf:btf",
    "run": "ebpfpy.cli.objects:run",
    "vm": "ebpfpy.cli.vm:vm",
    "exporter": "ebpfpy.cli.exporter:exporter",
}


# The failures a user can cause or meet (bad input, missing permissions, missing kernel features),
# by "module:class": each is reported as one `ERROR:` line with exit status 1. Anything else is a
# bug, and keeps its traceback. Classes are looked up only in modules already imported (a class whose
# module was never imported cannot have been raised), so the group imports nothing for this.
USER_ERRORS = (
    "ebpfpy.attach.errors:AttachError",
    "ebpfpy.elf.reader:ObjectError",
    "ebpfpy.btf.errors:BTFError",
    "ebpfpy.isa.errors:ISAError",
    "ebpfpy.isa.helpers:UnknownHelperError",
)


class CommandError(click.ClickException):
    """A failure reported as bpftrace reports them: one `ERROR: ...` line on stderr, exit status 1.
    (Usage errors stay click's: the usage, a hint and `Error: ...`, exit status 2.)"""

    def show(self, file=None) -> None:
        click.echo(f"ERROR: {self.format_message()}", err=True, file=file)


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, UnicodeError)):
        return True
    for target in USER_ERRORS:
        module, name = target.split(":")
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def error_line(exc: BaseException) -> str:
    """One line for a user-facing failure: an OSError names its file; a BPFError keeps its
    command, errno and diagnosis (its verifier log, which follows on later lines, is left out)."""
    if isinstance(exc, OSError) and not hasattr(exc, "command") and exc.strerror:  # not a BPFError
        text = exc.strerror if exc.filename is None else f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(SUBCOMMANDS)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.UsageError, CommandError):
            raise
        except click.ClickException as exc:  # a subcommand's own message: the same one-line form
            raise CommandError(exc.format_message()) from None
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
            _silence_stdout()
            raise click.exceptions.Exit(1) from None
        except Exception as exc:
            if not _is_user_error(exc):
                raise
            raise CommandError(error_line(exc)) from None

    def get_command(self, ctx, name):
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None  # click says "No such command"
        command = _load(target)
        for (group, sub), nested in NESTED.items():
            if group == name and sub not in getattr(command, "commands", {sub: 1}):
                command.add_command(_load(nested), sub)
        return command


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (click's CliRunner)
        pass


def _load(target: str):
    """The object behind "module:attribute". A module that fails to import, or a wrong
    attribute, raises: it is a bug to report, not a command that does not exist."""
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def _print_version(ctx, _param, value) -> None:
    """click's --version, without a traceback when ebpfpy runs from a source tree (no metadata)."""
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("ebpfpy")
    except PackageNotFoundError:
        from ebpfpy import __version__ as number
    click.echo(f"{ctx.find_root().info_name}, version {number}")
    ctx.exit()


@click.group(cls=LazyGroup)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
def main():
    """eBPF from Python: assemble, disassemble, inspect and load BPF programs."""
