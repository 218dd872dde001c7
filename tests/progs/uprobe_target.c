/* Target of the uprobe tests: calls work() N times and prints the sum of its results.
 * Usage: uprobe_target N [wait]   ("wait": read one line from stdin before starting,
 * so a test can attach to this very process first). */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline, used)) int work(int x)
{
    __asm__ volatile("" ::: "memory");
    return 3 * x + 1;
}

__attribute__((noinline, used)) long negate(long x)
{
    __asm__ volatile("" ::: "memory");
    return -x;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    long sum = 0;
    if (argc > 2) {
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            return 2;
    }
    for (int i = 0; i < n; i++)
        sum += work(i);
    sum += negate(sum);
    printf("%ld\n", sum);
    return 0;
}
