"""The `ebpfpy` command: a click group whose subcommands load lazily.

Each subcommand lives in its own module; importing the group costs almost
nothing, so `ebpfpy disasm` does not pay for the loader or the bpftrace
compiler.
"""
import importlib

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
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx, name):
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        command = _load(target)
        for (group, sub), nested in NESTED.items():
            if group == name and command is not None and sub not in getattr(command, "commands", {sub: 1}):
                extra = _load(nested)
                if extra is not None:
                    command.add_command(extra, sub)
        return command


def _load(target: str):
    module, attr = target.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


@click.group(cls=LazyGroup)
@click.version_option(package_name="ebpfpy")
def main():
    """eBPF from Python: assemble, disassemble, inspect and load BPF programs."""
