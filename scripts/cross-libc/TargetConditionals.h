/* Stand-in for cargo check's bindgen run: see README. BoringSSL's
 * <openssl/target.h> includes it on Apple platforms: macOS. */
#pragma once
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
