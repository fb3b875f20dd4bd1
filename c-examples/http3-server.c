/* HTTP/3 server in the shape of quiche's examples/http3-server.c: main()
 * sets up the process; recv_cb, timeout_cb, flush_egress, create_conn,
 * token handling, version negotiation, retry and the HTTP/3 responder are
 * quiche-ev's (Rust). */

#include <stdio.h>
#include <unistd.h>

#include <ev.h>
#include <quiche.h>
#include <quiche_ev.h>

#include "common.h"

int main(int argc, char *argv[]) {
    struct server_args args;
    if (!parse_server_args(argc, argv, &args)) {
        return EXIT_USAGE;
    }

    enable_debug_logging();

    struct addrinfo *local = resolve(args.host, args.port);
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

    quiche_h3_config *http3_config = quiche_h3_config_new();
    if (http3_config == NULL) {
        fprintf(stderr, "failed to create HTTP/3 config\n");
        return 1;
    }

    struct ev_loop *loop = ev_default_loop(0);

    quiche_ev_server *server = quiche_ev_server_new(loop, sock, local->ai_addr,
                                                    local->ai_addrlen,
                                                    config, http3_config);
    if (server == NULL) {
        return 1;
    }

    int status = run_server(loop, sock, server, &args);

    quiche_ev_server_free(server);
    ev_loop_destroy(loop);
    freeaddrinfo(local);
    quiche_h3_config_free(http3_config);
    quiche_config_free(config);
    close(sock);

    return status;
}
