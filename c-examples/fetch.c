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
 * until earlier ones finish. A POST body is streamed: each request reads
 * FILE (a regular file) chunk by chunk at its own offset, only as flow
 * control takes it (quiche_ev_client_request_start, _request_write and the
 * request writable callback), so a body of any size costs one chunk of
 * memory. For each response, as it completes, one line on stdout:
 *
 *   PATH STATUS BYTES FNV1A64 OUTCOME
 *
 * with the body's length and 64-bit FNV-1a hash (hex) and OUTCOME one of
 * complete, reset:CODE, failed, closed. The exit status is 0 only when
 * every response arrived complete with a 2xx status. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <quiche_ev.h>

#include "common.h"

/* One request and what arrived of its response (the request's user
 * pointer: every response callback gets it back). */
struct response {
    const char *path;
    int64_t id;
    int status;
    uint64_t bytes;
    uint64_t hash;
    uint64_t sent;    /* of the POST body */
    bool body_done;   /* its end was written (or the request is over) */
};

struct fetch {
    struct ev_loop *loop;
    quiche_ev_client *client;
    size_t pending;
    size_t failed;
    int post_fd;        /* --post FILE, or -1 */
    uint64_t post_size;
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

/* ---- the streamed POST body ---- */

/* Offers the request's body from where it stands, one chunk at a time,
 * until the library takes less than offered (the writable callback then
 * comes back here) or the end is written. Only one chunk is ever read
 * ahead, whatever the file's size. */
static void pump_body(struct response *r) {
    static uint8_t chunk[64 * 1024];
    while (!r->body_done) {
        uint64_t left = fetch.post_size - r->sent;
        size_t want = left < sizeof(chunk) ? (size_t) left : sizeof(chunk);
        ssize_t got = want > 0 ? pread(fetch.post_fd, chunk, want, (off_t) r->sent) : 0;
        if (got < 0 || (size_t) got != want) {
            fprintf(stderr, "%s: cannot read the body at %" PRIu64 ": %s\n", r->path, r->sent,
                    got < 0 ? strerror(errno) : "the file shrank");
            quiche_ev_client_cancel(fetch.client, r->id);
            r->body_done = true;
            return;
        }
        int fin = r->sent + want == fetch.post_size;
        ssize_t took = quiche_ev_client_request_write(fetch.client, r->id, chunk, want, fin);
        if (took < 0) {
            r->body_done = true; /* reset or over: the done callback says how */
            return;
        }
        r->sent += (uint64_t) took;
        if ((size_t) took < want) {
            return; /* flow control: on_writable follows */
        }
        r->body_done = fin; /* an end that did not fit yet is the library's to send */
    }
}

/* More of a request body fits, or the request was just sent: the first
 * write happens here (before that it would take nothing). */
static void on_writable(quiche_ev_client *client, int64_t id, void *user) {
    (void) client;
    (void) id;
    pump_body(user);
}

static void print_log(int level, const char *msg, void *user) {
    (void) level;
    (void) user;
    fprintf(stderr, "%s\n", msg);
}

/* --post FILE: opened once; each request reads it at its own offset. */
static bool open_post(const char *path) {
    struct stat st;
    fetch.post_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fetch.post_fd < 0 || fstat(fetch.post_fd, &st) != 0) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: --post takes a regular file\n", path);
        return false;
    }
    fetch.post_size = (uint64_t) st.st_size;
    return true;
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
    fetch.post_fd = -1;
    struct response *responses = calloc(n, sizeof(*responses));
    struct addrinfo *peer = resolve(host, port);
    int sock = peer != NULL ? udp_socket(peer, false) : -1;
    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    quiche_h3_config *h3_config = quiche_h3_config_new();
    fetch.loop = ev_default_loop(0);
    if (responses == NULL || sock < 0 || config == NULL || h3_config == NULL) {
        goto out;
    }
    if (post != NULL && !open_post(post)) {
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
    quiche_ev_client_on_request_writable(fetch.client, on_writable);

    /* Every request now: they wait for the handshake, and for stream
     * credit, inside the library. A POST's body is written as it goes
     * (on_writable): nothing of it is read yet. */
    for (size_t k = 0; k < n; k++) {
        struct response *r = &responses[k];
        r->path = paths[k];
        r->hash = 0xcbf29ce484222325ull; /* FNV-1a offset basis */
        r->id = post != NULL
            ? quiche_ev_client_request_start(fetch.client, "POST", r->path, NULL, 0, r)
            : quiche_ev_client_request(fetch.client, "GET", r->path, NULL, 0, NULL, 0, r);
        if (r->id < 0) {
            fprintf(stderr, "%s: %s\n", r->path, quiche_ev_strerror((int) r->id));
            goto out;
        }
        fetch.pending++;
    }

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
    if (fetch.post_fd >= 0) {
        close(fetch.post_fd);
    }
    free(responses);
    return status;
}
