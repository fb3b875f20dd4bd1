/*
 * quiche.h as installed with quiche-ev (include/quiche_ev/quiche.h): the
 * pinned quiche's own header, upstream/quiche.h beside this file and
 * unchanged, behind one include that lets it compile first, last or
 * alone, in any language mode.
 *
 * quiche.h declares `struct timespec at` (quiche_recv_info,
 * quiche_send_info) but includes only <sys/time.h>, which leaves struct
 * timespec undefined on glibc in strict ISO C modes (-std=c99, c11, c17
 * with no feature macro): `#include <quiche.h>` before quiche_ev.h
 * failed there. POSIX's <sched.h> must define struct timespec, and
 * glibc's and musl's do so in every mode; on macOS and the BSDs
 * <sys/time.h> defines it already.
 *
 * Installed by `make install` (mk/install.mk); tests/header.rs compiles
 * both include orders in strict C and C++.
 */
#ifndef QUICHE_EV_QUICHE_H
#define QUICHE_EV_QUICHE_H

#include <sched.h>

#include "upstream/quiche.h"

#endif /* QUICHE_EV_QUICHE_H */
