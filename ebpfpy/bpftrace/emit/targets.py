"""Questions about a probe's AST that decide how its targets share programs."""
from __future__ import annotations

from .. import ast
from ..functions import FUNCTIONS, builtin


def depends_on_target(probe: ast.Probe, args_fields_shared: bool = False) -> bool:
    """Whether the body reads anything target-specific besides ``probe`` (which is patched):
    a builtin or function whose row in ``functions.py`` says its code depends on the target.
    With ``args_fields_shared`` (every target has the fields it reads at the same place),
    ``args->NAME`` does not count."""
    def walk(node) -> bool:
        if args_fields_shared and _args_field(node) is not None:
            return False
        if isinstance(node, ast.Builtin):
            found = builtin(node.name)
            if found is not None and found[0].target:
                return True
        if isinstance(node, ast.Call) and node.name in FUNCTIONS and FUNCTIONS[node.name].target:
            return True
        if isinstance(node, (list, tuple)):
            return any(walk(n) for n in node)
        if isinstance(node, ast.Node):
            return any(walk(getattr(node, f)) for f in node.__dataclass_fields__
                       if f not in ("span", "type", "op_span", "pred_span"))
        return False
    return walk(probe.pred) or walk(probe.body)


def mentions_probe(node) -> bool:
    """Whether an expression reads the ``probe`` builtin."""
    if isinstance(node, ast.Builtin):
        return node.name == "probe"
    if isinstance(node, (list, tuple)):
        return any(mentions_probe(n) for n in node)
    if isinstance(node, ast.Node):
        return any(mentions_probe(getattr(node, f)) for f in node.__dataclass_fields__ if f not in ("span", "type"))
    return False



def _args_field(node) -> str | None:
    """The field name of ``args->NAME`` / ``args.NAME``, else None."""
    if isinstance(node, ast.FieldAccess) and isinstance(node.expr, ast.Builtin) and node.expr.name == "args":
        return node.field
    return None


def args_fields(probe: ast.Probe) -> set | None:
    """The ``args`` fields the probe reads when it reads ``args`` only as ``args->NAME``; None
    when it uses ``args`` some other way (as a whole)."""
    names: set = set()

    def walk(node) -> bool:
        field = _args_field(node)
        if field is not None:
            names.add(field)
            return True
        if isinstance(node, ast.Builtin) and node.name == "args":
            return False
        if isinstance(node, (list, tuple)):
            return all(walk(n) for n in node)
        if isinstance(node, ast.Node):
            return all(walk(getattr(node, f)) for f in node.__dataclass_fields__
                       if f not in ("span", "type", "op_span", "pred_span"))
        return True
    return names if walk(probe.pred) and walk(probe.body) else None
