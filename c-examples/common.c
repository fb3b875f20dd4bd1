#include "common.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/types.h>

void debug_log(const char *line, void *argp) {
    (void) argp;
    fprintf(stderr, "%s\n", line);
}

void enable_debug_logging(void) {
    if (getenv("QUICHE_EV_QUIET") == NULL) {
        quiche_enable_debug_logging(debug_log, NULL);
    }
}

struct addrinfo *resolve(const char *host, const char *port) {
    const struct addrinfo hints = {
        .ai_family = PF_UNSPEC,
        .ai_socktype = SOCK_DGRAM,
        .ai_protocol = IPPROTO_UDP
    };

    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "failed to resolve host %s port %s: %s\n",
                host, port, gai_strerror(rc));
        return NULL;
    }

    return ai;
}

int udp_socket(const struct addrinfo *ai, bool do_bind) {
    int sock = socket(ai->ai_family, SOCK_DGRAM, 0);
    if (sock < 0) {
        perror("failed to create socket");
        return -1;
    }

    if (fcntl(sock, F_SETFL, O_NONBLOCK) != 0) {
        perror("failed to make socket non-blocking");
        close(sock);
        return -1;
    }

    if (do_bind && bind(sock, ai->ai_addr, ai->ai_addrlen) < 0) {
        perror("failed to bind socket");
        close(sock);
        return -1;
    }

    return sock;
}

void print_listening(int sock) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[1025], port[32];

    if (getsockname(sock, (struct sockaddr *) &ss, &len) == 0 &&
        getnameinfo((struct sockaddr *) &ss, len, host, sizeof(host),
                    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        fprintf(stderr, "listening on %s:%s\n", host, port);
    }
}

static bool load_one(quiche_config *config, const char *path,
                     int (*load)(quiche_config *, const char *)) {
    /* quiche's own error says nothing of which file; check access first. */
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        return false;
    }

    if (load(config, path) != 0) {
        fprintf(stderr, "failed to load %s: not a valid PEM file\n", path);
        return false;
    }

    return true;
}

bool load_cert(quiche_config *config) {
    return load_one(config, "./cert.crt",
                    quiche_config_load_cert_chain_from_pem_file) &&
           load_one(config, "./cert.key",
                    quiche_config_load_priv_key_from_pem_file);
}

bool parse_server_args(int argc, char *argv[], struct server_args *args) {
    memset(args, 0, sizeof(*args));

    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            args->root = argv[++i];
        } else if (strcmp(argv[i], "--max-conns") == 0 && i + 1 < argc) {
            char *end;
            args->max_conns = strtol(argv[++i], &end, 10);
            if (*end != '\0' || args->max_conns <= 0) {
                break;
            }
        } else {
            break;
        }
    }

    if (argc - i != 2 || strncmp(argv[i], "--", 2) == 0) {
        fprintf(stderr, "usage: %s [--root DIR] [--max-conns N] HOST PORT\n",
                argv[0]);
        return false;
    }

    args->host = argv[i];
    args->port = argv[i + 1];
    return true;
}

bool parse_client_args(int argc, char *argv[], struct client_args *args) {
    memset(args, 0, sizeof(*args));

    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--output") == 0 && i + 1 < argc) {
            args->output = argv[++i];
        } else {
            break;
        }
    }

    if (argc - i < 2 || strncmp(argv[i], "--", 2) == 0) {
        fprintf(stderr, "usage: %s [--output FILE] HOST PORT [PATH...]\n",
                argv[0]);
        return false;
    }

    args->host = argv[i];
    args->port = argv[i + 1];
    args->paths = (const char *const *) &argv[i + 2];
    args->paths_len = (size_t) (argc - i - 2);
    return true;
}

/* QUICHE_EV_GSO=0: batched reads, but one send call per packet. */
static bool gso_disabled(void) {
    const char *v = getenv("QUICHE_EV_GSO");
    return v != NULL && strcmp(v, "0") == 0;
}

/* Starts the socket watcher (`recv_cb`) and SIGINT/SIGTERM watchers
 * (`signal_cb`), each with `data` as upstream's watcher.data, optionally
 * announces the bound address (only now: a signal is handled from here
 * on), then runs the loop. */
static void watch_and_run(struct ev_loop *loop, int sock,
                          void (*recv_cb)(struct ev_loop *, ev_io *, int),
                          void (*signal_cb)(struct ev_loop *, ev_signal *, int),
                          void *data, bool announce) {
    ev_io watcher;
    ev_io_init(&watcher, recv_cb, sock, EV_READ);
    watcher.data = data;
    ev_io_start(loop, &watcher);

    ev_signal sigint_watcher, sigterm_watcher;
    ev_signal_init(&sigint_watcher, signal_cb, SIGINT);
    ev_signal_init(&sigterm_watcher, signal_cb, SIGTERM);
    sigint_watcher.data = sigterm_watcher.data = data;
    ev_signal_start(loop, &sigint_watcher);
    ev_signal_start(loop, &sigterm_watcher);

    if (announce) {
        print_listening(sock);
    }

    ev_run(loop, 0);
}

int run_server(struct ev_loop *loop, int sock, quiche_ev_server *server,
               const struct server_args *args) {
    if (args->root != NULL && quiche_ev_server_set_root(server, args->root) != 0) {
        return 1;
    }

    if (args->max_conns > 0) {
        quiche_ev_server_set_max_conns(server, (size_t) args->max_conns);
    }

    if (getenv("QUICHE_EV_PLAIN_IO")) {
        quiche_ev_server_set_batched_io(server, 0);
    }

    if (gso_disabled()) {
        quiche_ev_server_set_gso(server, 0);
    }

    watch_and_run(loop, sock, quiche_ev_server_recv_cb,
                  quiche_ev_server_signal_cb, server, true);

    return 0;
}

int run_client(struct ev_loop *loop, int sock, quiche_ev_client *client,
               const struct client_args *args) {
    if (args->output != NULL &&
        quiche_ev_client_set_output(client, args->output) != 0) {
        return 1;
    }

    if (getenv("QUICHE_EV_PLAIN_IO")) {
        quiche_ev_client_set_batched_io(client, 0);
    }

    if (gso_disabled()) {
        quiche_ev_client_set_gso(client, 0);
    }

    watch_and_run(loop, sock, quiche_ev_client_recv_cb,
                  quiche_ev_client_signal_cb, client, false);

    return quiche_ev_client_status(client) == 0 ? 0 : 1;
}

void free_process(struct ev_loop *loop, quiche_h3_config *http3_config,
                  quiche_config *config, struct addrinfo *ai, int sock) {
    if (loop != NULL) {
        ev_loop_destroy(loop);
    }
    if (http3_config != NULL) {
        quiche_h3_config_free(http3_config);
    }
    if (config != NULL) {
        quiche_config_free(config);
    }
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    if (sock >= 0) {
        close(sock);
    }
}
