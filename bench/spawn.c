/* spawn REPORT CMD [ARG...]: run CMD as a child of this small process and write its peak RSS.
 *
 * Why: Linux keeps a process's ru_maxrss across execve (the old address space's high-water
 * mark is folded in), so a tool started straight from the Python benchmark starts with the
 * benchmark's own ~25 MB and any smaller peak is hidden. A child forked here gets a fresh
 * signal struct (maxrss 0) and a copy of this tiny address space, so the ru_maxrss that
 * wait4 returns for it is the tool's own.
 *
 * SIGINT, SIGTERM and SIGHUP are passed on to CMD; CMD dies with this process (PDEATHSIG);
 * the exit status (or the fatal signal) of CMD becomes this process's. REPORT gets
 * "<pid> <maxrss in KiB>\n" (the pid first, when CMD starts; the RSS when it ends).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child;

static void forward(int sig)
{
    if (child > 0)
        kill(child, sig);
}

static void report(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: spawn REPORT CMD [ARG...]\n");
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    const int passed_on[] = {SIGINT, SIGTERM, SIGHUP};
    for (unsigned i = 0; i < sizeof(passed_on) / sizeof(passed_on[0]); i++)
        sigaction(passed_on[i], &sa, NULL);

    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 127;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp(argv[2], argv + 2); /* caught signals return to their defaults here */
        perror(argv[2]);
        _exit(127);
    }
    child = pid;
    char line[64];
    snprintf(line, sizeof(line), "%d ", (int)pid);
    report(argv[1], line);

    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR)
            return 127;
    snprintf(line, sizeof(line), "%ld\n", ru.ru_maxrss);
    report(argv[1], line);
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        kill(getpid(), WTERMSIG(status));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
