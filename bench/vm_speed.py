"""How fast ebpfpy.vm interprets: instructions per second for a few instruction mixes.

    python3 bench/vm_speed.py [--iterations N] [--runs R]

Each program is a counted loop; the instruction count is exact (the loop body times the
iterations, plus the set-up and the exit), and the figure is the best of R runs. Standalone:
no kernel, no root, not part of bench/run.py.
"""

from __future__ import annotations

import argparse
import time

from ebpfpy.vm import VM

# name -> (assembly with {n} for the iteration count, instructions per iteration, outside the loop)
MIXES = {
    "alu": ("""
        r0 = 0
        r1 = {n}
    loop:
        r0 += r1
        r2 = r0
        r2 ^= 0x55
        r0 &= 0xffffff
        r1 -= 1
        if r1 != 0 goto loop
        exit
    """, 6, 3),
    "alu32+shifts": ("""
        w0 = 1
        r1 = {n}
    loop:
        w0 *= 3
        w2 = w0
        w2 >>= 3
        w0 ^= w2
        r1 += -1
        if r1 s> 0 goto loop
        exit
    """, 6, 3),
    "stack load/store": ("""
        r0 = 0
        r1 = {n}
        *(u64 *)(r10 - 8) = 0
    loop:
        r2 = *(u64 *)(r10 - 8)
        r2 += r1
        *(u64 *)(r10 - 8) = r2
        *(u32 *)(r10 - 16) = r1
        r3 = *(u32 *)(r10 - 16)
        r0 += r3
        r1 -= 1
        if r1 != 0 goto loop
        exit
    """, 8, 4),
    "map lookup (helper call)": ("""
        r6 = {n}
        *(u32 *)(r10 - 4) = 0
    loop:
        ld_pseudo r1, 1, 1
        r2 = r10
        r2 += -4
        call map_lookup_elem
        if r0 == 0 goto out
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        r6 -= 1
        if r6 != 0 goto loop
    out:
        r0 = 0
        exit
    """, 9, 4),
}


def measure(src: str, iterations: int, runs: int) -> float:
    vm = VM(max_loops=iterations + 10)
    vm.create_map("array", 4, 8, 1)
    prog = vm.load(src.format(n=iterations))
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        vm.run(prog)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'mix':<28} {'instructions':>12} {'seconds':>8} {'M insn/s':>9}")
    for name, (src, per_iteration, outside) in MIXES.items():
        count = per_iteration * args.iterations + outside
        seconds = measure(src, args.iterations, args.runs)
        print(f"{name:<28} {count:>12} {seconds:>8.3f} {count / seconds / 1e6:>9.2f}")


if __name__ == "__main__":
    main()
