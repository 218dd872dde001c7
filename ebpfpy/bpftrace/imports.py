"""``import "file";`` (bpftrace 0.26): the pass after the grammar that finds each imported file
and merges it into the program, before macro expansion and semantic analysis.

Why a pass of its own, on the AST: an imported script is parsed as a script of its own (its
errors name it and print its lines), and what it defines — macros, map declarations, probes —
joins the importing program as if written there, so every later pass sees one program and
codegen never hears of imports. The rules are bpftrace 0.26's:

- a name is looked up next to the script (for ``-e`` and stdin, in the current directory);
  not found: ``Unable to find suitable path for import`` and ``HINT: checked: PATH``;
- a file, or the directory holding it, that anyone may write is refused (found by the search:
  skipped with a warning; a directory's entries: an error), as bpftrace does;
- ``.bt`` files are parsed and merged (their own imports too, looked up in the same places;
  the same name twice is imported once); a ``config`` block in one is an error, since the
  two blocks cannot be merged. The imported probes come after the importing script's, the
  imported scripts in the order of their names;
- ``.h`` headers give their ``#define``s, as ``--include`` does (the lexer expands those, so
  ``parser.parse`` reads the script again with them);
- a directory imports the files in it with those extensions (others are skipped);
- ``.bpf.c`` sources and ``.bpf.o`` objects would need clang and a linker: refused, in our words.

The grammar is passed in (``read``), so this module does not import the parser (no circle).
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from . import ast
from .diagnostics import Diagnostic, Elsewhere, Message, Verbatim, located
from .macros import Macro

# (program, macros) of one script's text, as the parser reads it: read(text, name)
Reader = Callable[[str, str], tuple]

UNSUPPORTED = "importing {what} is not supported by pybpftrace yet: it needs clang to compile C ({name})"


@dataclass
class Merged:
    """What the imports added, gathered over every imported file."""

    probes: list = field(default_factory=list)
    macros: dict = field(default_factory=dict)
    map_decls: list = field(default_factory=list)
    c_definitions: list = field(default_factory=list)
    headers: list = field(default_factory=list)  # paths of imported .h files, for the lexer
    messages: list = field(default_factory=list)  # errors and warnings, each located in its file
    seen: set = field(default_factory=set)  # names already imported
    scripts: dict = field(default_factory=dict)  # name -> (program, macros, text) of each .bt file


def search_paths(filename: str) -> list[str]:
    """Where names are looked up: the script's directory ("" for -e and stdin: the current one)."""
    return [os.path.dirname(filename) if filename not in ("stdin", "-") else ""]


def resolve(program: ast.Program, macros: dict[str, Macro], filename: str, source: str,
            read: Reader) -> tuple[ast.Program, dict[str, Macro], list[str]]:
    """``program`` (and its ``macros``) with every import merged in, and the paths of the
    ``.h`` files imported. Raises Diagnostic with every import error (a warning, a path skipped
    for its permissions, comes only with the error that nothing suitable was found)."""
    if not program.imports:
        return program, macros, []
    merged = Merged(macros=dict(macros))
    paths = search_paths(filename)
    for imp in program.imports:
        _import_name(imp, imp.path, paths, merged, read, source, filename)
    _merge(merged)
    errors = [m for m in merged.messages if m.level == "ERROR"]
    if errors:
        raise Diagnostic(merged.messages, source=source, filename=filename)
    program = replace(program, probes=program.probes + tuple(merged.probes),
                      map_decls=program.map_decls + tuple(merged.map_decls),
                      c_definitions=program.c_definitions + tuple(merged.c_definitions), imports=())
    return program, merged.macros, merged.headers


def _here(text: str, span, source: str, filename: str, level: str = "ERROR") -> Message:
    return Elsewhere(text, span, level, source, filename)


def _world_writable(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IWOTH)
    except OSError:
        return False


def _unsafe(path: str) -> bool:
    """bpftrace's refusal: the file, or the directory it is in, may be written by anyone."""
    return _world_writable(path) or _world_writable(os.path.dirname(path) or ".")


def _import_name(imp: ast.Import, name: str, paths: list[str], merged: Merged, read: Reader,
                 source: str, filename: str) -> None:
    """One ``import "name";``: the first search path that has it."""
    if name in merged.seen:
        return
    merged.seen.add(name)
    checked = []
    for base in paths:
        path = os.path.join(base, name) if base else name
        checked.append(path)
        if not os.path.exists(path):
            continue
        if _unsafe(path):
            merged.messages.append(_here(f'skipping due to global write permissions: "{path}"', imp.span,
                                         source, filename, "WARNING"))
            continue
        _import_path(imp, name, path, merged, read, source, filename, directory_ok=True)
        return
    merged.messages.append(_here("Unable to find suitable path for import", imp.span, source, filename))
    merged.messages.append(Verbatim("HINT: checked: " + ",".join(checked)))


def _import_path(imp: ast.Import, name: str, path: str, merged: Merged, read: Reader, source: str,
                 filename: str, directory_ok: bool, quiet_unknown: bool = False) -> None:
    """A found file (or directory) by its kind, as bpftrace tells them apart: by extension."""
    if _unsafe(path):
        merged.messages.append(_here("cowardly refusing to import from a directory with global write "
                                     f'permissions: "{path}"', imp.span, source, filename))
        return
    if os.path.isdir(path):
        if not directory_ok:
            return
        for entry in sorted(os.listdir(path)):
            _import_path(imp, f"{name}/{entry}", os.path.join(path, entry), merged, read, source, filename,
                         directory_ok=False, quiet_unknown=True)
        return
    base = os.path.basename(path)
    if base.endswith(".bt"):
        _import_script(imp, name, path, merged, read, source, filename)
    elif base.endswith(".h"):
        merged.headers.append(os.path.abspath(path))
    elif base.endswith((".bpf.c", ".bpf.o")):
        what = "C sources" if base.endswith(".c") else "BPF objects"
        merged.messages.append(_here(UNSUPPORTED.format(what=what, name=name), imp.span, source, filename))
    elif not quiet_unknown:
        merged.messages.append(_here(f'unknown import type: "{base}"', imp.span, source, filename))


def _import_script(imp: ast.Import, name: str, path: str, merged: Merged, read: Reader, source: str,
                   filename: str) -> None:
    """A ``.bt`` file: parsed as a script named ``name``; its definitions join the program."""
    if name in merged.seen and name != imp.path:
        return
    merged.seen.add(name)
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8", "surrogateescape")
    except OSError as err:
        merged.messages.append(_here(f"error reading import '{path}': {err.strerror}", imp.span, source,
                                     filename))
        return
    try:
        program, macros = read(text, name)
    except Diagnostic as d:
        merged.messages.extend(located(d.messages, text, name))
        return
    if program.config:
        merged.messages.append(_here("invalid `config` within import", program.config[0].span, text, name))
    for inner in program.imports:  # looked up where the importing script's names are
        _import_name(inner, inner.path, search_paths(filename), merged, read, text, name)
    merged.scripts[name] = (program, macros, text)


def _merge(merged: Merged) -> None:
    """Every imported script's definitions, in the order of their names (as bpftrace merges
    them: its imported scripts are kept in a map ordered by name)."""
    for name in sorted(merged.scripts):
        program, macros, text = merged.scripts[name]
        for macro_name, macro in macros.items():
            if macro_name in merged.macros:
                merged.messages.append(_here(f"Macro '{macro_name}' is defined more than once", macro.span,
                                             text, name))
                continue
            merged.macros[macro_name] = macro
        merged.probes.extend(program.probes)
        merged.map_decls.extend(program.map_decls)
        merged.c_definitions.extend(program.c_definitions)
