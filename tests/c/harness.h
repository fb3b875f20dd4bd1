/* What the tests/c programs share: checks, configs, a deadline. */

#ifndef QUICHE_EV_TEST_HARNESS_H
#define QUICHE_EV_TEST_HARNESS_H

#include <stdbool.h>
#include <stdio.h>

#include <quiche_ev.h>

/* Failed checks so far. */
extern int failures;

/* A check: on failure, counts it and prints "FAIL file:line: message". */
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

/* HTTP/3 configs as the examples make them: the server's with the
 * certificate CERT and key KEY, the client's not verifying it. False
 * (with a message on stderr) when the certificate does not load. */
bool h3_configs(const char *cert, const char *key, quiche_config **server, quiche_config **client);

/* A failed check and the end of the loop if it still runs after `secs`;
 * `fired` is set then. */
void start_deadline(struct ev_loop *loop, double secs, bool *fired);
void stop_deadline(struct ev_loop *loop);

/* Prints "ok" or how many checks failed; the exit status. */
int report(void);

#endif
