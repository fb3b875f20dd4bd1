/* udp-proxy: a CONNECT-UDP proxy (RFC 9298) over HTTP/3, on quiche-ev.
 *
 * Why datagrams matter: a UDP flow (DNS, a game, media, QUIC itself)
 * tunnelled through an HTTP proxy must stay unreliable and unordered,
 * or one lost packet stalls every packet behind it. CONNECT-UDP carries
 * each UDP payload in its own HTTP Datagram (RFC 9297), a QUIC DATAGRAM
 * frame bound to the request stream that opened the tunnel.
 *
 * A client opens a tunnel with an extended CONNECT (RFC 9220):
 *
 *   :method CONNECT  :protocol connect-udp  capsule-protocol: ?1
 *   :path /.well-known/masque/udp/{target_host}/{target_port}/
 *
 * then sends HTTP Datagrams on that request, each a Context ID (a QUIC
 * varint; 0: the rest is one whole UDP payload) and the payload. The
 * proxy sends every payload to the target from a UDP socket of its own
 * (connected, non-blocking, watched on the same libev loop as the
 * server) and sends whatever the target answers back the same way, with
 * Context ID 0. The tunnel lives as long as the request: when the client
 * ends its side of the stream, the proxy ends its own and closes the
 * socket.
 *
 * Nothing is dropped silently: when quiche's datagram queue is full the
 * proxy stops reading the target's socket (the kernel's buffer holds the
 * rest, or drops it, as UDP does) and resumes from the datagram writable
 * callback; what cannot be sent at all (too large for the path, a full
 * socket towards the target) is counted and printed at exit.
 *
 * Usage: udp-proxy [--cert F] [--key F] [--drain-ms N] [--any-target]
 *                  [--verbose] HOST PORT
 * Targets are IP address literals (a name would need a resolver that
 * does not block the loop), on loopback only unless --any-target: an open
 * UDP proxy is a gift to attackers. PORT 0 picks a free port. SIGINT /
 * SIGTERM shut down gracefully, as app-server does. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <quiche_ev.h>

#include "common.h"

/* HTTP Datagrams are single QUIC packets: nothing larger arrives. */
#define MAX_PAYLOAD 1500

#define HEADER(n, v) { (const uint8_t *) (n), sizeof(n) - 1, (const uint8_t *) (v), strlen(v) }

struct proxy {
    struct ev_loop *loop;
    quiche_ev_server *server;
    long drain_ms;
    int signals;
    bool any_target;
    bool verbose;
    struct tunnel *tunnels;      /* every open tunnel, to resume paused ones */
    uint64_t opened;             /* tunnels opened */
    uint64_t refused;            /* CONNECT requests answered with an error */
    uint64_t to_target;          /* payloads sent to targets */
    uint64_t from_target;        /* payloads sent back to clients */
    uint64_t dropped_to_target;  /* the target's socket refused (full, or ICMP errors) */
    uint64_t dropped_from_target;/* larger than the client takes, or a request over */
    uint64_t other_contexts;     /* datagrams with a Context ID other than 0 (dropped, RFC 9298) */
    uint64_t waits;              /* quiche's datagram queue was full: reading paused */
};

/* One tunnel: its request, the socket towards the target, and one
 * payload read from the target that did not fit quiche's queue yet. */
struct tunnel {
    struct proxy *proxy;
    quiche_ev_request *req;
    quiche_ev_conn *conn;
    int fd;
    ev_io watcher;
    struct tunnel *next;
    bool paused;
    size_t pending_len;
    uint8_t pending[1 + MAX_PAYLOAD];
};

/* ---- the path template ---- */

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies the path segment at `*p` (up to the next '/') into `out`,
 * percent-decoded (an IPv6 address comes as 2001%3Adb8%3A%3A1), and moves
 * `*p` past its '/'. False for a missing or oversized segment. */
static bool segment(const char **p, char *out, size_t size) {
    size_t n = 0;
    const char *s = *p;
    for (; *s != '\0' && *s != '/'; s++) {
        char c = *s;
        if (c == '%') {
            int hi = hex_value(s[1]), lo = hi < 0 ? -1 : hex_value(s[2]);
            if (lo < 0) {
                return false;
            }
            c = (char) (hi * 16 + lo);
            s += 2;
        }
        if (n + 1 >= size) {
            return false;
        }
        out[n++] = c;
    }
    if (*s != '/' || n == 0) {
        return false;
    }
    out[n] = '\0';
    *p = s + 1;
    return true;
}

/* The target of `/.well-known/masque/udp/{host}/{port}/`, resolved as a
 * numeric address only. NULL when the path does not match. */
static struct addrinfo *target_of(const char *path) {
    static const char prefix[] = "/.well-known/masque/udp/";
    char host[64], port[8];
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
        return NULL;
    }
    const char *p = path + sizeof(prefix) - 1;
    if (!segment(&p, host, sizeof(host)) || !segment(&p, port, sizeof(port)) || (*p != '\0' && *p != '?')) {
        return NULL;
    }
    const struct addrinfo hints = {
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_DGRAM,
    };
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        return NULL;
    }
    return ai;
}

static bool is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
    static const uint8_t one[16] = { [15] = 1 };
    return memcmp(&in6->sin6_addr, one, 16) == 0;
}

/* ---- target -> client ---- */

/* Sends one payload (Context ID 0 in front, already in `d`) back to the
 * client. False when quiche's queue is full: the caller keeps it. */
static bool send_back(struct tunnel *t, const uint8_t *d, size_t len) {
    int rc = quiche_ev_request_send_datagram(t->req, d, len);
    if (rc == QUICHE_EV_ERR_AGAIN) {
        return false;
    }
    if (rc == 0) {
        t->proxy->from_target++;
    } else {
        t->proxy->dropped_from_target++; /* too large for the path, or the request is over */
        if (t->proxy->verbose) {
            fprintf(stderr, "datagram back dropped: %s\n", quiche_ev_last_error());
        }
    }
    return true;
}

/* Reads the target's socket until it is empty, or until quiche's queue
 * is full: then the payload in hand waits, and so does the socket. */
static void drain_target(struct tunnel *t) {
    for (;;) {
        t->pending[0] = 0; /* Context ID 0: a whole UDP payload */
        ssize_t n = recv(t->fd, t->pending + 1, MAX_PAYLOAD, 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                t->proxy->dropped_to_target++; /* e.g. ECONNREFUSED: an ICMP error for an earlier send */
            }
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if (!send_back(t, t->pending, (size_t) n + 1)) {
            t->pending_len = (size_t) n + 1;
            t->paused = true;
            t->proxy->waits++;
            ev_io_stop(t->proxy->loop, &t->watcher);
            return;
        }
    }
}

static void on_target_readable(struct ev_loop *loop, ev_io *w, int revents) {
    (void) loop;
    (void) revents;
    drain_target(w->data);
}

/* quiche's datagram queue for `conn` has room again: the paused tunnels
 * on it send what they held and read on. */
static void on_datagram_writable(quiche_ev_conn *conn, void *user) {
    struct proxy *proxy = user;
    for (struct tunnel *t = proxy->tunnels; t != NULL; t = t->next) {
        if (t->conn != conn || !t->paused) {
            continue;
        }
        if (!send_back(t, t->pending, t->pending_len)) {
            return; /* full again: the next writable callback goes on */
        }
        t->paused = false;
        t->pending_len = 0;
        ev_io_start(proxy->loop, &t->watcher);
        drain_target(t);
    }
}

/* ---- client -> target ---- */

/* One HTTP Datagram of a tunnel: a Context ID, then the payload. */
static void on_request_datagram(quiche_ev_request *req, const uint8_t *data, size_t len, void *user) {
    struct proxy *proxy = user;
    struct tunnel *t = quiche_ev_request_user_data(req);
    if (t == NULL || len == 0) {
        return;
    }
    /* The Context ID is a QUIC varint: its first two bits give its length. */
    size_t id_len = (size_t) 1 << (data[0] >> 6);
    uint64_t context = data[0] & 0x3f;
    for (size_t i = 1; i < id_len && i < len; i++) {
        context = (context << 8) | data[i];
    }
    if (id_len > len || context != 0) {
        proxy->other_contexts++; /* no extension negotiated: dropped, as RFC 9298 says */
        return;
    }
    if (send(t->fd, data + id_len, len - id_len, 0) < 0) {
        proxy->dropped_to_target++; /* the socket's buffer is full: UDP drops */
        return;
    }
    proxy->to_target++;
}

/* The stream carries capsules (RFC 9297 §3); none is needed here, and
 * unknown ones are skipped, so the bytes are taken and dropped. The end
 * of the client's side ends the tunnel: our side ends too. */
static size_t on_request_body(quiche_ev_request *req, const uint8_t *data, size_t len, int fin, void *user) {
    (void) data;
    (void) user;
    if (fin && quiche_ev_request_user_data(req) != NULL) {
        quiche_ev_respond_write(req, NULL, 0, 1);
    }
    return len;
}

/* ---- tunnels ---- */

static void refuse(struct proxy *proxy, quiche_ev_request *req, int status, const char *why) {
    proxy->refused++;
    if (proxy->verbose) {
        fprintf(stderr, "refused %s %s: %d %s\n", quiche_ev_request_method(req), quiche_ev_request_path(req),
                status, why);
    }
    quiche_ev_respond(req, status, NULL, 0, 1);
}

static int target_socket(const struct addrinfo *ai) {
    int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
    if (fd < 0) {
        return -1;
    }
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
        connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void on_request(quiche_ev_request *req, void *user) {
    struct proxy *proxy = user;
    if (strcmp(quiche_ev_request_method(req), "CONNECT") != 0) {
        refuse(proxy, req, 405, "not a CONNECT");
        return;
    }
    if (strcmp(quiche_ev_request_protocol(req), "connect-udp") != 0) {
        refuse(proxy, req, 501, "not connect-udp");
        return;
    }
    /* HTTP Datagrams need the client's SETTINGS_H3_DATAGRAM (and QUIC
     * datagrams); this proxy carries no DATAGRAM capsules instead. */
    if (quiche_ev_request_datagram_max_len(req) < 0) {
        refuse(proxy, req, 400, quiche_ev_last_error());
        return;
    }
    struct addrinfo *target = target_of(quiche_ev_request_path(req));
    if (target == NULL) {
        refuse(proxy, req, 400, "not /.well-known/masque/udp/{IP address}/{port}/");
        return;
    }
    if (!proxy->any_target && !is_loopback(target->ai_addr)) {
        freeaddrinfo(target);
        refuse(proxy, req, 403, "not a loopback target (--any-target allows any)");
        return;
    }
    int fd = target_socket(target);
    freeaddrinfo(target);
    struct tunnel *t = fd >= 0 ? calloc(1, sizeof(*t)) : NULL;
    if (t == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        refuse(proxy, req, 502, "cannot open a socket to the target");
        return;
    }
    t->proxy = proxy;
    t->req = req;
    t->conn = quiche_ev_request_conn(req);
    t->fd = fd;
    t->next = proxy->tunnels;
    proxy->tunnels = t;
    ev_io_init(&t->watcher, on_target_readable, fd, EV_READ);
    t->watcher.data = t;
    ev_io_start(proxy->loop, &t->watcher);
    quiche_ev_request_set_user_data(req, t);
    proxy->opened++;
    if (proxy->verbose) {
        fprintf(stderr, "tunnel open: %s\n", quiche_ev_request_path(req));
    }
    /* 2xx: the tunnel is open; the stream stays open (no fin). */
    quiche_ev_header h[] = { HEADER("capsule-protocol", "?1") };
    quiche_ev_respond(req, 200, h, 1, 0);
}

/* The request is over (the tunnel ended, was reset, or its connection
 * closed): the socket goes with it. */
static void on_request_closed(quiche_ev_request *req, int outcome, uint64_t code, void *user) {
    struct proxy *proxy = user;
    struct tunnel *t = quiche_ev_request_user_data(req);
    (void) code;
    if (t == NULL) {
        return;
    }
    if (proxy->verbose) {
        fprintf(stderr, "tunnel closed: outcome %d\n", outcome);
    }
    ev_io_stop(proxy->loop, &t->watcher);
    close(t->fd);
    for (struct tunnel **p = &proxy->tunnels; *p != NULL; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    free(t);
}

/* ---- shutting down ---- */

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void) loop;
    (void) revents;
    struct proxy *proxy = w->data;
    fprintf(stderr, "signal %d: shutting down\n", w->signum);
    quiche_ev_server_shutdown(proxy->server, proxy->signals++ == 0 ? (uint64_t) proxy->drain_ms : 0);
}

static void on_stopped(quiche_ev_server *server, int status, void *user) {
    (void) server;
    (void) status;
    struct proxy *proxy = user;
    ev_break(proxy->loop, EVBREAK_ALL);
}

static void print_log(int level, const char *msg, void *user) {
    (void) level;
    (void) user;
    fprintf(stderr, "%s\n", msg);
}

/* ---- main ---- */

static bool parse_args(int argc, char *argv[], struct server_args *args, struct proxy *proxy) {
    memset(args, 0, sizeof(*args));
    args->drain_ms = 2000;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--verbose") == 0) {
            proxy->verbose = true;
        } else if (strcmp(argv[i], "--any-target") == 0) {
            proxy->any_target = true;
        } else if (i + 1 >= argc) {
            return false;
        } else if (strcmp(argv[i], "--cert") == 0) {
            args->cert = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0) {
            args->key = argv[++i];
        } else if (strcmp(argv[i], "--drain-ms") == 0) {
            args->drain_ms = atol(argv[++i]);
        } else {
            return false;
        }
    }
    if (argc - i != 2) {
        return false;
    }
    args->host = argv[i];
    args->port = argv[i + 1];
    proxy->drain_ms = args->drain_ms;
    return true;
}

int main(int argc, char *argv[]) {
    struct server_args args;
    struct proxy proxy = { .loop = NULL };
    if (!parse_args(argc, argv, &args, &proxy)) {
        fprintf(stderr, "usage: %s [--cert FILE] [--key FILE] [--drain-ms N] [--any-target] [--verbose] HOST PORT\n",
                argv[0]);
        return EXIT_USAGE;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    quiche_ev_set_log(print_log, NULL, proxy.verbose ? QUICHE_EV_LOG_INFO : QUICHE_EV_LOG_WARN);

    int status = 1;
    struct addrinfo *local = resolve(args.host, args.port);
    int sock = local != NULL ? udp_socket(local, true) : -1;
    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    quiche_h3_config *h3_config = quiche_h3_config_new();
    struct ev_loop *loop = ev_default_loop(0);
    quiche_ev_server *server = NULL;
    if (sock < 0 || config == NULL || h3_config == NULL || !load_cert(config, &args)) {
        goto out;
    }

    configure_h3_app(config);
    /* QUIC datagrams: quiche then advertises max_datagram_frame_size and
     * its HTTP/3 layer sends SETTINGS_H3_DATAGRAM. The queue lengths are
     * quiche's own limits, per connection and direction. */
    quiche_config_enable_dgram(config, true, 1024, 1024);
    /* SETTINGS_ENABLE_CONNECT_PROTOCOL: clients may send extended CONNECT. */
    quiche_h3_config_enable_extended_connect(h3_config, true);

    server = quiche_ev_server_new(loop, sock, local->ai_addr, local->ai_addrlen, config, h3_config);
    if (server == NULL) {
        goto out;
    }
    proxy.loop = loop;
    proxy.server = server;
    quiche_ev_server_set_user_data(server, &proxy);
    quiche_ev_server_on_request(server, on_request);
    quiche_ev_server_on_request_body(server, on_request_body);
    quiche_ev_server_on_request_closed(server, on_request_closed);
    quiche_ev_server_on_request_datagram(server, on_request_datagram);
    quiche_ev_server_on_datagram_writable(server, on_datagram_writable);
    quiche_ev_server_on_stopped(server, on_stopped);
    /* No stateless retry: quiche 0.30 encodes the server's transport
     * parameters into 128 bytes, and a Retry adds two connection IDs
     * (up to 40 bytes) to them; with max_datagram_frame_size as well they
     * no longer fit for a client whose connection IDs are 16 bytes or
     * longer (quiche's own, ngtcp2's), whose every connection would then
     * fail. QUIC's anti-amplification limit still holds without it. */
    quiche_ev_server_set_retry(server, 0);
    quiche_ev_server_start(server); /* the server watches its socket itself */

    ev_signal sigint_watcher, sigterm_watcher;
    ev_signal_init(&sigint_watcher, on_signal, SIGINT);
    ev_signal_init(&sigterm_watcher, on_signal, SIGTERM);
    sigint_watcher.data = sigterm_watcher.data = &proxy;
    ev_signal_start(loop, &sigint_watcher);
    ev_signal_start(loop, &sigterm_watcher);

    print_listening(sock);
    ev_run(loop, 0);

    ev_signal_stop(loop, &sigint_watcher);
    ev_signal_stop(loop, &sigterm_watcher);
    fprintf(stderr, "udp-proxy stats: tunnels=%" PRIu64 " refused=%" PRIu64 " to_target=%" PRIu64
            " from_target=%" PRIu64 " dropped_to_target=%" PRIu64 " dropped_from_target=%" PRIu64
            " other_contexts=%" PRIu64 " waits=%" PRIu64 "\n", proxy.opened, proxy.refused, proxy.to_target,
            proxy.from_target, proxy.dropped_to_target, proxy.dropped_from_target, proxy.other_contexts,
            proxy.waits);
    status = 0;

out:
    quiche_ev_server_free(server);
    free_process(loop, h3_config, config, local, sock);
    return status;
}
