"""Named program options (bpftrace 0.24+): ``getopt("name", default)`` in the script, ``--name=value``
after ``--`` on the command line.

The values are known before anything is compiled, so ``getopt`` is a constant in the
program: this module reads the command line's options, checks them against the
``getopt`` calls of the script (bpftrace's messages for an unknown option, a value of
the wrong type and ``--help``) and gives codegen each option's value. Positional
parameters may stand among the options (``p1 -- --count=9 p2``: ``$1`` is ``p1``,
``$2`` is ``p2``).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import ast

TRUE_WORDS = ("true", "1")
FALSE_WORDS = ("false", "0")


class ProgramOptionError(Exception):
    """The command line's options do not fit the script's getopt calls: bpftrace's text, exit 1."""


@dataclass(frozen=True)
class Declared:
    """One option the script reads: its name, the kind its default gives it, the default, and
    the description shown by ``-- --help``."""

    name: str
    kind: str  # "bool", "int" or "string"
    default: object
    description: str = ""


def split_operands(words: list) -> tuple[list, dict]:
    """Words after ``--`` (today's language): ``--name[=value]`` are program options (a bare
    ``--name`` is ``true``), anything else a positional parameter."""
    params, options = [], {}
    for word in words:
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            options[name] = value if eq else "true"
        else:
            params.append(word)
    return params, options


def declared_options(program: ast.Program) -> list:
    """Every option the script's getopt calls name, in the order they appear; semantic
    analysis has already checked that names, defaults and descriptions are literals."""
    seen: dict = {}
    for node in ast.walk(program):
        if isinstance(node, ast.Call) and node.name == "getopt" and node.args and \
                isinstance(node.args[0], ast.String) and node.args[0].value not in seen:
            kind, default = default_of(node)
            descr = node.args[2].value if len(node.args) > 2 and isinstance(node.args[2], ast.String) else ""
            seen[node.args[0].value] = Declared(node.args[0].value, kind, default, descr)
    return list(seen.values())


def default_of(node: ast.Call) -> tuple[str, object]:
    """The kind and value of a getopt call's default: none is ``false``."""
    if len(node.args) < 2:
        return "bool", False
    arg = node.args[1]
    if isinstance(arg, ast.Boolean):
        return "bool", arg.value
    if isinstance(arg, ast.String):
        return "string", arg.value
    return "int", literal_int(arg)


def literal_int(node: ast.Expr) -> int | None:
    """An integer literal, or a negated one; None for anything else."""
    if isinstance(node, ast.Integer):
        return node.value
    if isinstance(node, ast.Unop) and node.op == "-" and isinstance(node.operand, ast.Integer):
        return -node.operand.value
    return None


def resolve(program: ast.Program, given: dict) -> dict:
    """Each declared option's value (the command line's, else the default), checked.

    Raises ProgramOptionError with bpftrace's lines for ``--help``, for options the script
    does not read and for values of the wrong type."""
    declared = declared_options(program)
    names = {d.name for d in declared}
    if "help" in given and "help" not in names:
        raise ProgramOptionError(_hint(declared, with_descriptions=True))
    unknown = [name for name in given if name not in names]
    if unknown:
        raise ProgramOptionError("ERROR: unexpected program command line options: "
                                 + ", ".join(f"--{n}" for n in unknown) + "\n" + _hint(declared))
    values = {}
    for d in declared:
        text = given.get(d.name)
        values[d.name] = d.default if text is None else _convert(d, text)
    return values


def _convert(d: Declared, text: str) -> object:
    if d.kind == "string":
        return text
    if d.kind == "bool":
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise ProgramOptionError(f"ERROR: program command line option --{d.name} expects a boolean "
                                 f"(value: {text})")
    try:
        return int(text, 0)
    except ValueError:
        raise ProgramOptionError(f"ERROR: program command line option --{d.name} expects an integer "
                                 f"(value: {text})") from None


def _hint(declared: list, with_descriptions: bool = False) -> str:
    """bpftrace lists the options last declared first: after an unknown option on one line,
    for ``--help`` one per line with its description."""
    ordered = list(reversed(declared))
    if not with_descriptions:
        return "HINT: expected program options: " + ": ".join(f"--{d.name}" for d in ordered)
    lines = ["HINT: expected program options:"]
    lines += [f"--{d.name}: {d.description}" if d.description else f"--{d.name}" for d in ordered]
    return "\n".join(lines)
