/* hq-interop client in the shape of quiche's examples/client.c: main()
 * sets up the process; recv_cb, timeout_cb, flush_egress and the request
 * are quiche-ev's (Rust). Prints the response body on stdout; exits 0 only
 * when it arrived in full. */

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
    fprintf(stderr, "usage: %s [--output FILE] HOST PORT [PATH...]\n", prog);
    return EXIT_USAGE;
}

int main(int argc, char *argv[]) {
    const char *output = NULL;

    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--output") == 0 && i + 1 < argc) {
            output = argv[++i];
        } else {
            return usage(argv[0]);
        }
    }

    if (argc - i < 2) {
        return usage(argv[0]);
    }

    const char *host = argv[i];
    const char *port = argv[i + 1];
    const char *const *paths = (const char *const *) &argv[i + 2];
    size_t paths_len = (size_t) (argc - i - 2);

    enable_debug_logging();

    struct addrinfo *peer = resolve(host, port);
    if (peer == NULL) {
        return 1;
    }

    int sock = udp_socket(peer, false);
    if (sock < 0) {
        return 1;
    }

    quiche_config *config = quiche_config_new(0xbabababa);
    if (config == NULL) {
        fprintf(stderr, "failed to create config\n");
        return 1;
    }

    quiche_config_set_application_protos(config,
        (uint8_t *) "\x0ahq-interop\x05hq-29\x05hq-28\x05hq-27\x08http/0.9", 38);

    quiche_config_set_max_idle_timeout(config, 5000);
    quiche_config_set_max_recv_udp_payload_size(config, MAX_DATAGRAM_SIZE);
    quiche_config_set_max_send_udp_payload_size(config, MAX_DATAGRAM_SIZE);
    quiche_config_set_initial_max_data(config, 10000000);
    quiche_config_set_initial_max_stream_data_bidi_local(config, 1000000);
    quiche_config_set_initial_max_stream_data_uni(config, 1000000);
    quiche_config_set_initial_max_streams_bidi(config, 100);
    quiche_config_set_initial_max_streams_uni(config, 100);
    quiche_config_set_disable_active_migration(config, true);

    if (getenv("SSLKEYLOGFILE")) {
        quiche_config_log_keys(config);
    }

    struct ev_loop *loop = ev_default_loop(0);

    quiche_ev_client *client = quiche_ev_client_new(loop, sock, host,
                                                    peer->ai_addr,
                                                    peer->ai_addrlen,
                                                    config, NULL,
                                                    paths, paths_len);
    if (client == NULL) {
        return 1;
    }

    if (output != NULL && quiche_ev_client_set_output(client, output) != 0) {
        return 1;
    }

    ev_io watcher;
    ev_io_init(&watcher, quiche_ev_client_recv_cb, sock, EV_READ);
    watcher.data = client;
    ev_io_start(loop, &watcher);

    ev_signal sigint_watcher, sigterm_watcher;
    ev_signal_init(&sigint_watcher, quiche_ev_client_signal_cb, SIGINT);
    ev_signal_init(&sigterm_watcher, quiche_ev_client_signal_cb, SIGTERM);
    sigint_watcher.data = sigterm_watcher.data = client;
    ev_signal_start(loop, &sigint_watcher);
    ev_signal_start(loop, &sigterm_watcher);

    ev_run(loop, 0);

    int status = quiche_ev_client_status(client);

    quiche_ev_client_free(client);
    ev_loop_destroy(loop);
    freeaddrinfo(peer);
    quiche_config_free(config);
    close(sock);

    return status == 0 ? 0 : 1;
}
