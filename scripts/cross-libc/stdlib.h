/* Stand-in for cargo check's bindgen run: see README. */
#pragma once
#include <stddef.h>
