"""Clang-built BPF ELF objects: programs by libbpf's section names, maps, global data, CO-RE.

``load_object(path)`` opens an object without touching the kernel;
``obj.load()`` loads it, ``obj.attach_all()`` attaches by section name.
"""
from .objfile import BPFObject, LoadError, ObjProgram, load_object
from .reader import ObjectError
from .sections import classify

__all__ = ["BPFObject", "LoadError", "ObjProgram", "ObjectError", "classify", "load_object"]
