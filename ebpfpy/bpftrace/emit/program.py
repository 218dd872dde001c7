"""The script as a whole: probes expanded into targets, targets grouped into programs, programs compiled.

Programs are compiled twice: a first, discarded run per program discovers map
shapes, variables and expression shapes; the final run emits with them known.
"""
from __future__ import annotations

from dataclasses import dataclass

from ebpfpy.attach.syscalls import raw_syscalls_probe, syscall_of
from ebpfpy.isa.builder import Builder
from ebpfpy.sys.consts import MapType

from .. import ast
from ..compiled import CompiledScript, ProbePlan
from ..diagnostics import Message
from .context import CompileError, Env, ScriptState
from .newer import apply_map_declarations
from .probe import ProbeCodegen
from .targets import args_fields, depends_on_target
from .world import SystemWorld, World


@dataclass
class ExpandedProbe:
    probe: ast.Probe
    targets: list  # (provider, target)



# Kinds whose missing functions bpftrace 0.17 drops without a word (the file itself was checked).
_SILENT_KINDS = frozenset(("uprobe", "uretprobe", "usdt"))



class NoProbesError(CompileError):
    """Every attach point matched nothing: bpftrace prints "No probes to attach" on stdout, exit 1."""



def expand_probes(program: ast.Program, pid: int = -1, world: World | None = None, modern: bool = False) -> list:
    """Resolve every attach point into concrete targets (wildcards included).

    Like bpftrace 0.17, a uprobe/usdt function that is not in its (existing)
    binary is skipped silently, and only a script left with no probe at all fails.
    """
    from ebpfpy.attach.errors import ProbeNotFoundError

    world = world or SystemWorld()
    out = []
    for probe in program.probes:
        targets = []
        for point in probe.attach_points:
            spec = point.raw
            span = point.span if point.span.line else None
            prov, rest = None, spec
            try:
                prov, rest = world.provider(spec)
                found = prov.expand(rest, pid=pid)
            except ProbeNotFoundError as exc:
                if getattr(prov, "kind", None) not in _SILENT_KINDS:
                    text = _unquoted(exc)
                    if modern and prov.kind == "tracepoint":
                        text = f"No matches for tracepoint {rest}."  # bpftrace 0.26's words (E26)
                    raise CompileError([Message(text, span)]) from None
                found = []
            except Exception as exc:  # attach-layer errors carry a readable message
                raise CompileError([Message(_unquoted(exc), span)]) from None
            kind = getattr(prov, "kind", None)
            if not found and kind == "tracepoint":
                text = f"No matches for tracepoint {rest}." if modern else f"tracepoints not found: {rest}"
                raise CompileError([Message(text, span)])
            if not found and kind not in _SILENT_KINDS:
                raise CompileError([Message(f"No probes to attach: {spec}", span)])
            targets.extend((prov, t) for t in found)
        out.append(ExpandedProbe(probe, targets))
    if out and not any(item.targets for item in out):
        raise NoProbesError([Message("No probes to attach")])
    return out



def _unquoted(exc: Exception) -> str:
    """An attach-layer error's text; a KeyError's comes quoted whole, and loses those quotes
    (only those: ``must be a positive integer, not '0'`` keeps its own)."""
    text = str(exc)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def compile_script(program: ast.Program, env: Env) -> CompiledScript:
    """Compile a parsed script into programs, maps and actions for the runtime."""
    expanded = expand_probes(program, env.pid if env.pid > 0 else (env.cpid or -1), env.world, env.modern)
    state = ScriptState(env)
    if any(("struct" in d or "union" in d) and "{" in d for d in program.c_definitions):
        from ..types import BTFResolver, parse_c_structs

        state.c_structs = parse_c_structs(program.c_definitions, BTFResolver())
    # First run: discover map shapes and each probe's variables; its output is discarded.
    # (Again when it read a map before the statement that writes it: "BEGIN { @x = @y }
    # END { @y = "a" }" needs @y's shape for @x.)
    variables = {}
    for _ in range(3):
        state.read_unwritten_map = False
        known = dict(state.map_shapes)
        for item in expanded:
            for group, event in _program_groups(item):
                _, target, ctx, dispatch = _group_program(state, group, event)
                gen = ProbeCodegen(state, item.probe, target, ctx, ctx.prog_type, final=False, dispatch=dispatch,
                                   dispatch_fields=_dispatch_fields(group, dispatch))
                gen.generate()
                for _, t in group:
                    variables[id(item.probe), t.probe] = gen.var_shapes
        if not state.read_unwritten_map or state.map_shapes == known:
            break
    state.script = CompiledScript()
    state.printf_actions = {}
    ordered = sorted(expanded, key=lambda e: _probe_order(e.probe))
    for item in ordered:
        label = ",".join(p.raw for p in item.probe.attach_points)
        for group, event in _program_groups(item):
            _, target, ctx, dispatch = _group_program(state, group, event)
            gen = ProbeCodegen(state, item.probe, target, ctx, ctx.prog_type,
                               dispatch_fields=_dispatch_fields(group, dispatch),
                               variables=variables[id(item.probe), group[0][1].probe], dispatch=dispatch)
            builder = gen.generate()
            state.script.probes.append(_probe_plan(target, ctx, builder, label))
            if dispatch is not None:
                state.script.probes[-1].covers = tuple(t.probe for _, t in group)
                continue
            multi = None if state.env.per_target_programs else _multi_context(group, gen)
            if multi is not None:  # one program, loaded for a multi link, on every target
                plan = state.script.probes[-1]
                plan.expected_attach_type = multi.expected_attach_type
                plan.targets = tuple(t for _, t in group)
                plan.covers = tuple(t.probe for _, t in group)
                continue
            for prov_other, other in group[1:]:
                index = state.probe_index(other.probe)
                shared = _with_probe_index(builder, gen.probe_sites, index)
                state.script.probes.append(_probe_plan(other, prov_other.context(other), shared, label))
    apply_map_declarations(state.script, program.map_decls)
    return state.script


def _probe_plan(target, ctx, builder: Builder, label: str) -> ProbePlan:
    """The runtime's plan for one target; kfunc programs are loaded for one BTF function."""
    return ProbePlan(target.probe, ctx.prog_type, builder, label=label,
                     expected_attach_type=ctx.expected_attach_type, attach_btf_id=ctx.attach_btf_id)


def _multi_context(group: list, gen: ProbeCodegen):
    """The context of one program on all of a shared group's targets at once (a provider's
    ``multi_context``: uprobe_multi), or None. Not when the body reads ``probe``: its value is
    patched into one program per target."""
    prov = group[0][0]
    multi = getattr(prov, "multi_context", None)
    if multi is None or len(group) < 2 or gen.probe_sites or any(p is not prov for p, _ in group):
        return None
    return multi([t for _, t in group])



def _share_groups(item: ExpandedProbe) -> list:
    """Targets that can share one program: all of them when the body ignores the target
    (a wildcard over 300 tracepoints is compiled once), or reads only ``args`` fields every
    target has at the same place (``t:syscalls:sys_exit_* { @[probe] = hist(args->ret); }``),
    else one group per target."""
    if len(item.targets) < 2 or depends_on_target(item.probe, _syscall_fields_shared(item)):
        return [[t] for t in item.targets]
    groups: dict = {}
    for prov, target in item.targets:
        ctx = prov.context(target)
        groups.setdefault((ctx.prog_type, ctx.args), []).append((prov, target))
    return list(groups.values())



# A wildcard over at least this many syscall tracepoints becomes one raw_syscalls program
# (``ebpfpy.attach.syscalls``): fewer are cheaper to trace one by one, since the dispatch
# program runs for every syscall of the system.
DISPATCH_MIN = 32



def _program_groups(item: ExpandedProbe) -> list:
    """``(targets, event)`` per program: ``event`` is ``"sys_enter"``/``"sys_exit"`` where one
    raw_syscalls program stands for a shared group's syscall tracepoints, else None."""
    out = []
    for group in _share_groups(item):
        by_event: dict = {}
        if len(group) >= DISPATCH_MIN:
            for member in group:
                found = syscall_of(member[1].probe)
                by_event.setdefault(found[0] if found else None, []).append(member)
        dispatched = {event: members for event, members in by_event.items()
                      if event is not None and len(members) >= DISPATCH_MIN}
        rest = [m for event, members in by_event.items() if event not in dispatched for m in members] \
            if dispatched else group
        out.extend((members, event) for event, members in dispatched.items())
        if rest:
            out.append((rest, None))
    return out



def _syscall_fields_shared(item: ExpandedProbe) -> bool:
    """Whether every target is a syscall tracepoint and every ``args`` field the body reads is
    laid out alike in all of them (same offset, size, sign and C type): then one program, or
    one raw_syscalls dispatch program, can read them for all."""
    names = args_fields(item.probe)
    if not names or any(getattr(prov, "kind", None) != "tracepoint" or syscall_of(t.probe) is None
                        for prov, t in item.targets):
        return False
    first = None
    for prov, target in item.targets:
        fields = {f.name: f for f in prov.context(target).fields}
        if not names <= fields.keys():
            return False  # (semantic analysis reports the missing field)
        layout = {n: (fields[n].offset, fields[n].size, fields[n].signed, fields[n].type,
                      fields[n].array_len, fields[n].data_loc) for n in names}
        if first is None:
            first = layout
        elif layout != first:
            return False
    return True


def _dispatch_fields(group: list, dispatch: str | None) -> dict | None:
    """A dispatch program's ``args`` fields (the first syscall tracepoint's: all share them)."""
    if dispatch is None:
        return None
    prov, target = group[0]
    return {f.name: f for f in prov.context(target).fields}


def _group_program(state: ScriptState, group: list, event: str | None):
    """The target, context and dispatch map of the program for one of ``_program_groups``."""
    if event is None:
        prov, target = group[0]
        return prov, target, prov.context(target), None
    prov, rest = state.env.world.provider(raw_syscalls_probe(event))
    target = prov.expand(rest)[0]
    numbers = [syscall_of(t.probe)[1] for _, t in group]
    name = state.need_map(f"$syscalls{sum(n.startswith('$syscalls') for n in state.script.maps)}",
                          MapType.ARRAY, 4, 4, max(numbers) + 1)
    state.script.maps[name].initial = {
        nr.to_bytes(4, "little"): (state.probe_index(t.probe) + 1).to_bytes(4, "little")
        for nr, (_, t) in zip(numbers, group)}
    return prov, target, prov.context(target), name



def _with_probe_index(builder: Builder, sites: list, index: int) -> Builder:
    """A copy of ``builder`` whose ``probe`` loads (sites from ``Builder.mark``) give ``index``."""
    return builder.with_imm(sites, index)



def _probe_order(probe: ast.Probe) -> int:
    kinds = {p.raw for p in probe.attach_points}
    if "BEGIN" in kinds:
        return 0
    if "END" in kinds:
        return 2
    return 1
