/* Every request, connection and client function of quiche-ev's C API,
 * called from C and checked in C (tests/app_api.rs runs it): a server and
 * two clients on one loop.
 *
 * Client 1 asks the server, all at once:
 *   /info?x=1   the server checks the request's getters, its headers,
 *               user data, its connection (user data, quiche_conn, peer
 *               address, stats, conn_changed) and answers "ok"
 *   /trailers   a body of what fits, then trailers that do not fit yet,
 *               retried from the request's own writable callback
 *   /reset      reset by the server with code 0x4242, seen by the client
 *   /hold       never answered: the client cancels it
 *   /paused     the client's body callback takes nothing at first, then
 *               resumes from a timer
 * then, once those are over, /close: the server closes the connection
 * with the application error 0x42, and the client fails with a reason.
 * Client 2 connects where no one listens and fails on its idle timeout.
 *
 *   api_calls CERT KEY    one line per check group on stdout; exit 0 when all held */

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <quiche_ev.h>

#include "common.h"
#include "harness.h"

#define PAUSED_BODY 200000
#define RESET_CODE 0x4242
#define CLOSE_CODE 0x42
#define H3_REQUEST_CANCELLED 0x10c

static struct ev_loop *loop;
static quiche_ev_server *server;
static quiche_ev_client *client1, *client2;
static int64_t hold_id = -1, paused_id = -1;
static int conn_magic = 1234, req_magic = 5678;

/* What the server saw, checked at the end. */
static struct {
    int trailers_outcome, reset_outcome, hold_outcome, close_outcome;
    uint64_t reset_code, hold_code;
    int trailers_writable, server_writable_for_trailers, trailers_sent, trailers_blocked;
    int conns_closed, conn_close_checked;
} seen = { -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };

static uint8_t pattern_byte(uint64_t i) {
    return (uint8_t) ((uint32_t) i * 2654435761u >> 24);
}

static bool header_is(const quiche_ev_header *h, const char *name, const char *value) {
    return h->name_len == strlen(name) && memcmp(h->name, name, h->name_len) == 0 &&
           h->value_len == strlen(value) && memcmp(h->value, value, h->value_len) == 0;
}

/* ---- server ---- */

static void on_conn_established(quiche_ev_conn *conn, void *user) {
    (void) user;
    CHECK(quiche_ev_conn_user_data(conn) == NULL, "conn user data starts NULL");
    CHECK(quiche_ev_conn_set_user_data(conn, &conn_magic) == 0, "conn_set_user_data");
}

static void on_conn_closed(quiche_ev_conn *conn, const quiche_ev_stats *st, void *user) {
    (void) user;
    seen.conns_closed++;
    CHECK(quiche_ev_conn_user_data(conn) == &conn_magic, "conn user data in the closed callback");
    CHECK(st->size == sizeof(*st), "stats size %zu", st->size);
    CHECK(st->sent > 0 && st->recv > 0 && st->sent_bytes > 0 && st->rtt_ns > 0 && st->cwnd > 0,
          "stats: sent %" PRIu64 " recv %" PRIu64 " rtt %" PRIu64, st->sent, st->recv, st->rtt_ns);
    /* The connection /close ended: our application error, sent by us. */
    if (st->has_error && st->error_code == CLOSE_CODE) {
        CHECK(st->error_is_app == 1 && st->error_by_peer == 0, "close: app %d by peer %d", st->error_is_app,
              st->error_by_peer);
        CHECK(st->reason_len == 3 && memcmp(st->reason, "bye", 3) == 0, "close reason");
        CHECK(st->timed_out == 0 && st->stateless_reset == 0, "close: timed out / reset");
        seen.conn_close_checked = 1;
    }
    printf("conn closed: sent=%" PRIu64 " recv=%" PRIu64 " error=%d code=0x%" PRIx64 "\n", st->sent, st->recv,
           st->has_error, st->error_code);
}

/* /info: the request's and the connection's getters. */
static void check_info(quiche_ev_request *req) {
    CHECK(strcmp(quiche_ev_request_method(req), "GET") == 0, "method %s", quiche_ev_request_method(req));
    CHECK(strcmp(quiche_ev_request_path(req), "/info?x=1") == 0, "path %s", quiche_ev_request_path(req));
    CHECK(strcmp(quiche_ev_request_authority(req), "localhost") == 0, "authority %s",
          quiche_ev_request_authority(req));
    CHECK(strcmp(quiche_ev_request_scheme(req), "https") == 0, "scheme %s", quiche_ev_request_scheme(req));
    CHECK(quiche_ev_request_stream_id(req) % 4 == 0, "client bidi stream %" PRIu64,
          quiche_ev_request_stream_id(req));

    size_t n = quiche_ev_request_header_count(req);
    int found = 0, pseudo = 0;
    for (size_t i = 0; i < n; i++) {
        quiche_ev_header h;
        CHECK(quiche_ev_request_header(req, i, &h) == 0, "header %zu", i);
        found += header_is(&h, "x-test", "yes");
        pseudo += h.name_len > 0 && h.name[0] == ':';
    }
    CHECK(found == 1 && pseudo == 4, "headers: x-test %d, pseudo %d of %zu", found, pseudo, n);
    quiche_ev_header h;
    CHECK(quiche_ev_request_header(req, n, &h) == QUICHE_EV_ERR_INVALID, "header past the end");
    CHECK(quiche_ev_request_header(req, 0, NULL) == QUICHE_EV_ERR_NULL, "header into NULL");

    CHECK(quiche_ev_request_user_data(req) == NULL, "request user data starts NULL");
    CHECK(quiche_ev_request_set_user_data(req, &req_magic) == 0, "request_set_user_data");
    CHECK(quiche_ev_request_user_data(req) == &req_magic, "request user data");

    quiche_ev_conn *conn = quiche_ev_request_conn(req);
    CHECK(conn != NULL && quiche_ev_conn_user_data(conn) == &conn_magic, "the request's connection");

    /* quiche's own connection: anything quiche-ev does not wrap. */
    quiche_conn *q = quiche_ev_conn_quiche(conn);
    const uint8_t *trace;
    size_t trace_len = 0;
    quiche_conn_trace_id(q, &trace, &trace_len);
    CHECK(quiche_conn_is_established(q) && trace_len > 0, "quiche_conn: established, trace id");
    CHECK(quiche_conn_send_ack_eliciting(q) == 0, "quiche_conn_send_ack_eliciting");
    CHECK(quiche_ev_conn_changed(conn) == 0, "conn_changed");

    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    CHECK(quiche_ev_conn_peer_addr(conn, &peer, &len) == 0 && peer.ss_family == AF_INET &&
          len == sizeof(struct sockaddr_in) &&
          ((struct sockaddr_in *) &peer)->sin_addr.s_addr == htonl(INADDR_LOOPBACK), "peer address");
    len = 4;
    CHECK(quiche_ev_conn_peer_addr(conn, &peer, &len) == QUICHE_EV_ERR_INVALID, "peer address, short");

    quiche_ev_stats st;
    st.size = sizeof(st);
    CHECK(quiche_ev_conn_stats(conn, &st) == 0 && st.recv > 0 && st.has_error == 0, "conn_stats");
    st.size = 1;
    CHECK(quiche_ev_conn_stats(conn, &st) == QUICHE_EV_ERR_INVALID, "conn_stats, size too small");

    quiche_ev_counters c;
    c.size = sizeof(c);
    CHECK(quiche_ev_server_counters(server, &c) == 0 && c.accepted >= 1, "counters");
    CHECK(quiche_ev_server_conn_count(server) >= 1, "conn count");
    printf("info: request and connection getters checked\n");
}

/* /trailers: a body of exactly what fits now (written until the library
 * takes less than offered), then trailers, which cannot fit yet: the
 * library refuses them (QUICHE_EV_ERR_AGAIN) and this request's own
 * writable callback says when to try again. */
static uint64_t trailers_sent_bytes;
static bool trailers_body_done;

static void trailers_continue(quiche_ev_request *req, void *user) {
    (void) user;
    static uint8_t buf[65536];
    seen.trailers_writable++;
    while (!trailers_body_done) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            buf[i] = pattern_byte(trailers_sent_bytes + i);
        }
        ssize_t took = quiche_ev_respond_write(req, buf, sizeof(buf), 0);
        CHECK(took >= 0, "respond_write: %zd", took);
        if (took < 0) {
            return;
        }
        trailers_sent_bytes += (uint64_t) took;
        trailers_body_done = (size_t) took < sizeof(buf);
    }
    quiche_ev_header t[] = { { (const uint8_t *) "x-done", 6, (const uint8_t *) "yes", 3 } };
    int rc = quiche_ev_respond_trailers(req, t, 1);
    CHECK(rc == 0 || rc == QUICHE_EV_ERR_AGAIN, "respond_trailers: %d", rc);
    if (rc == QUICHE_EV_ERR_AGAIN) {
        seen.trailers_blocked++;
    } else if (rc == 0) {
        seen.trailers_sent = 1;
        CHECK(quiche_ev_respond_write(req, buf, 1, 1) == QUICHE_EV_ERR_STATE, "write after trailers");
    }
}

static void on_server_writable(quiche_ev_request *req, void *user) {
    (void) user;
    if (strcmp(quiche_ev_request_path(req), "/trailers") == 0) {
        seen.server_writable_for_trailers++;
    }
}

static void on_request(quiche_ev_request *req, void *user) {
    (void) user;
    const char *path = quiche_ev_request_path(req);
    if (strncmp(path, "/info", 5) == 0) {
        check_info(req);
        CHECK(quiche_ev_respond_bytes(req, 200, NULL, 0, (const uint8_t *) "ok", 2) == 0, "respond_bytes");
        CHECK(quiche_ev_respond(req, 200, NULL, 0, 1) == QUICHE_EV_ERR_STATE, "responding twice");
    } else if (strcmp(path, "/trailers") == 0) {
        CHECK(quiche_ev_respond_trailers(req, NULL, 0) == QUICHE_EV_ERR_STATE, "trailers before a response");
        CHECK(quiche_ev_request_on_writable(req, trailers_continue) == 0, "request_on_writable");
        CHECK(quiche_ev_respond(req, 200, NULL, 0, 0) == 0, "respond");
        trailers_continue(req, NULL);
        seen.trailers_writable--; /* that call was ours */
    } else if (strcmp(path, "/reset") == 0) {
        CHECK(quiche_ev_request_reset(req, RESET_CODE) == 0, "request_reset");
        CHECK(quiche_ev_respond(req, 200, NULL, 0, 1) == QUICHE_EV_ERR_CLOSED, "respond after reset");
    } else if (strcmp(path, "/hold") == 0) {
        /* Never answered: the client gives up on it. */
        CHECK(quiche_ev_client_cancel(client1, 999999) == QUICHE_EV_ERR_INVALID, "cancel an unknown id");
        CHECK(quiche_ev_client_cancel(client1, hold_id) == 0, "client_cancel");
    } else if (strcmp(path, "/paused") == 0) {
        static uint8_t body[PAUSED_BODY];
        for (size_t i = 0; i < sizeof(body); i++) {
            body[i] = pattern_byte(i);
        }
        quiche_ev_respond_bytes(req, 200, NULL, 0, body, sizeof(body));
    } else if (strcmp(path, "/close") == 0) {
        CHECK(quiche_ev_conn_close(quiche_ev_request_conn(req), CLOSE_CODE, "bye") == 0, "conn_close");
    } else {
        quiche_ev_respond(req, 404, NULL, 0, 1);
    }
}

static void on_request_closed(quiche_ev_request *req, int outcome, uint64_t code, void *user) {
    (void) user;
    const char *path = quiche_ev_request_path(req);
    if (strcmp(path, "/trailers") == 0) {
        seen.trailers_outcome = outcome;
    } else if (strcmp(path, "/reset") == 0) {
        seen.reset_outcome = outcome;
        seen.reset_code = code;
    } else if (strcmp(path, "/hold") == 0) {
        seen.hold_outcome = outcome;
        seen.hold_code = code;
    } else if (strcmp(path, "/close") == 0) {
        seen.close_outcome = outcome;
    } else if (strncmp(path, "/info", 5) == 0) {
        CHECK(quiche_ev_request_user_data(req) == &req_magic, "request user data in the closed callback");
    }
}

static void on_stopped(quiche_ev_server *s, int status, void *user) {
    (void) s;
    (void) user;
    CHECK(status == 0, "stopped: %d", status);
    ev_break(loop, EVBREAK_ALL);
}

/* ---- client 1 ---- */

struct response {
    const char *path;
    int status;
    uint64_t bytes;
    int outcome;
    uint64_t code;
    bool ok_pattern;
    bool paused_once;
    int trailers;         /* trailers callbacks seen */
    bool trailers_before_done;
    bool trailer_x_done;  /* the trailer x-done: yes */
};

static struct response responses[] = {
    { .path = "/info?x=1", .outcome = -1, .ok_pattern = true }, { .path = "/trailers", .outcome = -1, .ok_pattern = true },
    { .path = "/reset", .outcome = -1, .ok_pattern = true },     { .path = "/hold", .outcome = -1, .ok_pattern = true },
    { .path = "/paused", .outcome = -1, .ok_pattern = true },    { .path = "/close", .outcome = -1, .ok_pattern = true },
};
#define FIRST_ROUND 5
static int first_round_left = FIRST_ROUND;
static ev_timer resume_timer;
static int established_state = -1, client_magic = 42;

static void on_established(quiche_ev_client *c, void *user) {
    CHECK(user == &client_magic && quiche_ev_client_user_data(c) == &client_magic, "client user data");
    established_state = quiche_ev_client_state(c);
}

static void on_headers(quiche_ev_client *c, int64_t id, int status, const quiche_ev_header *h, size_t n,
                       void *user) {
    (void) c;
    (void) id;
    (void) h;
    (void) n;
    ((struct response *) user)->status = status;
}

static void resume_paused(struct ev_loop *l, ev_timer *w, int revents) {
    (void) l;
    (void) w;
    (void) revents;
    CHECK(quiche_ev_client_resume(client1, paused_id) == 0, "client_resume");
    CHECK(quiche_ev_client_resume(client1, 999999) == QUICHE_EV_ERR_INVALID, "resume an unknown id");
}

static size_t on_body(quiche_ev_client *c, int64_t id, const uint8_t *data, size_t len, void *user) {
    (void) c;
    struct response *r = user;
    if (id == paused_id && !r->paused_once) {
        /* Take nothing: this response waits until the timer resumes it. */
        r->paused_once = true;
        ev_timer_init(&resume_timer, resume_paused, 0.05, 0);
        ev_timer_start(loop, &resume_timer);
        return 0;
    }
    for (size_t i = 0; i < len && strcmp(r->path, "/info?x=1") != 0; i++) {
        r->ok_pattern = r->ok_pattern && data[i] == pattern_byte(r->bytes + i);
    }
    r->bytes += len;
    return len;
}

static void on_trailers(quiche_ev_client *c, int64_t id, const quiche_ev_header *h, size_t n, void *user) {
    (void) c;
    (void) id;
    struct response *r = user;
    r->trailers++;
    r->trailers_before_done = r->outcome == -1;
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len == 6 && memcmp(h[i].name, "x-done", 6) == 0 && h[i].value_len == 3 &&
            memcmp(h[i].value, "yes", 3) == 0) {
            r->trailer_x_done = true;
        }
    }
}

static void on_done(quiche_ev_client *c, int64_t id, int outcome, uint64_t code, void *user) {
    (void) id;
    struct response *r = user;
    r->outcome = outcome;
    r->code = code;
    if (r != &responses[FIRST_ROUND] && --first_round_left == 0) {
        int64_t close_id = quiche_ev_client_request(c, "GET", responses[FIRST_ROUND].path, NULL, 0, NULL, 0,
                                                    &responses[FIRST_ROUND]);
        CHECK(close_id >= 0, "request from a done callback: %" PRId64, close_id);
    }
}

static void start_client2(void);

static void client1_closed(quiche_ev_client *c, int state, void *user) {
    (void) user;
    const char *why = quiche_ev_client_failure(c);
    CHECK(state == QUICHE_EV_CLIENT_FAILED && quiche_ev_client_state(c) == QUICHE_EV_CLIENT_FAILED,
          "client 1 state %d", state);
    CHECK(why != NULL && strstr(why, "0x42") != NULL && strstr(why, "bye") != NULL, "client 1 failure: %s",
          why ? why : "(null)");
    CHECK(quiche_ev_client_request(c, "GET", "/late", NULL, 0, NULL, 0, NULL) == QUICHE_EV_ERR_STATE,
          "request after the end");
    quiche_ev_stats st = { .size = sizeof(st) };
    CHECK(quiche_ev_client_stats(c, &st) == 0 && st.recv > 0 && st.sent > 0 && st.recv_bytes > 0 &&
          st.rtt_ns > 0 && st.has_error && st.error_by_peer && st.error_is_app && st.error_code == 0x42 &&
          st.reason_len == 3 && memcmp(st.reason, "bye", 3) == 0,
          "client stats: recv %" PRIu64 " sent %" PRIu64 " bytes %" PRIu64 " rtt %" PRIu64
          " error %d/%d/%d code %" PRIu64 " reason %zu", st.recv, st.sent, st.recv_bytes, st.rtt_ns, st.has_error,
          st.error_by_peer, st.error_is_app, st.error_code, st.reason_len);
    quiche_ev_stats small = { .size = 4 };
    CHECK(quiche_ev_client_stats(c, &small) == QUICHE_EV_ERR_INVALID, "client stats with a size too small");
    quiche_conn *q = quiche_ev_client_quiche(c);
    CHECK(q != NULL && quiche_conn_is_closed(q), "the client's quiche_conn");
    CHECK(quiche_ev_client_changed(c) == 0, "client_changed");
    printf("client 1 closed: %s\n", why ? why : "(null)");
    start_client2();
}

/* ---- client 2: no one answers ---- */

static quiche_config *short_config;
static quiche_h3_config *h3_config;
static int client2_sock = -1, silent_sock = -1;
static ev_io client2_watcher;
static int client2_done_outcome = -1;

static void client2_done(quiche_ev_client *c, int64_t id, int outcome, uint64_t code, void *user) {
    (void) c;
    (void) id;
    (void) code;
    (void) user;
    client2_done_outcome = outcome;
}

static void client2_closed(quiche_ev_client *c, int state, void *user) {
    (void) user;
    const char *why = quiche_ev_client_failure(c);
    CHECK(state == QUICHE_EV_CLIENT_FAILED, "client 2 state %d", state);
    CHECK(why != NULL && strstr(why, "idle timeout") != NULL, "client 2 failure: %s", why ? why : "(null)");
    /* Never sent: the connection never came up. */
    CHECK(client2_done_outcome == QUICHE_EV_RESPONSE_FAILED, "client 2 request: %d", client2_done_outcome);
    printf("client 2 closed: %s\n", why ? why : "(null)");
    quiche_ev_server_shutdown(server, 0);
}

static void start_client2(void) {
    /* A bound socket that never reads: datagrams to it go unanswered. */
    struct addrinfo *any = resolve("127.0.0.1", "0");
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    silent_sock = udp_socket(any, true);
    client2_sock = udp_socket(any, false);
    freeaddrinfo(any);
    getsockname(silent_sock, (struct sockaddr *) &ss, &len);
    client2 = quiche_ev_client_new(loop, client2_sock, "localhost", (struct sockaddr *) &ss, len, short_config,
                                   h3_config);
    CHECK(client2 != NULL, "client 2");
    CHECK(quiche_ev_client_state(client2) == QUICHE_EV_CLIENT_CONNECTING, "client 2 connecting");
    CHECK(quiche_ev_client_failure(client2) == NULL, "no failure yet");
    quiche_ev_client_on_response(client2, NULL, NULL, client2_done);
    quiche_ev_client_on_closed(client2, client2_closed);
    quiche_ev_client_request(client2, "GET", "/", NULL, 0, NULL, 0, NULL);
    ev_io_init(&client2_watcher, quiche_ev_client_recv_cb, client2_sock, EV_READ);
    client2_watcher.data = client2;
    ev_io_start(loop, &client2_watcher);
}

/* ---- main ---- */

int main(int argc, char *argv[]) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CERT KEY\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    loop = ev_default_loop(0);

    quiche_config *server_config, *client_config;
    h3_config = quiche_h3_config_new();
    if (!h3_configs(argv[1], argv[2], &server_config, &client_config)) {
        return 1;
    }
    /* Client 2 gives up quickly. */
    short_config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    configure_h3_app(short_config);
    quiche_config_verify_peer(short_config, false);
    quiche_config_set_max_idle_timeout(short_config, 300);

    struct addrinfo *local = resolve("127.0.0.1", "0");
    int server_sock = udp_socket(local, true);
    server = quiche_ev_server_new(loop, server_sock, local->ai_addr, local->ai_addrlen, server_config, h3_config);
    quiche_ev_server_on_request(server, on_request);
    quiche_ev_server_on_request_writable(server, on_server_writable);
    quiche_ev_server_on_request_closed(server, on_request_closed);
    quiche_ev_server_on_conn(server, on_conn_established, on_conn_closed);
    quiche_ev_server_on_stopped(server, on_stopped);
    ev_io server_watcher;
    ev_io_init(&server_watcher, quiche_ev_server_recv_cb, server_sock, EV_READ);
    server_watcher.data = server;
    ev_io_start(loop, &server_watcher);

    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(server_sock, (struct sockaddr *) &ss, &len);
    int client_sock = udp_socket(local, false);
    client1 = quiche_ev_client_new(loop, client_sock, "localhost", (struct sockaddr *) &ss, len, client_config,
                                   h3_config);
    CHECK(quiche_ev_client_state(client1) == QUICHE_EV_CLIENT_CONNECTING, "client 1 connecting");
    quiche_ev_client_set_user_data(client1, &client_magic);
    quiche_ev_client_on_established(client1, on_established);
    quiche_ev_client_on_response(client1, on_headers, on_body, on_done);
    quiche_ev_client_on_trailers(client1, on_trailers);
    quiche_ev_client_on_closed(client1, client1_closed);
    quiche_ev_header extra[] = { { (const uint8_t *) "x-test", 6, (const uint8_t *) "yes", 3 } };
    for (int i = 0; i < FIRST_ROUND; i++) {
        int64_t id = quiche_ev_client_request(client1, "GET", responses[i].path, i == 0 ? extra : NULL,
                                              i == 0 ? 1 : 0, NULL, 0, &responses[i]);
        CHECK(id >= 0, "request %s", responses[i].path);
        if (strcmp(responses[i].path, "/hold") == 0) {
            hold_id = id;
        } else if (strcmp(responses[i].path, "/paused") == 0) {
            paused_id = id;
        }
    }
    ev_io client_watcher;
    ev_io_init(&client_watcher, quiche_ev_client_recv_cb, client_sock, EV_READ);
    client_watcher.data = client1;
    ev_io_start(loop, &client_watcher);

    bool deadline_passed = false;
    start_deadline(loop, 20, &deadline_passed);

    ev_run(loop, 0);

    /* What each side saw. */
    struct response *info = &responses[0], *tr = &responses[1], *rs = &responses[2], *hold = &responses[3],
                    *paused = &responses[4], *cl = &responses[5];
    CHECK(established_state == QUICHE_EV_CLIENT_ESTABLISHED, "state when established: %d", established_state);
    CHECK(info->outcome == QUICHE_EV_RESPONSE_COMPLETE && info->status == 200 && info->bytes == 2, "/info");
    CHECK(tr->outcome == QUICHE_EV_RESPONSE_COMPLETE && tr->status == 200 && tr->bytes == trailers_sent_bytes &&
          tr->bytes > 0 && tr->ok_pattern, "/trailers: outcome %d, %" PRIu64 " bytes of %" PRIu64, tr->outcome,
          tr->bytes, trailers_sent_bytes);
    CHECK(tr->trailers == 1 && tr->trailers_before_done && tr->trailer_x_done,
          "/trailers: %d trailers callback(s), before done %d, x-done %d", tr->trailers, tr->trailers_before_done,
          tr->trailer_x_done);
    CHECK(info->trailers == 0 && rs->trailers == 0, "no trailers callback without trailers");
    CHECK(seen.trailers_sent && seen.trailers_blocked > 0 && seen.trailers_outcome == QUICHE_EV_REQUEST_COMPLETE,
          "trailers: sent %d after %d refusals, outcome %d", seen.trailers_sent, seen.trailers_blocked,
          seen.trailers_outcome);
    CHECK(seen.trailers_writable > 0 && seen.server_writable_for_trailers == 0,
          "per-request writable callback: %d calls, server's: %d", seen.trailers_writable,
          seen.server_writable_for_trailers);
    CHECK(rs->outcome == QUICHE_EV_RESPONSE_RESET && rs->code == RESET_CODE, "/reset: outcome %d code 0x%" PRIx64,
          rs->outcome, rs->code);
    CHECK(seen.reset_outcome == QUICHE_EV_REQUEST_CANCELLED && seen.reset_code == RESET_CODE,
          "/reset on the server: outcome %d", seen.reset_outcome);
    CHECK(hold->outcome == QUICHE_EV_RESPONSE_FAILED && hold->code == H3_REQUEST_CANCELLED,
          "/hold: outcome %d code 0x%" PRIx64, hold->outcome, hold->code);
    CHECK(seen.hold_outcome == QUICHE_EV_REQUEST_RESET && seen.hold_code == H3_REQUEST_CANCELLED,
          "/hold on the server: outcome %d code 0x%" PRIx64, seen.hold_outcome, seen.hold_code);
    CHECK(paused->outcome == QUICHE_EV_RESPONSE_COMPLETE && paused->paused_once && paused->bytes == PAUSED_BODY &&
          paused->ok_pattern, "/paused: outcome %d, %" PRIu64 " bytes", paused->outcome, paused->bytes);
    CHECK(cl->outcome == QUICHE_EV_RESPONSE_CONN_CLOSED, "/close: outcome %d", cl->outcome);
    CHECK(seen.close_outcome == QUICHE_EV_REQUEST_CONN_CLOSED, "/close on the server: %d", seen.close_outcome);
    CHECK(seen.conns_closed == 1 && seen.conn_close_checked, "connection closed callback: %d", seen.conns_closed);
    printf("responses: info %d, trailers %d (%" PRIu64 " bytes), reset %d/0x%" PRIx64 ", hold %d/0x%" PRIx64
           ", paused %d, close %d\n", info->outcome, tr->outcome, tr->bytes, rs->outcome, rs->code, hold->outcome,
           hold->code, paused->outcome, cl->outcome);

    ev_io_stop(loop, &server_watcher);
    ev_io_stop(loop, &client_watcher);
    ev_io_stop(loop, &client2_watcher);
    stop_deadline(loop);
    quiche_ev_client_free(client1);
    quiche_ev_client_free(client2);
    quiche_ev_server_free(server);
    quiche_config_free(server_config);
    quiche_config_free(short_config);
    free_process(loop, h3_config, client_config, local, server_sock);
    close(client_sock);
    close(client2_sock);
    close(silent_sock);

    return report();
}
