/* Set-up shared by the four upstream-shaped examples: command lines,
 * address resolution, sockets, certificates, logging, and the run loops
 * (watchers, signals). None of it is event logic: that is quiche-ev's. */

#ifndef QUICHE_EV_EXAMPLES_COMMON_H
#define QUICHE_EV_EXAMPLES_COMMON_H

#include <quiche_ev.h>

#include <netdb.h>
#include <stdbool.h>

#include <ev.h>
#include <quiche.h>

#define MAX_DATAGRAM_SIZE 1350

/* Exit status for a bad command line (upstream crashes instead). */
#define EXIT_USAGE 2

/* quiche's debug log on stderr unless QUICHE_EV_QUIET is set (as
 * upstream, which always logs), and quiche-ev's own log on stderr at the
 * level QUICHE_EV_LOG names (error, warn, info (default), debug). */
void enable_debug_logging(void);

/* Resolves host:port for UDP; prints a clear message and returns NULL on
 * failure. */
struct addrinfo *resolve(const char *host, const char *port);

/* A non-blocking UDP socket for `ai`, bound to it when `do_bind`; -1 with
 * a message on failure. */
int udp_socket(const struct addrinfo *ai, bool do_bind);

/* Command lines. On a bad one these print the usage line and return
 * false; exit with EXIT_USAGE then. `--help` prints every option and the
 * environment variables and exits 0. */
struct server_args {
    const char *host;
    const char *port;
    const char *root;
    const char *cert;
    const char *key;
    const char *reset_key;
    const char *qlog_dir;
    /* Scaling out (README "Scaling out"): workers, the CID layout, the
     * secrets every worker and host shares. */
    long workers;            /* 1: one server on the main thread, as before */
    const char *server_id;   /* hex: QUIC-LB layout with this server ID */
    const char *cid_key;     /* hex, 16 bytes: the layout is encrypted */
    long config_id;          /* QUIC-LB config ID, 0..6 (default 0) */
    long nonce_len;          /* 0: 16 - server ID length (at least 4) */
    const char *token_key;   /* hex, 32 bytes: Retry tokens */
    const char *ticket_key;  /* hex, 48 bytes: TLS session tickets */
    const char *secrets;     /* file of keys, re-read on SIGHUP */
    long max_conns;
    long drain_ms;
    long idle_timeout_ms;
    long cid_limit;          /* 0: ACTIVE_CONN_ID_LIMIT (common.c) */
    bool no_retry;
    bool early_data;
    bool allow_migration;
};

bool parse_server_args(int argc, char *argv[], struct server_args *args);

/* The scaling options as a tutorial's own parser takes them: if argv[*i]
 * is one (--workers, --server-id, --cid-key, --config-id, --nonce-len,
 * --token-key, --ticket-key, --reset-key, --secrets), stores its value,
 * advances *i past it and returns 1; 0 for another option; -1 for a bad
 * or missing value. */
int parse_scale_option(int argc, char *argv[], int *i, struct server_args *args);

/* A quiche_config for a server: quiche_config_new (as upstream), or, when
 * the process shares its session-ticket keys (more than one worker, or
 * --ticket-key / --secrets), quiche_ev_config_new. */
quiche_config *new_server_config(const struct server_args *args);

struct client_args {
    const char *host;
    const char *port;
    const char *output;
    const char *output_dir;
    const char *session_file;
    const char *qlog_dir;
    const char *wire_version;
    long idle_timeout_ms;
    long connect_timeout_ms; /* -1: the library's default (10 s) */
    const char *const *paths;
    size_t paths_len;
    /* What to fetch without PATHs: /index.html (hq), / (HTTP/3). */
    const char *default_path;
    bool early_data;
    bool multiconnect;
    bool migrate;
};

bool parse_client_args(int argc, char *argv[], struct client_args *args);

/* Loads the certificate chain and key (./cert.crt and ./cert.key like
 * upstream, or --cert/--key), failing with a message naming the file
 * instead of ignoring the error. */
bool load_cert(quiche_config *config, const struct server_args *args);

/* Options that live in the quiche config: 0-RTT (--early-data), the idle
 * timeout (--idle-timeout), clients' active migration (--allow-migration:
 * http3-server disables it, as upstream's does), and room for a peer's NAT rebindings (the
 * active connection ID limit, --cid-limit on the servers). (Key logging is turned on there by
 * quiche_ev_*_set_keylog_path.) */
void configure_server(quiche_config *config, const struct server_args *args);
void configure_client(quiche_config *config, const struct client_args *args);

/* The QUIC version a client starts with: a greased one by default, so the
 * server does version negotiation (as upstream); QUIC v1 with
 * --early-data (0-RTT does not survive that round trip); or
 * --wire-version HEX. 0 on a bad HEX. */
uint32_t client_version(const struct client_args *args);

/* HTTP/3 (ALPN h3) and the transport parameters of the application
 * examples (app-server, fetch): those of http3-server.c and
 * http3-client.c, with a 10 s idle timeout (/slow answers after 2 s). */
void configure_h3_app(quiche_config *config);

/* Prints "listening on HOST:PORT" (the socket's own address: PORT 0
 * becomes the port the kernel chose) on stderr. */
void print_listening(int sock);

/* Applies the server options (--root, --max-conns, --no-retry,
 * --reset-key, SSLKEYLOGFILE, QLOGDIR/--qlog-dir, QUICHE_EV_PLAIN_IO,
 * QUICHE_EV_GSO), starts the socket watcher (recv_cb) and the
 * SIGINT/SIGTERM watchers, announces "listening on HOST:PORT" and runs the
 * loop until the server has stopped: a first signal shuts it down
 * gracefully (in-flight responses get --drain-ms), a second closes
 * everything at once. Prints the server's counters; returns the exit
 * status. */
int run_server(struct ev_loop *loop, int sock, quiche_ev_server *server,
               const struct server_args *args);

/* Applies what the scaling options set on one server (its CID layout,
 * token and reset keys, the secrets file; the process's ticket keys) and
 * prints the CID layout. false (with a message) on a bad value. */
bool apply_scale_options(quiche_ev_server *server, const struct server_args *args);

/* Workers (--workers N, N > 1): what a program gives for each worker. */
struct worker_hooks {
    /* On worker info->index's thread: make its server on info->loop_ and
     * info->sock, with a quiche_config of its own. NULL fails the start. */
    quiche_ev_server *(*start)(const quiche_ev_worker_info *info, void *user);
    /* On its thread once its loop is over and its server freed: free what
     * start made. */
    void (*stop)(const quiche_ev_worker_info *info, void *user);
    void *user;
};

/* Runs N workers on `local` (quiche_ev_workers_*): the group's CID layout
 * and keys from the options, "listening on" and the layout printed, the
 * library's log lines prefixed "worker I: ", SIGINT/SIGTERM shut every
 * worker down (a second signal closes at once), SIGHUP re-reads
 * --secrets, SIGUSR1 aborts the highest-numbered worker still running (as
 * if it crashed: its clients are reset by the others). Prints each
 * worker's counters and their sum; returns the exit status. */
int run_workers(const struct server_args *args, const struct addrinfo *local,
                const struct worker_hooks *hooks);

/* The start and stop hooks of the upstream-shaped servers: `user` is a
 * struct example_worker_config; each worker gets its own quiche_config
 * (made by `make_config`) and, for HTTP/3, quiche_h3_config. */
struct example_worker_config {
    const struct server_args *args;
    quiche_config *(*make_config)(const struct server_args *args);
    bool h3;
};
quiche_ev_server *example_worker_start(const quiche_ev_worker_info *info, void *user);
void example_worker_stop(const quiche_ev_worker_info *info, void *user);

/* How many connections the client makes: one, or one per path with
 * --multiconnect. */
size_t client_connections(const struct client_args *args);

/* Runs connection number `index` of `client`: the paths it fetches, where
 * the bodies go, session resumption, --migrate, --connect-timeout,
 * SSLKEYLOGFILE, QLOGDIR, the socket and signal watchers; the loop runs
 * until the connection is over. Returns the exit status: 0 only when
 * every response arrived in full. */
int run_client(struct ev_loop *loop, int sock, quiche_ev_client *client,
               const struct client_args *args, size_t index);

/* Frees what an example made, in reverse order; any may be NULL (or -1
 * for the socket). Every exit path of main() comes through here, so
 * sanitizer runs stay clean. */
void free_process(struct ev_loop *loop, quiche_h3_config *http3_config,
                  quiche_config *config, struct addrinfo *ai, int sock);

#endif
