/*
 * udp_echo: the UDP yardstick of the benches — the least a datagram echo server on epoll can do, in the
 * two forms a C programmer would write, so that the reactor's cost per datagram can be read against a
 * floor.
 *
 *   plain:   recvfrom / sendto, one datagram per system call each way. This is the textbook loop and
 *            the floor for one-at-a-time I/O: per datagram one recvfrom and one sendto, plus one more
 *            recvfrom per wake-up that only answers EAGAIN (an edge-triggered socket must be read until
 *            it says so), plus a share of epoll_wait. Nothing can be taken away without batching.
 *   batched: recvmmsg / sendmmsg, up to BATCH datagrams per system call each way. The floor for
 *            batched I/O: one recvmmsg fills up to BATCH slots; a batch shorter than BATCH means the
 *            socket is drained (the kernel returned all it had), so no EAGAIN call is made; the replies
 *            point straight at the received slots (no copy) and go out with one sendmmsg. Under load,
 *            the system calls per datagram fall towards 2 / BATCH.
 *
 * One thread, one epoll instance, one non-blocking socket registered edge-triggered for reading. A
 * reply the kernel refuses (EAGAIN, ENOBUFS) is dropped, as UDP allows; a partial sendmmsg is resumed
 * from the first datagram not taken, and an error on one datagram skips that one.
 *
 * Usage:   udp_echo plain|batched [PORT]     (default PORT 0; binds 127.0.0.1)
 * Output:  first line `listening on 127.0.0.1:PORT (udp)` (the real port when PORT is 0), as
 *          echo-server --udp prints for its datagram socket.
 * Build:   cc -O2 -o udp_echo udp_echo.c     (the benches do it, next to epoll_echo)
 *
 * Deliberately left out, as a floor should: no statistics, no timers. SIGTERM ends it (by default
 * action), which is when callgrind writes its counts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Datagrams per recvmmsg and per sendmmsg, as the reactor's batch. */
#define BATCH 64
/* The largest datagram a slot holds: every UDP payload fits, so nothing is truncated. */
#define SLOT (64 * 1024)

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Waits until the socket is readable; edge-triggered, so the caller drains it before waiting again. */
static void wait_readable(int epfd) {
    struct epoll_event event;
    while (epoll_wait(epfd, &event, 1, -1) < 0) {
        if (errno != EINTR) die("epoll_wait");
    }
}

/* One datagram at a time: read until EAGAIN, answering each at once. */
static void serve_plain(int fd, int epfd) {
    static char buf[SLOT];
    for (;;) {
        wait_readable(epfd);
        for (;;) {
            struct sockaddr_storage from;
            socklen_t fromlen = sizeof from;
            ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break; /* drained: wait for the next edge */
                if (errno == EINTR) continue;
                continue; /* an ICMP error from an earlier reply: the socket is fine */
            }
            /* A refusal (EAGAIN, ENOBUFS) drops the reply, as UDP allows. */
            (void)sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fromlen);
        }
    }
}

/* BATCH datagrams per call each way; the replies reuse the received slots and addresses. */
static void serve_batched(int fd, int epfd) {
    static char bufs[BATCH][SLOT];
    static struct sockaddr_storage from[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr in[BATCH], out[BATCH];
    /* Set up once: the kernel only writes lengths and address sizes into these. */
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = SLOT;
        in[i].msg_hdr.msg_iov = &iov[i];
        in[i].msg_hdr.msg_iovlen = 1;
        in[i].msg_hdr.msg_name = &from[i];
    }
    for (;;) {
        wait_readable(epfd);
        for (;;) {
            for (int i = 0; i < BATCH; i++) in[i].msg_hdr.msg_namelen = sizeof from[i];
            int n = recvmmsg(fd, in, BATCH, 0, NULL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                continue; /* EINTR, or an ICMP error from an earlier reply */
            }
            /* The replies: each points at its received slot, trimmed to the received length. */
            static struct iovec reply[BATCH];
            for (int i = 0; i < n; i++) {
                reply[i].iov_base = bufs[i];
                reply[i].iov_len = in[i].msg_len;
                out[i].msg_hdr = (struct msghdr){
                    .msg_name = &from[i],
                    .msg_namelen = in[i].msg_hdr.msg_namelen,
                    .msg_iov = &reply[i],
                    .msg_iovlen = 1,
                };
            }
            for (int sent = 0; sent < n;) {
                int k = sendmmsg(fd, out + sent, (unsigned)(n - sent), 0);
                if (k > 0) {
                    sent += k; /* partial: resume from the first not taken */
                } else if (k < 0 && errno == EINTR) {
                    continue;
                } else if (k < 0 && errno != EAGAIN && errno != ENOBUFS) {
                    sent += 1; /* that datagram's own error: skip it */
                } else {
                    break; /* refused: drop the rest, as UDP allows */
                }
            }
            if (n < BATCH) break; /* a short batch: the socket is drained, no EAGAIN call needed */
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "plain") != 0 && strcmp(argv[1], "batched") != 0)) {
        fprintf(stderr, "usage: %s plain|batched [PORT]\n", argv[0]);
        return 2;
    }
    int batched = strcmp(argv[1], "batched") == 0;
    int port = argc > 2 ? atoi(argv[2]) : 0;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
    int epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event event = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) < 0) die("epoll_ctl");
    printf("listening on 127.0.0.1:%d (udp)\n", ntohs(addr.sin_port));
    fflush(stdout);
    if (batched) serve_batched(fd, epfd);
    else serve_plain(fd, epfd);
    return 0;
}
