"""Questions about a probe's AST that decide how its targets share programs."""
from __future__ import annotations

from .. import ast
from ..functions import FUNCTIONS, builtin


def depends_on_target(probe: ast.Probe) -> bool:
    """Whether the body reads anything target-specific besides ``probe`` (which is patched):
    a builtin or function whose row in ``functions.py`` says its code depends on the target."""
    def walk(node) -> bool:
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

