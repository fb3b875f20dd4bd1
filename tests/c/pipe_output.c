/* A host that drains, in its own ev_io on the same loop, the pipe the
 * library writes a response body to (quiche_ev_client_set_output on a
 * FIFO). A library writing with blocking calls deadlocks here once the
 * pipe (64 KiB) is full: the drainer never gets to run. Usage:
 * pipe_output HOST PORT PATH FIFO; prints the bytes drained and exits 0
 * when the client said every response arrived in full. */
#include <quiche_ev.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long long drained;

static void drain(struct ev_loop *loop, ev_io *w, int revents) {
    (void) loop;
    (void) revents;
    char buf[65536];
    ssize_t n;
    while ((n = read(w->fd, buf, sizeof(buf))) > 0) {
        drained += (unsigned long long) n;
    }
}

static void closed(quiche_ev_client *client, int state, void *user) {
    (void) client;
    (void) state;
    ev_break((struct ev_loop *) user, EVBREAK_ALL);
}

int main(int argc, char *argv[]) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s HOST PORT PATH FIFO\n", argv[0]);
        return 2;
    }
    if (mkfifo(argv[4], 0600) != 0 && errno != EEXIST) {
        perror("mkfifo");
        return 2;
    }
    /* The reader first, so the library's non-blocking open finds one. */
    int rd = open(argv[4], O_RDONLY | O_NONBLOCK);
    struct addrinfo hints, *peer;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    if (rd < 0 || getaddrinfo(argv[1], argv[2], &hints, &peer) != 0) {
        return 2;
    }
    int sock = socket(peer->ai_family, SOCK_DGRAM, 0);
    fcntl(sock, F_SETFL, O_NONBLOCK);

    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    quiche_config_set_application_protos(config, (const uint8_t *) "\x0ahq-interop", 11);
    quiche_config_set_max_idle_timeout(config, 5000);
    quiche_config_set_initial_max_data(config, 10000000);
    quiche_config_set_initial_max_stream_data_bidi_local(config, 1000000);
    quiche_config_set_initial_max_streams_bidi(config, 10);

    struct ev_loop *loop = ev_default_loop(0);
    quiche_ev_client *client = quiche_ev_client_new(loop, sock, argv[1], peer->ai_addr,
                                                    peer->ai_addrlen, config, NULL);
    const char *paths[] = { argv[3] };
    int status = 1;
    if (client != NULL && quiche_ev_client_set_output(client, argv[4]) == 0 &&
        quiche_ev_client_fetch(client, paths, 1) == 0) {
        quiche_ev_client_set_user_data(client, loop);
        quiche_ev_client_on_closed(client, closed);
        ev_io w, reader;
        ev_io_init(&w, quiche_ev_client_recv_cb, sock, EV_READ);
        w.data = client;
        ev_io_start(loop, &w);
        ev_io_init(&reader, drain, rd, EV_READ);
        ev_io_start(loop, &reader);
        ev_run(loop, 0);
        drain(loop, &reader, EV_READ); /* what is still in the pipe */
        status = quiche_ev_client_status(client);
        if (status != 0) {
            const char *why = quiche_ev_client_failure(client);
            fprintf(stderr, "state %d: %s\n", quiche_ev_client_state(client), why ? why : "(no failure)");
        }
    }
    printf("drained %llu\n", drained);
    quiche_ev_client_free(client);
    quiche_config_free(config);
    freeaddrinfo(peer);
    close(sock);
    close(rd);
    unlink(argv[4]);
    return status;
}
