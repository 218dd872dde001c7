/* Calls getpid() N times through syscall(2) (never cached by libc), so that
 * a syscalls:sys_enter_getpid probe fires exactly N times for this process.
 * With --wait it first blocks until a byte arrives on stdin: the test loads
 * its filter for this tgid before releasing the loop.
 * Usage: getpid_loop N [--wait] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1;
	if (argc > 2 && strcmp(argv[2], "--wait") == 0) {
		char c;
		if (read(0, &c, 1) != 1)
			return 2;
	}
	for (long i = 0; i < n; i++)
		syscall(SYS_getpid);
	return 0;
}
