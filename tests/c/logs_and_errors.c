/* What a C program learns from quiche-ev about failures and about who
 * logged what (tests/app_api.rs runs it):
 *
 * - quiche_ev_last_error: NULL before any failure; after each failing
 *   _new (a file that is no socket, a TCP socket, a blocking socket, a
 *   NULL config) and
 *   a failing setter, the reason, with no log callback installed (and the
 *   library prints nothing: the test checks stderr is empty);
 * - quiche_ev_set_logger with three servers and three clients on one
 *   loop: server A (HTTP/3, its own request callback), server B (HTTP/3,
 *   the built-in responder), server H (hq-interop, built-in), and a client
 *   of each. Every record names the right handle: a server's lines its
 *   server and one of its own connections (the handles its established
 *   callback got), a client's lines its client and nothing else;
 * - request header fields: A's only at DEBUG ("request header: ..."), B's
 *   at INFO too ("got HTTP header: ...", upstream's http3-server wording);
 * - QUICHE_EV_HQ_APPLICATION_PROTOCOL configures hq-interop on both sides
 *   (server H and client 3 agree on it, and the exchange completes).
 *
 * Every handle watches its socket itself (_start); once the clients are
 * closed the servers are shut down and ev_run returns by itself.
 *
 *   logs_and_errors CERT KEY    one line per check group; exit 0 when all held */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <quiche_ev.h>

#include "common.h"
#include "harness.h"

#define N_SERVERS 3
#define MAX_CONNS 8

static struct ev_loop *loop;

struct srv {
    const char *name;
    quiche_ev_server *server;
    int sock;
    quiche_ev_conn *conns[MAX_CONNS]; /* from the established callback */
    size_t n_conns;
    bool stopped;
};

struct cli {
    const char *name;
    quiche_ev_client *client;
    int sock;
    int status, outcome, state;
    char body[64];
    size_t len;
};

static struct srv servers[N_SERVERS] = { { .name = "A" }, { .name = "B" }, { .name = "H" } };
static struct cli clients[N_SERVERS] = { { .name = "1" }, { .name = "2" }, { .name = "3" } };
static size_t clients_closed;

/* ---- the log records, copied as they come (the callback calls nothing) ---- */

struct record {
    int level;
    char msg[160];
    const quiche_ev_server *server;
    const quiche_ev_client *client;
    const quiche_ev_conn *conn;
};

static struct record *records;
static size_t n_records, cap_records;
static size_t bad_record_size;

static void logger(const quiche_ev_log_record *r, void *user) {
    (void) user;
    if (r->size < sizeof(*r)) {
        bad_record_size++;
        return;
    }
    if (n_records == cap_records) {
        cap_records = cap_records ? cap_records * 2 : 1024;
        records = realloc(records, cap_records * sizeof(*records));
        if (records == NULL) {
            abort();
        }
    }
    struct record *c = &records[n_records++];
    c->level = r->level;
    snprintf(c->msg, sizeof(c->msg), "%s", r->message);
    c->server = r->server;
    c->client = r->client;
    c->conn = r->conn;
}

/* "ok" when no check failed since `before` failures. */
static const char *verdict(int before) {
    return failures == before ? "ok" : "FAILED";
}

static bool starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- servers ---- */

static void on_request(quiche_ev_request *req, void *user) {
    (void) user;
    quiche_ev_respond_bytes(req, 200, NULL, 0, (const uint8_t *) "A\n", 2);
}

static void on_established(quiche_ev_conn *conn, void *user) {
    struct srv *s = user;
    if (s->n_conns < MAX_CONNS) {
        s->conns[s->n_conns++] = conn;
    }
}

static void on_stopped(quiche_ev_server *server, int status, void *user) {
    struct srv *s = user;
    CHECK(server == s->server && status == 0, "server %s stopped: %d", s->name, status);
    s->stopped = true;
}

static bool start_server(struct srv *s, quiche_config *config, quiche_h3_config *h3, bool own_answers) {
    struct addrinfo *local = resolve("127.0.0.1", "0");
    if (local == NULL || (s->sock = udp_socket(local, true)) < 0) {
        freeaddrinfo(local);
        return false;
    }
    s->server = quiche_ev_server_new(loop, s->sock, local->ai_addr, local->ai_addrlen, config, h3);
    freeaddrinfo(local);
    if (s->server == NULL) {
        return false;
    }
    quiche_ev_server_set_user_data(s->server, s);
    if (own_answers) {
        quiche_ev_server_on_request(s->server, on_request);
    }
    quiche_ev_server_on_conn(s->server, on_established, NULL);
    quiche_ev_server_on_stopped(s->server, on_stopped);
    return quiche_ev_server_start(s->server) == 0;
}

/* ---- clients ---- */

static void on_headers(quiche_ev_client *c, int64_t id, int status, const quiche_ev_header *h, size_t n,
                       void *user) {
    (void) c;
    (void) id;
    (void) h;
    (void) n;
    ((struct cli *) user)->status = status;
}

static size_t on_body(quiche_ev_client *c, int64_t id, const uint8_t *data, size_t len, void *user) {
    (void) c;
    (void) id;
    struct cli *r = user;
    size_t n = len < sizeof(r->body) - 1 - r->len ? len : sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return len;
}

static void on_done(quiche_ev_client *c, int64_t id, int outcome, uint64_t code, void *user) {
    (void) id;
    (void) code;
    ((struct cli *) user)->outcome = outcome;
    quiche_ev_client_close(c, 0, NULL);
}

static void on_closed(quiche_ev_client *c, int state, void *user) {
    (void) c;
    ((struct cli *) quiche_ev_client_user_data(c))->state = state;
    (void) user;
    if (++clients_closed == N_SERVERS) {
        for (size_t i = 0; i < N_SERVERS; i++) {
            quiche_ev_server_shutdown(servers[i].server, 0);
        }
    }
}

static bool start_client(struct cli *r, const struct srv *to, quiche_config *config, quiche_h3_config *h3,
                         const char *path) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct addrinfo *any = resolve("127.0.0.1", "0");
    if (any == NULL || getsockname(to->sock, (struct sockaddr *) &ss, &len) != 0 ||
        (r->sock = udp_socket(any, false)) < 0) {
        freeaddrinfo(any);
        return false;
    }
    freeaddrinfo(any);
    r->outcome = r->state = -1;
    r->client = quiche_ev_client_new(loop, r->sock, "localhost", (struct sockaddr *) &ss, len, config, h3);
    if (r->client == NULL) {
        return false;
    }
    quiche_ev_client_set_user_data(r->client, r);
    quiche_ev_client_on_response(r->client, on_headers, on_body, on_done);
    quiche_ev_client_on_closed(r->client, on_closed);
    return quiche_ev_client_request(r->client, "GET", path, NULL, 0, NULL, 0, r) >= 0 &&
           quiche_ev_client_start(r->client) == 0;
}

/* ---- quiche_ev_last_error, without a log callback ---- */

static void expect_error(const char *what, const char *part) {
    const char *e = quiche_ev_last_error();
    CHECK(e != NULL && strstr(e, part) != NULL, "%s: last error %s, wanted one with \"%s\"", what,
          e ? e : "(NULL)", part);
}

static void check_last_error(quiche_config *config, quiche_h3_config *h3) {
    int before = failures;
    CHECK(quiche_ev_last_error() == NULL, "a last error before any call failed: %s", quiche_ev_last_error());

    struct addrinfo *local = resolve("127.0.0.1", "0");
    if (local == NULL) {
        CHECK(false, "resolve");
        return;
    }
    int good = udp_socket(local, true);
    int blocking = socket(local->ai_family, SOCK_DGRAM, 0);
    int tcp = socket(local->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int not_a_socket = open("/dev/null", O_RDONLY);
    CHECK(good >= 0 && blocking >= 0 && tcp >= 0 && not_a_socket >= 0, "sockets: %s", strerror(errno));

    CHECK(quiche_ev_server_new(loop, not_a_socket, local->ai_addr, local->ai_addrlen, config, h3) == NULL,
          "a server on /dev/null");
    expect_error("server on /dev/null", "is not usable");
    CHECK(quiche_ev_server_new(loop, tcp, local->ai_addr, local->ai_addrlen, config, h3) == NULL,
          "a server on a TCP socket");
    expect_error("server on a TCP socket", "is not a UDP (SOCK_DGRAM) socket");
    CHECK(quiche_ev_server_new(loop, blocking, local->ai_addr, local->ai_addrlen, config, h3) == NULL,
          "a server on a blocking socket");
    expect_error("server on a blocking socket", "is blocking: set O_NONBLOCK");
    CHECK(quiche_ev_server_new(loop, good, local->ai_addr, local->ai_addrlen, NULL, h3) == NULL,
          "a server without a config");
    expect_error("server without a config", "loop, config and socket are required");

    CHECK(quiche_ev_client_new(loop, not_a_socket, "localhost", local->ai_addr, local->ai_addrlen, config,
                               h3) == NULL, "a client on /dev/null");
    expect_error("client on /dev/null", "is not usable");
    CHECK(quiche_ev_client_new(loop, good, "localhost", local->ai_addr, local->ai_addrlen, NULL, h3) == NULL,
          "a client without a config");
    expect_error("client without a config", "loop, config and socket are required");

    /* A call that succeeds leaves it; the next failure replaces it. */
    quiche_ev_server *s = quiche_ev_server_new(loop, good, local->ai_addr, local->ai_addrlen, config, h3);
    CHECK(s != NULL, "a server on a good socket: %s", quiche_ev_last_error());
    expect_error("after a successful _new", "loop, config and socket are required");
    CHECK(quiche_ev_server_set_max_conns(s, 0) == QUICHE_EV_ERR_INVALID, "max conns 0");
    expect_error("set_max_conns(0)", "at least 1");
    quiche_ev_server_free(s);

    freeaddrinfo(local);
    close(good);
    close(blocking);
    close(tcp);
    close(not_a_socket);
    printf("last error: %s\n", verdict(before));
}

/* ---- the records ---- */

static const struct srv *server_of(const quiche_ev_server *p) {
    for (size_t i = 0; i < N_SERVERS; i++) {
        if (servers[i].server == p) return &servers[i];
    }
    return NULL;
}

static const struct cli *client_of(const quiche_ev_client *p) {
    for (size_t i = 0; i < N_SERVERS; i++) {
        if (clients[i].client == p) return &clients[i];
    }
    return NULL;
}

static bool owns_conn(const struct srv *s, const quiche_ev_conn *c) {
    for (size_t i = 0; i < s->n_conns; i++) {
        if (s->conns[i] == c) return true;
    }
    return false;
}

/* How many records of `who` (server or client) start with `prefix` at
 * exactly `level` (0: any). */
static size_t count(const void *who, const char *prefix, int level) {
    size_t n = 0;
    for (size_t i = 0; i < n_records; i++) {
        const struct record *r = &records[i];
        if ((r->server == who || (const void *) r->client == who) && starts_with(r->msg, prefix) &&
            (level == 0 || r->level == level)) {
            n++;
        }
    }
    return n;
}

static void check_records(void) {
    int before = failures;
    CHECK(bad_record_size == 0, "%zu records smaller than the header's structure", bad_record_size);
    size_t named = 0;
    for (size_t i = 0; i < n_records; i++) {
        const struct record *r = &records[i];
        CHECK(r->level >= QUICHE_EV_LOG_ERROR && r->level <= QUICHE_EV_LOG_DEBUG, "level %d: %s", r->level,
              r->msg);
        CHECK(r->server == NULL || r->client == NULL, "a record names a server and a client: %s", r->msg);
        if (r->server != NULL) {
            const struct srv *s = server_of(r->server);
            CHECK(s != NULL, "a record names no server of ours: %s", r->msg);
            CHECK(s == NULL || r->conn == NULL || owns_conn(s, r->conn),
                  "server %s's record names a connection not of server %s: %s", s ? s->name : "?",
                  s ? s->name : "?", r->msg);
            named++;
        } else if (r->client != NULL) {
            CHECK(client_of(r->client) != NULL, "a record names no client of ours: %s", r->msg);
            CHECK(r->conn == NULL, "client %s's record names a server connection: %s",
                  client_of(r->client) ? client_of(r->client)->name : "?", r->msg);
            named++;
        } else {
            CHECK(r->conn == NULL, "a record names a connection but no server: %s", r->msg);
        }
    }
    for (size_t i = 0; i < N_SERVERS; i++) {
        const struct srv *s = &servers[i];
        CHECK(s->n_conns == 1, "server %s: %zu connections", s->name, s->n_conns);
        CHECK(count(s->server, "new connection", QUICHE_EV_LOG_INFO) == 1, "server %s: no \"new connection\"",
              s->name);
        /* Its connection's lines name that connection. */
        size_t with_conn = 0;
        for (size_t k = 0; k < n_records; k++) {
            with_conn += records[k].server == s->server && s->n_conns > 0 && records[k].conn == s->conns[0];
        }
        CHECK(with_conn >= 2, "server %s: %zu records name its connection", s->name, with_conn);
        const struct cli *c = &clients[i];
        const char *est = i == 2 ? "connection established: hq-interop" : "connection established: h3";
        CHECK(count(c->client, est, QUICHE_EV_LOG_INFO) == 1, "client %s: no \"%s\"", c->name, est);
        CHECK(count(c->client, "connection closed", QUICHE_EV_LOG_INFO) == 1, "client %s: no closing line",
              c->name);
    }
    printf("logger: %zu records, %zu naming a handle: %s\n", n_records, named, verdict(before));
    before = failures;

    /* A answers itself: its request's header fields are DEBUG only. */
    const quiche_ev_server *a = servers[0].server, *b = servers[1].server;
    CHECK(count(a, "request header: :path=/a", QUICHE_EV_LOG_DEBUG) == 1, "A: header fields at DEBUG");
    CHECK(count(a, "request header:", QUICHE_EV_LOG_INFO) == 0 && count(a, "got HTTP header:", 0) == 0,
          "A: header fields above DEBUG");
    /* B's built-in responder prints them at INFO, as upstream's http3-server. */
    CHECK(count(b, "got HTTP header: :path=/b", QUICHE_EV_LOG_INFO) == 1, "B: header fields at INFO");
    CHECK(count(b, "got HTTP header: :method=GET", QUICHE_EV_LOG_INFO) == 1, "B: method at INFO");
    printf("request headers: %s\n", verdict(before));
}

int main(int argc, char *argv[]) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CERT KEY\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    loop = ev_default_loop(0);

    quiche_config *server_config, *client_config;
    quiche_h3_config *h3_config = quiche_h3_config_new();
    if (h3_config == NULL || !h3_configs(argv[1], argv[2], &server_config, &client_config)) {
        return 1;
    }
    /* hq-interop on both sides, from the header's constant. */
    quiche_config *hq_server_config, *hq_client_config;
    if (!h3_configs(argv[1], argv[2], &hq_server_config, &hq_client_config)) {
        return 1;
    }
    quiche_config_set_application_protos(hq_server_config, (uint8_t *) QUICHE_EV_HQ_APPLICATION_PROTOCOL,
                                          sizeof(QUICHE_EV_HQ_APPLICATION_PROTOCOL) - 1);
    quiche_config_set_application_protos(hq_client_config, (uint8_t *) QUICHE_EV_HQ_APPLICATION_PROTOCOL,
                                         sizeof(QUICHE_EV_HQ_APPLICATION_PROTOCOL) - 1);

    check_last_error(server_config, h3_config);

    CHECK(quiche_ev_set_logger(logger, NULL, QUICHE_EV_LOG_DEBUG) == 0, "set_logger");
    if (!start_server(&servers[0], server_config, h3_config, true) ||
        !start_server(&servers[1], server_config, h3_config, false) ||
        !start_server(&servers[2], hq_server_config, NULL, false) ||
        !start_client(&clients[0], &servers[0], client_config, h3_config, "/a") ||
        !start_client(&clients[1], &servers[1], client_config, h3_config, "/b") ||
        !start_client(&clients[2], &servers[2], hq_client_config, NULL, "/h")) {
        CHECK(false, "set-up: %s", quiche_ev_last_error());
        return report();
    }

    ev_run(loop, 0); /* returns once every server stopped: nothing else runs */
    quiche_ev_set_logger(NULL, NULL, QUICHE_EV_LOG_ERROR);

    for (size_t i = 0; i < N_SERVERS; i++) {
        struct cli *c = &clients[i];
        CHECK(servers[i].stopped, "server %s did not stop", servers[i].name);
        CHECK(c->state == QUICHE_EV_CLIENT_CLOSED && c->outcome == QUICHE_EV_RESPONSE_COMPLETE,
              "client %s: state %d outcome %d", c->name, c->state, c->outcome);
    }
    CHECK(strcmp(clients[0].body, "A\n") == 0 && clients[0].status == 200, "client 1: %d %s", clients[0].status,
          clients[0].body);
    CHECK(strcmp(clients[1].body, "byez\n") == 0 && clients[1].status == 200, "client 2: %d %s",
          clients[1].status, clients[1].body);
    CHECK(strcmp(clients[2].body, "byez\n") == 0, "client 3 (hq-interop): %s", clients[2].body);
    printf("hq-interop from QUICHE_EV_HQ_APPLICATION_PROTOCOL: %s", clients[2].body);

    check_records();

    for (size_t i = 0; i < N_SERVERS; i++) {
        quiche_ev_client_free(clients[i].client);
        quiche_ev_server_free(servers[i].server);
        close(clients[i].sock);
        close(servers[i].sock);
    }
    free(records);
    quiche_config_free(hq_server_config);
    quiche_config_free(hq_client_config);
    quiche_config_free(server_config);
    free_process(loop, h3_config, client_config, NULL, -1);
    return report();
}
