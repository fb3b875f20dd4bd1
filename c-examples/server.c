/* hq-interop server in the shape of quiche's examples/server.c: main()
 * sets up the process; recv_cb, timeout_cb, flush_egress, create_conn,
 * token handling, version negotiation and retry are quiche-ev's (Rust). */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <quiche.h>
#include <quiche_ev.h>

#include "common.h"

static int usage(const char *prog) {
    fprintf(stderr, "usage: %s [--root DIR] [--max-conns N] HOST PORT\n", prog);
    return EXIT_USAGE;
}

int main(int argc, char *argv[]) {
    const char *root = NULL;
    long max_conns = 0;

    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strcmp(argv[i], "--max-conns") == 0 && i + 1 < argc) {
            char *end;
            max_conns = strtol(argv[++i], &end, 10);
            if (*end != '\0' || max_conns <= 0) {
                return usage(argv[0]);
            }
        } else {
            return usage(argv[0]);
        }
    }

    if (argc - i != 2) {
        return usage(argv[0]);
    }

    const char *host = argv[i];
    const char *port = argv[i + 1];

    enable_debug_logging();

    struct addrinfo *local = resolve(host, port);
    if (local == NULL) {
        return 1;
    }

    int sock = udp_socket(local, true);
    if (sock < 0) {
        return 1;
    }

    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    if (config == NULL) {
        fprintf(stderr, "failed to create config\n");
        return 1;
    }

    if (!load_cert(config)) {
        return 1;
    }

    quiche_config_set_application_protos(config,
        (uint8_t *) "\x0ahq-interop\x05hq-29\x05hq-28\x05hq-27\x08http/0.9", 38);

    quiche_config_set_max_idle_timeout(config, 5000);
    quiche_config_set_max_recv_udp_payload_size(config, MAX_DATAGRAM_SIZE);
    quiche_config_set_max_send_udp_payload_size(config, MAX_DATAGRAM_SIZE);
    quiche_config_set_initial_max_data(config, 10000000);
    quiche_config_set_initial_max_stream_data_bidi_local(config, 1000000);
    quiche_config_set_initial_max_stream_data_bidi_remote(config, 1000000);
    quiche_config_set_initial_max_streams_bidi(config, 100);
    quiche_config_set_cc_algorithm(config, QUICHE_CC_RENO);

    struct ev_loop *loop = ev_default_loop(0);

    quiche_ev_server *server = quiche_ev_server_new(loop, sock, local->ai_addr,
                                                    local->ai_addrlen,
                                                    config, NULL);
    if (server == NULL) {
        return 1;
    }

    if (root != NULL && quiche_ev_server_set_root(server, root) != 0) {
        return 1;
    }

    if (max_conns > 0) {
        quiche_ev_server_set_max_conns(server, (size_t) max_conns);
    }

    ev_io watcher;
    ev_io_init(&watcher, quiche_ev_server_recv_cb, sock, EV_READ);
    watcher.data = server;
    ev_io_start(loop, &watcher);

    ev_signal sigint_watcher, sigterm_watcher;
    ev_signal_init(&sigint_watcher, quiche_ev_server_signal_cb, SIGINT);
    ev_signal_init(&sigterm_watcher, quiche_ev_server_signal_cb, SIGTERM);
    sigint_watcher.data = sigterm_watcher.data = server;
    ev_signal_start(loop, &sigint_watcher);
    ev_signal_start(loop, &sigterm_watcher);

    print_listening(sock);

    ev_run(loop, 0);

    quiche_ev_server_free(server);
    ev_loop_destroy(loop);
    freeaddrinfo(local);
    quiche_config_free(config);
    close(sock);

    return 0;
}
