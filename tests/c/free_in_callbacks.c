/* Freeing a handle from inside each kind of its callbacks (issue 16).
 *
 * One process, one real libev loop, real UDP sockets on loopback: for
 * every scenario a server and a client of ours (HTTP/3) exchange one
 * request, and one of them is freed from inside one kind of callback:
 *
 *   server: request, request body, request writable, request closed,
 *           conn established, conn closed, stopped
 *   client: established, headers, body, trailers, done, closed,
 *           request writable (a streamed upload)
 *
 * each in three ways of watching the sockets:
 *
 *   stop-first  the program's own ev_io calls recv_cb; the callback stops
 *               that watcher and frees its memory before freeing the
 *               handle (the library must not touch the watcher again)
 *   keep        the program's ev_io calls recv_cb and is left running: the
 *               library must stop it (ev_run could not end otherwise, and a
 *               late datagram would reach freed memory)
 *   own         the handles watch their sockets themselves (_start)
 *
 * The freeing callback then makes the other side finish (the client
 * closes; the server shuts down). After that ev_run must return by itself:
 * nothing here calls ev_break. A watchdog timer (not counted by ev_run:
 * ev_unref) fails the scenario and exits 1 if the loop is still running
 * after WATCHDOG_SECS. No callback may arrive for a freed handle. When
 * ev_run has returned, the survivor must be over (server stopped, client
 * closed) with the program's watchers inactive; the program frees those
 * watchers' memory first, then the handle, so a library that still
 * touched a watcher it had seen would read freed memory (valgrind).
 *
 *   free_in_callbacks CERT KEY [FILTER]   one line per scenario; exit 0 when all held
 *
 * FILTER runs only the scenarios whose name contains it; QUICHE_EV_LOG
 * (error, warn, info, debug) prints the library's log on stderr, as the
 * examples do. make valgrind,
 * make asan and tests/app_api.rs run it. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <quiche_ev.h>

#include "common.h"
#include "harness.h"

/* Generous: valgrind runs the handshakes 20-50 times slower. */
#ifndef WATCHDOG_SECS
#define WATCHDOG_SECS 60.0
#endif

/* The response body (and the upload) of the writable scenarios: more than
 * the first flight's congestion window, so the first write is short. */
#define BIG (4u << 20)
#define SMALL 1000u

enum kind {
    S_REQUEST, S_BODY, S_WRITABLE, S_REQ_CLOSED, S_ESTABLISHED, S_CONN_CLOSED, S_STOPPED,
    C_ESTABLISHED, C_HEADERS, C_BODY, C_TRAILERS, C_DONE, C_CLOSED, C_WRITABLE,
    N_KINDS
};

static const char *const KIND_NAMES[N_KINDS] = {
    "server/request", "server/request-body", "server/request-writable", "server/request-closed",
    "server/conn-established", "server/conn-closed", "server/stopped",
    "client/established", "client/headers", "client/body", "client/trailers", "client/done",
    "client/closed", "client/request-writable",
};

enum mode { STOP_FIRST, KEEP, OWN, N_MODES };

static const char *const MODE_NAMES[N_MODES] = { "stop-first", "keep", "own" };

static bool targets_server(enum kind k) {
    return k <= S_STOPPED;
}

static struct ev_loop *loop;
static quiche_config *server_config, *client_config;
static quiche_h3_config *h3_config;

/* The scenario running. */
static struct {
    enum kind kind;
    enum mode mode;
    char name[64];
    quiche_ev_server *server; /* NULL once freed */
    quiche_ev_client *client; /* NULL once freed */
    int server_sock, client_sock;
    ev_io *server_watcher, *client_watcher; /* the program's (malloc'd); NULL once freed */
    bool freed;                             /* the target was freed in its callback */
    int late_calls;                         /* callbacks for a freed handle */
    /* the response being written (server side) */
    quiche_ev_request *req;
    size_t resp_len, resp_sent;
    bool trailers_sent;
    /* the streamed upload (client side) */
    int64_t upload_id;
    size_t upload_sent;
} sc;

static uint8_t chunk[64 * 1024];

static void watchdog_fired(struct ev_loop *l, ev_timer *w, int revents) {
    (void) l;
    (void) w;
    (void) revents;
    if (sc.freed) {
        printf("FAIL %s: ev_run still running %.0f s after the scenario began (the freed handle's or the "
               "survivor's watchers are still active)\n", sc.name, WATCHDOG_SECS);
    } else {
        printf("FAIL %s: after %.0f s the callback that frees the handle has not run\n", sc.name,
               WATCHDOG_SECS);
    }
    fflush(stdout);
    exit(1);
}

/* ---- freeing the target, and ending the other side ---- */

static void stop_and_free_watcher(ev_io **w) {
    ev_io_stop(loop, *w);
    free(*w);
    *w = NULL;
}

static void free_server_here(void) {
    if (sc.mode == STOP_FIRST) {
        stop_and_free_watcher(&sc.server_watcher);
    }
    quiche_ev_server_free(sc.server);
    sc.server = NULL;
    sc.freed = true;
    if (sc.client != NULL) {
        quiche_ev_client_close(sc.client, 0, "server freed");
    }
}

static void free_client_here(void) {
    if (sc.mode == STOP_FIRST) {
        stop_and_free_watcher(&sc.client_watcher);
    }
    quiche_ev_client_free(sc.client);
    sc.client = NULL;
    sc.freed = true;
    if (sc.server != NULL) {
        quiche_ev_server_shutdown(sc.server, 0);
    }
}

/* At the top of every callback: was the handle already freed? */
static bool server_gone(const char *cb) {
    if (sc.server == NULL) {
        sc.late_calls++;
        CHECK(false, "%s: server %s callback after the server was freed", sc.name, cb);
        return true;
    }
    return false;
}

static bool client_gone(const quiche_ev_client *c, const char *cb) {
    if (sc.client == NULL || c != sc.client) {
        sc.late_calls++;
        CHECK(false, "%s: client %s callback after the client was freed", sc.name, cb);
        return true;
    }
    return false;
}

/* ---- server callbacks ---- */

/* Writes what fits of the response, then its trailers. */
static void pump_response(quiche_ev_request *req) {
    while (sc.resp_sent < sc.resp_len) {
        size_t want = sc.resp_len - sc.resp_sent;
        if (want > sizeof(chunk)) {
            want = sizeof(chunk);
        }
        ssize_t n = quiche_ev_respond_write(req, chunk, want, 0);
        if (n < 0) {
            return; /* closed: the closed callback follows */
        }
        sc.resp_sent += (size_t) n;
        if ((size_t) n < want) {
            return; /* the writable callback follows */
        }
    }
    if (!sc.trailers_sent) {
        static const quiche_ev_header t[] = {{ (const uint8_t *) "x-end", 5, (const uint8_t *) "yes", 3 }};
        int rc = quiche_ev_respond_trailers(req, t, 1);
        sc.trailers_sent = rc == 0;
        CHECK(rc == 0 || rc == QUICHE_EV_ERR_AGAIN || rc == QUICHE_EV_ERR_CLOSED, "%s: trailers: %d", sc.name,
              rc);
    }
}

static void on_request(quiche_ev_request *req, void *user) {
    (void) user;
    if (server_gone("request")) return;
    if (sc.kind == S_REQUEST) {
        free_server_here();
        return;
    }
    if (sc.kind == S_BODY) {
        return; /* answered in full now, the request could end before its body is read */
    }
    sc.req = req;
    sc.resp_len = sc.kind == S_WRITABLE ? BIG : SMALL;
    static const quiche_ev_header h[] = {{ (const uint8_t *) "content-type", 12,
                                           (const uint8_t *) "application/octet-stream", 24 }};
    CHECK(quiche_ev_respond(req, 200, h, 1, 0) == 0, "%s: respond", sc.name);
    pump_response(req);
}

static size_t on_request_body(quiche_ev_request *req, const uint8_t *data, size_t len, int fin, void *user) {
    (void) req;
    (void) data;
    (void) fin;
    (void) user;
    if (server_gone("request body")) return 0;
    if (sc.kind == S_BODY) {
        free_server_here();
        return 0;
    }
    return len;
}

static void on_request_writable(quiche_ev_request *req, void *user) {
    (void) user;
    if (server_gone("request writable")) return;
    if (sc.kind == S_WRITABLE) {
        free_server_here();
        return;
    }
    pump_response(req);
}

static void on_request_closed(quiche_ev_request *req, int outcome, uint64_t code, void *user) {
    (void) req;
    (void) outcome;
    (void) code;
    (void) user;
    if (server_gone("request closed")) return;
    if (req == sc.req) {
        sc.req = NULL;
    }
    if (sc.kind == S_REQ_CLOSED) {
        free_server_here();
    } else if (sc.kind == S_STOPPED) {
        quiche_ev_server_shutdown(sc.server, 2000);
    }
}

static void on_conn_established(quiche_ev_conn *conn, void *user) {
    (void) conn;
    (void) user;
    if (server_gone("conn established")) return;
    if (sc.kind == S_ESTABLISHED) {
        free_server_here();
    }
}

static void on_conn_closed(quiche_ev_conn *conn, const quiche_ev_stats *stats, void *user) {
    (void) conn;
    (void) stats;
    (void) user;
    if (server_gone("conn closed")) return;
    if (sc.kind == S_CONN_CLOSED) {
        free_server_here();
    }
}

static void on_stopped(quiche_ev_server *server, int status, void *user) {
    (void) user;
    if (server_gone("stopped")) return;
    CHECK(server == sc.server && status == 0, "%s: stopped %p status %d", sc.name, (void *) server, status);
    if (sc.kind == S_STOPPED) {
        free_server_here();
    }
}

/* ---- client callbacks ---- */

static void on_established(quiche_ev_client *c, void *user) {
    (void) user;
    if (client_gone(c, "established")) return;
    if (sc.kind == C_ESTABLISHED) {
        free_client_here();
    }
}

static void on_headers(quiche_ev_client *c, int64_t id, int status, const quiche_ev_header *h, size_t n,
                       void *user) {
    (void) id;
    (void) h;
    (void) n;
    (void) user;
    if (client_gone(c, "headers")) return;
    CHECK(status == 200, "%s: status %d", sc.name, status);
    if (sc.kind == C_HEADERS) {
        free_client_here();
    }
}

static size_t on_body(quiche_ev_client *c, int64_t id, const uint8_t *data, size_t len, void *user) {
    (void) id;
    (void) data;
    (void) user;
    if (client_gone(c, "body")) return 0;
    if (sc.kind == C_BODY) {
        free_client_here();
        return 0;
    }
    return len;
}

static void on_trailers(quiche_ev_client *c, int64_t id, const quiche_ev_header *h, size_t n, void *user) {
    (void) id;
    (void) h;
    (void) n;
    (void) user;
    if (client_gone(c, "trailers")) return;
    if (sc.kind == C_TRAILERS) {
        free_client_here();
    }
}

static void on_done(quiche_ev_client *c, int64_t id, int outcome, uint64_t code, void *user) {
    (void) id;
    (void) outcome;
    (void) code;
    (void) user;
    if (client_gone(c, "done")) return;
    if (sc.kind == C_DONE) {
        free_client_here();
        return;
    }
    quiche_ev_client_close(c, 0, NULL);
}

static void on_closed(quiche_ev_client *c, int state, void *user) {
    (void) state;
    (void) user;
    if (client_gone(c, "closed")) return;
    if (sc.kind == C_CLOSED) {
        free_client_here();
    }
}

/* The streamed upload: free at the first writable callback after some of
 * the body went out. */
static void on_upload_writable(quiche_ev_client *c, int64_t id, void *user) {
    (void) user;
    if (client_gone(c, "request writable")) return;
    if (sc.kind == C_WRITABLE && sc.upload_sent > 0) {
        free_client_here();
        return;
    }
    while (sc.upload_sent < BIG) {
        size_t want = BIG - sc.upload_sent < sizeof(chunk) ? BIG - sc.upload_sent : sizeof(chunk);
        ssize_t n = quiche_ev_client_request_write(c, id, chunk, want, sc.upload_sent + want == BIG);
        if (n <= 0) {
            return;
        }
        sc.upload_sent += (size_t) n;
        if ((size_t) n < want) {
            return;
        }
    }
}

/* ---- one scenario ---- */

static ev_io *host_watcher(void (*cb)(struct ev_loop *, ev_io *, int), int sock, void *handle) {
    ev_io *w = malloc(sizeof(*w));
    if (w == NULL) {
        abort();
    }
    ev_io_init(w, cb, sock, EV_READ);
    w->data = handle;
    ev_io_start(loop, w);
    return w;
}

static bool start_server(void) {
    struct addrinfo *local = resolve("127.0.0.1", "0");
    if (local == NULL || (sc.server_sock = udp_socket(local, true)) < 0) {
        freeaddrinfo(local);
        return false;
    }
    sc.server = quiche_ev_server_new(loop, sc.server_sock, local->ai_addr, local->ai_addrlen, server_config,
                                     h3_config);
    freeaddrinfo(local);
    if (sc.server == NULL) {
        return false;
    }
    quiche_ev_server_on_request(sc.server, on_request);
    quiche_ev_server_on_request_body(sc.server, on_request_body);
    quiche_ev_server_on_request_writable(sc.server, on_request_writable);
    quiche_ev_server_on_request_closed(sc.server, on_request_closed);
    quiche_ev_server_on_conn(sc.server, on_conn_established, on_conn_closed);
    quiche_ev_server_on_stopped(sc.server, on_stopped);
    if (sc.mode == OWN) {
        return quiche_ev_server_start(sc.server) == 0;
    }
    sc.server_watcher = host_watcher(quiche_ev_server_recv_cb, sc.server_sock, sc.server);
    return true;
}

static bool start_client(void) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct addrinfo *any = resolve("127.0.0.1", "0");
    if (any == NULL || getsockname(sc.server_sock, (struct sockaddr *) &ss, &len) != 0 ||
        (sc.client_sock = udp_socket(any, false)) < 0) {
        freeaddrinfo(any);
        return false;
    }
    freeaddrinfo(any);
    sc.client = quiche_ev_client_new(loop, sc.client_sock, "localhost", (struct sockaddr *) &ss, len,
                                     client_config, h3_config);
    if (sc.client == NULL) {
        return false;
    }
    quiche_ev_client_on_established(sc.client, on_established);
    quiche_ev_client_on_response(sc.client, on_headers, on_body, on_done);
    quiche_ev_client_on_trailers(sc.client, on_trailers);
    quiche_ev_client_on_closed(sc.client, on_closed);
    quiche_ev_client_on_request_writable(sc.client, on_upload_writable);

    int64_t id;
    if (sc.kind == C_WRITABLE) {
        id = sc.upload_id = quiche_ev_client_request_start(sc.client, "POST", "/upload", NULL, 0, NULL);
    } else if (sc.kind == S_BODY) {
        id = quiche_ev_client_request(sc.client, "POST", "/post", NULL, 0, (const uint8_t *) "a body", 6, NULL);
    } else {
        id = quiche_ev_client_request(sc.client, "GET", "/", NULL, 0, NULL, 0, NULL);
    }
    CHECK(id >= 0, "%s: request: %" PRId64, sc.name, id);

    if (sc.mode == OWN) {
        return quiche_ev_client_start(sc.client) == 0;
    }
    sc.client_watcher = host_watcher(quiche_ev_client_recv_cb, sc.client_sock, sc.client);
    return true;
}

/* After ev_run: the survivor is over and no watcher of the program's is
 * active; their memory goes first, then the handles. */
static void finish(void) {
    if (sc.server != NULL) {
        CHECK(quiche_ev_server_is_stopped(sc.server) == 1, "%s: the surviving server is not stopped", sc.name);
    }
    if (sc.client != NULL) {
        int st = quiche_ev_client_state(sc.client);
        CHECK(st == QUICHE_EV_CLIENT_CLOSED || st == QUICHE_EV_CLIENT_FAILED, "%s: the surviving client is in "
              "state %d", sc.name, st);
    }
    if (sc.server_watcher != NULL) {
        CHECK(!ev_is_active(sc.server_watcher), "%s: the server's recv_cb watcher is still active", sc.name);
        free(sc.server_watcher);
    }
    if (sc.client_watcher != NULL) {
        CHECK(!ev_is_active(sc.client_watcher), "%s: the client's recv_cb watcher is still active", sc.name);
        free(sc.client_watcher);
    }
    quiche_ev_server_free(sc.server);
    quiche_ev_client_free(sc.client);
    close(sc.server_sock);
    close(sc.client_sock);
}

static void run_scenario(enum kind kind, enum mode mode) {
    int failures_before = failures;
    memset(&sc, 0, sizeof(sc));
    sc.kind = kind;
    sc.mode = mode;
    sc.server_sock = sc.client_sock = -1;
    snprintf(sc.name, sizeof(sc.name), "%s %s", KIND_NAMES[kind], MODE_NAMES[mode]);

    if (!start_server() || !start_client()) {
        CHECK(false, "%s: set-up failed: %s", sc.name, quiche_ev_last_error());
        exit(1);
    }

    ev_timer watchdog;
    ev_timer_init(&watchdog, watchdog_fired, WATCHDOG_SECS, 0);
    ev_timer_start(loop, &watchdog);
    ev_unref(loop); /* the watchdog alone does not keep ev_run going */

    ev_now_update(loop);
    ev_tstamp began = ev_now(loop);
    ev_run(loop, 0);
    ev_now_update(loop);
    ev_tstamp took = ev_now(loop) - began;

    ev_ref(loop);
    ev_timer_stop(loop, &watchdog);

    CHECK(sc.freed, "%s: the %s was never freed in that callback", sc.name,
          targets_server(kind) ? "server" : "client");
    CHECK((targets_server(kind) ? sc.server : (void *) sc.client) == NULL, "%s: target not freed", sc.name);
    finish();
    printf("%s: %s (%.2f s)\n", sc.name, failures == failures_before ? "ok" : "FAILED", took);
}

int main(int argc, char *argv[]) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s CERT KEY [FILTER]\n", argv[0]);
        return 2;
    }
    const char *filter = argc == 4 ? argv[3] : "";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getenv("QUICHE_EV_LOG") != NULL) {
        enable_debug_logging(); /* to see what a failing scenario did */
    }
    loop = ev_default_loop(0);
    h3_config = quiche_h3_config_new();
    if (h3_config == NULL || !h3_configs(argv[1], argv[2], &server_config, &client_config)) {
        return 1;
    }
    for (size_t i = 0; i < sizeof(chunk); i++) {
        chunk[i] = (uint8_t) (i * 31);
    }

    int ran = 0;
    for (int k = 0; k < N_KINDS; k++) {
        for (int m = 0; m < N_MODES; m++) {
            char name[64];
            snprintf(name, sizeof(name), "%s %s", KIND_NAMES[k], MODE_NAMES[m]);
            if (strstr(name, filter) == NULL) {
                continue;
            }
            run_scenario((enum kind) k, (enum mode) m);
            ran++;
        }
    }
    CHECK(ran > 0, "no scenario matches %s", filter);

    free_process(loop, h3_config, client_config, NULL, -1);
    quiche_config_free(server_config);
    return report();
}
