/* Stand-in for cargo check's bindgen run: see README. x86_64 (LP64). */
#pragma once
#include <stddef.h>
#include <stdint.h>
typedef long time_t;
typedef long ssize_t;
typedef int64_t off_t;
