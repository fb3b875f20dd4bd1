/* Stand-in for cargo check's bindgen run: see README. */
#pragma once
#include <stdint.h>
