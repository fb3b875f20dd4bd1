/* req_load: the request load of `make bench`, on quiche-ev's public client
 * API only (quiche_ev_client_request with many requests in flight), so it
 * measures what a user of the library gets.
 *
 *   req_load [options] HOST PORT
 *
 * Requests (default): --conns N connections (10), each keeping
 * --inflight K requests (100) of GET --path P (/) in flight: first
 * --warmup W requests per connection (20), then --requests R in all
 * (100000), spread evenly. Handshakes (--handshakes H): connections one
 * request each (GET P, then close), --concurrency C at a time (16): first
 * C of them as a warm-up, then H. Every client uses http3-client.c's
 * settings, starting with QUIC v1 (no version negotiation).
 *
 * On stdout, one line per event, flushed:
 *   warm                  the warm-up is over (nothing in flight)
 *   progress N            N measured requests done (every --progress N)
 *   done {json}           the measured phase is over: {"requests",
 *                         "failed", "body_bytes", "wall_s", "cpu_s",
 *                         "packets_sent", "packets_recv"}
 *                         (cpu_s: this process, user + system, over the
 *                         measured phase; packets: QUIC packets all
 *                         connections sent and received in it, requests
 *                         only, 0 for --handshakes)
 * With --pause the program waits after "warm" and after "done" for a line
 * on stdin (the connections stay open meanwhile: a harness reads the
 * server's CPU time or memory there). After "done" it closes every
 * connection and exits: 0 when every request completed with status 200.
 * Errors on stderr. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <quiche_ev.h>

#include "common.h"

#define H3_NO_ERROR 0x100

enum phase { WARM, MEASURED, CLOSING };

/* One connection (a client, its socket and the socket's watcher). */
struct conn {
    struct load *load;
    quiche_ev_client *client;
    int sock;
    ev_io watcher;
    uint64_t target;   /* requests to issue in this phase */
    uint64_t issued;
    uint64_t inflight;
    bool over;         /* its closed callback ran */
};

struct load {
    struct ev_loop *loop;
    const char *host;
    struct addrinfo *peer;
    quiche_config *config;
    quiche_h3_config *h3_config;
    const char *path;
    bool handshakes;
    bool pause;
    uint64_t nconns;   /* connections (requests) or slots (handshakes) */
    uint64_t inflight;
    uint64_t warmup;
    uint64_t requests;
    uint64_t progress;
    struct conn *conns;
    enum phase phase;
    /* handshakes: connections launched / over in this phase */
    uint64_t launched;
    uint64_t phase_target;
    /* this phase's counts */
    uint64_t done;
    uint64_t failed;
    uint64_t body_bytes;
    uint64_t failed_total;
    double t0;
    double cpu0;
    /* requests: the connections' packets sent and received so far */
    uint64_t pkts_sent0;
    uint64_t pkts_recv0;
    ev_io input;
    ev_timer reaper;   /* armed at 0 s whenever a client is over */
    bool waiting;      /* for a line on stdin */
    bool failed_start;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 +
           (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* ---- requests ---- */

static void fill(struct conn *c) {
    struct load *L = c->load;
    while (L->phase != CLOSING && c->inflight < L->inflight && c->issued < c->target) {
        int64_t id = quiche_ev_client_request(c->client, "GET", L->path, NULL, 0, NULL, 0, c);
        if (id < 0) {
            fprintf(stderr, "req_load: request refused: %s\n", quiche_ev_strerror((int) id));
            L->failed++;
            c->target = c->issued; /* stop this connection's phase */
            return;
        }
        c->issued++;
        c->inflight++;
    }
}

static void on_headers(quiche_ev_client *client, int64_t id, int status, const quiche_ev_header *headers,
                       size_t n, void *user) {
    (void) client;
    (void) id;
    (void) headers;
    (void) n;
    struct conn *c = user;
    if (status != 200) {
        c->load->failed++;
    }
}

static size_t on_body(quiche_ev_client *client, int64_t id, const uint8_t *data, size_t len, void *user) {
    (void) client;
    (void) id;
    (void) data;
    struct conn *c = user;
    c->load->body_bytes += len;
    return len;
}

static void start_phase(struct load *L, enum phase phase);
static void close_all(struct load *L);

/* The reaper runs at the loop's next turn. */
static void kick(struct load *L) {
    if (!ev_is_active(&L->reaper)) {
        ev_timer_set(&L->reaper, 0., 0.);
        ev_timer_start(L->loop, &L->reaper);
    }
}

/* Requests: the QUIC packets all connections sent and received (the
 * server's received and sent), for the packets-per-request figures. */
static void count_packets(const struct load *L, uint64_t *sent, uint64_t *recv) {
    *sent = *recv = 0;
    for (uint64_t i = 0; !L->handshakes && i < L->nconns; i++) {
        quiche_ev_stats st = { .size = sizeof(st) };
        if (L->conns[i].client != NULL && quiche_ev_client_stats(L->conns[i].client, &st) == 0) {
            *sent += st.sent;
            *recv += st.recv;
        }
    }
}

/* The phase is over: say so, then go on (now or after a line on stdin). */
static void phase_over(struct load *L) {
    if (L->phase == WARM) {
        say("warm\n");
    } else {
        uint64_t sent, recv;
        count_packets(L, &sent, &recv);
        say("done {\"requests\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"body_bytes\": %" PRIu64
            ", \"wall_s\": %.6f, \"cpu_s\": %.6f, \"packets_sent\": %" PRIu64 ", \"packets_recv\": %" PRIu64
            "}\n", L->done, L->failed, L->body_bytes, now_s() - L->t0, cpu_s() - L->cpu0, sent - L->pkts_sent0,
            recv - L->pkts_recv0);
    }
    L->failed_total += L->failed;
    if (L->pause) {
        L->waiting = true;
        ev_io_start(L->loop, &L->input);
    } else if (L->phase == WARM) {
        start_phase(L, MEASURED);
    } else {
        close_all(L);
    }
}

static bool phase_done(const struct load *L) {
    if (L->handshakes) {
        return L->done >= L->phase_target;
    }
    for (uint64_t i = 0; i < L->nconns; i++) {
        const struct conn *c = &L->conns[i];
        if (!c->over && (c->issued < c->target || c->inflight > 0)) {
            return false;
        }
    }
    return true;
}

static void on_done(quiche_ev_client *client, int64_t id, int outcome, uint64_t code, void *user) {
    (void) id;
    (void) code;
    struct conn *c = user;
    struct load *L = c->load;
    c->inflight--;
    L->done++;
    if (outcome != QUICHE_EV_RESPONSE_COMPLETE) {
        L->failed++;
    }
    if (L->phase == CLOSING) {
        return;
    }
    if (L->handshakes) {
        quiche_ev_client_close(client, H3_NO_ERROR, NULL);
        return;
    }
    if (L->phase == MEASURED && L->progress > 0 && L->done % L->progress == 0) {
        say("progress %" PRIu64 "\n", L->done);
    }
    fill(c);
    if (phase_done(L)) {
        phase_over(L);
    }
}

static void on_closed(quiche_ev_client *client, int state, void *user) {
    (void) user;
    struct conn *c = quiche_ev_client_user_data(client);
    struct load *L = c->load;
    if (state == QUICHE_EV_CLIENT_FAILED && L->phase != CLOSING) {
        fprintf(stderr, "req_load: connection failed: %s\n", quiche_ev_client_failure(client));
        L->failed++;
    }
    /* Ours to stop: the watcher that feeds this client. The handle is
     * freed by the reaper, outside the library's callbacks. */
    ev_io_stop(L->loop, &c->watcher);
    c->over = true;
    kick(L);
}

/* ---- connections ---- */

static bool open_conn(struct load *L, struct conn *c) {
    memset(c, 0, sizeof(*c));
    c->load = L;
    c->sock = udp_socket(L->peer, false);
    if (c->sock < 0) {
        return false;
    }
    c->client = quiche_ev_client_new(L->loop, c->sock, L->host, L->peer->ai_addr, L->peer->ai_addrlen,
                                     L->config, L->h3_config);
    if (c->client == NULL) {
        close(c->sock);
        c->sock = -1;
        return false;
    }
    quiche_ev_client_set_user_data(c->client, c);
    quiche_ev_client_on_response(c->client, on_headers, on_body, on_done);
    quiche_ev_client_on_closed(c->client, on_closed);
    ev_io_init(&c->watcher, quiche_ev_client_recv_cb, c->sock, EV_READ);
    c->watcher.data = c->client;
    ev_io_start(L->loop, &c->watcher);
    return true;
}

static void free_conn(struct conn *c) {
    if (c->client != NULL) {
        ev_io_stop(c->load->loop, &c->watcher);
        quiche_ev_client_free(c->client);
        c->client = NULL;
    }
    if (c->sock >= 0) {
        close(c->sock);
        c->sock = -1;
    }
}

/* Handshakes: a new connection with its one request in slot `c`. */
static void launch(struct load *L, struct conn *c) {
    if (!open_conn(L, c)) {
        L->failed_start = true;
        ev_break(L->loop, EVBREAK_ALL);
        return;
    }
    L->launched++;
    c->target = c->issued = c->inflight = 1;
    if (quiche_ev_client_request(c->client, "GET", L->path, NULL, 0, NULL, 0, c) < 0) {
        fprintf(stderr, "req_load: request refused\n");
        L->failed++;
    }
}

/* Frees the clients that are over (outside any callback of theirs) and,
 * for handshakes, starts the next ones; ends the loop once every client
 * is gone after the last phase. */
static void reap(struct ev_loop *loop, ev_timer *w, int revents) {
    (void) loop;
    (void) revents;
    struct load *L = w->data;
    uint64_t open = 0;
    for (uint64_t i = 0; i < L->nconns; i++) {
        struct conn *c = &L->conns[i];
        if (c->client != NULL && c->over) {
            free_conn(c);
        }
        if (L->handshakes && L->phase != CLOSING && c->client == NULL && !L->waiting &&
            L->launched < L->phase_target) {
            launch(L, c);
        }
        open += c->client != NULL;
    }
    if (L->handshakes && L->phase != CLOSING && !L->waiting && open == 0 && L->done >= L->phase_target) {
        phase_over(L);
    }
    if (L->phase == CLOSING && open == 0) {
        ev_break(L->loop, EVBREAK_ALL);
    }
}

static void start_phase(struct load *L, enum phase phase) {
    L->phase = phase;
    L->done = L->failed = L->body_bytes = 0;
    L->t0 = now_s();
    L->cpu0 = cpu_s();
    count_packets(L, &L->pkts_sent0, &L->pkts_recv0);
    if (L->handshakes) {
        L->launched = 0;
        L->phase_target = phase == WARM ? L->nconns : L->requests;
        kick(L); /* the reaper launches them */
        return;
    }
    uint64_t per_conn = phase == WARM ? L->warmup : (L->requests + L->nconns - 1) / L->nconns;
    for (uint64_t i = 0; i < L->nconns; i++) {
        struct conn *c = &L->conns[i];
        c->target = per_conn;
        c->issued = 0;
        fill(c);
    }
    if (phase_done(L)) {
        phase_over(L);
    }
}

static void close_all(struct load *L) {
    L->phase = CLOSING;
    for (uint64_t i = 0; i < L->nconns; i++) {
        struct conn *c = &L->conns[i];
        if (c->client != NULL && !c->over) {
            quiche_ev_client_close(c->client, H3_NO_ERROR, NULL);
        }
    }
}

/* A line on stdin (or its end): go on after "warm" or "done". */
static void on_input(struct ev_loop *loop, ev_io *w, int revents) {
    (void) revents;
    struct load *L = w->data;
    char buf[256];
    ssize_t n = read(w->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    ev_io_stop(loop, w);
    L->waiting = false;
    if (L->phase == WARM) {
        start_phase(L, MEASURED);
    } else {
        close_all(L);
    }
}

static void print_log(int level, const char *msg, void *user) {
    (void) level;
    (void) user;
    fprintf(stderr, "req_load: %s\n", msg);
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    *out = v;
    return errno == 0 && *end == '\0' && s[0] != '-';
}

int main(int argc, char *argv[]) {
    struct load L = { .path = "/", .nconns = 10, .inflight = 100, .warmup = 20, .requests = 100000 };
    uint64_t concurrency = 16;
    int i = 1;
    bool ok = true;
    for (; ok && i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--pause") == 0) {
            L.pause = true;
            continue;
        }
        if (i + 1 >= argc) {
            ok = false;
            break;
        }
        const char *v = argv[++i];
        if (strcmp(o, "--path") == 0) {
            L.path = v;
        } else if (strcmp(o, "--conns") == 0) {
            ok = parse_u64(v, &L.nconns) && L.nconns > 0;
        } else if (strcmp(o, "--inflight") == 0) {
            ok = parse_u64(v, &L.inflight) && L.inflight > 0;
        } else if (strcmp(o, "--warmup") == 0) {
            ok = parse_u64(v, &L.warmup);
        } else if (strcmp(o, "--requests") == 0) {
            ok = parse_u64(v, &L.requests);
        } else if (strcmp(o, "--progress") == 0) {
            ok = parse_u64(v, &L.progress);
        } else if (strcmp(o, "--handshakes") == 0) {
            ok = parse_u64(v, &L.requests) && L.requests > 0;
            L.handshakes = true;
        } else if (strcmp(o, "--concurrency") == 0) {
            ok = parse_u64(v, &concurrency) && concurrency > 0;
        } else {
            ok = false;
        }
    }
    if (!ok || argc - i != 2) {
        fprintf(stderr, "usage: %s [--conns N] [--inflight K] [--warmup W] [--requests R] [--progress N]\n"
                "       [--handshakes H] [--concurrency C] [--path P] [--pause] HOST PORT\n", argv[0]);
        return EXIT_USAGE;
    }
    if (L.handshakes) {
        L.nconns = concurrency;
    }
    L.host = argv[i];

    setvbuf(stderr, NULL, _IOLBF, 0);
    int status = 1;
    L.peer = resolve(argv[i], argv[i + 1]);
    L.config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    L.h3_config = quiche_h3_config_new();
    L.loop = ev_default_loop(0);
    L.conns = calloc(L.nconns, sizeof(*L.conns));
    if (L.peer == NULL || L.config == NULL || L.h3_config == NULL || L.conns == NULL) {
        goto out;
    }
    for (uint64_t k = 0; k < L.nconns; k++) {
        L.conns[k].sock = -1;
    }

    /* http3-client.c's settings (and common.c's configure_client). */
    quiche_config_set_application_protos(L.config,
        (uint8_t *) QUICHE_H3_APPLICATION_PROTOCOL,
        sizeof(QUICHE_H3_APPLICATION_PROTOCOL) - 1);
    quiche_config_set_max_idle_timeout(L.config, 5000);
    quiche_config_set_max_recv_udp_payload_size(L.config, MAX_DATAGRAM_SIZE);
    quiche_config_set_max_send_udp_payload_size(L.config, MAX_DATAGRAM_SIZE);
    quiche_config_set_initial_max_data(L.config, 10000000);
    quiche_config_set_initial_max_stream_data_bidi_local(L.config, 1000000);
    quiche_config_set_initial_max_stream_data_bidi_remote(L.config, 1000000);
    quiche_config_set_initial_max_stream_data_uni(L.config, 1000000);
    quiche_config_set_initial_max_streams_bidi(L.config, 100);
    quiche_config_set_initial_max_streams_uni(L.config, 100);
    quiche_config_set_disable_active_migration(L.config, true);
    struct client_args cargs;
    memset(&cargs, 0, sizeof(cargs));
    configure_client(L.config, &cargs);

    /* The library's errors only. */
    quiche_ev_set_log(print_log, NULL, QUICHE_EV_LOG_ERROR);

    ev_io_init(&L.input, on_input, STDIN_FILENO, EV_READ);
    L.input.data = &L;
    ev_timer_init(&L.reaper, reap, 0., 0.);
    L.reaper.data = &L;

    if (!L.handshakes) {
        for (uint64_t k = 0; k < L.nconns; k++) {
            if (!open_conn(&L, &L.conns[k])) {
                goto out;
            }
        }
    }
    start_phase(&L, WARM);
    ev_run(L.loop, 0);
    ev_timer_stop(L.loop, &L.reaper);
    ev_io_stop(L.loop, &L.input);
    status = L.failed_start || L.failed_total > 0 ? 1 : 0;

out:
    if (L.conns != NULL) {
        for (uint64_t k = 0; k < L.nconns; k++) {
            if (L.conns[k].load != NULL) {
                free_conn(&L.conns[k]);
            }
        }
    }
    free(L.conns);
    free_process(L.loop, L.h3_config, L.config, L.peer, -1);
    return status;
}
