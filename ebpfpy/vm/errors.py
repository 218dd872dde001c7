"""``VMError``: everything that stops an emulated program, with where it stopped."""

from __future__ import annotations


class VMError(Exception):
    """A program the VM cannot run, or a run that went wrong: a memory fault, an unknown
    helper, a jump out of the program, a loop that never ends.

    ``index`` is the slot index of the instruction (as the verifier and the disassembler
    count), ``program`` the program's name, ``address`` the faulting address for memory
    errors. ``index`` is filled in by the dispatch loop when the error is raised by code that
    does not know where it runs (a helper, a memory access)."""

    def __init__(self, message: str, *, index: int | None = None, address: int | None = None,
                 program: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.address = address
        self.program = program

    def __str__(self) -> str:
        where = ""
        if self.program:
            where = f"{self.program}: "
        if self.index is not None:
            where += f"instruction {self.index}: "
        return where + self.message
