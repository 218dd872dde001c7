"""The one exception of the ISA layer.

It subclasses ``ValueError`` because every ISA failure is bad input (bytes, text or field
values), and callers that already catch ``ValueError`` keep working.
"""

from __future__ import annotations


class ISAError(ValueError):
    """Bad instruction bytes, fields or assembler text.

    ``index`` is the instruction (slot) index for decode errors, ``line`` the 1-based line
    number for assembler errors; the message already names them, the attributes let a caller
    point at the culprit without parsing the message.
    """

    def __init__(
        self, message: str, *, index: int | None = None, line: int | None = None
    ):
        super().__init__(message)
        self.index = index
        self.line = line
