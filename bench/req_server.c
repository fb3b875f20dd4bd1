/* req_server: the server of `make bench`'s request and soak rows. An
 * HTTP/3 server on quiche-ev's public API whose every response comes from
 * a C request callback, as a user's would (c-examples/app-server.c is the
 * tutorial; this is the smallest such program):
 *
 *   every request  200, "server: quiche", "content-length: N", N bytes
 *                  (quiche_ev_respond_bytes; N = --body, default 1024)
 *
 * The quiche configuration is http3-server.c's (Reno, 5 s idle timeout,
 * the same flow-control windows), so the only difference to
 * `http3-server --root` serving a file of N bytes is where the response
 * comes from: this callback, or the built-in file responder.
 *
 * Usage: req_server [--body N] [--no-retry] [--cert F] [--key F] HOST PORT
 * (PORT 0: a free port, announced as "listening on HOST:PORT"). SIGTERM
 * or SIGINT closes every connection and ends it; the request counts go to
 * stderr then. Silent otherwise: the library's log is on at warn. */

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <quiche_ev.h>

#include "common.h"

struct req_server {
    struct ev_loop *loop;
    quiche_ev_server *server;
    uint8_t *body;
    size_t body_len;
    char length[32];
    uint64_t requests;
    uint64_t complete;
    uint64_t other;
};

#define HEADER(n, v) { (const uint8_t *) (n), sizeof(n) - 1, (const uint8_t *) (v), strlen(v) }

static void on_request(quiche_ev_request *req, void *user) {
    struct req_server *s = user;
    s->requests++;
    quiche_ev_header h[] = { HEADER("server", "quiche"), HEADER("content-length", s->length) };
    quiche_ev_respond_bytes(req, 200, h, 2, s->body, s->body_len);
}

static void on_request_closed(quiche_ev_request *req, int outcome, uint64_t code, void *user) {
    (void) req;
    (void) code;
    struct req_server *s = user;
    if (outcome == QUICHE_EV_REQUEST_COMPLETE) {
        s->complete++;
    } else {
        s->other++;
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void) loop;
    (void) revents;
    struct req_server *s = w->data;
    quiche_ev_server_shutdown(s->server, 0);
}

static void on_stopped(quiche_ev_server *server, int status, void *user) {
    (void) server;
    (void) status;
    struct req_server *s = user;
    ev_break(s->loop, EVBREAK_ALL);
}

static void print_log(int level, const char *msg, void *user) {
    (void) level;
    (void) user;
    fprintf(stderr, "%s\n", msg);
}

int main(int argc, char *argv[]) {
    struct server_args args;
    memset(&args, 0, sizeof(args));
    long body_len = 1024;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--no-retry") == 0) {
            args.no_retry = true;
        } else if (i + 1 >= argc) {
            break;
        } else if (strcmp(argv[i], "--body") == 0) {
            body_len = atol(argv[++i]);
        } else if (strcmp(argv[i], "--cert") == 0) {
            args.cert = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0) {
            args.key = argv[++i];
        } else {
            break;
        }
    }
    if (argc - i != 2 || body_len < 0) {
        fprintf(stderr, "usage: %s [--body N] [--no-retry] [--cert FILE] [--key FILE] HOST PORT\n", argv[0]);
        return EXIT_USAGE;
    }
    args.host = argv[i];
    args.port = argv[i + 1];

    setvbuf(stderr, NULL, _IOLBF, 0);
    quiche_ev_set_log(print_log, NULL, QUICHE_EV_LOG_WARN);

    struct req_server s = { .body_len = (size_t) body_len };
    s.body = malloc(s.body_len ? s.body_len : 1);
    for (size_t k = 0; k < s.body_len; k++) {
        s.body[k] = (uint8_t) ('a' + k % 26);
    }
    snprintf(s.length, sizeof(s.length), "%zu", s.body_len);

    int status = 1;
    struct addrinfo *local = resolve(args.host, args.port);
    int sock = local != NULL ? udp_socket(local, true) : -1;
    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    quiche_h3_config *h3_config = quiche_h3_config_new();
    s.loop = ev_default_loop(0);
    if (sock < 0 || config == NULL || h3_config == NULL || s.body == NULL || !load_cert(config, &args)) {
        goto out;
    }

    /* http3-server.c's settings. */
    quiche_config_set_application_protos(config,
        (uint8_t *) QUICHE_H3_APPLICATION_PROTOCOL,
        sizeof(QUICHE_H3_APPLICATION_PROTOCOL) - 1);
    quiche_config_set_max_idle_timeout(config, 5000);
    quiche_config_set_max_recv_udp_payload_size(config, MAX_DATAGRAM_SIZE);
    quiche_config_set_max_send_udp_payload_size(config, MAX_DATAGRAM_SIZE);
    quiche_config_set_initial_max_data(config, 10000000);
    quiche_config_set_initial_max_stream_data_bidi_local(config, 1000000);
    quiche_config_set_initial_max_stream_data_bidi_remote(config, 1000000);
    quiche_config_set_initial_max_stream_data_uni(config, 1000000);
    quiche_config_set_initial_max_streams_bidi(config, 100);
    quiche_config_set_initial_max_streams_uni(config, 100);
    quiche_config_set_disable_active_migration(config, true);
    quiche_config_set_cc_algorithm(config, QUICHE_CC_RENO);
    configure_server(config, &args);

    s.server = quiche_ev_server_new(s.loop, sock, local->ai_addr, local->ai_addrlen, config, h3_config);
    if (s.server == NULL) {
        goto out;
    }
    if (args.no_retry) {
        quiche_ev_server_set_retry(s.server, 0);
    }
    quiche_ev_server_set_user_data(s.server, &s);
    quiche_ev_server_on_request(s.server, on_request);
    quiche_ev_server_on_request_closed(s.server, on_request_closed);
    quiche_ev_server_on_stopped(s.server, on_stopped);

    ev_io watcher;
    ev_io_init(&watcher, quiche_ev_server_recv_cb, sock, EV_READ);
    watcher.data = s.server;
    ev_io_start(s.loop, &watcher);

    ev_signal sigint_watcher, sigterm_watcher;
    ev_signal_init(&sigint_watcher, on_signal, SIGINT);
    ev_signal_init(&sigterm_watcher, on_signal, SIGTERM);
    sigint_watcher.data = sigterm_watcher.data = &s;
    ev_signal_start(s.loop, &sigint_watcher);
    ev_signal_start(s.loop, &sigterm_watcher);

    print_listening(sock);
    ev_run(s.loop, 0);

    ev_io_stop(s.loop, &watcher);
    ev_signal_stop(s.loop, &sigint_watcher);
    ev_signal_stop(s.loop, &sigterm_watcher);
    fprintf(stderr, "req_server: requests=%" PRIu64 " complete=%" PRIu64 " other=%" PRIu64 "\n",
            s.requests, s.complete, s.other);
    status = 0;

out:
    quiche_ev_server_free(s.server);
    free_process(s.loop, h3_config, config, local, sock);
    free(s.body);
    return status;
}
