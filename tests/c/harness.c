#include "harness.h"

#include "common.h"

int failures;

static ev_timer deadline;
static double deadline_secs;

bool h3_configs(const char *cert, const char *key, quiche_config **server, quiche_config **client) {
    struct server_args files = { .cert = cert, .key = key };
    *server = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    *client = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    if (*server == NULL || *client == NULL || !load_cert(*server, &files)) {
        return false;
    }
    configure_h3_app(*server);
    configure_h3_app(*client);
    quiche_config_verify_peer(*client, false);
    return true;
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents) {
    (void) revents;
    CHECK(false, "deadline: not done after %.0f s", deadline_secs);
    *(bool *) w->data = true;
    ev_break(loop, EVBREAK_ALL);
}

void start_deadline(struct ev_loop *loop, double secs, bool *fired) {
    ev_timer_init(&deadline, on_deadline, secs, 0);
    deadline_secs = secs;
    deadline.data = fired;
    ev_timer_start(loop, &deadline);
}

void stop_deadline(struct ev_loop *loop) {
    ev_timer_stop(loop, &deadline);
}

int report(void) {
    if (failures == 0) {
        printf("ok\n");
        return 0;
    }
    printf("%d failure(s)\n", failures);
    return 1;
}
