/* hq-interop client in the shape of quiche's examples/client.c: main()
 * sets up the process; recv_cb, timeout_cb, flush_egress and the request
 * are quiche-ev's (Rust). Prints the response body on stdout; exits 0 only
 * when it arrived in full. */

#include <stdio.h>

#include <ev.h>
#include <quiche.h>
#include <quiche_ev.h>

#include "common.h"

int main(int argc, char *argv[]) {
    struct client_args args;
    if (!parse_client_args(argc, argv, &args)) {
        return EXIT_USAGE;
    }

    int status = 1;
    struct addrinfo *peer = NULL;
    int sock = -1;
    quiche_config *config = NULL;
    struct ev_loop *loop = NULL;
    quiche_ev_client *client = NULL;

    enable_debug_logging();

    peer = resolve(args.host, args.port);
    if (peer == NULL) {
        goto out;
    }

    sock = udp_socket(peer, false);
    if (sock < 0) {
        goto out;
    }

    /* A greased first version (as upstream: the server answers with
     * version negotiation), unless --early-data or --wire-version. */
    config = quiche_config_new(client_version(&args));
    if (config == NULL) {
        fprintf(stderr, "failed to create config\n");
        goto out;
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

    configure_client(config, &args);

    loop = ev_default_loop(0);

    /* One connection (or, with --multiconnect, one per path, in turn). */
    status = 0;
    for (size_t i = 0; i < client_connections(&args); i++) {
        client = quiche_ev_client_new(loop, sock, args.host,
                                      peer->ai_addr,
                                      peer->ai_addrlen,
                                      config, NULL);
        if (client == NULL) {
            status = 1;
            goto out;
        }

        status |= run_client(loop, sock, client, &args, i);

        quiche_ev_client_free(client);
        client = NULL;
    }

out:
    quiche_ev_client_free(client);
    free_process(loop, NULL, config, peer, sock);

    return status;
}
