/* Stand-in for cargo check's bindgen run: see README. FILE is opaque to
 * BoringSSL's headers (and bindgen is told so). */
#pragma once
#include <stddef.h>
#include <stdarg.h>
typedef struct __sFILE FILE;
