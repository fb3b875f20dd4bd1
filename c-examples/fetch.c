/* fetch: several requests at once on one HTTP/3 connection, each response
 * handled in C.
 *
 * A tutorial for quiche-ev's client API (README "The C API",
 * include/quiche_ev.h). quiche-ev runs the connection; this file issues
 * the requests and gets each response's status, body chunks and end
 * through three callbacks, with the pointer it gave to the request.
 *
 *   fetch [--post FILE] [--verbose] HOST PORT PATH...
 *
 * Every PATH is requested at once (GET, or POST with FILE's content as the
 * body); requests beyond the server's stream limit wait in the library
 * until earlier ones finish. For each response, as it completes, one line
 * on stdout:
 *
 *   PATH STATUS BYTES FNV1A64 OUTCOME
 *
 * with the body's length and 64-bit FNV-1a hash (hex) and OUTCOME one of
 * complete, reset:CODE, failed, closed. The exit status is 0 only when
 * every response arrived complete with a 2xx status. */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <quiche_ev.h>

#include "common.h"

/* One request and what arrived of its response (the request's user
 * pointer: every response callback gets it back). */
struct response {
    const char *path;
    int status;
    uint64_t bytes;
    uint64_t hash;
};

struct fetch {
    struct ev_loop *loop;
    quiche_ev_client *client;
    size_t pending;
    size_t failed;
};

static struct fetch fetch;

/* ---- the response callbacks ---- */

static void on_headers(quiche_ev_client *client, int64_t id, int status,
                       const quiche_ev_header *headers, size_t n, void *user) {
    (void) client;
    (void) id;
    (void) headers;
    (void) n;
    struct response *r = user;
    r->status = status;
}

/* A chunk of body: hash it, and take all of it (returning less would
 * pause this response, and the server with it, until
 * quiche_ev_client_resume). */
static size_t on_body(quiche_ev_client *client, int64_t id, const uint8_t *data, size_t len,
                      void *user) {
    (void) client;
    (void) id;
    struct response *r = user;
    for (size_t i = 0; i < len; i++) {
        r->hash = (r->hash ^ data[i]) * 0x100000001b3ull;
    }
    r->bytes += len;
    return len;
}

/* The response is over; once all are, close the connection. */
static void on_done(quiche_ev_client *client, int64_t id, int outcome, uint64_t code, void *user) {
    (void) id;
    struct response *r = user;
    char how[32];
    switch (outcome) {
    case QUICHE_EV_RESPONSE_COMPLETE:
        snprintf(how, sizeof(how), "complete");
        break;
    case QUICHE_EV_RESPONSE_RESET:
        snprintf(how, sizeof(how), "reset:0x%" PRIx64, code);
        break;
    case QUICHE_EV_RESPONSE_FAILED:
        snprintf(how, sizeof(how), "failed");
        break;
    default:
        snprintf(how, sizeof(how), "closed");
        break;
    }
    printf("%s %d %" PRIu64 " %016" PRIx64 " %s\n", r->path, r->status, r->bytes, r->hash, how);

    if (outcome != QUICHE_EV_RESPONSE_COMPLETE || r->status < 200 || r->status > 299) {
        fetch.failed++;
    }
    if (--fetch.pending == 0) {
        quiche_ev_client_close(client, 0, NULL);
    }
}

/* The connection is over (every done callback has run): end the loop. */
static void on_closed(quiche_ev_client *client, int state, void *user) {
    (void) user;
    if (state == QUICHE_EV_CLIENT_FAILED) {
        fprintf(stderr, "connection failed: %s\n", quiche_ev_client_failure(client));
    }
    ev_break(fetch.loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void) loop;
    (void) revents;
    (void) w;
    fprintf(stderr, "interrupted\n");
    quiche_ev_client_close(fetch.client, 0, "interrupted");
    fetch.failed++;
}

static void print_log(int level, const char *msg, void *user) {
    (void) level;
    (void) user;
    fprintf(stderr, "%s\n", msg);
}

/* The whole of `path` in memory (the library copies a request body). */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *bigger = realloc(buf, cap);
            if (bigger == NULL) {
                free(buf);
                fclose(f);
                fprintf(stderr, "%s: out of memory\n", path);
                return NULL;
            }
            buf = bigger;
        }
        size_t n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
        if (n == 0) {
            break;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "cannot read %s\n", path);
        free(buf);
        return NULL;
    }
    return buf;
}

int main(int argc, char *argv[]) {
    const char *post = NULL;
    bool verbose = false;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--verbose") == 0) {
            verbose = true;
        } else if (strcmp(argv[i], "--post") == 0 && i + 1 < argc) {
            post = argv[++i];
        } else {
            break;
        }
    }
    if (argc - i < 3 || strncmp(argv[i], "--", 2) == 0) {
        fprintf(stderr, "usage: %s [--post FILE] [--verbose] HOST PORT PATH...\n", argv[0]);
        return EXIT_USAGE;
    }
    const char *host = argv[i], *port = argv[i + 1];
    char **paths = &argv[i + 2];
    size_t n = (size_t) (argc - i - 2);

    setvbuf(stderr, NULL, _IOLBF, 0);
    quiche_ev_set_log(print_log, NULL, verbose ? QUICHE_EV_LOG_INFO : QUICHE_EV_LOG_WARN);

    int status = 1;
    uint8_t *body = NULL;
    size_t body_len = 0;
    struct response *responses = calloc(n, sizeof(*responses));
    struct addrinfo *peer = resolve(host, port);
    int sock = peer != NULL ? udp_socket(peer, false) : -1;
    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    quiche_h3_config *h3_config = quiche_h3_config_new();
    fetch.loop = ev_default_loop(0);
    if (responses == NULL || sock < 0 || config == NULL || h3_config == NULL) {
        goto out;
    }
    if (post != NULL && (body = read_file(post, &body_len)) == NULL) {
        goto out;
    }

    configure_h3_app(config);                 /* ALPN h3, flow control, timeouts */
    quiche_config_verify_peer(config, false); /* the test certificate is self-signed */

    fetch.client = quiche_ev_client_new(fetch.loop, sock, host, peer->ai_addr, peer->ai_addrlen,
                                        config, h3_config);
    if (fetch.client == NULL) {
        goto out;
    }
    quiche_ev_client_on_response(fetch.client, on_headers, on_body, on_done);
    quiche_ev_client_on_closed(fetch.client, on_closed);

    /* Every request now: they wait for the handshake, and for stream
     * credit, inside the library. */
    for (size_t k = 0; k < n; k++) {
        struct response *r = &responses[k];
        r->path = paths[k];
        r->hash = 0xcbf29ce484222325ull; /* FNV-1a offset basis */
        int64_t id = quiche_ev_client_request(fetch.client, body ? "POST" : "GET", r->path, NULL, 0,
                                              body, body_len, r);
        if (id < 0) {
            fprintf(stderr, "%s: %s\n", r->path, quiche_ev_strerror((int) id));
            goto out;
        }
        fetch.pending++;
    }
    free(body); /* copied by each request */
    body = NULL;

    ev_io watcher;
    ev_io_init(&watcher, quiche_ev_client_recv_cb, sock, EV_READ);
    watcher.data = fetch.client;
    ev_io_start(fetch.loop, &watcher);

    ev_signal sigint_watcher;
    ev_signal_init(&sigint_watcher, on_signal, SIGINT);
    ev_signal_start(fetch.loop, &sigint_watcher);

    ev_run(fetch.loop, 0);

    ev_io_stop(fetch.loop, &watcher);
    ev_signal_stop(fetch.loop, &sigint_watcher);
    status = fetch.failed == 0 && fetch.pending == 0 &&
             quiche_ev_client_state(fetch.client) == QUICHE_EV_CLIENT_CLOSED ? 0 : 1;

out:
    quiche_ev_client_free(fetch.client);
    free_process(fetch.loop, h3_config, config, peer, sock);
    free(body);
    free(responses);
    return status;
}
