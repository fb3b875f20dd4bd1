/* Stand-in for cargo check's bindgen run: see README. struct tm as macOS,
 * FreeBSD and musl have it (tm_gmtoff and tm_zone last). */
#pragma once
#include <sys/types.h>
struct tm {
    int tm_sec, tm_min, tm_hour, tm_mday, tm_mon, tm_year, tm_wday, tm_yday, tm_isdst;
    long tm_gmtoff;
    char *tm_zone;
};
