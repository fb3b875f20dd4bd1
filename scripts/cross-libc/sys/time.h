/* Stand-in for cargo check's bindgen run: see README. macOS's
 * suseconds_t is 32 bits, FreeBSD's and musl's a long. */
#pragma once
#include <sys/types.h>
struct timeval {
    time_t tv_sec;
#ifdef __APPLE__
    int32_t tv_usec;
#else
    long tv_usec;
#endif
};
