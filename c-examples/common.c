#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/types.h>

/* How long in-flight responses may finish after a first signal. */
#define DEFAULT_DRAIN_MS 2000

static void debug_log(const char *line, void *argp) {
    (void) argp;
    fprintf(stderr, "%s\n", line);
}

/* quiche-ev's messages, one per line, in upstream's wording. */
static void library_log(int level, const char *msg, void *user) {
    (void) level;
    (void) user;
    fprintf(stderr, "%s\n", msg);
}

static int log_level(void) {
    const char *v = getenv("QUICHE_EV_LOG");
    if (v == NULL || strcmp(v, "info") == 0) return QUICHE_EV_LOG_INFO;
    if (strcmp(v, "debug") == 0) return QUICHE_EV_LOG_DEBUG;
    if (strcmp(v, "warn") == 0) return QUICHE_EV_LOG_WARN;
    return QUICHE_EV_LOG_ERROR;
}

void enable_debug_logging(void) {
    /* stderr unbuffered-by-line so interleaving with the library stays
     * readable when redirected. */
    setvbuf(stderr, NULL, _IOLBF, 0);
    if (getenv("QUICHE_EV_QUIET") == NULL) {
        quiche_enable_debug_logging(debug_log, NULL);
    }
    quiche_ev_set_log(library_log, NULL, log_level());
}

struct addrinfo *resolve(const char *host, const char *port) {
    const struct addrinfo hints = {
        .ai_family = PF_UNSPEC,
        .ai_socktype = SOCK_DGRAM,
        .ai_protocol = IPPROTO_UDP
    };

    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "failed to resolve host %s port %s: %s\n",
                host, port, gai_strerror(rc));
        return NULL;
    }

    return ai;
}

static int nonblocking_socket(int family) {
    int sock = socket(family, SOCK_DGRAM, 0);
    if (sock < 0) {
        perror("failed to create socket");
        return -1;
    }

    if (fcntl(sock, F_SETFL, O_NONBLOCK) != 0) {
        perror("failed to make socket non-blocking");
        close(sock);
        return -1;
    }

    return sock;
}

int udp_socket(const struct addrinfo *ai, bool do_bind) {
    int sock = nonblocking_socket(ai->ai_family);
    if (sock < 0) {
        return -1;
    }

    if (do_bind && bind(sock, ai->ai_addr, ai->ai_addrlen) < 0) {
        perror("failed to bind socket");
        close(sock);
        return -1;
    }

    return sock;
}

void print_listening(int sock) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[1025], port[32];

    if (getsockname(sock, (struct sockaddr *) &ss, &len) == 0 &&
        getnameinfo((struct sockaddr *) &ss, len, host, sizeof(host),
                    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        fprintf(stderr, "listening on %s:%s\n", host, port);
    }
}

/* ---- command lines ---- */

static const char SERVER_HELP[] =
    "usage: %s [options] HOST PORT\n"
    "\n"
    "A QUIC server (%s) driven by quiche-ev. PORT 0 picks a free port; the\n"
    "server prints \"listening on HOST:PORT\" when it is ready.\n"
    "\n"
    "options:\n"
    "  --root DIR         serve the files under DIR (404 / stream reset for\n"
    "                     anything missing); default: answer \"byez\\n\"\n"
    "  --cert FILE        certificate chain (PEM), default ./cert.crt\n"
    "  --key FILE         private key (PEM), default ./cert.key\n"
    "  --max-conns N      refuse new connections beyond N (default 10000)\n"
    "  --no-retry         no stateless retry: accept at the first Initial\n"
    "  --early-data       accept 0-RTT data from resuming clients\n"
    "  --allow-migration  let clients migrate (http3-server disables it)\n"
    "  --reset-key HEX    64 hex digits: the stateless-reset secret, so a\n"
    "                     restarted server resets its old connections\n"
    "  --qlog-dir DIR     one qlog file per connection in DIR (as QLOGDIR)\n"
    "  --drain-ms N       after SIGINT/SIGTERM, let responses finish for up\n"
    "                     to N ms (default 2000); a second signal stops now\n"
    "  --idle-timeout MS  close connections idle that long (default 5000)\n"
    "  --help             this text\n"
    "\n"
    "environment:\n"
    "  SSLKEYLOGFILE      append TLS secrets there (to decrypt captures)\n"
    "  QLOGDIR            as --qlog-dir\n"
    "  QUICHE_EV_LOG      library log level: error, warn, info (default), debug\n"
    "  QUICHE_EV_QUIET    set: no quiche debug log\n"
    "  QUICHE_EV_PLAIN_IO set: one system call per packet (comparison)\n"
    "  QUICHE_EV_GSO=0    batched reads, but no GSO sends (comparison)\n";

static const char CLIENT_HELP[] =
    "usage: %s [options] HOST PORT [PATH...]\n"
    "\n"
    "A QUIC client (%s) driven by quiche-ev. Fetches each PATH (default %s)\n"
    "and writes the bodies to stdout in order; exits 0 only when every\n"
    "response arrived in full.\n"
    "\n"
    "options:\n"
    "  --output FILE      bodies to FILE instead of stdout (may be a pipe)\n"
    "  --output-dir DIR   each body to DIR/<last path segment>, all at once\n"
    "  --session-file F   resume the TLS session saved in F, save the new one\n"
    "  --early-data       send requests in 0-RTT when resuming (starts with\n"
    "                     QUIC v1: no version negotiation round trip)\n"
    "  --multiconnect     one connection per PATH, one after another\n"
    "  --migrate          after the handshake, move to a new local port\n"
    "  --qlog-dir DIR     the connection's qlog file in DIR (as QLOGDIR)\n"
    "  --wire-version HEX the QUIC version to start with (default babababa, a\n"
    "                     greased one: the server answers with version\n"
    "                     negotiation, as upstream; 00000001 starts with v1)\n"
    "  --idle-timeout MS  give up on a connection idle that long (default 5000)\n"
    "  --connect-timeout MS\n"
    "                     give up when the handshake is not complete after MS\n"
    "                     (default 10000, the library's; 0: only the idle timeout)\n"
    "  --help             this text\n"
    "\n"
    "environment:\n"
    "  SSLKEYLOGFILE      append TLS secrets there (to decrypt captures)\n"
    "  QLOGDIR            as --qlog-dir\n"
    "  QUICHE_EV_LOG      library log level: error, warn, info (default), debug\n"
    "  QUICHE_EV_QUIET    set: no quiche debug log\n"
    "  QUICHE_EV_PLAIN_IO set: one system call per packet (comparison)\n"
    "  QUICHE_EV_GSO=0    batched reads, but no GSO sends (comparison)\n";

static bool is_h3(const char *argv0) {
    return strstr(argv0, "http3") != NULL;
}

static bool wants_help(int argc, char *argv[]) {
    for (int i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            return true;
        }
    }
    return false;
}

static bool parse_long(const char *s, long min, long *out) {
    char *end;
    errno = 0;
    *out = strtol(s, &end, 10);
    return errno == 0 && *end == '\0' && *out >= min;
}

/* One command-line option: a flag, a string, or a number of at least
 * `min`; exactly one destination is set. */
struct option {
    const char *name;
    bool *flag;
    const char **string;
    long *number;
    long min;
};

/* Parses the leading options; returns the index of the first operand, or
 * -1 for an unknown option or a bad or missing value. */
static int parse_options(int argc, char *argv[], const struct option *opts,
                         size_t n) {
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const struct option *o = NULL;
        for (size_t k = 0; k < n && o == NULL; k++) {
            if (strcmp(argv[i], opts[k].name) == 0) {
                o = &opts[k];
            }
        }
        if (o == NULL) {
            return -1;
        }
        if (o->flag != NULL) {
            *o->flag = true;
            continue;
        }
        if (i + 1 >= argc) {
            return -1;
        }
        const char *val = argv[++i];
        if (o->string != NULL) {
            *o->string = val;
        } else if (!parse_long(val, o->min, o->number)) {
            return -1;
        }
    }
    return i;
}

bool parse_server_args(int argc, char *argv[], struct server_args *args) {
    memset(args, 0, sizeof(*args));
    args->drain_ms = DEFAULT_DRAIN_MS;

    if (wants_help(argc, argv)) {
        printf(SERVER_HELP, argv[0], is_h3(argv[0]) ? "HTTP/3" : "hq-interop");
        exit(0);
    }

    const struct option opts[] = {
        { .name = "--no-retry", .flag = &args->no_retry },
        { .name = "--early-data", .flag = &args->early_data },
        { .name = "--allow-migration", .flag = &args->allow_migration },
        { .name = "--root", .string = &args->root },
        { .name = "--cert", .string = &args->cert },
        { .name = "--key", .string = &args->key },
        { .name = "--reset-key", .string = &args->reset_key },
        { .name = "--qlog-dir", .string = &args->qlog_dir },
        { .name = "--max-conns", .number = &args->max_conns, .min = 1 },
        { .name = "--drain-ms", .number = &args->drain_ms, .min = 0 },
        { .name = "--idle-timeout", .number = &args->idle_timeout_ms, .min = 1 },
    };
    int i = parse_options(argc, argv, opts, sizeof(opts) / sizeof(opts[0]));

    if (i < 0 || argc - i != 2) {
        fprintf(stderr, "usage: %s [--root DIR] [--max-conns N] [--no-retry] "
                "[--early-data] [--allow-migration] [--cert FILE] [--key FILE] [--reset-key HEX] "
                "[--qlog-dir DIR] [--drain-ms N] [--idle-timeout MS] HOST PORT "
                "(--help: more)\n",
                argv[0]);
        return false;
    }

    args->host = argv[i];
    args->port = argv[i + 1];
    return true;
}

bool parse_client_args(int argc, char *argv[], struct client_args *args) {
    memset(args, 0, sizeof(*args));
    args->connect_timeout_ms = -1;

    if (wants_help(argc, argv)) {
        bool h3 = is_h3(argv[0]);
        printf(CLIENT_HELP, argv[0], h3 ? "HTTP/3" : "hq-interop",
               h3 ? "/" : "/index.html");
        exit(0);
    }

    const struct option opts[] = {
        { .name = "--early-data", .flag = &args->early_data },
        { .name = "--multiconnect", .flag = &args->multiconnect },
        { .name = "--migrate", .flag = &args->migrate },
        { .name = "--output", .string = &args->output },
        { .name = "--output-dir", .string = &args->output_dir },
        { .name = "--session-file", .string = &args->session_file },
        { .name = "--qlog-dir", .string = &args->qlog_dir },
        { .name = "--wire-version", .string = &args->wire_version },
        { .name = "--idle-timeout", .number = &args->idle_timeout_ms, .min = 1 },
        { .name = "--connect-timeout", .number = &args->connect_timeout_ms, .min = 0 },
    };
    int i = parse_options(argc, argv, opts, sizeof(opts) / sizeof(opts[0]));

    if (i < 0 || argc - i < 2 || client_version(args) == 0) {
        fprintf(stderr, "usage: %s [--output FILE] [--output-dir DIR] "
                "[--session-file FILE] [--early-data] [--multiconnect] "
                "[--migrate] [--qlog-dir DIR] [--wire-version HEX] "
                "[--idle-timeout MS] [--connect-timeout MS] HOST PORT [PATH...] "
                "(--help: more)\n",
                argv[0]);
        return false;
    }

    args->host = argv[i];
    args->port = argv[i + 1];
    args->paths = (const char *const *) &argv[i + 2];
    args->paths_len = (size_t) (argc - i - 2);
    args->default_path = is_h3(argv[0]) ? "/" : "/index.html";
    return true;
}

/* ---- quiche config ---- */

static bool load_one(quiche_config *config, const char *path,
                     int (*load)(quiche_config *, const char *)) {
    /* quiche's own error says nothing of which file; check access first. */
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        return false;
    }

    if (load(config, path) != 0) {
        fprintf(stderr, "failed to load %s: not a valid PEM file\n", path);
        return false;
    }

    return true;
}

bool load_cert(quiche_config *config, const struct server_args *args) {
    return load_one(config, args->cert ? args->cert : "./cert.crt",
                    quiche_config_load_cert_chain_from_pem_file) &&
           load_one(config, args->key ? args->key : "./cert.key",
                    quiche_config_load_priv_key_from_pem_file);
}

/* quiche (0.30) keeps every path a peer has used for as long as the
 * connection lives, and holds at most active_connection_id_limit of them
 * (default 2): a client whose NAT rebinds more than limit - 1 times is
 * lost. The interop runner's rebind cases rebind twice or more. */
#define ACTIVE_CONN_ID_LIMIT 8

void configure_server(quiche_config *config, const struct server_args *args) {
    quiche_config_set_active_connection_id_limit(config, ACTIVE_CONN_ID_LIMIT);
    if (args->early_data) {
        quiche_config_enable_early_data(config);
    }
    if (args->allow_migration) {
        quiche_config_set_disable_active_migration(config, false);
    }
    if (args->idle_timeout_ms > 0) {
        quiche_config_set_max_idle_timeout(config, (uint64_t) args->idle_timeout_ms);
    }
}

uint32_t client_version(const struct client_args *args) {
    if (args->wire_version != NULL) {
        char *end;
        unsigned long v = strtoul(args->wire_version, &end, 16);
        return *end == '\0' && v > 0 && v <= 0xffffffffUL ? (uint32_t) v : 0;
    }
    return args->early_data ? QUICHE_PROTOCOL_VERSION : 0xbabababa;
}

void configure_client(quiche_config *config, const struct client_args *args) {
    quiche_config_set_active_connection_id_limit(config, ACTIVE_CONN_ID_LIMIT);
    if (args->early_data) {
        quiche_config_enable_early_data(config);
    }
    if (args->idle_timeout_ms > 0) {
        quiche_config_set_max_idle_timeout(config, (uint64_t) args->idle_timeout_ms);
    }
}

void configure_h3_app(quiche_config *config) {
    quiche_config_set_application_protos(config,
        (uint8_t *) QUICHE_H3_APPLICATION_PROTOCOL,
        sizeof(QUICHE_H3_APPLICATION_PROTOCOL) - 1);
    quiche_config_set_max_idle_timeout(config, 10000);
    quiche_config_set_max_recv_udp_payload_size(config, MAX_DATAGRAM_SIZE);
    quiche_config_set_max_send_udp_payload_size(config, MAX_DATAGRAM_SIZE);
    quiche_config_set_initial_max_data(config, 10000000);
    quiche_config_set_initial_max_stream_data_bidi_local(config, 1000000);
    quiche_config_set_initial_max_stream_data_bidi_remote(config, 1000000);
    quiche_config_set_initial_max_stream_data_uni(config, 1000000);
    quiche_config_set_initial_max_streams_bidi(config, 100);
    quiche_config_set_initial_max_streams_uni(config, 100);
    quiche_config_set_disable_active_migration(config, true);
    quiche_config_set_active_connection_id_limit(config, ACTIVE_CONN_ID_LIMIT);
}

/* QUICHE_EV_GSO=0: batched reads, but one send call per packet. */
static bool gso_disabled(void) {
    const char *v = getenv("QUICHE_EV_GSO");
    return v != NULL && strcmp(v, "0") == 0;
}

static const char *qlog_dir(const char *option) {
    return option != NULL ? option : getenv("QLOGDIR");
}

/* ---- server ---- */

struct server_run {
    struct ev_loop *loop;
    quiche_ev_server *server;
    long drain_ms;
    int signals;
    int status;
};

static void server_stopped(quiche_ev_server *server, int status, void *user) {
    (void) server;
    struct server_run *run = user;
    run->status = status == 0 ? 0 : 1;
    ev_break(run->loop, EVBREAK_ALL);
}

/* Runs `loop` until something breaks it, with an ev_io on `sock` whose
 * callback is the library's `recv_cb` (w.data = handle) and SIGINT/SIGTERM
 * watchers calling `on_signal` (w.data = sig_data); stops the three after. */
static void run_watched(struct ev_loop *loop, int sock, void (*recv_cb)(struct ev_loop *, ev_io *, int),
                        void *handle, void (*on_signal)(struct ev_loop *, ev_signal *, int), void *sig_data) {
    ev_io watcher;
    ev_io_init(&watcher, recv_cb, sock, EV_READ);
    watcher.data = handle;
    ev_io_start(loop, &watcher);

    ev_signal sigint_watcher, sigterm_watcher;
    ev_signal_init(&sigint_watcher, on_signal, SIGINT);
    ev_signal_init(&sigterm_watcher, on_signal, SIGTERM);
    sigint_watcher.data = sigterm_watcher.data = sig_data;
    ev_signal_start(loop, &sigint_watcher);
    ev_signal_start(loop, &sigterm_watcher);

    ev_run(loop, 0);

    ev_io_stop(loop, &watcher);
    ev_signal_stop(loop, &sigint_watcher);
    ev_signal_stop(loop, &sigterm_watcher);
}

static void server_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void) loop;
    (void) revents;
    struct server_run *run = w->data;
    fprintf(stderr, "signal %d: shutting down\n", w->signum);
    /* The first signal drains; a second one closes everything now. */
    quiche_ev_server_shutdown(run->server, run->signals++ == 0 ? (uint64_t) run->drain_ms : 0);
}

static bool parse_hex_key(const char *hex, uint8_t key[32]) {
    if (strlen(hex) != 64) {
        return false;
    }
    for (int i = 0; i < 32; i++) {
        unsigned int b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1) {
            return false;
        }
        key[i] = (uint8_t) b;
    }
    return true;
}

static void print_counters(const quiche_ev_server *server) {
    quiche_ev_counters c;
    c.size = sizeof(c);
    if (quiche_ev_server_counters(server, &c) != 0) {
        return;
    }
    fprintf(stderr, "server counters: accepted=%llu closed=%llu refused=%llu "
            "retries=%llu invalid_tokens=%llu version_negotiations=%llu "
            "stateless_resets=%llu dropped_malformed=%llu dropped_unknown=%llu "
            "dropped_short=%llu dropped_late=%llu dropped_rate_limited=%llu\n",
            (unsigned long long) c.accepted, (unsigned long long) c.closed,
            (unsigned long long) c.refused, (unsigned long long) c.retries,
            (unsigned long long) c.invalid_tokens,
            (unsigned long long) c.version_negotiations,
            (unsigned long long) c.stateless_resets,
            (unsigned long long) c.dropped_malformed,
            (unsigned long long) c.dropped_unknown,
            (unsigned long long) c.dropped_short,
            (unsigned long long) c.dropped_late,
            (unsigned long long) c.dropped_rate_limited);
}

static bool apply_server_options(quiche_ev_server *server,
                                 const struct server_args *args) {
    if (args->root != NULL && quiche_ev_server_set_root(server, args->root) != 0) {
        return false;
    }
    if (args->max_conns > 0 &&
        quiche_ev_server_set_max_conns(server, (size_t) args->max_conns) != 0) {
        return false;
    }
    if (args->no_retry) {
        quiche_ev_server_set_retry(server, 0);
    }
    if (args->reset_key != NULL) {
        uint8_t key[32];
        if (!parse_hex_key(args->reset_key, key)) {
            fprintf(stderr, "--reset-key needs 64 hex digits\n");
            return false;
        }
        quiche_ev_server_set_reset_key(server, key, sizeof(key));
    }
    const char *keylog = getenv("SSLKEYLOGFILE");
    if (keylog != NULL && quiche_ev_server_set_keylog_path(server, keylog) != 0) {
        return false;
    }
    const char *qlog = qlog_dir(args->qlog_dir);
    if (qlog != NULL && quiche_ev_server_set_qlog_dir(server, qlog) != 0) {
        return false;
    }
    if (getenv("QUICHE_EV_PLAIN_IO")) {
        quiche_ev_server_set_batched_io(server, 0);
    }
    if (gso_disabled()) {
        quiche_ev_server_set_gso(server, 0);
    }
    return true;
}

int run_server(struct ev_loop *loop, int sock, quiche_ev_server *server,
               const struct server_args *args) {
    if (!apply_server_options(server, args)) {
        return 1;
    }

    struct server_run run = { loop, server, args->drain_ms, 0, 1 };
    quiche_ev_server_set_user_data(server, &run);
    quiche_ev_server_on_stopped(server, server_stopped);

    print_listening(sock);
    run_watched(loop, sock, quiche_ev_server_recv_cb, server, server_signal, &run);
    print_counters(server);

    return run.status;
}

/* ---- client ---- */

struct client_run {
    struct ev_loop *loop;
    quiche_ev_client *client;
    const struct client_args *args;
    int sock;
    int migrated_sock;
    ev_io migrated_watcher;
    bool interrupted;
};

static void client_closed(quiche_ev_client *client, int state, void *user) {
    (void) client;
    (void) state;
    struct client_run *run = user;
    ev_break(run->loop, EVBREAK_ALL);
}

/* --migrate: a new socket on the same local address, another port; the
 * library moves the connection to it as soon as the server has given a
 * spare connection ID. */
static void client_established(quiche_ev_client *client, void *user) {
    struct client_run *run = user;
    if (!run->args->migrate) {
        return;
    }

    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(run->sock, (struct sockaddr *) &ss, &len) != 0) {
        perror("getsockname");
        return;
    }
    if (ss.ss_family == AF_INET) {
        ((struct sockaddr_in *) &ss)->sin_port = 0;
    } else {
        ((struct sockaddr_in6 *) &ss)->sin6_port = 0;
    }

    int sock = nonblocking_socket(ss.ss_family);
    if (sock < 0) {
        return;
    }
    if (bind(sock, (struct sockaddr *) &ss, len) != 0) {
        perror("failed to bind the migration socket");
        close(sock);
        return;
    }
    if (quiche_ev_client_migrate(client, sock) != 0) {
        close(sock);
        return;
    }

    run->migrated_sock = sock;
    ev_io_init(&run->migrated_watcher, quiche_ev_client_recv_cb, sock, EV_READ);
    run->migrated_watcher.data = client;
    ev_io_start(run->loop, &run->migrated_watcher);
}

static void client_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void) loop;
    (void) revents;
    struct client_run *run = w->data;
    if (!run->interrupted) {
        run->interrupted = true;
        fprintf(stderr, "error: interrupted\n");
        quiche_ev_client_close(run->client, 0, "interrupted");
    } else {
        ev_break(run->loop, EVBREAK_ALL);
    }
}

size_t client_connections(const struct client_args *args) {
    return args->multiconnect && args->paths_len > 1 ? args->paths_len : 1;
}

static bool apply_client_options(quiche_ev_client *client,
                                 const struct client_args *args, size_t index) {
    const char *const *paths = args->paths;
    size_t n = args->paths_len;
    if (args->multiconnect && n > 1) {
        paths = &args->paths[index];
        n = 1;
    }
    if (n == 0) {
        paths = &args->default_path;
        n = 1;
    }

    if (args->session_file != NULL &&
        quiche_ev_client_set_session_file(client, args->session_file) != 0) {
        return false;
    }
    if (args->connect_timeout_ms >= 0 &&
        quiche_ev_client_set_connect_timeout(client, (uint64_t) args->connect_timeout_ms) != 0) {
        return false;
    }
    const char *keylog = getenv("SSLKEYLOGFILE");
    if (keylog != NULL && quiche_ev_client_set_keylog_path(client, keylog) != 0) {
        return false;
    }
    const char *qlog = qlog_dir(args->qlog_dir);
    if (qlog != NULL && quiche_ev_client_set_qlog_dir(client, qlog) != 0) {
        return false;
    }
    if (args->output != NULL && quiche_ev_client_set_output(client, args->output) != 0) {
        return false;
    }
    if (args->output_dir != NULL &&
        quiche_ev_client_set_output_dir(client, args->output_dir) != 0) {
        return false;
    }
    if (getenv("QUICHE_EV_PLAIN_IO")) {
        quiche_ev_client_set_batched_io(client, 0);
    }
    if (gso_disabled()) {
        quiche_ev_client_set_gso(client, 0);
    }
    return quiche_ev_client_fetch(client, paths, n) == 0;
}

int run_client(struct ev_loop *loop, int sock, quiche_ev_client *client,
               const struct client_args *args, size_t index) {
    if (!apply_client_options(client, args, index)) {
        return 1;
    }

    struct client_run run = { loop, client, args, sock, -1, { 0 }, false };
    quiche_ev_client_set_user_data(client, &run);
    quiche_ev_client_on_established(client, client_established);
    quiche_ev_client_on_closed(client, client_closed);

    run_watched(loop, sock, quiche_ev_client_recv_cb, client, client_signal, &run);
    if (run.migrated_sock >= 0) {
        ev_io_stop(loop, &run.migrated_watcher);
        close(run.migrated_sock);
    }

    return run.interrupted || quiche_ev_client_status(client) != 0 ? 1 : 0;
}

void free_process(struct ev_loop *loop, quiche_h3_config *http3_config,
                  quiche_config *config, struct addrinfo *ai, int sock) {
    if (loop != NULL) {
        ev_loop_destroy(loop);
    }
    if (http3_config != NULL) {
        quiche_h3_config_free(http3_config);
    }
    if (config != NULL) {
        quiche_config_free(config);
    }
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    if (sock >= 0) {
        close(sock);
    }
}
