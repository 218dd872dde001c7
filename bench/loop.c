/* Syscall generator for the ebpfpy benchmarks.
 *
 *   loop getpid N     N getpid() calls
 *   loop getppid N    N getppid() calls
 *   loop spin 0       getppid() every millisecond until killed
 *
 * With -w first, it prints its pid and waits for one byte on stdin before
 * starting, so the harness can put the pid into a filter and attach first.
 * It prints the nanoseconds the N calls took (CLOCK_MONOTONIC), nothing else,
 * so the traced and untraced runs are timed the same way.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	int argi = 1;
	if (argi < argc && strcmp(argv[argi], "-w") == 0) {
		char c;
		printf("%d\n", (int)getpid());
		fflush(stdout);
		if (read(0, &c, 1) != 1)
			return 2;
		argi++;
	}
	if (argc - argi != 2) {
		fprintf(stderr, "usage: loop [-w] getpid|getppid|spin N\n");
		return 2;
	}
	const char *mode = argv[argi];
	long long n = atoll(argv[argi + 1]);
	long nr = strcmp(mode, "getpid") == 0 ? SYS_getpid : SYS_getppid;
	if (strcmp(mode, "spin") == 0) {
		struct timespec ms = {0, 1000000};
		for (;;) {
			syscall(SYS_getppid);
			nanosleep(&ms, NULL);
		}
	}
	long long t0 = now_ns();
	for (long long i = 0; i < n; i++)
		syscall(nr);
	long long t1 = now_ns();
	printf("%lld\n", t1 - t0);
	return 0;
}
