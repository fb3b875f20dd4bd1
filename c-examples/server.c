/* hq-interop server in the shape of quiche's examples/server.c: main()
 * sets up the process; recv_cb, timeout_cb, flush_egress, create_conn,
 * token handling, version negotiation and retry are quiche-ev's (Rust). */

#include <stdio.h>

#include <ev.h>
#include <quiche.h>
#include <quiche_ev.h>

#include "common.h"

/* The quiche configuration, as upstream's main() makes it (one per
 * worker with --workers). */
static quiche_config *make_config(const struct server_args *args) {
    quiche_config *config = new_server_config(args);
    if (config == NULL) {
        return NULL;
    }

    if (!load_cert(config, args)) {
        quiche_config_free(config);
        return NULL;
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

    configure_server(config, args);
    return config;
}

int main(int argc, char *argv[]) {
    struct server_args args;
    if (!parse_server_args(argc, argv, &args)) {
        return EXIT_USAGE;
    }

    int status = 1;
    struct addrinfo *local = NULL;
    int sock = -1;
    quiche_config *config = NULL;
    struct ev_loop *loop = NULL;
    quiche_ev_server *server = NULL;

    enable_debug_logging();

    local = resolve(args.host, args.port);
    if (local == NULL) {
        goto out;
    }

    if (args.workers > 1) {
        /* One server per worker thread, each with its own config. */
        struct example_worker_config wc = { &args, make_config, false };
        struct worker_hooks hooks = { example_worker_start, example_worker_stop, &wc };
        status = run_workers(&args, local, &hooks);
        goto out;
    }

    sock = udp_socket(local, true);
    if (sock < 0) {
        goto out;
    }

    config = make_config(&args);
    if (config == NULL) {
        goto out;
    }

    loop = ev_default_loop(0);

    server = quiche_ev_server_new(loop, sock, local->ai_addr,
                                  local->ai_addrlen,
                                  config, NULL);
    if (server == NULL) {
        goto out;
    }

    status = run_server(loop, sock, server, &args);

out:
    quiche_ev_server_free(server);
    free_process(loop, NULL, config, local, sock);

    return status;
}
