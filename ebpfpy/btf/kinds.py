"""BTF kind numbers and the small constants of the format, without the type values.

Kept apart from ``types`` (the frozen dataclasses) because building those
classes is most of what importing the BTF layer costs (about 10 ms): the
parser's lookups and the writers (``btf dump``) read raw records and need
only these numbers, so they import this module and load ``types`` when a
type value is first decoded.
"""
from __future__ import annotations

import enum


class Kind(enum.IntEnum):
    VOID = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


# INT encoding bits (btf_type int data, bits 24..27).
INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4

# FUNC linkage (vlen) and VAR linkage.
LINKAGE_STATIC = 0
LINKAGE_GLOBAL = 1
LINKAGE_EXTERN = 2

# Kinds that only qualify the type they point to; skipped by resolve().
MODIFIERS = frozenset({Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})
REF_KINDS = frozenset({Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})
