/* Two quiche-ev servers, two clients and the host's own timer on one
 * libev loop (tests/app_api.rs runs it). Client 1 fetches from server A;
 * then A is shut down and freed. The host's timer must keep firing, and
 * server B must still answer (client 2). The program alone ends the
 * loop: if ev_run returns before it did, the library broke the loop.
 * No log callback is set, so the library must print nothing: everything
 * on stderr is a failure (the test checks stderr is empty).
 *
 *   shared_loop CERT KEY     prints its steps on stdout, exits 0 when all held */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <quiche_ev.h>

#include "common.h"
#include "harness.h"

/* Host timer ticks that must follow the end of both clients. */
#define TICKS_AFTER 5

struct side {
    quiche_ev_server *server;
    int sock;
    ev_io watcher;
    const char *answer;
};

struct client_run {
    quiche_ev_client *client;
    int sock;
    ev_io watcher;
    char body[64];
    size_t len;
    int outcome;
    int status;
};

static struct ev_loop *loop;
static struct side a, b;
static struct client_run c1, c2;
static quiche_config *client_config;
static quiche_h3_config *h3_config;
static ev_timer tick;
static unsigned ticks, ticks_at_end;
static bool ended_by_us, clients_done;

static void on_request(quiche_ev_request *req, void *user) {
    struct side *s = user;
    quiche_ev_respond_bytes(req, 200, NULL, 0, (const uint8_t *) s->answer, strlen(s->answer));
}

static bool start_server(struct side *s, quiche_config *config, const char *answer) {
    struct addrinfo *local = resolve("127.0.0.1", "0");
    if (local == NULL || (s->sock = udp_socket(local, true)) < 0) {
        return false;
    }
    s->answer = answer;
    s->server = quiche_ev_server_new(loop, s->sock, local->ai_addr, local->ai_addrlen, config, h3_config);
    freeaddrinfo(local);
    if (s->server == NULL) {
        return false;
    }
    quiche_ev_server_set_user_data(s->server, s);
    quiche_ev_server_on_request(s->server, on_request);
    ev_io_init(&s->watcher, quiche_ev_server_recv_cb, s->sock, EV_READ);
    s->watcher.data = s->server;
    ev_io_start(loop, &s->watcher);
    return true;
}

/* ---- clients ---- */

static size_t on_body(quiche_ev_client *c, int64_t id, const uint8_t *data, size_t len, void *user) {
    (void) c;
    (void) id;
    struct client_run *r = user;
    size_t n = len < sizeof(r->body) - 1 - r->len ? len : sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return len;
}

static void on_headers(quiche_ev_client *c, int64_t id, int status, const quiche_ev_header *h, size_t n,
                       void *user) {
    (void) c;
    (void) id;
    (void) h;
    (void) n;
    ((struct client_run *) user)->status = status;
}

static void on_done(quiche_ev_client *c, int64_t id, int outcome, uint64_t code, void *user) {
    (void) id;
    (void) code;
    ((struct client_run *) user)->outcome = outcome;
    quiche_ev_client_close(c, 0, NULL);
}

static void client2_closed(quiche_ev_client *c, int state, void *user);

static bool start_client(struct client_run *r, const struct side *to, quiche_ev_client_closed_cb closed) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct addrinfo *any = resolve("127.0.0.1", "0");
    if (any == NULL || getsockname(to->sock, (struct sockaddr *) &ss, &len) != 0 ||
        (r->sock = udp_socket(any, false)) < 0) {
        freeaddrinfo(any);
        return false;
    }
    freeaddrinfo(any);
    r->outcome = -1;
    r->client = quiche_ev_client_new(loop, r->sock, "localhost", (struct sockaddr *) &ss, len,
                                     client_config, h3_config);
    if (r->client == NULL) {
        return false;
    }
    quiche_ev_client_set_user_data(r->client, r);
    quiche_ev_client_on_response(r->client, on_headers, on_body, on_done);
    quiche_ev_client_on_closed(r->client, closed);
    ev_io_init(&r->watcher, quiche_ev_client_recv_cb, r->sock, EV_READ);
    r->watcher.data = r->client;
    ev_io_start(loop, &r->watcher);
    return quiche_ev_client_request(r->client, "GET", "/", NULL, 0, NULL, 0, r) >= 0;
}

static void check_client(const char *name, struct client_run *r, int state, const char *want) {
    CHECK(state == QUICHE_EV_CLIENT_CLOSED, "%s: state %d", name, state);
    CHECK(r->outcome == QUICHE_EV_RESPONSE_COMPLETE && r->status == 200, "%s: outcome %d status %d", name,
          r->outcome, r->status);
    CHECK(strcmp(r->body, want) == 0, "%s: body %s", name, r->body);
    printf("%s: status %d body %s", name, r->status, r->body);
}

/* Server A has stopped (from our shutdown): free it from its own
 * callback, then a second client asks server B. */
static void a_stopped(quiche_ev_server *server, int status, void *user) {
    (void) user;
    CHECK(status == 0, "server A stopped with %d", status);
    CHECK(quiche_ev_server_is_stopped(server) == 1, "server A is not stopped");
    printf("server A stopped\n");
    ev_io_stop(loop, &a.watcher);
    quiche_ev_server_free(server);
    a.server = NULL;
    if (!start_client(&c2, &b, client2_closed)) {
        CHECK(false, "client 2 did not start");
    }
}

static void client1_closed(quiche_ev_client *c, int state, void *user) {
    check_client("client 1", user, state, "A\n");
    ev_io_stop(loop, &c1.watcher);
    quiche_ev_client_free(c); /* from its own callback: freed once this returns */
    c1.client = NULL;
    quiche_ev_server_on_stopped(a.server, a_stopped);
    quiche_ev_server_shutdown(a.server, 1000);
}

static void client2_closed(quiche_ev_client *c, int state, void *user) {
    (void) c;
    check_client("client 2", user, state, "B\n");
    ev_io_stop(loop, &c2.watcher);
    clients_done = true;
    ticks_at_end = ticks;
}

/* ---- the host's own watchers ---- */

static void b_stopped(quiche_ev_server *server, int status, void *user) {
    (void) server;
    (void) user;
    CHECK(status == 0, "server B stopped with %d", status);
    printf("server B stopped\n");
    ended_by_us = true;
    ev_break(loop, EVBREAK_ALL);
}

/* The host's timer: once it has fired TICKS_AFTER times after both
 * clients ended, server B must still be running; then we end. */
static void on_tick(struct ev_loop *l, ev_timer *w, int revents) {
    (void) l;
    (void) w;
    (void) revents;
    ticks++;
    if (clients_done && ticks == ticks_at_end + TICKS_AFTER) {
        CHECK(quiche_ev_server_is_stopped(b.server) == 0, "server B stopped on its own");
        printf("host timer: %u ticks after the clients, server B running\n", TICKS_AFTER);
        quiche_ev_server_on_stopped(b.server, b_stopped);
        quiche_ev_server_shutdown(b.server, 0);
    }
}

int main(int argc, char *argv[]) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CERT KEY\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    loop = ev_default_loop(0);

    quiche_config *server_config;
    h3_config = quiche_h3_config_new();
    if (!h3_configs(argv[1], argv[2], &server_config, &client_config)) {
        return 1;
    }

    /* One quiche config serves both servers. */
    if (!start_server(&a, server_config, "A\n") || !start_server(&b, server_config, "B\n") ||
        !start_client(&c1, &a, client1_closed)) {
        return 1;
    }

    ev_timer_init(&tick, on_tick, 0.02, 0.02);
    ev_timer_start(loop, &tick);
    start_deadline(loop, 20, &ended_by_us);

    ev_run(loop, 0);

    CHECK(ended_by_us, "ev_run returned before the program ended it (ticks %u)", ticks);

    ev_timer_stop(loop, &tick);
    stop_deadline(loop);
    ev_io_stop(loop, &b.watcher);
    quiche_ev_client_free(c1.client);
    quiche_ev_client_free(c2.client);
    quiche_ev_server_free(a.server);
    quiche_ev_server_free(b.server);
    free_process(loop, h3_config, client_config, NULL, a.sock);
    quiche_config_free(server_config);
    close(b.sock);
    close(c1.sock);
    close(c2.sock);

    return report();
}
