/* Two call sites of one system call: `two_callers N` calls getppid() N times from
 * each of first() and second(). A user stack cut to one frame is the same for both
 * (libc's getppid); cut to two frames the callers differ. */
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) void first(void) { getppid(); __asm__ volatile("" ::: "memory"); }
__attribute__((noinline)) void second(void) { getppid(); __asm__ volatile("" ::: "memory"); }

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    for (int i = 0; i < n; i++) {
        first();
        second();
    }
    return 0;
}
