/* A deterministic workload for differential tests of pybpftrace against
 * bpftrace: a known number of opens, reads, writes, nanosleeps, kills, forks and execs,
 * each with recognisable arguments; plus a function with stack-passed
 * arguments (for sarg), a USDT probe and a global (for uaddr).
 * Usage: workload [rounds] */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

volatile long workload_total;

/* Eight arguments: on x86-64 the last two travel on the stack. */
__attribute__((noinline)) long workload_sum8(long a, long b, long c, long d, long e, long f, long g, long h)
{
	workload_total += a + b + c + d + e + f + g + h;
	return workload_total;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	char buf[64];

	signal(SIGUSR1, SIG_IGN);
	for (int i = 0; i < rounds; i++) {
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd >= 0) {
			read(fd, buf, (size_t)(i + 1));
			close(fd);
		}
		open("/nonexistent/ebpfpy-workload", O_RDONLY);
		write(1, "", 0);
		struct timespec nap = {0, 1000 + i};
		syscall(SYS_nanosleep, &nap, NULL); /* a struct pointer among the tracepoint's args */
		syscall(SYS_getpid);
		kill(getpid(), SIGUSR1);
		DTRACE_PROBE2(workload, round, i, rounds);
		workload_sum8(i, 2, 3, 4, 5, 6, 70 + i, 80 + i);
	}
	for (int i = 0; i < 2; i++) {
		pid_t child = fork();
		if (child == 0) {
			execl("/bin/true", "true", "arg1", (char *)0);
			_exit(127);
		}
		waitpid(child, NULL, 0);
	}
	return 0;
}
