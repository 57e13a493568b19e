/*
 * echo_server.c: a single-threaded poll(2) WebSocket echo server in plain C99, driven
 * only through the wsengine C API (include/wsengine.h). It is the Autobahn|Testsuite
 * agent of the C ABI (see ffi/README.md).
 *
 *   usage: echo_server [--deflate] 127.0.0.1:PORT      ([::1]:PORT for IPv6)
 *
 * Every handshake is accepted and every text or binary message echoed. With --deflate,
 * permessage-deflate (RFC 7692) is accepted when a client offers it, with the library's
 * default policy (wsengine_config.deflate).
 *
 * Once the library says the transport should close, the server shuts down its write side
 * and reads (and discards) until the peer's EOF or LINGER_NS, so the Close frame or HTTP
 * error response is not destroyed by a reset (the server closes the TCP connection
 * first, RFC 6455 section 7.1.1). SIGINT and SIGTERM free everything and exit 0.
 *
 * Set ECHO_SERVER_LOG=1 to log each connection's end on stderr.
 *
 * Build: ffi/build-example.sh.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "wsengine.h"

#define READ_CHUNK (64 * 1024)
#define READS_PER_WAKEUP 16
#define LINGER_NS (2ull * 1000 * 1000 * 1000)
#define NEVER UINT64_MAX

typedef struct client {
    int fd;
    wsengine_conn *ws;       /* NULL once the connection is over (lingering) */
    int peer_eof;            /* the peer ended its stream */
    int dead;                /* to be freed at the end of this loop iteration */
    uint64_t linger_deadline; /* lingering: drop the socket at this time */
} client;

static client **clients;
static size_t client_count;
static size_t client_cap;
static int listen_fd = -1;
static int signal_pipe[2] = {-1, -1};
static unsigned char buf[READ_CHUNK]; /* lingering reads, discarded */
static int log_enabled;
static wsengine_config config; /* every connection's, set up in main */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig) {
    int saved = errno;
    unsigned char byte = (unsigned char)sig;
    /* The main loop polls the pipe: no race between a check and poll(). */
    if (write(signal_pipe[1], &byte, 1) < 0) {
        /* The pipe is full: a signal is already pending. */
    }
    errno = saved;
}

static int set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void logf_conn(const client *c, const char *what, const char *detail) {
    if (detail && !detail[0]) {
        detail = NULL;
    }
    if (log_enabled) {
        fprintf(stderr, "[echo_server] fd %d: %s%s%s\n", c->fd, what, detail ? ": " : "",
                detail ? detail : "");
    }
}

/* The connection is over for the WebSocket layer: free the handle, shut down the write
 * side and linger (or drop the socket at once if the peer already ended its stream). */
static void finish(client *c, const char *why) {
    if (c->ws) {
        logf_conn(c, why, wsengine_last_error_message(c->ws));
        wsengine_destroy(c->ws);
        c->ws = NULL;
    }
    if (c->peer_eof || shutdown(c->fd, SHUT_WR) < 0) {
        c->dead = 1;
        return;
    }
    c->linger_deadline = now_ns() + LINGER_NS;
}

/* Writes the transmit buffer until it is empty or the socket would block. */
static void flush(client *c) {
    for (;;) {
        wsengine_bytes tx;
        if (wsengine_poll_transmit(c->ws, &tx) != WSENGINE_OK || tx.len == 0) {
            return;
        }
        ssize_t n = write(c->fd, tx.data, tx.len);
        if (n > 0) {
            wsengine_advance_transmit(c->ws, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            /* The peer is gone: nothing more can be delivered. */
            logf_conn(c, "write failed", n < 0 ? strerror(errno) : "wrote 0 bytes");
            wsengine_destroy(c->ws);
            c->ws = NULL;
            c->dead = 1;
            return;
        }
    }
}

static void echo(client *c, const wsengine_event *ev) {
    wsengine_status st = ev->kind == WSENGINE_EVENT_TEXT
                             ? wsengine_send_text(c->ws, ev->data, ev->len)
                             : wsengine_send_binary(c->ws, ev->data, ev->len);
    if (st == WSENGINE_BLOCKED) {
        /* Only when one read carried more echoes than the send buffer holds: reading
         * stops while the peer does not read (see want_events). */
        static const char reason[] = "send buffer full";
        logf_conn(c, "peer is not reading; closing", NULL);
        wsengine_close(c->ws, 1008, (const uint8_t *)reason, sizeof reason - 1);
    }
}

/* After any input: handle every event, write, and close when the library says so. */
static void progress(client *c) {
    if (!c->ws) {
        return;
    }
    for (;;) {
        wsengine_event ev;
        wsengine_status st = wsengine_poll_event(c->ws, &ev);
        if (st == WSENGINE_AGAIN) {
            break;
        }
        if (st != WSENGINE_OK) {
            /* Fatal: the Close frame or HTTP error (if any) is queued; flush it below. */
            break;
        }
        switch (ev.kind) {
        case WSENGINE_EVENT_REQUEST:
            wsengine_accept(c->ws, NULL, 0, NULL, 0);
            break;
        case WSENGINE_EVENT_TEXT:
        case WSENGINE_EVENT_BINARY:
            echo(c, &ev);
            break;
        default:
            /* Pongs and Close replies are queued by the library itself. */
            break;
        }
    }
    flush(c);
    if (c->ws && wsengine_should_close_transport(c->ws) == 1) {
        finish(c, "closed");
    }
}

/* Reads what the socket has straight into the connection's receive buffer (no copy:
 * wsengine_recv_buf offers the room, wsengine_commit_recv takes what was read), then
 * progresses. */
static void service_read(client *c) {
    int i;
    for (i = 0; i < READS_PER_WAKEUP && c->ws && !c->dead && !c->peer_eof; i++) {
        uint8_t *room = NULL;
        size_t room_len = 0;
        ssize_t n;
        int err;
        if (wsengine_is_send_blocked(c->ws) == 1) {
            return; /* backpressure: let the peer read first */
        }
        if (wsengine_recv_buf(c->ws, &room, &room_len) != WSENGINE_OK) {
            /* WSENGINE_AGAIN: the receive buffer is full (no room: a read into it would
             * return 0, which is not EOF). Handling the events drains it. */
            progress(c);
            continue;
        }
        n = read(c->fd, room, room_len);
        err = errno;
        /* Commit at once, 0 when nothing was read: no other call on the handle may come
         * between wsengine_recv_buf and wsengine_commit_recv. */
        wsengine_commit_recv(c->ws, n > 0 ? (size_t)n : 0);
        if (n == 0) {
            c->peer_eof = 1;
            wsengine_recv_eof(c->ws);
        } else if (n < 0 && err == EINTR) {
            continue;
        } else if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
            return;
        } else if (n < 0) {
            c->peer_eof = 1; /* a reset: treat as the end of the stream */
            wsengine_recv_eof(c->ws);
        }
        progress(c);
    }
}

/* Lingering: read and discard until EOF. */
static void linger_read(client *c) {
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        c->dead = 1;
        return;
    }
}

static void free_client(client *c) {
    wsengine_destroy(c->ws);
    close(c->fd);
    free(c);
}

static void accept_all(void) {
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            return; /* EAGAIN, or out of descriptors: try again on the next wakeup */
        }
        int one = 1;
        client *c = NULL;
        wsengine_conn *ws = NULL;
        if (set_nonblocking(fd) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
            wsengine_create(WSENGINE_ROLE_SERVER, &config, NULL, now_ns(), &ws) != WSENGINE_OK) {
            close(fd);
            continue;
        }
        if (client_count == client_cap) {
            size_t cap = client_cap ? client_cap * 2 : 16;
            client **grown = realloc(clients, cap * sizeof *grown);
            if (!grown) {
                wsengine_destroy(ws);
                close(fd);
                continue;
            }
            clients = grown;
            client_cap = cap;
        }
        c = calloc(1, sizeof *c);
        if (!c) {
            wsengine_destroy(ws);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->ws = ws;
        clients[client_count++] = c;
    }
}

/* Runs due timers and returns the earliest pending deadline (NEVER if none). */
static uint64_t run_timers(uint64_t now) {
    uint64_t earliest = NEVER;
    size_t i;
    for (i = 0; i < client_count; i++) {
        client *c = clients[i];
        uint64_t deadline = NEVER;
        if (c->dead) {
            continue;
        }
        if (!c->ws) {
            if (now >= c->linger_deadline) {
                c->dead = 1;
                continue;
            }
            deadline = c->linger_deadline;
        } else if (wsengine_next_timeout(c->ws, &deadline) == WSENGINE_OK && deadline <= now) {
            wsengine_handle_timeout(c->ws, now);
            progress(c);
            if (c->dead) {
                continue;
            }
            deadline = c->ws ? NEVER : c->linger_deadline;
            if (c->ws) {
                wsengine_next_timeout(c->ws, &deadline);
            }
        }
        if (deadline < earliest) {
            earliest = deadline;
        }
    }
    return earliest;
}

static void sweep(void) {
    size_t i = 0;
    while (i < client_count) {
        if (clients[i]->dead) {
            free_client(clients[i]);
            clients[i] = clients[--client_count];
        } else {
            i++;
        }
    }
}

static void free_all(void) {
    size_t i;
    for (i = 0; i < client_count; i++) {
        free_client(clients[i]);
    }
    free(clients);
    clients = NULL;
    client_count = client_cap = 0;
    if (listen_fd >= 0) {
        close(listen_fd);
    }
    close(signal_pipe[0]);
    close(signal_pipe[1]);
}

static int listen_on(const char *arg) {
    char host[256];
    const char *colon = strrchr(arg, ':');
    size_t host_len;
    struct addrinfo hints, *res = NULL;
    int fd, one = 1, rc;
    if (!colon || colon == arg || colon[1] == '\0') {
        return -1;
    }
    host_len = (size_t)(colon - arg);
    if (arg[0] == '[' && host_len >= 2 && arg[host_len - 1] == ']') {
        arg++;
        host_len -= 2;
    }
    if (host_len >= sizeof host) {
        return -1;
    }
    memcpy(host, arg, host_len);
    host[host_len] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "echo_server: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
        set_nonblocking(fd) < 0) {
        perror("echo_server: listen");
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

int main(int argc, char **argv) {
    struct sigaction sa;
    struct pollfd *fds = NULL;
    client **polled = NULL;
    size_t fds_cap = 0;
    const char *log_env = getenv("ECHO_SERVER_LOG");
    const char *addr;
    int deflate = 0;
    int exit_code = 0;

    if (argc == 3 && strcmp(argv[1], "--deflate") == 0) {
        deflate = 1;
        addr = argv[2];
    } else if (argc == 2 && argv[1][0] != '-') {
        addr = argv[1];
    } else {
        fprintf(stderr, "usage: %s [--deflate] 127.0.0.1:PORT\n", argv[0]);
        return 2;
    }
    log_enabled = log_env && log_env[0] && strcmp(log_env, "0") != 0;
    if (wsengine_abi_version() != WSENGINE_ABI_VERSION) {
        fprintf(stderr, "echo_server: library ABI %u, header ABI %u\n",
                (unsigned)wsengine_abi_version(), (unsigned)WSENGINE_ABI_VERSION);
        return 1;
    }
    if (wsengine_config_init(&config, sizeof config) != WSENGINE_OK) {
        fprintf(stderr, "echo_server: wsengine_config_init failed\n");
        return 1;
    }
    config.deflate.enabled = deflate ? 1 : 0;
    if (pipe(signal_pipe) < 0 || set_nonblocking(signal_pipe[0]) < 0 ||
        set_nonblocking(signal_pipe[1]) < 0) {
        perror("echo_server: pipe");
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    listen_fd = listen_on(addr);
    if (listen_fd < 0) {
        fprintf(stderr, "echo_server: cannot listen on %s\n", addr);
        free_all();
        return 1;
    }
    fprintf(stderr, "echo_server: wsengine %s listening on %s%s\n", wsengine_version(), addr,
            config.deflate.enabled ? " (permessage-deflate)" : "");

    for (;;) {
        uint64_t now = now_ns();
        uint64_t deadline = run_timers(now);
        int timeout_ms = -1;
        size_t nfds = 2, i;
        int ready;

        sweep();
        if (deadline != NEVER) {
            uint64_t wait = deadline > now ? deadline - now : 0;
            uint64_t ms = (wait + 999999) / 1000000;
            timeout_ms = ms > INT_MAX ? INT_MAX : (int)ms;
        }
        if (fds_cap < client_count + 2) {
            size_t cap = (client_count + 2) * 2;
            struct pollfd *f = realloc(fds, cap * sizeof *f);
            client **p = f ? realloc(polled, cap * sizeof *p) : NULL;
            if (f) {
                fds = f;
            }
            if (!f || !p) {
                fprintf(stderr, "echo_server: out of memory\n");
                exit_code = 1;
                break;
            }
            polled = p;
            fds_cap = cap;
        }
        fds[0].fd = signal_pipe[0];
        fds[0].events = POLLIN;
        fds[1].fd = listen_fd;
        fds[1].events = POLLIN;
        for (i = 0; i < client_count; i++) {
            client *c = clients[i];
            short events = 0;
            if (!c->ws) {
                events = POLLIN; /* lingering: wait for the peer's EOF */
            } else {
                if (!c->peer_eof && wsengine_is_send_blocked(c->ws) != 1) {
                    events |= POLLIN;
                }
                if (wsengine_wants_write(c->ws) == 1) {
                    events |= POLLOUT;
                }
            }
            fds[nfds].fd = c->fd;
            fds[nfds].events = events;
            fds[nfds].revents = 0;
            polled[nfds] = c;
            nfds++;
        }
        ready = poll(fds, (nfds_t)nfds, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("echo_server: poll");
            exit_code = 1;
            break;
        }
        if (fds[0].revents & POLLIN) {
            fprintf(stderr, "echo_server: signal received, shutting down\n");
            break;
        }
        for (i = 2; i < nfds; i++) {
            client *c = polled[i];
            short revents = fds[i].revents;
            if (!revents || c->dead) {
                continue;
            }
            if (!c->ws) {
                linger_read(c);
                continue;
            }
            if (revents & POLLOUT) {
                flush(c);
                if (c->ws && wsengine_should_close_transport(c->ws) == 1) {
                    finish(c, "closed");
                }
            }
            if (c->ws && !c->dead && (revents & (POLLIN | POLLHUP | POLLERR))) {
                service_read(c);
            }
        }
        if (fds[1].revents & POLLIN) {
            accept_all();
        }
        sweep();
    }
    free(fds);
    free(polled);
    free_all();
    return exit_code;
}
