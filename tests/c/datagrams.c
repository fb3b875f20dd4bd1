/* QUIC datagrams (RFC 9221) both ways between quiche-ev's server and
 * client, on real quiche over loopback, in one loop (tests/datagrams.rs
 * runs it):
 *
 *  1. hq-interop, both sides with datagrams on: the client sends COUNT
 *     datagrams of 1 byte up to the largest the server takes, into a
 *     quiche send queue of 8 (so it hears QUICHE_EV_ERR_AGAIN, and goes
 *     on from the datagram writable callback); the server echoes each
 *     from its connection datagram callback; every one must come back
 *     intact. One byte more than the largest: QUICHE_EV_ERR_TOO_LARGE.
 *     Both sides' stats count them, and nothing dropped.
 *  2. HTTP/3 with a server whose config does not enable datagrams: the
 *     client's send is QUICHE_EV_ERR_UNSUPPORTED (the server takes none),
 *     and so is the server's (its quiche send queue holds none), as is an
 *     HTTP Datagram on a request; the connection itself works.
 *
 *   datagrams CERT KEY COUNT     prints its steps, then "ok" (exit 0) */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <quiche_ev.h>

#include "common.h"
#include "harness.h"

#define MAX_COUNT 5000

struct side {
    quiche_ev_server *server;
    int sock;
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

static struct ev_loop *loop;
static struct side hq_side, h3_side;
static quiche_ev_client *client1, *client2;
static int sock1 = -1, sock2 = -1;
static int count, sent, echoed, agains, writables, max_len;
static bool seen[MAX_COUNT];
static bool phase2_server_checked, phase2_done;

/* Datagram i: its number (4 bytes), then a pattern, 1 + i * 7919 % max
 * bytes in all (at least 4). */
static size_t datagram(int i, uint8_t *out) {
    size_t len = 1 + (size_t) ((i * 7919) % max_len);
    len = len < 4 ? 4 : len;
    out[0] = (uint8_t) (i >> 24);
    out[1] = (uint8_t) (i >> 16);
    out[2] = (uint8_t) (i >> 8);
    out[3] = (uint8_t) i;
    for (size_t k = 4; k < len; k++) {
        out[k] = (uint8_t) ((size_t) i * 31 + k);
    }
    return len;
}

/* ---- phase 1: hq-interop, echoes ---- */

static void pump(quiche_ev_client *c) {
    static uint8_t d[1500];
    while (sent < count) {
        size_t len = datagram(sent, d);
        int rc = quiche_ev_client_send_datagram(c, d, len);
        if (rc == QUICHE_EV_ERR_AGAIN) {
            agains++;
            return;
        }
        CHECK(rc == 0, "datagram %d (%zu bytes): %d %s", sent, len, rc, quiche_ev_last_error());
        sent++;
    }
}

static void client1_established(quiche_ev_client *c, void *user) {
    (void) user;
    ssize_t max = quiche_ev_client_datagram_max_len(c);
    CHECK(max >= 1000 && max < 1500, "the largest datagram: %zd", max);
    max_len = max > 0 ? (int) max : 1000;
    static uint8_t big[1500];
    CHECK(quiche_ev_client_send_datagram(c, big, (size_t) max_len + 1) == QUICHE_EV_ERR_TOO_LARGE, "too large");
    printf("established: the server takes datagrams of up to %d bytes\n", max_len);
    pump(c);
}

static void client1_writable(quiche_ev_client *c, void *user) {
    (void) user;
    writables++;
    pump(c);
}

static void client1_datagram(quiche_ev_client *c, const uint8_t *data, size_t len, void *user) {
    (void) user;
    static uint8_t want[1500];
    int i = len >= 4 ? (int) ((uint32_t) data[0] << 24 | (uint32_t) data[1] << 16 | (uint32_t) data[2] << 8 |
                              data[3]) : -1;
    CHECK(i >= 0 && i < count && !seen[i], "an unexpected datagram of %zu bytes", len);
    if (i < 0 || i >= count || seen[i]) {
        return;
    }
    size_t n = datagram(i, want);
    CHECK(n == len && memcmp(want, data, n) == 0, "datagram %d came back altered", i);
    seen[i] = true;
    if (++echoed == count) {
        quiche_ev_stats st = { .size = sizeof(st) };
        quiche_ev_client_stats(c, &st);
        printf("echoed %d/%d; client: sent=%" PRIu64 " recv=%" PRIu64 " dropped=%" PRIu64 "\n", echoed, count,
               st.dgram_sent, st.dgram_recv, st.dgram_dropped);
        CHECK(st.dgram_sent == (uint64_t) count && st.dgram_recv == (uint64_t) count && st.dgram_dropped == 0,
              "client counts");
        quiche_ev_client_close(c, 0, NULL);
    }
}

static void server_datagram(quiche_ev_conn *conn, const uint8_t *data, size_t len, void *user) {
    (void) user;
    int rc = quiche_ev_conn_send_datagram(conn, data, len);
    CHECK(rc == 0, "echo: %d %s", rc, quiche_ev_last_error());
}

static void hq_conn_closed(quiche_ev_conn *conn, const quiche_ev_stats *st, void *user) {
    (void) conn;
    (void) user;
    printf("server: sent=%" PRIu64 " recv=%" PRIu64 " dropped=%" PRIu64 "\n", st->dgram_sent, st->dgram_recv,
           st->dgram_dropped);
    CHECK(st->dgram_sent == (uint64_t) count && st->dgram_recv == (uint64_t) count && st->dgram_dropped == 0,
          "server counts");
}

/* ---- phase 2: HTTP/3, a server without datagrams ---- */

static void h3_conn_established(quiche_ev_conn *conn, void *user) {
    (void) user;
    int rc = quiche_ev_conn_send_datagram(conn, (const uint8_t *) "x", 1);
    CHECK(rc == QUICHE_EV_ERR_UNSUPPORTED, "server send without datagrams in its config: %d", rc);
    printf("server without datagrams: %s\n", quiche_ev_last_error());
    phase2_server_checked = true;
}

static void h3_request(quiche_ev_request *req, void *user) {
    (void) user;
    int rc = quiche_ev_request_send_datagram(req, (const uint8_t *) "x", 1);
    CHECK(rc == QUICHE_EV_ERR_UNSUPPORTED, "HTTP datagram without datagrams: %d", rc);
    quiche_ev_respond_bytes(req, 200, NULL, 0, (const uint8_t *) "ok", 2);
}

static void client2_established(quiche_ev_client *c, void *user) {
    (void) user;
    int rc = quiche_ev_client_send_datagram(c, (const uint8_t *) "x", 1);
    CHECK(rc == QUICHE_EV_ERR_UNSUPPORTED, "client send to a server without datagrams: %d", rc);
    printf("client to a server without datagrams: %s\n", quiche_ev_last_error());
}

static void client2_done(quiche_ev_client *c, int64_t id, int outcome, uint64_t code, void *user) {
    (void) id;
    (void) code;
    (void) user;
    CHECK(outcome == QUICHE_EV_RESPONSE_COMPLETE, "the request on that connection: %d", outcome);
    quiche_ev_client_close(c, 0, NULL);
}

/* ---- set-up ---- */

static void stopped(quiche_ev_server *server, int status, void *user) {
    (void) server;
    (void) status;
    (void) user;
    if (quiche_ev_server_is_stopped(hq_side.server) == 1 && quiche_ev_server_is_stopped(h3_side.server) == 1) {
        ev_break(loop, EVBREAK_ALL);
    }
}

static void client2_closed(quiche_ev_client *c, int state, void *user) {
    (void) c;
    (void) user;
    CHECK(state == QUICHE_EV_CLIENT_CLOSED, "client 2 closed in state %d", state);
    phase2_done = true;
    quiche_ev_server_shutdown(hq_side.server, 0);
    quiche_ev_server_shutdown(h3_side.server, 0);
}

static quiche_ev_client *new_client(int *sock, struct side *to, quiche_config *config, quiche_h3_config *h3) {
    struct addrinfo *any = resolve("127.0.0.1", "0");
    *sock = any != NULL ? udp_socket(any, false) : -1;
    freeaddrinfo(any);
    quiche_ev_client *c = *sock < 0 ? NULL : quiche_ev_client_new(loop, *sock, "localhost",
        (struct sockaddr *) &to->addr, to->addr_len, config, h3);
    CHECK(c != NULL, "client: %s", quiche_ev_last_error());
    return c;
}

static void client1_closed(quiche_ev_client *c, int state, void *user);

static quiche_config *client_h3_config;
static quiche_h3_config *h3_config;

static void client1_closed(quiche_ev_client *c, int state, void *user) {
    (void) c;
    (void) user;
    CHECK(state == QUICHE_EV_CLIENT_CLOSED, "client 1 closed in state %d", state);
    CHECK(echoed == count, "echoed %d of %d", echoed, count);
    CHECK(agains > 0 && writables > 0, "quiche's queue of 8 was full: %d agains, %d writable calls", agains,
          writables);
    printf("client 1: %d agains, %d writable calls\n", agains, writables);
    /* Phase 2. */
    client2 = new_client(&sock2, &h3_side, client_h3_config, h3_config);
    if (client2 == NULL) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    quiche_ev_client_on_established(client2, client2_established);
    quiche_ev_client_on_response(client2, NULL, NULL, client2_done);
    quiche_ev_client_on_closed(client2, client2_closed);
    quiche_ev_client_request(client2, "GET", "/", NULL, 0, NULL, 0, NULL);
    quiche_ev_client_start(client2);
}

static bool start_server(struct side *s, quiche_config *config, quiche_h3_config *h3) {
    struct addrinfo *local = resolve("127.0.0.1", "0");
    if (local == NULL || (s->sock = udp_socket(local, true)) < 0) {
        return false;
    }
    s->server = quiche_ev_server_new(loop, s->sock, local->ai_addr, local->ai_addrlen, config, h3);
    freeaddrinfo(local);
    s->addr_len = sizeof(s->addr);
    if (s->server == NULL || getsockname(s->sock, (struct sockaddr *) &s->addr, &s->addr_len) != 0) {
        return false;
    }
    /* Retry off: quiche 0.30's 128 bytes of transport parameters would
     * not hold a Retry's two connection IDs with datagrams on (README). */
    quiche_ev_server_set_retry(s->server, 0);
    quiche_ev_server_on_stopped(s->server, stopped);
    return quiche_ev_server_start(s->server) == 0;
}

static quiche_config *new_config(bool server, const char *cert, const char *key, const char *alpn, size_t alpn_len) {
    quiche_config *c = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    configure_h3_app(c);
    quiche_config_set_application_protos(c, (const uint8_t *) alpn, alpn_len);
    if (server) {
        struct server_args files = { .cert = cert, .key = key };
        if (!load_cert(c, &files)) {
            return NULL;
        }
    } else {
        quiche_config_verify_peer(c, false);
    }
    return c;
}

int main(int argc, char *argv[]) {
    if (argc != 4 || atoi(argv[3]) <= 0 || atoi(argv[3]) > MAX_COUNT) {
        fprintf(stderr, "usage: %s CERT KEY COUNT (1..%d)\n", argv[0], MAX_COUNT);
        return 2;
    }
    count = atoi(argv[3]);
    loop = ev_default_loop(0);
    static const char hq[] = "\x0ahq-interop";
    quiche_config *hq_server = new_config(true, argv[1], argv[2], hq, sizeof(hq) - 1);
    quiche_config *hq_client = new_config(false, NULL, NULL, hq, sizeof(hq) - 1);
    quiche_config *h3_server = new_config(true, argv[1], argv[2], QUICHE_H3_APPLICATION_PROTOCOL,
                                          sizeof(QUICHE_H3_APPLICATION_PROTOCOL) - 1);
    client_h3_config = new_config(false, NULL, NULL, QUICHE_H3_APPLICATION_PROTOCOL,
                                  sizeof(QUICHE_H3_APPLICATION_PROTOCOL) - 1);
    h3_config = quiche_h3_config_new();
    if (hq_server == NULL || h3_server == NULL) {
        return 1;
    }
    quiche_config_enable_dgram(hq_server, true, 1024, 1024);
    quiche_config_enable_dgram(hq_client, true, 1024, 8);
    quiche_config_enable_dgram(client_h3_config, true, 1024, 1024); /* h3_server: not enabled */

    bool ok = start_server(&hq_side, hq_server, NULL) && start_server(&h3_side, h3_server, h3_config);
    CHECK(ok, "servers: %s", quiche_ev_last_error());
    if (!ok) {
        return report();
    }
    quiche_ev_server_on_datagram(hq_side.server, server_datagram);
    quiche_ev_server_on_conn(hq_side.server, NULL, hq_conn_closed);
    quiche_ev_server_on_conn(h3_side.server, h3_conn_established, NULL);
    quiche_ev_server_on_request(h3_side.server, h3_request);

    client1 = new_client(&sock1, &hq_side, hq_client, NULL);
    if (client1 == NULL) {
        return report();
    }
    quiche_ev_client_on_established(client1, client1_established);
    quiche_ev_client_on_datagram(client1, client1_datagram);
    quiche_ev_client_on_datagram_writable(client1, client1_writable);
    quiche_ev_client_on_closed(client1, client1_closed);
    quiche_ev_client_start(client1);

    bool fired = false;
    start_deadline(loop, 30, &fired);
    ev_run(loop, 0);
    stop_deadline(loop);

    CHECK(phase2_server_checked && phase2_done, "phase 2 ran");
    quiche_ev_client_free(client1);
    quiche_ev_client_free(client2);
    quiche_ev_server_free(hq_side.server);
    quiche_ev_server_free(h3_side.server);
    quiche_h3_config_free(h3_config);
    quiche_config_free(hq_server);
    quiche_config_free(hq_client);
    quiche_config_free(h3_server);
    quiche_config_free(client_h3_config);
    return report();
}
