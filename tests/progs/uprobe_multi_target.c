/* Target of the uprobe_multi tests: several functions called known numbers of times.
 * Usage: uprobe_multi_target N [wait]
 *   multi_a: N calls, returns i + 1      (sum: N(N+1)/2)
 *   multi_b: 2N calls, returns 2
 *   multi_c: 3N calls, returns 3
 *   multi_d: never called
 * ("wait": read one line from stdin first, so a test can attach to this very process). */
#include <stdio.h>
#include <stdlib.h>

#define PROBED __attribute__((noinline, used))

PROBED int multi_a(int x) { __asm__ volatile("" ::: "memory"); return x + 1; }
PROBED int multi_b(int x) { __asm__ volatile("" ::: "memory"); return x - x + 2; }
PROBED int multi_c(int x) { __asm__ volatile("" ::: "memory"); return x - x + 3; }
PROBED int multi_d(int x) { __asm__ volatile("" ::: "memory"); return x * 7; }

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    long sum = 0;
    if (argc > 2) {
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            return 2;
    }
    for (int i = 0; i < n; i++) {
        sum += multi_a(i);
        for (int j = 0; j < 2; j++)
            sum += multi_b(j);
        for (int j = 0; j < 3; j++)
            sum += multi_c(j);
    }
    if (n < 0)
        sum += multi_d(n);
    printf("%ld\n", sum);
    return 0;
}
