/*
 * spawn_floor: what the kernel allows, the floor both supervisors are compared with.
 *
 * Spawns N `sleep 100000` with posix_spawnp, each set up the way a supervisor must set up a
 * child (stdin, stdout and stderr on /dev/null, its own process group, an empty signal mask,
 * SIGPIPE at its default), then sends SIGTERM to each and reaps each with waitpid. Prints one
 * JSON object: the time to spawn all N (each posix_spawn returns once the child has exec'd) and
 * the time to stop and reap all N.
 *
 * Usage: spawn_floor N
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 2 || atoi(argv[1]) <= 0) {
        fprintf(stderr, "usage: spawn_floor N\n");
        return 2;
    }
    int count = atoi(argv[1]);
    pid_t *pids = calloc((size_t)count, sizeof *pids);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (pids == NULL || devnull < 0) {
        perror("spawn_floor: setup");
        return 1;
    }

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (int fd = 0; fd <= 2; fd++) {
        posix_spawn_file_actions_adddup2(&actions, devnull, fd);
    }
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t empty, pipe_only;
    sigemptyset(&empty);
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    posix_spawnattr_setsigmask(&attributes, &empty);
    posix_spawnattr_setsigdefault(&attributes, &pipe_only);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                              POSIX_SPAWN_SETSIGDEF);
    char *child_argv[] = {"sleep", "100000", NULL};

    double spawn_start = now_ms();
    for (int i = 0; i < count; i++) {
        int error = posix_spawnp(&pids[i], "sleep", &actions, &attributes, child_argv, environ);
        if (error != 0) {
            fprintf(stderr, "spawn_floor: spawn %d of %d: %s\n", i + 1, count, strerror(error));
            for (int j = 0; j < i; j++) {
                kill(pids[j], SIGKILL);
                waitpid(pids[j], NULL, 0);
            }
            return 1;
        }
    }
    double spawn_end = now_ms();

    for (int i = 0; i < count; i++) {
        kill(pids[i], SIGTERM);
    }
    for (int i = 0; i < count; i++) {
        while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR) {
        }
    }
    double stop_end = now_ms();

    printf("{\"n\": %d, \"spawn_ms\": %.3f, \"stop_ms\": %.3f}\n", count, spawn_end - spawn_start,
           stop_end - spawn_end);
    return 0;
}
