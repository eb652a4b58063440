/* A stand-in for the Apple SDK's TargetConditionals.h, for check-only
 * builds of ring and blake3 for aarch64-apple-darwin on Linux (.ci/run).
 * Nothing built with it is ever run or linked. */
#ifndef SHOAL_STUB_TARGET_CONDITIONALS_H
#define SHOAL_STUB_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_MACCATALYST 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_TV 0
#define TARGET_OS_VISION 0
#define TARGET_OS_BRIDGE 0
#define TARGET_OS_DRIVERKIT 0
#define TARGET_OS_SIMULATOR 0
#define TARGET_OS_EMBEDDED 0
#define TARGET_CPU_ARM64 1
#endif
