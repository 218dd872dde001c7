/* Target of the USDT tests. Probes (provider ebpfpy_test):
 *   hit(i, -i as short, i * 1000000007 as long)   guarded by a semaphore
 *   konst(5)                                        a constant argument
 *   idx(arr[i % 4])                                 an array element
 * Prints how many times the hit semaphore was seen raised.
 * Usage: usdt_target N */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

/* With _SDT_HAS_SEMAPHORES every probe names a semaphore; only hit's is tested. */
#define SEMAPHORE(name) \
    __extension__ unsigned short ebpfpy_test_##name##_semaphore __attribute__((unused, section(".probes")))
SEMAPHORE(hit);
SEMAPHORE(konst);
SEMAPHORE(idx);

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    int seen = 0;
    long arr[4];
    for (int i = 1; i <= n; i++) {
        short neg = (short)-i;
        long big = (long)i * 1000000007L;
        for (int j = 0; j < 4; j++)
            arr[j] = (long)i * 10 + j;
        if (ebpfpy_test_hit_semaphore) {
            seen++;
        }
        STAP_PROBE3(ebpfpy_test, hit, i, neg, big);
        STAP_PROBE1(ebpfpy_test, konst, 5);
        STAP_PROBE1(ebpfpy_test, idx, arr[i % 4]);
    }
    printf("%d\n", seen);
    return 0;
}
