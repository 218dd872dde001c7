"""A grammar of bpftrace 0.17 programs for hypothesis: well-typed programs, with mistakes mixed in.

The generator keeps a small model of what the program has defined so far (variables
and their types, maps and their key and value kinds), so most programs it draws are
correct and run; a few statements are deliberate mistakes of the kinds users make
(an undefined variable, a string where an integer goes, a map used with another key,
an unknown function, a wrong argument count), so error text and exit status are
compared too.

Output must be reproducible under both tools, so the grammar leaves out what changes
between runs or between tools (``pid``, ``nsecs``, ``rand``, ``comm``, the cpu) and the
one divergence we keep on purpose (LLVM folds ``x % $z`` when it can prove ``$z`` is
0; we compute it): divisors are non-zero literals.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

INT_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64")
EDGE_INTS = (0, 1, 2, 7, 100, 127, 128, 255, 256, 32767, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
             2**63 - 1)
WORDS = ("", "a", "ab", "abc", "hello", "hello world", "x y z", "0123456789", "ABC", "a\\tb")
BINOPS = ("+", "-", "*", "&", "|", "^", "==", "!=", "<", "<=", ">", ">=", "&&", "||")
AGGREGATES = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")


@dataclass
class Scope:
    """What the program has defined so far: what a correct statement may use."""
    ints: list = field(default_factory=list)
    strs: list = field(default_factory=list)
    # name -> (key kind: none|int|str|pair, value: int|str|agg:<aggregate>)
    maps: dict = field(default_factory=dict)
    counter: int = 0
    # print(@map) in a probe that fires again: bpftrace reads the map when it prints the event,
    # by which time later events may have changed it, so the text is a race (in 0.17 too)
    live: bool = False

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def _literal(draw) -> str:
    value = draw(st.one_of(st.sampled_from(EDGE_INTS), st.integers(0, 1000)))
    form = draw(st.sampled_from(("dec", "dec", "dec", "hex", "neg")))
    if form == "hex":
        return hex(value)
    if form == "neg" and value:
        return f"-{value}"
    return str(value)


def int_expr(draw, scope: Scope, depth: int = 0) -> str:
    """An integer expression over literals, the integer variables and integer maps in scope."""
    choices = ["lit", "lit"]
    if scope.ints:
        choices += ["var", "var"]
    if any(v == "int" for _, v in scope.maps.values()):
        choices.append("map")
    if depth < 3:
        choices += ["binop", "binop", "unop", "cast", "ternary", "div", "shift", "paren"]
        if scope.strs or depth < 2:
            choices.append("strncmp")
    choices.append("sizeof")
    kind = draw(st.sampled_from(choices))
    if kind == "lit":
        return _literal(draw)
    if kind == "var":
        return draw(st.sampled_from(scope.ints))
    if kind == "map":
        name = draw(st.sampled_from(sorted(n for n, (_, v) in scope.maps.items() if v == "int")))
        return name + map_key(draw, scope, scope.maps[name][0], depth + 1)
    if kind == "binop":
        op = draw(st.sampled_from(BINOPS))
        return f"{int_expr(draw, scope, depth + 1)} {op} {int_expr(draw, scope, depth + 1)}"
    if kind == "unop":
        op = draw(st.sampled_from(("-", "!", "~")))
        return f"{op}({int_expr(draw, scope, depth + 1)})"
    if kind == "cast":
        return f"({draw(st.sampled_from(INT_TYPES))})({int_expr(draw, scope, depth + 1)})"
    if kind == "ternary":
        return (f"({int_expr(draw, scope, depth + 1)} ? {int_expr(draw, scope, depth + 1)} : "
                f"{int_expr(draw, scope, depth + 1)})")
    if kind == "div":
        op = draw(st.sampled_from(("/", "%")))
        return f"({int_expr(draw, scope, depth + 1)} {op} {draw(st.integers(1, 1000))})"
    if kind == "shift":
        op = draw(st.sampled_from(("<<", ">>")))
        return f"({int_expr(draw, scope, depth + 1)} {op} {draw(st.integers(0, 63))})"
    if kind == "paren":
        return f"({int_expr(draw, scope, depth + 1)})"
    if kind == "strncmp":
        return f"strncmp({str_expr(draw, scope, depth + 1)}, {str_expr(draw, scope, depth + 1)}, " \
               f"{draw(st.integers(0, 12))})"
    return f"sizeof({draw(st.sampled_from(INT_TYPES))})"


def str_expr(draw, scope: Scope, depth: int = 0) -> str:
    choices = ["lit", "lit"]
    if scope.strs:
        choices += ["var", "var"]
    if depth < 2:
        choices.append("ternary")
    kind = draw(st.sampled_from(choices))
    if kind == "var":
        return draw(st.sampled_from(scope.strs))
    if kind == "ternary":
        return f"({int_expr(draw, scope, depth + 1)} ? {str_expr(draw, scope, depth + 1)} : " \
               f"{str_expr(draw, scope, depth + 1)})"
    return '"' + draw(st.sampled_from(WORDS)) + '"'


def map_key(draw, scope: Scope, key: str, depth: int = 0) -> str:
    if key == "none":
        return ""
    if key == "int":
        return f"[{int_expr(draw, scope, depth)}]"
    if key == "str":
        return f"[{str_expr(draw, scope, depth)}]"
    return f"[{int_expr(draw, scope, depth)}, {str_expr(draw, scope, depth)}]"


def _new_map(draw, scope: Scope, value: str, rhs) -> str:
    """``@mN[key] = rhs``; the map is in scope only after it (reading a map in its own first
    assignment is a corner of its own, with corpus cases)."""
    name = "@" + scope.fresh("m")
    key = draw(st.sampled_from(("none", "int", "int", "str", "pair")))
    text = f"{name}{map_key(draw, scope, key)} = {rhs(draw, scope)};"
    scope.maps[name] = (key, value)
    return text


def _aggregate_call(draw, scope: Scope, agg: str) -> str:
    if agg == "count":
        return "count()"
    arg = int_expr(draw, scope, 1)
    if agg == "lhist":
        lo = draw(st.integers(0, 10))
        return f"lhist({arg}, {lo}, {lo + draw(st.integers(1, 200))}, {draw(st.integers(1, 50))})"
    return f"{agg}({arg})"


PRINTF_INT = ("%d", "%u", "%x", "%5d", "%-4d|", "%ld", "%lu", "%llx", "%08x")
PRINTF_STR = ("%s", "%10s", "%-6s|", "%.2s")


def statement(draw, scope: Scope, depth: int = 0) -> str:
    kinds = ["int_var", "str_var", "map_int", "map_str", "agg", "printf", "printf", "print_int"]
    if scope.ints:
        kinds += ["compound", "incdec"]
    if scope.maps:
        kinds += ["map_update", "delete"] + ([] if scope.live else ["print_map"])
    if depth < 2:
        kinds += ["if", "unroll"]
    kind = draw(st.sampled_from(kinds))
    if kind == "int_var":
        value = int_expr(draw, scope)
        name = draw(st.sampled_from(scope.ints)) if scope.ints and draw(st.booleans()) else "$" + scope.fresh("v")
        if name not in scope.ints and depth == 0:  # a variable first set in a branch is not defined after it
            scope.ints.append(name)
        return f"{name} = {value};"
    if kind == "str_var":
        value = str_expr(draw, scope)
        name = "$" + scope.fresh("s")
        if depth == 0:
            scope.strs.append(name)
        return f"{name} = {value};"
    if kind in ("map_int", "map_str"):
        if kind == "map_int":
            return _new_map(draw, scope, "int", int_expr)
        return _new_map(draw, scope, "str", str_expr)
    if kind == "agg":
        agg = draw(st.sampled_from(AGGREGATES))
        return _new_map(draw, scope, "agg:" + agg, lambda d, s: _aggregate_call(d, s, agg))
    if kind == "map_update":
        name, (key, value) = draw(st.sampled_from(sorted(scope.maps.items())))
        if value == "int":
            op = draw(st.sampled_from(("+=", "-=", "*=", "|=", "=")))
            return f"{name}{map_key(draw, scope, key)} {op} {int_expr(draw, scope)};"
        if value == "str":
            return f"{name}{map_key(draw, scope, key)} = {str_expr(draw, scope)};"
        return f"{name}{map_key(draw, scope, key)} = {_aggregate_call(draw, scope, value[4:])};"
    if kind == "delete":
        name, (key, _) = draw(st.sampled_from(sorted(scope.maps.items())))
        if key == "none":  # clear() too is done when the event is read: a race in a live probe
            return 'printf("-\\n");' if scope.live else f"clear({name});"
        return f"delete({name}{map_key(draw, scope, key)});"
    if kind == "print_map":
        name = draw(st.sampled_from(sorted(scope.maps)))
        return f"print({name});"
    if kind == "compound":
        name = draw(st.sampled_from(scope.ints))
        op = draw(st.sampled_from(("+=", "-=", "*=", "&=", "|=", "^=", "<<=", ">>=")))
        rhs = str(draw(st.integers(0, 63))) if op in ("<<=", ">>=") else int_expr(draw, scope, 1)
        return f"{name} {op} {rhs};"
    if kind == "incdec":
        name = draw(st.sampled_from(scope.ints))
        return draw(st.sampled_from((f"{name}++;", f"{name}--;", f"++{name};", f"--{name};")))
    if kind == "printf":
        n = draw(st.integers(0, 3))
        specs, args = [], []
        for _ in range(n):
            if draw(st.booleans()):
                specs.append(draw(st.sampled_from(PRINTF_INT)))
                args.append(int_expr(draw, scope))
            else:
                specs.append(draw(st.sampled_from(PRINTF_STR)))
                args.append(str_expr(draw, scope))
        fmt = " ".join(specs)
        return f'printf("{fmt}\\n"{"".join(", " + a for a in args)});'
    if kind == "print_int":
        if draw(st.booleans()):
            return f"print(({int_expr(draw, scope)}, {str_expr(draw, scope)}));"
        return f"print({int_expr(draw, scope)});"
    if kind == "if":
        cond = int_expr(draw, scope)
        then = block(draw, scope, depth + 1)
        if draw(st.booleans()):
            return f"if ({cond}) {{ {then} }} else {{ {block(draw, scope, depth + 1)} }}"
        return f"if ({cond}) {{ {then} }}"
    return f"unroll({draw(st.integers(1, 3))}) {{ {block(draw, scope, depth + 1)} }}"


def block(draw, scope: Scope, depth: int) -> str:
    return " ".join(statement(draw, scope, depth) for _ in range(draw(st.integers(1, 3))))


MISTAKES = (
    "$undefined_var + 1",          # read before any assignment
    '"a string" + 1',              # a string in arithmetic
    "nosuchfunction(1)",           # not a function
    "strncmp(1, 2, 3)",            # integers where strings go
    "sizeof(nosuchtype)",          # not a type
)


def mistake(draw, scope: Scope) -> str:
    """A statement 0.17 rejects (or that we must reject as it does)."""
    kind = draw(st.sampled_from(("expr", "reassign", "map_arity", "printf", "agg")))
    if kind == "expr":
        return f"$bad = {draw(st.sampled_from(MISTAKES))};"
    if kind == "reassign" and scope.ints:
        return f"{draw(st.sampled_from(scope.ints))} = \"now a string\";"
    if kind == "map_arity" and any(k != "none" for k, _ in scope.maps.values()):
        name = draw(st.sampled_from(sorted(n for n, (k, _) in scope.maps.items() if k != "none")))
        return f"{name}[1, 2, 3] = 1;"
    if kind == "printf":
        return 'printf("%d %s\\n", "x");'
    return "@bad = sum(\"x\");"


@st.composite
def begin_programs(draw) -> str:
    """``BEGIN { ...; exit(); }`` and sometimes an ``END`` block; 1 in 8 holds a mistake."""
    scope = Scope()
    body = [statement(draw, scope) for _ in range(draw(st.integers(1, 6)))]
    if draw(st.integers(0, 7)) == 0:
        body.insert(draw(st.integers(0, len(body))), mistake(draw, scope))
    text = "BEGIN { " + " ".join(body) + " exit(); }"
    if draw(st.booleans()):
        end_scope = Scope(maps=scope.maps, counter=scope.counter)  # variables are the probe's own
        end = [statement(draw, end_scope) for _ in range(draw(st.integers(1, 3)))]
        text += "\nEND { " + " ".join(end) + " }"
    return text + "\n"


@st.composite
def traced_programs(draw) -> str:
    """A probe on the workload's own syscalls (run under ``-c``), with the same statements."""
    scope = Scope(live=True)
    probe = draw(st.sampled_from(("tracepoint:syscalls:sys_enter_getpid", "tracepoint:syscalls:sys_exit_getpid",
                                  "tracepoint:syscalls:sys_enter_kill")))
    body = [statement(draw, scope) for _ in range(draw(st.integers(1, 4)))]
    text = f"{probe} /pid == cpid/ {{ " + " ".join(body) + " }"
    if draw(st.booleans()):
        text += "\nEND { " + statement(draw, Scope(maps=dict(scope.maps), counter=scope.counter)) + " }"
    return text + "\n"
