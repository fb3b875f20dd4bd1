#include "common.h"

#include <errno.h>
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
