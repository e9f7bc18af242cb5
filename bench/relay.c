/* The benchmark's relay floor: `relay copy|splice FILE MAXBYTES BACKUPS`.
 *
 * Moves its stdin (a pipe) into FILE as a supervisor's output drain must, with the least work
 * a relay can do: wait for the pipe (epoll), move what it holds, rotate FILE at MAXBYTES
 * (FILE.N+1 <- FILE.N, the oldest removed first, FILE -> FILE.1; BACKUPS 0: never), until
 * every writer closed the pipe. `copy` reads into a 1 MiB buffer and writes it (two copies,
 * through user space, as `cat` does); `splice` moves the bytes pipe -> file in the kernel
 * (splice(2), one copy). The pipe is made 1 MiB large first, as the daemon does for a busy
 * pipe. It keeps no line whole at rotation: it is the floor, not a supervisor.
 *
 * At the end it prints one JSON line: its own user and system CPU seconds (getrusage, so the
 * writers feeding it are not counted), the bytes moved, the wake-ups and the rotations.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static void die(const char *what) {
    fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int open_file(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        die(path);
    return fd;
}

static void numbered(char *out, size_t size, const char *path, int number) {
    snprintf(out, size, "%s.%d", path, number);
}

/* FILE -> FILE.1 ..., the oldest removed first (no rename replaces a file). */
static int rotate(int fd, const char *path, int backups) {
    char from[4096], to[4096];
    close(fd);
    numbered(from, sizeof from, path, backups);
    if (unlink(from) < 0 && errno != ENOENT)
        die(from);
    for (int number = backups - 1; number >= 1; number--) {
        numbered(from, sizeof from, path, number);
        numbered(to, sizeof to, path, number + 1);
        if (rename(from, to) < 0 && errno != ENOENT)
            die(from);
    }
    numbered(to, sizeof to, path, 1);
    if (rename(path, to) < 0)
        die(path);
    return open_file(path);
}

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

static double seconds(struct timeval tv) { return tv.tv_sec + tv.tv_usec / 1e6; }

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[1], "copy") && strcmp(argv[1], "splice"))) {
        fprintf(stderr, "usage: relay copy|splice FILE MAXBYTES BACKUPS\n");
        return 2;
    }
    int splicing = !strcmp(argv[1], "splice");
    const char *path = argv[2];
    long long maxbytes = atoll(argv[3]);
    int backups = atoi(argv[4]);
    (void)fcntl(0, F_SETPIPE_SZ, CHUNK);
    if (fcntl(0, F_SETFL, O_NONBLOCK) < 0)
        die("stdin");
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN};
    if (epoll < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, 0, &event) < 0)
        die("epoll");
    char *buffer = splicing ? NULL : malloc(CHUNK);
    int fd = open_file(path);
    long long size = 0, moved = 0, wakeups = 0, rotations = 0;
    for (int open = 1; open;) {
        if (epoll_wait(epoll, &event, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        wakeups++;
        for (;;) {
            size_t want = CHUNK;
            if (backups > 0 && maxbytes > 0 && maxbytes - size < (long long)want)
                want = (size_t)(maxbytes - size);
            ssize_t n;
            if (splicing) {
                loff_t offset = size;
                n = splice(0, NULL, fd, &offset, want, SPLICE_F_NONBLOCK);
            } else {
                n = read(0, buffer, want);
                if (n > 0 && write_all(fd, buffer, (size_t)n) < 0)
                    die(path);
            }
            if (n == 0) {
                open = 0;
                break;
            }
            if (n < 0) {
                if (errno == EAGAIN)
                    break;
                if (errno == EINTR)
                    continue;
                die(argv[1]);
            }
            size += n;
            moved += n;
            if (backups > 0 && maxbytes > 0 && size >= maxbytes) {
                fd = rotate(fd, path, backups);
                size = 0;
                rotations++;
            }
        }
    }
    close(fd);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    printf("{\"user_s\": %.6f, \"sys_s\": %.6f, \"bytes\": %lld, \"wakeups\": %lld, "
           "\"rotations\": %lld}\n",
           seconds(usage.ru_utime), seconds(usage.ru_stime), moved, wakeups, rotations);
    return 0;
}
