/* eob_config.h: compile-time options of the firmware_bridge link library (the eob_* files).
 *
 * Override any of them with -D on the compiler's command line (the same value on every file), e.g.
 * -DEOB_MAX_PAYLOAD=512. The gateway learns EOB_MAX_PAYLOAD from HELLO; the rest stay on the device.
 */
#ifndef EOB_CONFIG_H_
#define EOB_CONFIG_H_

/* Largest payload (4-byte header + body, CRC excluded) a frame may carry, both directions. The receive
 * buffer is EOB_RX_BUFFER_SIZE bytes; a model chunk carries at most EOB_MAX_PAYLOAD - 18 bytes of data. */
#ifndef EOB_MAX_PAYLOAD
#define EOB_MAX_PAYLOAD 1024
#endif

/* Missing-chunk ranges a MODEL_STATUS lists at most (8 bytes each); more set the "truncated" flag. */
#ifndef EOB_STATUS_MAX_RANGES
#define EOB_STATUS_MAX_RANGES 16
#endif

/* Chunks a model image may have (a bitmap of EOB_MAX_CHUNKS / 8 bytes lives in eob_slots). */
#ifndef EOB_MAX_CHUNKS
#define EOB_MAX_CHUNKS 2048
#endif

/* Longest model name and version a slot header stores (bytes, no terminator). */
#define EOB_NAME_MAX 32
#define EOB_VERSION_MAX 16

#if EOB_MAX_PAYLOAD < 64 || EOB_MAX_PAYLOAD > 65535
#error "EOB_MAX_PAYLOAD must be between 64 and 65535"
#endif
#if EOB_STATUS_MAX_RANGES < 1 || EOB_STATUS_MAX_RANGES > 255
#error "EOB_STATUS_MAX_RANGES must be between 1 and 255"
#endif
#if EOB_MAX_CHUNKS < 8 || (EOB_MAX_CHUNKS % 8) != 0
#error "EOB_MAX_CHUNKS must be a positive multiple of 8"
#endif

#endif
