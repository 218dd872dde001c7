"""Clang-built BPF ELF objects, loaded as libbpf loads them.

Programs by libbpf's section names (several per section), BPF-to-BPF calls
and callbacks, BTF-defined and legacy maps, global data (``.data``,
``.rodata``, ``.bss``, ``.rodata.*``) as array maps, ``__kconfig`` and
``__ksym`` externs, func/line info, and CO-RE relocations against the running
kernel.  ``load_object(path)`` opens an object without touching the kernel;
``obj.load()`` loads it, ``obj.attach_all()`` attaches by section name.
What is done as libbpf does it, and what is not yet: docs/objects.md.
"""
from .objfile import BPFObject, LoadError, ObjProgram, load_object
from .reader import ObjectError
from .sections import classify

__all__ = ["BPFObject", "LoadError", "ObjProgram", "ObjectError", "classify", "load_object"]
