/* A CONNECT-UDP client (RFC 9298) on quiche-ev's client API: an extended
 * CONNECT (RFC 9220) to PROXY, then COUNT HTTP Datagrams (RFC 9297) with
 * Context ID 0 through the tunnel to a UDP echo at TARGET, at most 16
 * unanswered at a time, into a quiche send queue of 8 (so the first
 * burst fills it: the rest goes from the datagram writable callback); every one must come back intact.
 * Then the tunnel is ended (the request's FIN) and the proxy must end its
 * side: the response completes. tests/datagrams.rs runs it against our
 * udp-proxy and an aioquic proxy.
 *
 *   connect_udp HOST PORT TARGET_HOST TARGET_PORT COUNT [unsupported]
 *
 * With `unsupported` the proxy is one that takes no datagrams: the first
 * send must fail with QUICHE_EV_ERR_UNSUPPORTED. Prints what it saw, then
 * "ok" and exits 0 when every check held. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <quiche_ev.h>

#include "common.h"
#include "harness.h"

#define WINDOW 16
#define MAX_COUNT 10000

static struct ev_loop *loop;
static quiche_ev_client *client;
static int64_t tunnel = -1;
static int count, sent, echoed, agains, writables;
static uint64_t echoed_bytes;
static bool expect_unsupported, seen[MAX_COUNT];
static int outcome = -1, status_code;

/* Datagram i's payload, as tests/peers/aioquic_peer.py makes it: its
 * number ("%06d:"), then (i * 397) % 1000 bytes of a pattern. */
static size_t payload(int i, uint8_t *out) {
    size_t n = (size_t) snprintf((char *) out, 16, "%06d:", i);
    size_t extra = (size_t) ((i * 397) % 1000);
    for (size_t k = 0; k < extra; k++) {
        out[n + k] = (uint8_t) ((i + (int) k) % 251);
    }
    return n + extra;
}

static void end_tunnel(void) {
    CHECK(quiche_ev_client_request_write(client, tunnel, NULL, 0, 1) == 0, "ending the tunnel: %s",
          quiche_ev_last_error());
}

/* Sends until the window is full, or quiche's queue is. */
static void pump(void) {
    uint8_t d[1 + 1100];
    while (sent < count && sent - echoed < WINDOW) {
        d[0] = 0; /* Context ID 0: a whole UDP payload */
        size_t len = 1 + payload(sent, d + 1);
        int rc = quiche_ev_client_request_send_datagram(client, tunnel, d, len);
        if (rc == QUICHE_EV_ERR_AGAIN) {
            agains++; /* the datagram writable callback calls us again */
            return;
        }
        CHECK(rc == 0, "datagram %d: %d %s", sent, rc, quiche_ev_last_error());
        if (rc != 0) {
            return;
        }
        sent++;
    }
}

static void on_headers(quiche_ev_client *c, int64_t id, int status, const quiche_ev_header *h, size_t n,
                       void *user) {
    (void) c;
    (void) h;
    (void) n;
    (void) user;
    CHECK(id == tunnel, "headers for %" PRId64, id);
    status_code = status;
    printf("tunnel answered %d\n", status);
    if (status != 200) {
        return;
    }
    ssize_t max = quiche_ev_client_request_datagram_max_len(client, tunnel);
    if (expect_unsupported) {
        int rc = quiche_ev_client_request_send_datagram(client, tunnel, (const uint8_t *) "\0x", 2);
        CHECK(rc == QUICHE_EV_ERR_UNSUPPORTED, "send without the proxy's datagrams: %d", rc);
        CHECK(max == QUICHE_EV_ERR_UNSUPPORTED, "max len without the proxy's datagrams: %zd", max);
        printf("unsupported: %s\n", quiche_ev_last_error());
        end_tunnel();
        return;
    }
    CHECK(max >= 1000, "the largest payload: %zd", max);
    pump();
}

static void on_request_datagram(quiche_ev_client *c, int64_t id, const uint8_t *data, size_t len, void *user) {
    (void) c;
    (void) user;
    uint8_t want[1100];
    int i = -1;
    CHECK(id == tunnel && len >= 8 && data[0] == 0, "a datagram for %" PRId64 " of %zu bytes", id, len);
    if (len >= 8 && sscanf((const char *) data + 1, "%6d:", &i) == 1 && i >= 0 && i < count && !seen[i]) {
        size_t n = payload(i, want);
        CHECK(n == len - 1 && memcmp(want, data + 1, n) == 0, "datagram %d came back altered", i);
        seen[i] = true;
        echoed++;
        echoed_bytes += len - 1;
    } else {
        CHECK(false, "an unexpected datagram (%zu bytes)", len);
    }
    if (echoed == count) {
        printf("echoed %d/%d bytes=%" PRIu64 "\n", echoed, count, echoed_bytes);
        end_tunnel();
    } else {
        pump();
    }
}

static void on_datagram_writable(quiche_ev_client *c, void *user) {
    (void) c;
    (void) user;
    writables++;
    pump();
}

static size_t on_body(quiche_ev_client *c, int64_t id, const uint8_t *data, size_t len, void *user) {
    (void) c;
    (void) id;
    (void) data;
    (void) user;
    return len; /* capsules: none expected, skipped */
}

static void on_done(quiche_ev_client *c, int64_t id, int out, uint64_t code, void *user) {
    (void) id;
    (void) user;
    outcome = out;
    printf("tunnel done: outcome %d code %" PRIu64 "\n", out, code);
    {
        quiche_ev_stats st = { .size = sizeof(st) };
        CHECK(quiche_ev_client_stats(c, &st) == 0, "stats");
        printf("datagrams: sent=%" PRIu64 " recv=%" PRIu64 " dropped=%" PRIu64 " agains=%d writables=%d\n",
               st.dgram_sent, st.dgram_recv, st.dgram_dropped, agains, writables);
        if (!expect_unsupported) {
            CHECK(st.dgram_sent >= (uint64_t) count && st.dgram_recv >= (uint64_t) count, "counts");
            CHECK(st.dgram_dropped == 0, "%" PRIu64 " datagrams dropped", st.dgram_dropped);
        }
    }
    quiche_ev_client_close(c, 0, NULL);
}

static void on_closed(quiche_ev_client *c, int state, void *user) {
    (void) c;
    (void) user;
    CHECK(state == QUICHE_EV_CLIENT_CLOSED, "closed in state %d: %s", state,
          quiche_ev_client_failure(c) ? quiche_ev_client_failure(c) : "");
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char *argv[]) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT TARGET_HOST TARGET_PORT COUNT [unsupported]\n", argv[0]);
        return 2;
    }
    count = atoi(argv[5]);
    expect_unsupported = argc == 7 && strcmp(argv[6], "unsupported") == 0;
    if (count <= 0 || count > MAX_COUNT) {
        fprintf(stderr, "COUNT must be 1..%d\n", MAX_COUNT);
        return 2;
    }
    loop = ev_default_loop(0);
    struct addrinfo *peer = resolve(argv[1], argv[2]);
    int sock = peer != NULL ? udp_socket(peer, false) : -1;
    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    quiche_h3_config *h3_config = quiche_h3_config_new();
    if (sock < 0 || config == NULL || h3_config == NULL) {
        return 1;
    }
    configure_h3_app(config);
    quiche_config_verify_peer(config, false);
    /* A send queue shorter than the window: the first burst fills it,
     * and the rest goes from the datagram writable callback. */
    quiche_config_enable_dgram(config, true, 1024, 8);

    client = quiche_ev_client_new(loop, sock, "localhost", peer->ai_addr, peer->ai_addrlen, config, h3_config);
    CHECK(client != NULL, "client: %s", quiche_ev_last_error());
    if (client == NULL) {
        return report();
    }
    quiche_ev_client_on_response(client, on_headers, on_body, on_done);
    quiche_ev_client_on_request_datagram(client, on_request_datagram);
    quiche_ev_client_on_datagram_writable(client, on_datagram_writable);
    quiche_ev_client_on_closed(client, on_closed);
    /* Not yet: the handshake has not even started. */
    CHECK(quiche_ev_client_send_datagram(client, (const uint8_t *) "x", 1) == QUICHE_EV_ERR_STATE, "early send");

    char path[256];
    snprintf(path, sizeof(path), "/.well-known/masque/udp/%s/%s/", argv[3], argv[4]);
    quiche_ev_header h[] = { { (const uint8_t *) "capsule-protocol", 16, (const uint8_t *) "?1", 2 } };
    tunnel = quiche_ev_client_extended_connect(client, "connect-udp", path, h, 1, NULL);
    CHECK(tunnel >= 0, "extended connect: %s", quiche_ev_last_error());
    quiche_ev_client_start(client);

    bool fired = false;
    start_deadline(loop, 20, &fired);
    ev_run(loop, 0);
    stop_deadline(loop);

    CHECK(status_code == 200, "status %d", status_code);
    CHECK(outcome == QUICHE_EV_RESPONSE_COMPLETE, "outcome %d: the proxy did not end its side", outcome);
    if (!expect_unsupported) {
        CHECK(echoed == count, "echoed %d of %d", echoed, count);
        CHECK(count < WINDOW || (agains > 0 && writables > 0), "quiche's full queue: %d agains, %d writables",
              agains, writables);
    }
    quiche_ev_client_free(client);
    free_process(loop, h3_config, config, peer, sock);
    return report();
}
