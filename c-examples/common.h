/* Process set-up shared by the four example mains: argument checks,
 * address resolution, the UDP socket and loading the certificate. The event
 * logic itself is in the quiche-ev library (quiche_ev.h). */

#ifndef QUICHE_EV_EXAMPLES_COMMON_H
#define QUICHE_EV_EXAMPLES_COMMON_H

#include <netdb.h>
#include <stdbool.h>

#include <ev.h>
#include <quiche.h>
#include <quiche_ev.h>

#define MAX_DATAGRAM_SIZE 1350

/* Exit status for a bad command line (upstream crashes instead). */
#define EXIT_USAGE 2

/* quiche's debug log, one line per call, on stderr (as upstream). */
void debug_log(const char *line, void *argp);

/* Turns on quiche's debug logging unless QUICHE_EV_QUIET is set. */
void enable_debug_logging(void);

/* Resolves host:port for UDP; prints a clear message and returns NULL on
 * failure. */
struct addrinfo *resolve(const char *host, const char *port);

/* A non-blocking UDP socket for `ai`, bound to it when `do_bind`; -1 with
 * a message on failure. */
int udp_socket(const struct addrinfo *ai, bool do_bind);

/* Prints "listening on ADDR:PORT" for the bound socket (tests wait for it;
 * PORT 0 on the command line picks a free port). */
void print_listening(int sock);

/* Loads ./cert.crt and ./cert.key like upstream, but fails with a message
 * naming the file instead of ignoring the error. */
bool load_cert(quiche_config *config);

/* Command lines: `server [--root DIR] [--max-conns N] HOST PORT` and
 * `client [--output FILE] HOST PORT [PATH...]`. On a bad one these print the
 * usage line and return false; exit with EXIT_USAGE then. */
struct server_args {
    const char *host;
    const char *port;
    const char *root;
    long max_conns;
};

bool parse_server_args(int argc, char *argv[], struct server_args *args);

struct client_args {
    const char *host;
    const char *port;
    const char *output;
    const char *const *paths;
    size_t paths_len;
};

bool parse_client_args(int argc, char *argv[], struct client_args *args);

/* Applies --root/--max-conns (and QUICHE_EV_PLAIN_IO: one receive and one send call
 * per packet instead of batched I/O; QUICHE_EV_GSO=0: no GSO sends; both
 * for comparison), starts the socket watcher (recv_cb) and the
 * SIGINT/SIGTERM watchers on `server`, and runs the loop until a signal.
 * Returns the exit status. */
int run_server(struct ev_loop *loop, int sock, quiche_ev_server *server,
               const struct server_args *args);

/* Applies --output (and QUICHE_EV_PLAIN_IO), starts the socket and signal watchers on `client`, runs
 * the loop until the connection closes, and returns the exit status: 0
 * only when every response arrived in full. */
int run_client(struct ev_loop *loop, int sock, quiche_ev_client *client,
               const struct client_args *args);

/* Frees what an example made, in reverse order; any may be NULL (or -1
 * for the socket). Every exit path of main() comes through here, so
 * sanitizer runs stay clean. */
void free_process(struct ev_loop *loop, quiche_h3_config *http3_config,
                  quiche_config *config, struct addrinfo *ai, int sock);

#endif
