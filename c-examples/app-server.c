/* app-server: an HTTP/3 server whose responses come from C.
 *
 * A tutorial for quiche-ev's application API (README "The C API",
 * include/quiche_ev.h). quiche-ev runs the connections (handshakes,
 * retry, timers, egress, HTTP/3 framing); this file decides what to
 * answer, from callbacks and from its own libev watchers:
 *
 *   /json                a small JSON document made per request
 *   /status/NNN          an empty response with status NNN (200-599)
 *   /stream?n=B&ms=T     B bytes, released 1000 bytes every T ms by a timer
 *                        (&chunk=C to change the 1000)
 *   /slow[?ms=T]         "slow\n", answered from a timer T ms (default 2000)
 *                        after the request arrived
 *   /echo                the request body, streamed back as it arrives
 *   /upload              the request body's length and FNV-1a hash, as JSON,
 *                        once it ended (the body is read as it arrives and
 *                        dropped: the client is held back by nothing but
 *                        congestion control)
 *   /big?n=B             B bytes generated chunk by chunk as flow control
 *                        allows (a 1 GiB body never sits in memory)
 *   /trailers            a short body, then trailer fields (a checksum)
 *   /stats               this server's counters, as JSON
 *   anything else        404
 *
 * Bodies of /stream and /big follow one pattern: byte i is
 * (uint8_t) ((uint32_t) i * 2654435761u >> 24), so a client can check
 * them. Usage: app-server [--cert F] [--key F] [--drain-ms N] [--verbose]
 * HOST PORT; PORT 0 picks a free port. SIGINT/SIGTERM shut down
 * gracefully (in-flight responses get --drain-ms, default 2000); a second
 * signal closes everything at once. */

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <quiche_ev.h>

#include "common.h"

/* Bytes generated per quiche_ev_respond_write call. */
#define CHUNK (64 * 1024)

/* What the whole server counts (printed at exit and by /stats). */
struct app {
    struct ev_loop *loop;
    quiche_ev_server *server;
    long drain_ms;
    int signals;
    uint64_t requests;
    uint64_t short_writes;   /* quiche_ev_respond_write took less than offered */
    uint64_t writable_calls; /* ... and the writable callback said "go on" */
    uint64_t paused_bodies;  /* the echo could not take a request body chunk */
    bool verbose;            /* --verbose: one line per request too */
};

/* One connection's state, attached with quiche_ev_conn_set_user_data. */
struct conn_info {
    uint64_t requests;
};

enum route { STREAM, SLOW, ECHO, UPLOAD, BIG, TRAILERS };

/* A response still in progress, attached to its request with
 * quiche_ev_request_set_user_data and freed in the closed callback. */
struct exchange {
    struct app *app;
    quiche_ev_request *req;
    enum route route;
    uint64_t total;  /* body bytes to send */
    uint64_t sent;   /* body bytes the library took so far (/upload: received) */
    uint64_t due;    /* /stream: bytes the timer released so far */
    uint64_t chunk;  /* /stream: bytes released per tick */
    uint64_t hash;   /* /trailers: FNV-1a of the body, sent as a trailer;
                        /upload: of the request body received so far */
    ev_timer timer;  /* /stream ticks, /slow's delay */
};

static const char TRAILERS_BODY[] = "a body, then trailer fields\n";

/* ---- small helpers ---- */

#define HEADER(n, v) { (const uint8_t *) (n), sizeof(n) - 1, (const uint8_t *) (v), strlen(v) }

static uint8_t pattern_byte(uint64_t i) {
    return (uint8_t) ((uint32_t) i * 2654435761u >> 24);
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

/* The value of `key` in the path's query string, or `def`. */
static uint64_t query_u64(const char *path, const char *key, uint64_t def) {
    const char *q = strchr(path, '?');
    size_t klen = strlen(key);
    while (q != NULL) {
        q++;
        if (strncmp(q, key, klen) == 0 && q[klen] == '=') {
            return strtoull(q + klen + 1, NULL, 10);
        }
        q = strchr(q, '&');
    }
    return def;
}

/* Whether the path (without its query) is `route`. */
static bool is_route(const char *path, const char *route) {
    size_t n = strlen(route);
    return strncmp(path, route, n) == 0 && (path[n] == '\0' || path[n] == '?');
}

/* A bounded text buffer: appends that do not fit set `full` instead. */
struct text {
    char buf[4096];
    size_t len;
    bool full;
};

static void append(struct text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = t->full ? 0 : vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof(t->buf) - t->len) {
        t->full = true;
    } else {
        t->len += (size_t) n;
    }
}

/* Appends `len` bytes of `s` as a JSON string (quoted, escaped). */
static void append_json_string(struct text *t, const char *s, size_t len) {
    append(t, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c == '"' || c == '\\') {
            append(t, "\\%c", c);
        } else if (c < 0x20) {
            append(t, "\\u%04x", c);
        } else {
            append(t, "%c", c);
        }
    }
    append(t, "\"");
}

/* ---- writing a body as flow control allows ---- */

/* The next `len` body bytes from offset `off`. */
static void body_bytes(const struct exchange *x, uint64_t off, uint8_t *out, size_t len) {
    if (x->route == TRAILERS) {
        memcpy(out, TRAILERS_BODY + off, len);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        out[i] = pattern_byte(off + i);
    }
}

static void send_trailers(struct exchange *x) {
    char hex[17];
    snprintf(hex, sizeof(hex), "%016" PRIx64, x->hash);
    quiche_ev_header trailers[] = { HEADER("x-fnv1a64", hex) };
    /* QUICHE_EV_ERR_AGAIN: no room now; the writable callback retries. */
    if (quiche_ev_respond_trailers(x->req, trailers, 1) == QUICHE_EV_ERR_AGAIN) {
        x->app->short_writes++;
    }
}

/* Offers body bytes until everything allowed so far was taken, or the
 * library takes less than offered: then it calls the writable callback
 * once more fits, and we continue from there. Nothing is buffered here:
 * the bytes are made again from the offset. */
static void pump(struct exchange *x) {
    static uint8_t buf[CHUNK];
    uint64_t limit = x->route == STREAM ? x->due : x->total;
    bool trailers = x->route == TRAILERS;

    while (x->sent < limit) {
        size_t len = (size_t) (limit - x->sent < CHUNK ? limit - x->sent : CHUNK);
        body_bytes(x, x->sent, buf, len);
        int fin = !trailers && x->sent + len == x->total;
        ssize_t took = quiche_ev_respond_write(x->req, buf, len, fin);
        if (took < 0) {
            return; /* the request is over; its closed callback follows */
        }
        if (trailers) {
            x->hash = fnv1a(x->hash, buf, (size_t) took);
        }
        x->sent += (uint64_t) took;
        if ((size_t) took < len) {
            x->app->short_writes++;
            return;
        }
    }
    if (trailers && x->sent == x->total) {
        send_trailers(x);
    }
}

/* /stream: every tick releases `chunk` more bytes. */
static void stream_tick(struct ev_loop *loop, ev_timer *w, int revents) {
    (void) revents;
    struct exchange *x = w->data;
    x->due = x->due + x->chunk < x->total ? x->due + x->chunk : x->total;
    if (x->due == x->total) {
        ev_timer_stop(loop, w);
    }
    pump(x);
}

/* /slow: the answer, long after the request. */
static void slow_answer(struct ev_loop *loop, ev_timer *w, int revents) {
    (void) loop;
    (void) revents;
    struct exchange *x = w->data;
    quiche_ev_header h[] = { HEADER("content-type", "text/plain") };
    quiche_ev_respond_bytes(x->req, 200, h, 1, (const uint8_t *) "slow\n", 5);
}

/* The library has room again for a response that took less than offered
 * (or, for /echo, for the body we could not pass on). */
static void on_writable(quiche_ev_request *req, void *user) {
    struct app *app = user;
    struct exchange *x = quiche_ev_request_user_data(req);
    app->writable_calls++;
    if (x == NULL) {
        return;
    }
    if (x->route == ECHO) {
        quiche_ev_request_resume_body(req); /* the held chunk is offered again */
    } else if (x->route == TRAILERS && x->sent == x->total) {
        send_trailers(x);
    } else {
        pump(x);
    }
}

/* ---- requests ---- */

static struct exchange *start_exchange(struct app *app, quiche_ev_request *req, enum route route,
                                       uint64_t total) {
    struct exchange *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        quiche_ev_request_reset(req, 0x102 /* H3_INTERNAL_ERROR */);
        return NULL;
    }
    x->app = app;
    x->req = req;
    x->route = route;
    x->total = total;
    x->hash = 0xcbf29ce484222325ull;
    x->timer.data = x;
    quiche_ev_request_set_user_data(req, x);
    return x;
}

static void respond_json(quiche_ev_request *req, const struct text *t) {
    if (t->full) {
        quiche_ev_respond(req, 500, NULL, 0, 1);
        return;
    }
    quiche_ev_header h[] = { HEADER("content-type", "application/json") };
    quiche_ev_respond_bytes(req, 200, h, 1, (const uint8_t *) t->buf, t->len);
}

/* /json: what we know about this request, its connection and the server. */
static void answer_json(struct app *app, quiche_ev_request *req) {
    quiche_ev_conn *conn = quiche_ev_request_conn(req);
    struct conn_info *ci = quiche_ev_conn_user_data(conn);

    /* Headers, pseudo-headers included, in the order they came. */
    const char *ua = "";
    size_t ua_len = 0;
    for (size_t i = 0; i < quiche_ev_request_header_count(req); i++) {
        quiche_ev_header h;
        if (quiche_ev_request_header(req, i, &h) == 0 && h.name_len == 10 &&
            memcmp(h.name, "user-agent", 10) == 0) {
            ua = (const char *) h.value;
            ua_len = h.value_len;
        }
    }

    /* quiche's own connection, for what quiche-ev does not wrap. */
    const uint8_t *trace;
    size_t trace_len;
    quiche_conn_trace_id(quiche_ev_conn_quiche(conn), &trace, &trace_len);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const char *method = quiche_ev_request_method(req);
    const char *path = quiche_ev_request_path(req);

    struct text t = { .len = 0 };
    append(&t, "{\"requests\": %" PRIu64 ", \"conn_requests\": %" PRIu64 ", \"stream\": %" PRIu64
           ", \"time\": %lld.%03ld, \"method\": ", app->requests, ci != NULL ? ci->requests : 0,
           quiche_ev_request_stream_id(req), (long long) now.tv_sec, now.tv_nsec / 1000000);
    append_json_string(&t, method, strlen(method));
    append(&t, ", \"path\": ");
    append_json_string(&t, path, strlen(path));
    append(&t, ", \"user_agent\": ");
    append_json_string(&t, ua, ua_len);
    append(&t, ", \"trace_id\": ");
    append_json_string(&t, (const char *) trace, trace_len);
    append(&t, "}\n");
    respond_json(req, &t);
}

static void answer_stats(struct app *app, quiche_ev_request *req) {
    struct text t = { .len = 0 };
    append(&t, "{\"requests\": %" PRIu64 ", \"short_writes\": %" PRIu64 ", \"writable_calls\": %" PRIu64
           ", \"paused_bodies\": %" PRIu64 ", \"connections\": %zd}\n", app->requests, app->short_writes,
           app->writable_calls, app->paused_bodies, quiche_ev_server_conn_count(app->server));
    respond_json(req, &t);
}

/* Called once per request, when its headers arrived. Answer now or later;
 * `req` stays valid until its closed callback returns. */
static void on_request(quiche_ev_request *req, void *user) {
    struct app *app = user;
    const char *path = quiche_ev_request_path(req);
    struct conn_info *ci = quiche_ev_conn_user_data(quiche_ev_request_conn(req));
    struct exchange *x;

    app->requests++;
    if (ci != NULL) {
        ci->requests++;
    }
    if (app->verbose) {
        /* The library logs request headers at debug level only: a host
         * says what it wants to see of its requests. */
        fprintf(stderr, "request: %s %s\n", quiche_ev_request_method(req), path);
    }

    if (is_route(path, "/json")) {
        answer_json(app, req);
    } else if (is_route(path, "/stats")) {
        answer_stats(app, req);
    } else if (strncmp(path, "/status/", 8) == 0) {
        int status = atoi(path + 8);
        quiche_ev_respond(req, status >= 200 && status <= 599 ? status : 400, NULL, 0, 1);
    } else if (is_route(path, "/stream")) {
        if ((x = start_exchange(app, req, STREAM, query_u64(path, "n", 100000))) == NULL) {
            return;
        }
        x->chunk = query_u64(path, "chunk", 1000);
        x->chunk = x->chunk > 0 ? x->chunk : 1;
        uint64_t ms = query_u64(path, "ms", 10);
        double every = (double) (ms > 0 ? ms : 1) / 1000.0;
        quiche_ev_respond(req, 200, NULL, 0, x->total == 0);
        ev_timer_init(&x->timer, stream_tick, every, every);
        if (x->total > 0) {
            ev_timer_start(app->loop, &x->timer);
        }
    } else if (is_route(path, "/slow")) {
        if ((x = start_exchange(app, req, SLOW, 0)) == NULL) {
            return;
        }
        ev_timer_init(&x->timer, slow_answer, (double) query_u64(path, "ms", 2000) / 1000.0, 0);
        ev_timer_start(app->loop, &x->timer);
    } else if (is_route(path, "/echo")) {
        /* Headers now; the body follows in on_request_body. */
        if (start_exchange(app, req, ECHO, 0) != NULL) {
            quiche_ev_respond(req, 200, NULL, 0, 0);
        }
    } else if (is_route(path, "/upload")) {
        /* Answered in on_request_body, when the body ends. */
        start_exchange(app, req, UPLOAD, 0);
    } else if (is_route(path, "/big")) {
        if ((x = start_exchange(app, req, BIG, query_u64(path, "n", 1 << 20))) == NULL) {
            return;
        }
        char len[32];
        snprintf(len, sizeof(len), "%" PRIu64, x->total);
        quiche_ev_header h[] = { HEADER("content-length", len) };
        quiche_ev_respond(req, 200, h, 1, x->total == 0);
        pump(x);
    } else if (is_route(path, "/trailers")) {
        if ((x = start_exchange(app, req, TRAILERS, sizeof(TRAILERS_BODY) - 1)) == NULL) {
            return;
        }
        quiche_ev_header h[] = { HEADER("trailer", "x-fnv1a64") };
        quiche_ev_respond(req, 200, h, 1, 0);
        pump(x);
    } else {
        quiche_ev_respond(req, 404, NULL, 0, 1);
    }
}

/* The request body, as it arrives. /upload counts and hashes it and
 * answers at its end. For /echo each chunk is written straight into the
 * response, and we return what the library took. Taking less pauses the
 * body (the client is held back by flow control) until on_writable
 * resumes it: no buffering, however large. */
static size_t on_request_body(quiche_ev_request *req, const uint8_t *data, size_t len, int fin,
                              void *user) {
    struct app *app = user;
    struct exchange *x = quiche_ev_request_user_data(req);
    if (x != NULL && x->route == UPLOAD) {
        x->hash = fnv1a(x->hash, data, len);
        x->sent += len;
        if (fin) {
            struct text t = { .len = 0 };
            append(&t, "{\"bytes\": %" PRIu64 ", \"fnv1a64\": \"%016" PRIx64 "\"}\n", x->sent, x->hash);
            respond_json(req, &t);
        }
        return len;
    }
    if (x == NULL || x->route != ECHO) {
        return len; /* not ours to keep: dropped */
    }
    ssize_t took = quiche_ev_respond_write(req, data, len, fin);
    if (took < 0) {
        return len; /* the request is over */
    }
    if ((size_t) took < len) {
        app->paused_bodies++;
    }
    return (size_t) took;
}

/* The request is over (answered whole, reset, or its connection closed):
 * free what we attached. */
static void on_request_closed(quiche_ev_request *req, int outcome, uint64_t code, void *user) {
    struct app *app = user;
    struct exchange *x = quiche_ev_request_user_data(req);
    (void) outcome;
    (void) code;
    if (x != NULL) {
        ev_timer_stop(app->loop, &x->timer);
        free(x);
    }
}

/* ---- connections ---- */

static void on_conn_established(quiche_ev_conn *conn, void *user) {
    (void) user;
    quiche_ev_conn_set_user_data(conn, calloc(1, sizeof(struct conn_info)));
}

static void on_conn_closed(quiche_ev_conn *conn, const quiche_ev_stats *stats, void *user) {
    (void) user;
    struct conn_info *ci = quiche_ev_conn_user_data(conn);
    fprintf(stderr, "connection closed: requests=%" PRIu64 " sent=%" PRIu64 " recv=%" PRIu64
            " lost=%" PRIu64 " rtt=%" PRIu64 "us%s\n", ci != NULL ? ci->requests : 0, stats->sent,
            stats->recv, stats->lost, stats->rtt_ns / 1000, stats->timed_out ? " (idle timeout)" : "");
    free(ci);
}

/* ---- shutting down ---- */

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void) loop;
    (void) revents;
    struct app *app = w->data;
    fprintf(stderr, "signal %d: shutting down\n", w->signum);
    /* The first signal lets responses finish; a second closes now. */
    quiche_ev_server_shutdown(app->server, app->signals++ == 0 ? (uint64_t) app->drain_ms : 0);
}

/* Every connection is gone: the loop only runs this server, so end it. */
static void on_stopped(quiche_ev_server *server, int status, void *user) {
    (void) server;
    (void) status;
    struct app *app = user;
    ev_break(app->loop, EVBREAK_ALL);
}

static void print_log(int level, const char *msg, void *user) {
    (void) level;
    (void) user;
    fprintf(stderr, "%s\n", msg);
}

/* ---- the server's callbacks, one worker or many ---- */

/* Our callbacks on `server`: every one gets `app` as user. */
static void set_callbacks(quiche_ev_server *server, struct app *app) {
    quiche_ev_server_set_user_data(server, app);
    quiche_ev_server_on_request(server, on_request);
    quiche_ev_server_on_request_body(server, on_request_body);
    quiche_ev_server_on_request_writable(server, on_writable);
    quiche_ev_server_on_request_closed(server, on_request_closed);
    quiche_ev_server_on_conn(server, on_conn_established, on_conn_closed);
}

static void print_stats(uint64_t requests, uint64_t short_writes, uint64_t writable_calls,
                        uint64_t paused_bodies) {
    fprintf(stderr, "app-server stats: requests=%" PRIu64 " short_writes=%" PRIu64
            " writable_calls=%" PRIu64 " paused_bodies=%" PRIu64 "\n", requests, short_writes,
            writable_calls, paused_bodies);
}

/* --workers N: each worker thread has its own struct app (its loop, its
 * server, its counters: /stats answers for the worker that got the
 * request), its own quiche_config and quiche_h3_config. The callbacks of
 * one worker all run on its thread, so nothing here is shared between
 * threads but what the start callback reads. */
struct worker {
    struct app app;
    quiche_config *config;
    quiche_h3_config *h3_config;
};

struct workers_setup {
    const struct server_args *args;
    bool verbose;
    struct worker w[32];
};

static quiche_ev_server *worker_start(const quiche_ev_worker_info *info, void *user) {
    struct workers_setup *ws = user;
    struct worker *me = &ws->w[info->index];
    me->config = new_server_config(ws->args);
    me->h3_config = quiche_h3_config_new();
    if (me->config == NULL || me->h3_config == NULL || !load_cert(me->config, ws->args)) {
        return NULL;
    }
    configure_h3_app(me->config);
    quiche_ev_server *server = quiche_ev_server_new(info->loop_, info->sock, info->local, info->local_len,
                                                    me->config, me->h3_config);
    if (server == NULL) {
        return NULL;
    }
    me->app = (struct app) { .loop = info->loop_, .server = server, .verbose = ws->verbose };
    set_callbacks(server, &me->app);
    return server;
}

static void worker_stop(const quiche_ev_worker_info *info, void *user) {
    struct workers_setup *ws = user;
    struct worker *me = &ws->w[info->index];
    if (me->h3_config != NULL) {
        quiche_h3_config_free(me->h3_config);
    }
    if (me->config != NULL) {
        quiche_config_free(me->config);
    }
}

static int run_app_workers(const struct server_args *args, const struct addrinfo *local, bool verbose) {
    struct workers_setup *ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        return 1;
    }
    ws->args = args;
    ws->verbose = verbose;
    struct worker_hooks hooks = { worker_start, worker_stop, ws };
    int status = run_workers(args, local, &hooks);
    uint64_t requests = 0, short_writes = 0, writable_calls = 0, paused_bodies = 0;
    for (long i = 0; i < args->workers; i++) {
        requests += ws->w[i].app.requests;
        short_writes += ws->w[i].app.short_writes;
        writable_calls += ws->w[i].app.writable_calls;
        paused_bodies += ws->w[i].app.paused_bodies;
    }
    print_stats(requests, short_writes, writable_calls, paused_bodies);
    free(ws);
    return status;
}

/* ---- main ---- */

static bool parse_args(int argc, char *argv[], struct server_args *args, bool *verbose) {
    memset(args, 0, sizeof(*args));
    args->drain_ms = 2000;
    args->workers = 1;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        int scale = parse_scale_option(argc, argv, &i, args);
        if (scale < 0) {
            return false;
        }
        if (scale > 0) {
            continue;
        }
        if (strcmp(argv[i], "--verbose") == 0) {
            *verbose = true;
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
    return true;
}

int main(int argc, char *argv[]) {
    struct server_args args;
    bool verbose = false;
    if (!parse_args(argc, argv, &args, &verbose)) {
        fprintf(stderr, "usage: %s [--cert FILE] [--key FILE] [--drain-ms N] [--verbose] [--workers N] "
                "[--server-id HEX [--cid-key HEX] [--config-id N] [--nonce-len N]] [--token-key HEX] "
                "[--reset-key HEX] [--ticket-key HEX] [--secrets FILE] HOST PORT\n", argv[0]);
        return EXIT_USAGE;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);

    /* The library prints nothing unless asked: warnings, or upstream's
     * event lines too with --verbose. */
    quiche_ev_set_log(print_log, NULL, verbose ? QUICHE_EV_LOG_INFO : QUICHE_EV_LOG_WARN);

    /* The process is ours: address, socket, quiche config, loop. */
    int status = 1;
    struct addrinfo *local = resolve(args.host, args.port);
    if (local != NULL && args.workers > 1) {
        if (!verbose) {
            setenv("QUICHE_EV_LOG", "warn", 0);
        }
        status = run_app_workers(&args, local, verbose);
        freeaddrinfo(local);
        return status;
    }
    int sock = local != NULL ? udp_socket(local, true) : -1;
    quiche_config *config = sock >= 0 ? new_server_config(&args) : NULL;
    quiche_h3_config *h3_config = quiche_h3_config_new();
    struct ev_loop *loop = ev_default_loop(0);
    quiche_ev_server *server = NULL;
    if (sock < 0 || config == NULL || h3_config == NULL || !load_cert(config, &args)) {
        goto out;
    }

    configure_h3_app(config); /* ALPN h3, flow control, timeouts (common.c) */

    /* The server, and our callbacks: every one gets `app` as user. */
    server = quiche_ev_server_new(loop, sock, local->ai_addr, local->ai_addrlen, config, h3_config);
    if (server == NULL || !apply_scale_options(server, &args)) {
        goto out;
    }
    struct app app = { .loop = loop, .server = server, .drain_ms = args.drain_ms, .verbose = verbose };
    set_callbacks(server, &app);
    quiche_ev_server_on_stopped(server, on_stopped);

    /* Our watchers: the socket (its callback is the library's) and the
     * signals. */
    ev_io watcher;
    ev_io_init(&watcher, quiche_ev_server_recv_cb, sock, EV_READ);
    watcher.data = server;
    ev_io_start(loop, &watcher);

    ev_signal sigint_watcher, sigterm_watcher;
    ev_signal_init(&sigint_watcher, on_signal, SIGINT);
    ev_signal_init(&sigterm_watcher, on_signal, SIGTERM);
    sigint_watcher.data = sigterm_watcher.data = &app;
    ev_signal_start(loop, &sigint_watcher);
    ev_signal_start(loop, &sigterm_watcher);

    print_listening(sock);
    ev_run(loop, 0);

    ev_io_stop(loop, &watcher);
    ev_signal_stop(loop, &sigint_watcher);
    ev_signal_stop(loop, &sigterm_watcher);
    print_stats(app.requests, app.short_writes, app.writable_calls, app.paused_bodies);
    status = 0;

out:
    quiche_ev_server_free(server);
    free_process(loop, h3_config, config, local, sock);
    return status;
}
