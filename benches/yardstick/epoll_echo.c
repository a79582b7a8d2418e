/*
 * epoll_echo: the yardstick of the benches — the least an echo server on epoll can do, so that the
 * reactor's cost per message can be read against a floor rather than against another framework.
 *
 * One thread, one epoll instance, every socket non-blocking and edge-triggered. When a connection is
 * readable it is read until drained (a read shorter than the buffer means the kernel had no more), and
 * each piece is written back at once; whatever the socket does not take is queued and written when the
 * socket reports room (EPOLLOUT). A connection whose queue reaches QUEUE_MAX is read no further until
 * the queue drains, so a peer that sends without reading cannot grow the server without bound. The
 * peer's EOF closes the connection once its queue is written.
 *
 * Usage:   epoll_echo [PORT [BACKLOG]]     (defaults: 0, 1024; listens on 127.0.0.1)
 * Output:  first line `listening on 127.0.0.1:PORT` (the real port when PORT is 0), as echo-server's.
 * Build:   cc -O2 -o epoll_echo epoll_echo.c          (benches/build-yardstick.sh does it)
 *
 * Deliberately left out, as a floor should: no timers, no limits on connections, no statistics. Out of
 * descriptors, accept stops until the listener is readable again (a new peer arrives).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE (64 * 1024)
#define QUEUE_MAX (4 * 1024 * 1024)
#define EVENTS 1024

/* What one connection still has to write back, and whether it waits for that before reading on. */
struct conn {
    char *queue;
    size_t start, end, cap;
    int eof;    /* the peer has sent EOF: close once the queue is written */
    int paused; /* the queue reached QUEUE_MAX: reading waits until it is written */
};

static struct conn *conns; /* indexed by descriptor */
static size_t conns_len;
static int epfd;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static struct conn *conn_of(int fd) {
    if ((size_t)fd >= conns_len) {
        size_t len = conns_len ? conns_len : 1024;
        while (len <= (size_t)fd) len *= 2;
        struct conn *grown = realloc(conns, len * sizeof *grown);
        if (!grown) die("realloc");
        memset(grown + conns_len, 0, (len - conns_len) * sizeof *grown);
        conns = grown;
        conns_len = len;
    }
    return &conns[fd];
}

static void close_conn(int fd) {
    struct conn *c = conn_of(fd);
    free(c->queue);
    memset(c, 0, sizeof *c);
    close(fd); /* also removes it from the epoll set */
}

static size_t queued(const struct conn *c) { return c->end - c->start; }

/* Appends bytes the socket did not take; returns -1 when out of memory. */
static int enqueue(struct conn *c, const char *data, size_t len) {
    if (c->start > 0 && c->end + len > c->cap) {
        memmove(c->queue, c->queue + c->start, queued(c));
        c->end -= c->start;
        c->start = 0;
    }
    if (c->end + len > c->cap) {
        size_t cap = c->cap ? c->cap : READ_SIZE;
        while (cap < c->end + len) cap *= 2;
        char *grown = realloc(c->queue, cap);
        if (!grown) return -1;
        c->queue = grown;
        c->cap = cap;
    }
    memcpy(c->queue + c->end, data, len);
    c->end += len;
    return 0;
}

static void watch(int fd, int writable) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (writable ? EPOLLOUT : 0),
                             .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0) die("epoll_ctl");
}

/* Writes what is queued; returns 1 when the queue is empty, 0 when the socket is full, -1 on error. */
static int flush(int fd, struct conn *c) {
    while (queued(c) > 0) {
        ssize_t n = send(fd, c->queue + c->start, queued(c), MSG_NOSIGNAL);
        if (n > 0) {
            c->start += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return 0;
        } else {
            return -1;
        }
    }
    c->start = c->end = 0;
    return 1;
}

/* Reads until drained (or until the queue is full), echoing each piece at once. Returns -1 when the
 * connection must close now. */
static int serve(int fd, struct conn *c) {
    static char buf[READ_SIZE];
    while (!c->eof) {
        if (queued(c) >= QUEUE_MAX) {
            c->paused = 1;
            return 0;
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        if (n == 0) {
            c->eof = 1;
            break;
        }
        size_t sent = 0;
        if (queued(c) == 0) {
            ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR) return -1;
            sent = w > 0 ? (size_t)w : 0;
        }
        if (sent < (size_t)n) {
            int was_empty = queued(c) == 0;
            if (enqueue(c, buf + sent, (size_t)n - sent) < 0) return -1;
            if (was_empty) watch(fd, 1);
        }
        if ((size_t)n < sizeof buf) return 0; /* a short read: the kernel had no more */
    }
    return 0;
}

static void on_conn_event(int fd, unsigned events) {
    struct conn *c = conn_of(fd);
    if (events & EPOLLERR) {
        close_conn(fd);
        return;
    }
    if (events & EPOLLOUT && queued(c) > 0) {
        int done = flush(fd, c);
        if (done < 0) {
            close_conn(fd);
            return;
        }
        if (done) {
            watch(fd, 0);
            if (c->paused) {
                /* Edge-triggered: data left in the kernel while paused is not announced again. */
                c->paused = 0;
                events |= EPOLLIN;
            }
        }
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP) && !c->paused && serve(fd, c) < 0) {
        close_conn(fd);
        return;
    }
    if (c->eof && queued(c) == 0) close_conn(fd);
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return; /* EAGAIN: none left; EMFILE and the like: the rest wait in the accept queue */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_of(fd);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            continue;
        }
        /* Data may have arrived before the descriptor was watched: read it now. */
        on_conn_event(fd, EPOLLIN);
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int backlog = argc > 2 ? atoi(argv[2]) : 1024;
    if (port < 0 || port > 65535 || backlog < 1) {
        fprintf(stderr, "usage: %s [PORT [BACKLOG]]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, backlog) < 0) die("listen");
    socklen_t len = sizeof addr;
    if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = listener};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev) < 0) die("epoll_ctl");
    struct epoll_event events[EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                accept_all(listener);
            } else {
                on_conn_event(fd, events[i].events);
            }
        }
    }
}
