#include "common.h"

#include <ctype.h>
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

/* The scaling options (servers and app-server). */
#define SCALE_HELP \
    "scaling out (README \"Scaling out\"):\n" \
    "  --workers N        N servers on the address, one thread each, steered by\n" \
    "                     connection ID (default 1: one server, as upstream)\n" \
    "  --server-id HEX    QUIC-LB connection IDs carrying this server ID (1-15\n" \
    "                     bytes): plaintext, config ID 0, the ID after the first\n" \
    "                     octet; with --cid-key: encrypted\n" \
    "  --cid-key HEX      32 hex digits: the QUIC-LB key\n" \
    "  --config-id N      the QUIC-LB config ID, 0..6 (default 0)\n" \
    "  --nonce-len N      nonce octets, 4..18 (default 16 - server ID length)\n" \
    "  --token-key HEX    64 hex digits: the Retry token key (share it)\n" \
    "  --reset-key HEX    64 hex digits: the stateless-reset key (share it)\n" \
    "  --ticket-key HEX   96 hex digits: the TLS session-ticket key (share it)\n" \
    "  --secrets FILE     keys from FILE, one per line: token|reset|ticket\n" \
    "                     CURRENT-HEX [PREVIOUS-HEX]; re-read on SIGHUP (rotation)\n" \
    "  signals: SIGHUP re-reads --secrets; SIGUSR1 (workers) aborts the last\n" \
    "  worker still running, as if it crashed (to try failover)\n"

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
    "  --cid-limit N      connection IDs (and so paths) a client may give,\n"
    "                     2..16 (default 8: room for 7 NAT rebindings; each\n"
    "                     one held costs about 0.3 KiB per connection)\n"
    "  --help             this text\n"
    "\n"
SCALE_HELP
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

/* The largest --cid-limit: more paths than any NAT rebinds in a
 * connection's life, and a bound on what a client may make us hold. */
#define MAX_CID_LIMIT 16

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

int parse_scale_option(int argc, char *argv[], int *i, struct server_args *args) {
    const struct option opts[] = {
        { .name = "--workers", .number = &args->workers, .min = 1 },
        { .name = "--server-id", .string = &args->server_id },
        { .name = "--cid-key", .string = &args->cid_key },
        { .name = "--config-id", .number = &args->config_id, .min = 0 },
        { .name = "--nonce-len", .number = &args->nonce_len, .min = 1 },
        { .name = "--token-key", .string = &args->token_key },
        { .name = "--reset-key", .string = &args->reset_key },
        { .name = "--ticket-key", .string = &args->ticket_key },
        { .name = "--secrets", .string = &args->secrets },
    };
    for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
        if (strcmp(argv[*i], opts[k].name) != 0) {
            continue;
        }
        if (*i + 1 >= argc) {
            return -1;
        }
        const char *val = argv[++*i];
        if (opts[k].string != NULL) {
            *opts[k].string = val;
            return 1;
        }
        return parse_long(val, opts[k].min, opts[k].number) ? 1 : -1;
    }
    return 0;
}

bool parse_server_args(int argc, char *argv[], struct server_args *args) {
    memset(args, 0, sizeof(*args));
    args->drain_ms = DEFAULT_DRAIN_MS;
    args->workers = 1;

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
        { .name = "--cid-limit", .number = &args->cid_limit, .min = 2 },
        { .name = "--workers", .number = &args->workers, .min = 1 },
        { .name = "--server-id", .string = &args->server_id },
        { .name = "--cid-key", .string = &args->cid_key },
        { .name = "--config-id", .number = &args->config_id, .min = 0 },
        { .name = "--nonce-len", .number = &args->nonce_len, .min = 1 },
        { .name = "--token-key", .string = &args->token_key },
        { .name = "--ticket-key", .string = &args->ticket_key },
        { .name = "--secrets", .string = &args->secrets },
    };
    int i = parse_options(argc, argv, opts, sizeof(opts) / sizeof(opts[0]));

    if (i < 0 || argc - i != 2) {
        fprintf(stderr, "usage: %s [--root DIR] [--max-conns N] [--no-retry] "
                "[--early-data] [--allow-migration] [--cert FILE] [--key FILE] [--reset-key HEX] "
                "[--qlog-dir DIR] [--drain-ms N] [--idle-timeout MS] [--cid-limit N] [--workers N] "
                "[--server-id HEX [--cid-key HEX] [--config-id N] [--nonce-len N]] "
                "[--token-key HEX] [--ticket-key HEX] [--secrets FILE] HOST PORT "
                "(--help: more)\n",
                argv[0]);
        return false;
    }
    if (args->cid_limit > MAX_CID_LIMIT) {
        fprintf(stderr, "%s: --cid-limit is 2..%d\n", argv[0], MAX_CID_LIMIT);
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
    quiche_config_set_active_connection_id_limit(
        config, args->cid_limit > 0 ? (uint64_t) args->cid_limit : ACTIVE_CONN_ID_LIMIT);
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

/* Exactly `len` bytes from 2 * len hex digits. */
static bool parse_hex(const char *hex, uint8_t *out, size_t len) {
    if (strlen(hex) != 2 * len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned int b;
        if (!isxdigit((unsigned char) hex[2 * i]) || !isxdigit((unsigned char) hex[2 * i + 1]) ||
            sscanf(hex + 2 * i, "%2x", &b) != 1) {
            return false;
        }
        out[i] = (uint8_t) b;
    }
    return true;
}

static void print_counter_line(const char *label, const quiche_ev_counters *c) {
    fprintf(stderr, "%s: accepted=%llu closed=%llu refused=%llu "
            "retries=%llu invalid_tokens=%llu version_negotiations=%llu "
            "stateless_resets=%llu dropped_malformed=%llu dropped_unknown=%llu "
            "dropped_short=%llu dropped_late=%llu dropped_rate_limited=%llu "
            "dropped_misrouted=%llu\n", label,
            (unsigned long long) c->accepted, (unsigned long long) c->closed,
            (unsigned long long) c->refused, (unsigned long long) c->retries,
            (unsigned long long) c->invalid_tokens,
            (unsigned long long) c->version_negotiations,
            (unsigned long long) c->stateless_resets,
            (unsigned long long) c->dropped_malformed,
            (unsigned long long) c->dropped_unknown,
            (unsigned long long) c->dropped_short,
            (unsigned long long) c->dropped_late,
            (unsigned long long) c->dropped_rate_limited,
            (unsigned long long) c->dropped_misrouted);
}

static void print_counters(const quiche_ev_server *server) {
    quiche_ev_counters c;
    c.size = sizeof(c);
    if (quiche_ev_server_counters(server, &c) != 0) {
        return;
    }
    print_counter_line("server counters", &c);
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

/* ---- scaling out: CID layout, shared secrets, workers ---- */

quiche_config *new_server_config(const struct server_args *args) {
    bool shared_tickets = args->workers > 1 || args->ticket_key != NULL || args->secrets != NULL;
    quiche_config *config = shared_tickets ? quiche_ev_config_new(QUICHE_PROTOCOL_VERSION)
                                           : quiche_config_new(QUICHE_PROTOCOL_VERSION);
    if (config == NULL) {
        fprintf(stderr, "failed to create config\n");
    }
    return config;
}

/* Keys for one purpose: the current one and, during a rotation, the
 * previous one (still accepted). */
struct key_pair {
    bool set;
    bool has_previous;
    uint8_t current[48];
    uint8_t previous[48];
};

struct secrets {
    struct key_pair token, reset, ticket;
};

/* `hex` (and `previous`, may be NULL) as keys of `len` bytes. */
static bool key_from_hex(struct key_pair *k, const char *hex, const char *previous, size_t len) {
    memset(k, 0, sizeof(*k));
    if (!parse_hex(hex, k->current, len) || (previous != NULL && !parse_hex(previous, k->previous, len))) {
        return false;
    }
    k->set = true;
    k->has_previous = previous != NULL;
    return true;
}

/* Reads a secrets file: lines "token|reset|ticket CURRENT [PREVIOUS]" in
 * hex (32, 32 and 48 bytes), blank lines and # comments. */
static bool load_secrets(const char *path, struct secrets *out) {
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        return false;
    }
    char line[512];
    int n = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof(line), f) != NULL) {
        n++;
        char name[16], cur[128], prev[128];
        int got = sscanf(line, " %15s %127s %127s", name, cur, prev);
        if (got <= 0 || name[0] == '#') {
            continue;
        }
        struct key_pair *k = strcmp(name, "token") == 0 ? &out->token
                           : strcmp(name, "reset") == 0 ? &out->reset
                           : strcmp(name, "ticket") == 0 ? &out->ticket : NULL;
        size_t len = k == &out->ticket ? 48 : 32;
        if (k == NULL || got < 2 || !key_from_hex(k, cur, got == 3 ? prev : NULL, len)) {
            fprintf(stderr, "%s:%d: expected \"token|reset|ticket CURRENT-HEX [PREVIOUS-HEX]\" "
                    "(%zu-byte keys for token and reset, 48 for ticket)\n", path, n, (size_t) 32);
            ok = false;
        }
    }
    fclose(f);
    return ok;
}

/* The secrets the options name: --secrets first, then --token-key,
 * --reset-key and --ticket-key over it. */
static bool option_secrets(const struct server_args *args, struct secrets *s) {
    memset(s, 0, sizeof(*s));
    if (args->secrets != NULL && !load_secrets(args->secrets, s)) {
        return false;
    }
    if (args->token_key != NULL && !key_from_hex(&s->token, args->token_key, NULL, 32)) {
        fprintf(stderr, "--token-key needs 64 hex digits\n");
        return false;
    }
    if (args->reset_key != NULL && !key_from_hex(&s->reset, args->reset_key, NULL, 32)) {
        fprintf(stderr, "--reset-key needs 64 hex digits\n");
        return false;
    }
    if (args->ticket_key != NULL && !key_from_hex(&s->ticket, args->ticket_key, NULL, 48)) {
        fprintf(stderr, "--ticket-key needs 96 hex digits\n");
        return false;
    }
    return true;
}

static const uint8_t *previous_of(const struct key_pair *k) {
    return k->has_previous ? k->previous : NULL;
}

/* The ticket keys are the process's (every config of quiche_ev_config_new). */
static bool apply_ticket_keys(const struct secrets *s) {
    return !s->ticket.set ||
           quiche_ev_set_ticket_keys(s->ticket.current, previous_of(&s->ticket), 48) == 0;
}

static bool apply_server_secrets(quiche_ev_server *server, const struct secrets *s) {
    return (!s->token.set ||
            quiche_ev_server_set_token_keys(server, s->token.current, previous_of(&s->token), 32) == 0) &&
           (!s->reset.set ||
            quiche_ev_server_set_reset_keys(server, s->reset.current, previous_of(&s->reset), 32) == 0) &&
           apply_ticket_keys(s);
}

static bool apply_group_secrets(quiche_ev_workers *w, const struct secrets *s) {
    return (!s->token.set ||
            quiche_ev_workers_set_token_keys(w, s->token.current, previous_of(&s->token), 32) == 0) &&
           (!s->reset.set ||
            quiche_ev_workers_set_reset_keys(w, s->reset.current, previous_of(&s->reset), 32) == 0) &&
           apply_ticket_keys(s);
}

/* The QUIC-LB layout the options ask for: false when none. */
struct layout {
    uint8_t server_id[15];
    size_t server_id_len;
    uint8_t key[16];
    bool has_key;
    size_t nonce_len;
    int config_id;
};

static bool option_layout(const struct server_args *args, struct layout *l, bool *ok) {
    *ok = true;
    memset(l, 0, sizeof(*l));
    if (args->server_id == NULL) {
        if (args->cid_key != NULL || args->config_id != 0 || args->nonce_len != 0) {
            fprintf(stderr, "--cid-key, --config-id and --nonce-len need --server-id\n");
            *ok = false;
        }
        return false;
    }
    size_t digits = strlen(args->server_id);
    l->server_id_len = digits / 2;
    if (digits % 2 != 0 || l->server_id_len < 1 || l->server_id_len > 15 ||
        !parse_hex(args->server_id, l->server_id, l->server_id_len)) {
        fprintf(stderr, "--server-id needs 2 to 30 hex digits (1 to 15 bytes)\n");
        *ok = false;
        return false;
    }
    if (args->cid_key != NULL) {
        if (!parse_hex(args->cid_key, l->key, 16)) {
            fprintf(stderr, "--cid-key needs 32 hex digits\n");
            *ok = false;
            return false;
        }
        l->has_key = true;
    }
    long nonce = args->nonce_len != 0 ? args->nonce_len : 16 - (long) l->server_id_len;
    l->nonce_len = (size_t) (nonce < 4 ? 4 : nonce);
    l->config_id = (int) args->config_id;
    return true;
}

/* ---- one server: the options and SIGHUP ---- */

static void print_server_layout(const quiche_ev_server *server) {
    char line[256];
    quiche_ev_server_cid_layout(server, line, sizeof(line));
    fprintf(stderr, "cid layout: %s\n", line);
}

bool apply_scale_options(quiche_ev_server *server, const struct server_args *args) {
    struct layout l;
    bool ok;
    if (option_layout(args, &l, &ok) &&
        quiche_ev_server_set_cid_layout(server, l.config_id, l.server_id, l.server_id_len, l.nonce_len,
                                        l.has_key ? l.key : NULL, l.has_key ? 16 : 0, -1) != 0) {
        fprintf(stderr, "bad CID layout: %s\n", quiche_ev_last_error());
        return false;
    }
    if (!ok) {
        return false;
    }
    struct secrets s;
    if (!option_secrets(args, &s) || !apply_server_secrets(server, &s)) {
        return false;
    }
    print_server_layout(server);
    return true;
}

struct reload {
    const struct server_args *args;
    quiche_ev_server *server;   /* one server, or */
    quiche_ev_workers *workers; /* a group */
};

/* SIGHUP: the secrets file again (a rotation: the new current and the
 * previous key in it). */
static void reload_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void) loop;
    (void) revents;
    struct reload *r = w->data;
    struct secrets s;
    if (r->args->secrets == NULL) {
        fprintf(stderr, "SIGHUP: no --secrets file to re-read\n");
        return;
    }
    bool ok = load_secrets(r->args->secrets, &s) &&
              (r->server != NULL ? apply_server_secrets(r->server, &s) : apply_group_secrets(r->workers, &s));
    fprintf(stderr, "SIGHUP: secrets %s from %s\n", ok ? "reloaded" : "NOT reloaded", r->args->secrets);
}

/* ---- workers ---- */

/* Which worker this thread is (the log prefix), -1 on the main thread. */
static _Thread_local int this_worker = -1;

static void worker_log(int level, const char *msg, void *user) {
    (void) level;
    (void) user;
    if (this_worker >= 0) {
        fprintf(stderr, "worker %d: %s\n", this_worker, msg);
    } else {
        fprintf(stderr, "%s\n", msg);
    }
}

struct workers_run {
    struct ev_loop *loop;
    quiche_ev_workers *workers;
    const struct worker_hooks *hooks;
    long drain_ms;
    int signals;
    int status;
    ev_signal sigint_watcher, sigterm_watcher, sighup_watcher, sigusr1_watcher;
};

static quiche_ev_server *workers_start(const quiche_ev_worker_info *info, void *user) {
    struct workers_run *run = user;
    this_worker = (int) info->index;
    return run->hooks->start(info, run->hooks->user);
}

static void workers_stop(const quiche_ev_worker_info *info, void *user) {
    struct workers_run *run = user;
    run->hooks->stop(info, run->hooks->user);
}

static void workers_exit(quiche_ev_workers *workers, unsigned index, int status, void *user) {
    (void) workers;
    (void) user;
    fprintf(stderr, "worker %u exited: %s\n", index, status == 0 ? "stopped" : quiche_ev_strerror(status));
}

static void workers_stopped(quiche_ev_workers *workers, int status, void *user) {
    (void) workers;
    struct workers_run *run = user;
    run->status = status == 0 ? 0 : 1;
    /* Our own watchers are all that is left on the loop. */
    ev_signal_stop(run->loop, &run->sigint_watcher);
    ev_signal_stop(run->loop, &run->sigterm_watcher);
    ev_signal_stop(run->loop, &run->sighup_watcher);
    ev_signal_stop(run->loop, &run->sigusr1_watcher);
}

static void workers_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void) loop;
    (void) revents;
    struct workers_run *run = w->data;
    fprintf(stderr, "signal %d: shutting down\n", w->signum);
    quiche_ev_workers_shutdown(run->workers, run->signals++ == 0 ? (uint64_t) run->drain_ms : 0);
}

static void workers_abort_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void) loop;
    (void) revents;
    struct workers_run *run = w->data;
    for (int i = quiche_ev_workers_count(run->workers) - 1; i >= 0; i--) {
        if (quiche_ev_workers_running(run->workers, (unsigned) i) == 1) {
            fprintf(stderr, "SIGUSR1: aborting worker %d\n", i);
            quiche_ev_workers_abort(run->workers, (unsigned) i);
            return;
        }
    }
}

int run_workers(const struct server_args *args, const struct addrinfo *local,
                const struct worker_hooks *hooks) {
    quiche_ev_set_log(worker_log, NULL, log_level());
    quiche_ev_workers *w = quiche_ev_workers_new(local->ai_addr, local->ai_addrlen, (unsigned) args->workers);
    if (w == NULL) {
        fprintf(stderr, "cannot start %ld workers: %s\n", args->workers, quiche_ev_last_error());
        return 1;
    }
    int status = 1;
    struct layout l;
    bool ok;
    struct secrets s;
    if (option_layout(args, &l, &ok) &&
        quiche_ev_workers_set_cid_layout(w, l.config_id, l.server_id, l.server_id_len, l.nonce_len,
                                         l.has_key ? l.key : NULL, l.has_key ? 16 : 0) != 0) {
        fprintf(stderr, "bad CID layout: %s\n", quiche_ev_last_error());
        ok = false;
    }
    if (!ok || !option_secrets(args, &s) || !apply_group_secrets(w, &s)) {
        quiche_ev_workers_free(w);
        return 1;
    }

    struct ev_loop *loop = ev_default_loop(0);
    struct workers_run run = { .loop = loop, .workers = w, .hooks = hooks, .drain_ms = args->drain_ms, .status = 1 };
    quiche_ev_workers_set_user_data(w, &run);
    quiche_ev_workers_on_start(w, workers_start);
    quiche_ev_workers_on_stop(w, workers_stop);
    quiche_ev_workers_on_exit(w, workers_exit);
    quiche_ev_workers_on_stopped(w, workers_stopped);

    char line[256];
    quiche_ev_workers_cid_layout(w, line, sizeof(line));
    fprintf(stderr, "cid layout: %s\n", line);
    if (quiche_ev_workers_start(w, loop) != 0) {
        fprintf(stderr, "cannot start the workers: %s\n", quiche_ev_last_error());
        quiche_ev_workers_free(w);
        return 1;
    }

    struct reload reload = { args, NULL, w };
    ev_signal_init(&run.sigint_watcher, workers_signal, SIGINT);
    ev_signal_init(&run.sigterm_watcher, workers_signal, SIGTERM);
    ev_signal_init(&run.sighup_watcher, reload_signal, SIGHUP);
    ev_signal_init(&run.sigusr1_watcher, workers_abort_signal, SIGUSR1);
    run.sigint_watcher.data = run.sigterm_watcher.data = run.sigusr1_watcher.data = &run;
    run.sighup_watcher.data = &reload;
    ev_signal_start(loop, &run.sigint_watcher);
    ev_signal_start(loop, &run.sigterm_watcher);
    ev_signal_start(loop, &run.sighup_watcher);
    ev_signal_start(loop, &run.sigusr1_watcher);

    fprintf(stderr, "%ld workers\n", args->workers);
    print_listening(quiche_ev_workers_socket(w, 0));
    ev_run(loop, 0);   /* until every worker exited (workers_stopped) */
    status = run.status;

    quiche_ev_counters sum;
    memset(&sum, 0, sizeof(sum));
    for (int i = 0; i < quiche_ev_workers_count(w); i++) {
        quiche_ev_counters c;
        c.size = sizeof(c);
        if (quiche_ev_workers_counters(w, (unsigned) i, &c) != 0) {
            continue;
        }
        char label[64];
        snprintf(label, sizeof(label), "server counters (worker %d)", i);
        print_counter_line(label, &c);
        sum.accepted += c.accepted; sum.closed += c.closed; sum.refused += c.refused;
        sum.retries += c.retries; sum.invalid_tokens += c.invalid_tokens;
        sum.version_negotiations += c.version_negotiations; sum.stateless_resets += c.stateless_resets;
        sum.dropped_malformed += c.dropped_malformed; sum.dropped_unknown += c.dropped_unknown;
        sum.dropped_short += c.dropped_short; sum.dropped_late += c.dropped_late;
        sum.dropped_rate_limited += c.dropped_rate_limited; sum.dropped_misrouted += c.dropped_misrouted;
    }
    print_counter_line("server counters", &sum);
    quiche_ev_workers_free(w);
    ev_loop_destroy(loop);
    return status;
}

/* One worker of server / http3-server: its own quiche_config (and
 * quiche_h3_config), its server, the per-server options. */
struct example_worker {
    quiche_config *config;
    quiche_h3_config *h3_config;
};

static struct example_worker example_workers[32];

quiche_ev_server *example_worker_start(const quiche_ev_worker_info *info, void *user) {
    const struct example_worker_config *wc = user;
    struct example_worker *me = &example_workers[info->index];
    me->config = wc->make_config(wc->args);
    me->h3_config = wc->h3 ? quiche_h3_config_new() : NULL;
    if (me->config == NULL || (wc->h3 && me->h3_config == NULL)) {
        return NULL;
    }
    quiche_ev_server *server = quiche_ev_server_new(info->loop_, info->sock, info->local, info->local_len,
                                                    me->config, me->h3_config);
    if (server != NULL && !apply_server_options(server, wc->args)) {
        quiche_ev_server_free(server);
        return NULL;
    }
    return server;
}

void example_worker_stop(const quiche_ev_worker_info *info, void *user) {
    (void) user;
    struct example_worker *me = &example_workers[info->index];
    /* The group freed the worker's server: its configs may go. */
    if (me->h3_config != NULL) {
        quiche_h3_config_free(me->h3_config);
    }
    if (me->config != NULL) {
        quiche_config_free(me->config);
    }
    me->config = NULL;
    me->h3_config = NULL;
}

int run_server(struct ev_loop *loop, int sock, quiche_ev_server *server,
               const struct server_args *args) {
    if (!apply_server_options(server, args) || !apply_scale_options(server, args)) {
        return 1;
    }

    struct server_run run = { loop, server, args->drain_ms, 0, 1 };
    quiche_ev_server_set_user_data(server, &run);
    quiche_ev_server_on_stopped(server, server_stopped);

    struct reload reload = { args, server, NULL };
    ev_signal sighup_watcher;
    ev_signal_init(&sighup_watcher, reload_signal, SIGHUP);
    sighup_watcher.data = &reload;
    ev_signal_start(loop, &sighup_watcher);

    print_listening(sock);
    run_watched(loop, sock, quiche_ev_server_recv_cb, server, server_signal, &run);
    ev_signal_stop(loop, &sighup_watcher);
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
