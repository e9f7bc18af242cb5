/* The benchmark's line writer: `ticker INTERVAL_MS COUNT_FILE`.
 *
 * Writes "line 1\n", "line 2\n", ... to stdout, one line every INTERVAL_MS milliseconds on an
 * absolute CLOCK_MONOTONIC schedule (a late tick is not made up for: the next one is the next
 * multiple of the interval), each line in one write(2) and nothing buffered. On SIGTERM or
 * SIGINT it writes "end N\n" (N: the last line number), writes "N SKIPPED\n" to COUNT_FILE (so
 * the driver knows how many lines were written even if none of them reached the log; SKIPPED:
 * the ticks missed because a write or a wake-up came late, a saturated machine or a reader
 * that does not keep up) and exits 0.
 *
 * A shell loop (`echo; sleep 0.01`) forks a `sleep` per line: 1000 of them would be 100,000
 * forks a second, more than two cores can do. This costs one write and one nanosleep a line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int signo) {
    (void)signo;
    stop = 1;
}

/* Writes all of buf; 0 on success. */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ticker INTERVAL_MS COUNT_FILE\n");
        return 2;
    }
    long interval_ms = atol(argv[1]);
    if (interval_ms <= 0) {
        fprintf(stderr, "ticker: INTERVAL_MS must be positive\n");
        return 2;
    }
    const char *count_file = argv[2];

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal; /* no SA_RESTART: the sleep returns EINTR */
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    long long interval_ns = interval_ms * 1000000LL;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    unsigned long long count = 0, skipped = 0;
    char line[64];
    int write_failed = 0;
    while (!stop) {
        int len = snprintf(line, sizeof line, "line %llu\n", count + 1);
        if (write_all(1, line, (size_t)len) != 0) {
            write_failed = 1;
            break;
        }
        count++;
        long long t = (long long)next.tv_sec * 1000000000LL + next.tv_nsec + interval_ns;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long now_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
        if (t < now_ns) { /* late: skip to the next tick after now */
            skipped += (unsigned long long)((now_ns - t) / interval_ns) + 1;
            t = now_ns + interval_ns - (now_ns - t) % interval_ns;
        }
        next.tv_sec = t / 1000000000LL;
        next.tv_nsec = t % 1000000000LL;
        while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
        }
    }
    if (!write_failed) {
        int len = snprintf(line, sizeof line, "end %llu\n", count);
        write_all(1, line, (size_t)len);
    }
    int fd = open(count_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        int len = snprintf(line, sizeof line, "%llu %llu\n", count, skipped);
        write_all(fd, line, (size_t)len);
        close(fd);
    }
    return write_failed ? 1 : 0;
}
