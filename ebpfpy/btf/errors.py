"""The one exception of the BTF layer, in a module of its own so that every BTF module can
raise it without importing the parser (``spec``), which imports some of them back."""

from __future__ import annotations


class BTFError(ValueError):
    """Malformed BTF, or a lookup that cannot be satisfied."""
