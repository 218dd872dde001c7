"""The `ebpfpy` command: a click group whose subcommands load lazily.

Each subcommand lives in its own module; importing the group costs almost
nothing, so `ebpfpy disasm` does not pay for the loader or the bpftrace
compiler.
"""
import importlib

import click

# name -> "module:attribute"; one row per subcommand.
SUBCOMMANDS = {
    "asm": "ebpfpy.cli.isa:asm",
    "disasm": "ebpfpy.cli.isa:disasm",
    "prog": "ebpfpy.cli.inspect:prog",
    "map": "ebpfpy.cli.inspect:map_",
    "btf": "ebpfpy.cli.btf:btf",
    "run": "ebpfpy.cli.objects:run",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx, name):
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None


@click.group(cls=LazyGroup)
@click.version_option(package_name="ebpfpy")
def main():
    """eBPF from Python: assemble, disassemble, inspect and load BPF programs."""
