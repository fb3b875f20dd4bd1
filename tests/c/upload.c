/* A streamed upload (tests/app_api.rs runs it against app-server's /echo
 * and against the aioquic peer): one HTTP/3 POST whose body of BYTES bytes
 * comes from a generator, written with quiche_ev_client_request_start,
 * quiche_ev_client_request_write and the request writable callback as
 * flow control allows, and ended by trailer fields
 * (quiche_ev_client_request_trailers) carrying its CRC-32. The program
 * holds one chunk of the body at a time (byte i is a function of i, so
 * what the library did not take is made again later), never the body.
 *
 *   upload HOST PORT PATH BYTES
 *
 * prints, once the connection is over:
 *
 *   sent BYTES crc32 HEX
 *   response STATUS BYTES crc32 HEX OUTCOME     (the response body's)
 *   body LINE                                   (a response of one short line)
 *   writable_calls N empty E                    (the library asked for more N times;
 *                                                E times nothing at all fitted)
 *   rss_growth_kib K                            (peak RSS over the RSS before the connection)
 *
 * and exits 0 when the whole body and its trailers were taken and the
 * response completed with a 2xx status. The library prints nothing (no
 * log callback); every handle watches its socket itself, and ev_run
 * returns once the connection is closed. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <quiche_ev.h>

#include "common.h"

#define CHUNK (16 * 1024)

static struct {
    quiche_ev_client *client;
    int64_t id;
    uint64_t total, sent;
    uint32_t sent_crc;
    bool body_done, trailers_done;
    unsigned writable_calls, empty_writables;
    int status, outcome;
    uint64_t got;
    uint32_t got_crc;
    char line[256];
    size_t line_len;
} up = { .status = -1, .outcome = -1 };

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[i] = c;
    }
}

/* zlib's crc32(crc, data, len). */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

/* Byte i of the body. */
static uint8_t body_byte(uint64_t i) {
    return (uint8_t) ((i * 2654435761u) >> 13);
}

/* A process's resident set (VmRSS) or its peak (VmHWM), in KiB. */
static long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    size_t n = strlen(field);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0) {
            kib = strtol(line + n, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kib;
}

/* Offers the body from where it stands, a chunk at a time, until the
 * library takes less than offered (its writable callback comes back
 * here); then the trailers. */
static void pump(void) {
    uint8_t chunk[CHUNK];
    while (!up.body_done) {
        size_t want = up.total - up.sent < CHUNK ? (size_t) (up.total - up.sent) : CHUNK;
        for (size_t i = 0; i < want; i++) {
            chunk[i] = body_byte(up.sent + i);
        }
        ssize_t took = quiche_ev_client_request_write(up.client, up.id, chunk, want, 0);
        if (took < 0) {
            fprintf(stderr, "upload: write: %s\n", quiche_ev_strerror((int) took));
            up.body_done = up.trailers_done = true;
            return;
        }
        up.sent_crc = crc32_update(up.sent_crc, chunk, (size_t) took);
        up.sent += (uint64_t) took;
        if ((size_t) took < want) {
            return;
        }
        up.body_done = up.sent == up.total;
    }
    if (!up.trailers_done) {
        char crc[16];
        snprintf(crc, sizeof(crc), "%08" PRIx32, up.sent_crc);
        quiche_ev_header t[] = {{ (const uint8_t *) "x-upload-crc32", 14, (const uint8_t *) crc, strlen(crc) }};
        int rc = quiche_ev_client_request_trailers(up.client, up.id, t, 1);
        if (rc == QUICHE_EV_ERR_AGAIN) {
            return; /* the writable callback follows */
        }
        if (rc != 0) {
            fprintf(stderr, "upload: trailers: %s\n", quiche_ev_strerror(rc));
        }
        up.trailers_done = true;
    }
}

static void on_writable(quiche_ev_client *c, int64_t id, void *user) {
    (void) c;
    (void) id;
    (void) user;
    uint64_t before = up.sent;
    bool trailers_before = up.trailers_done;
    up.writable_calls++;
    pump();
    if (up.sent == before && up.trailers_done == trailers_before) {
        up.empty_writables++; /* called, but nothing fitted */
    }
}

static void on_headers(quiche_ev_client *c, int64_t id, int status, const quiche_ev_header *h, size_t n,
                       void *user) {
    (void) c;
    (void) id;
    (void) h;
    (void) n;
    (void) user;
    up.status = status;
}

static size_t on_body(quiche_ev_client *c, int64_t id, const uint8_t *data, size_t len, void *user) {
    (void) c;
    (void) id;
    (void) user;
    up.got_crc = crc32_update(up.got_crc, data, len);
    up.got += len;
    size_t keep = len < sizeof(up.line) - 1 - up.line_len ? len : sizeof(up.line) - 1 - up.line_len;
    memcpy(up.line + up.line_len, data, keep);
    up.line_len += keep;
    return len;
}

static void on_done(quiche_ev_client *c, int64_t id, int outcome, uint64_t code, void *user) {
    (void) id;
    (void) code;
    (void) user;
    up.outcome = outcome;
    quiche_ev_client_close(c, 0, NULL);
}

static void on_closed(quiche_ev_client *c, int state, void *user) {
    (void) user;
    if (state == QUICHE_EV_CLIENT_FAILED) {
        fprintf(stderr, "upload: connection failed: %s\n", quiche_ev_client_failure(c));
    }
}

int main(int argc, char *argv[]) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s HOST PORT PATH BYTES\n", argv[0]);
        return EXIT_USAGE;
    }
    crc_init();
    up.total = strtoull(argv[4], NULL, 10);

    int status = 1;
    struct addrinfo *peer = resolve(argv[1], argv[2]);
    int sock = peer != NULL ? udp_socket(peer, false) : -1;
    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    quiche_h3_config *h3_config = quiche_h3_config_new();
    struct ev_loop *loop = ev_default_loop(0);
    if (sock < 0 || config == NULL || h3_config == NULL) {
        goto out;
    }
    configure_h3_app(config);
    quiche_config_verify_peer(config, false);

    up.client = quiche_ev_client_new(loop, sock, "localhost", peer->ai_addr, peer->ai_addrlen, config, h3_config);
    if (up.client == NULL) {
        fprintf(stderr, "upload: %s\n", quiche_ev_last_error());
        goto out;
    }
    quiche_ev_client_on_response(up.client, on_headers, on_body, on_done);
    quiche_ev_client_on_request_writable(up.client, on_writable);
    quiche_ev_client_on_closed(up.client, on_closed);
    static const quiche_ev_header h[] = {{ (const uint8_t *) "content-type", 12,
                                           (const uint8_t *) "application/octet-stream", 24 }};
    up.id = quiche_ev_client_request_start(up.client, "POST", argv[3], h, 1, NULL);
    if (up.id < 0 || quiche_ev_client_start(up.client) != 0) {
        fprintf(stderr, "upload: cannot start: %s\n", quiche_ev_last_error());
        goto out;
    }

    long rss_before = status_kib("VmRSS:");
    ev_run(loop, 0); /* returns once the connection is over */
    long peak = status_kib("VmHWM:");

    printf("sent %" PRIu64 " crc32 %08" PRIx32 "\n", up.sent, up.sent_crc);
    printf("response %d %" PRIu64 " crc32 %08" PRIx32 " %s\n", up.status, up.got, up.got_crc,
           up.outcome == QUICHE_EV_RESPONSE_COMPLETE ? "complete" : "incomplete");
    if (up.got == up.line_len && up.line_len > 0 && memchr(up.line, '\n', up.line_len) == up.line + up.line_len - 1) {
        printf("body %s", up.line);
    }
    printf("writable_calls %u empty %u\n", up.writable_calls, up.empty_writables);
    printf("rss_growth_kib %ld\n", peak - rss_before);
    status = up.sent == up.total && up.trailers_done && up.outcome == QUICHE_EV_RESPONSE_COMPLETE &&
             up.status >= 200 && up.status <= 299 ? 0 : 1;

out:
    quiche_ev_client_free(up.client);
    free_process(loop, h3_config, config, peer, sock);
    return status;
}
