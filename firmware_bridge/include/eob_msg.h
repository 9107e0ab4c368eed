/* eob_msg.h: firmware_bridge messages (WIRE.md, "Message types"): one struct per message, one codec.
 *
 * eob_msg_decode() reads a frame's body into an eob_msg without copying: strings and blobs point into
 * the frame (so into the decoder's buffer: use them before the next byte is pushed). eob_msg_encode()
 * writes header and body into a caller's buffer; eob_frame_encode() then makes the line bytes of it.
 * Strings are not NUL-terminated on either side (eob_str_of() wraps a C string for sending).
 */
#ifndef EOB_MSG_H_
#define EOB_MSG_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eob_config.h"
#include "eob_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EOB_SHA256_SIZE 32
#define EOB_SLOT_NONE 0xFFu           /* no slot: the model built into the firmware, or no trial */
#define EOB_TEMPERATURE_UNKNOWN (-32768)
#define EOB_RAM_UNKNOWN 0xFFFFFFFFu
#define EOB_MAX_RANK 4

typedef enum {
  EOB_HELLO_REQ = 0x01,
  EOB_PING = 0x02,
  EOB_INFER_REQ = 0x03,
  EOB_MODEL_OFFER = 0x04,
  EOB_MODEL_CHUNK = 0x05,
  EOB_MODEL_COMMIT = 0x06,
  EOB_MODEL_STATUS_REQ = 0x07,
  EOB_TELEMETRY_REQ = 0x08,
  EOB_RESET = 0x09,
  EOB_HELLO = 0x81,
  EOB_PONG = 0x82,
  EOB_INFER_RESP = 0x83,
  EOB_MODEL_STATUS = 0x84,
  EOB_TELEMETRY = 0x88,
  EOB_EVENT = 0x8A,
  EOB_ACK = 0xF0,
  EOB_NACK = 0xF1
} eob_msg_type;

typedef enum {
  EOB_OK = 0,
  EOB_ERR_VERSION = 1,
  EOB_ERR_TYPE = 2,
  EOB_ERR_MALFORMED = 3,
  EOB_ERR_TOO_LARGE = 4,
  EOB_ERR_BUSY = 5,
  EOB_ERR_NO_TRANSFER = 6,
  EOB_ERR_CHUNK_INDEX = 7,
  EOB_ERR_CHUNK_CRC = 8,
  EOB_ERR_INCOMPLETE = 9,
  EOB_ERR_HASH = 10,
  EOB_ERR_FLASH = 11,
  EOB_ERR_NO_SPACE = 12,
  EOB_ERR_INFER = 13,
  EOB_ERR_INPUT_SIZE = 14,
  EOB_ERR_UNSUPPORTED = 15,
  EOB_ERR_STATE = 16
} eob_err;

typedef enum { EOB_BOOT_CONFIRMED = 0, EOB_BOOT_PENDING = 1, EOB_BOOT_TESTING = 2 } eob_boot_state;
typedef enum { EOB_TRANSFER_NONE = 0, EOB_TRANSFER_RECEIVING = 1, EOB_TRANSFER_VERIFIED = 2 } eob_transfer_state;
typedef enum { EOB_INT8 = 1, EOB_UINT8 = 2, EOB_INT16 = 3, EOB_INT32 = 4, EOB_FLOAT32 = 5 } eob_dtype;
typedef enum { EOB_DEBUG = 0, EOB_INFO = 1, EOB_WARNING = 2, EOB_ERROR = 3 } eob_level;

#define EOB_CAP_INFER (1u << 0)
#define EOB_CAP_MODEL_UPDATE (1u << 1)
#define EOB_CAP_TEMPERATURE (1u << 2)
#define EOB_CAP_RESET (1u << 3)
#define EOB_STATUS_RANGES_TRUNCATED (1u << 0) /* eob_model_status.flags */
#define EOB_STATUS_REVERTED (1u << 1)
#define EOB_BOOT_FLAG_REVERTED (1u << 0)      /* eob_hello.boot_flags */

typedef struct {
  const uint8_t *data;
  uint16_t len;
} eob_bytes;

typedef struct {
  const char *data; /* UTF-8, not NUL-terminated */
  uint8_t len;
} eob_str;

typedef struct {
  uint8_t dtype; /* eob_dtype */
  uint8_t rank;  /* 0..EOB_MAX_RANK */
  uint16_t dims[EOB_MAX_RANK];
  float scale;
  int32_t zero_point;
} eob_tensor;

typedef struct {
  uint32_t first, count;
} eob_range;

typedef struct { uint32_t nonce; eob_bytes data; } eob_ping; /* PING and PONG */
typedef struct { eob_bytes input; } eob_infer_req;
typedef struct { uint16_t status; uint32_t latency_us; eob_bytes output; } eob_infer_resp;

typedef struct {
  uint32_t image_size;
  uint16_t chunk_size;
  uint8_t format;
  uint8_t sha256[EOB_SHA256_SIZE];
  eob_str name, version;
} eob_model_offer;

typedef struct { uint32_t tag, index, crc32; eob_bytes data; } eob_model_chunk;
typedef struct { uint8_t sha256[EOB_SHA256_SIZE]; } eob_model_commit;

typedef struct {
  uint8_t boot_state, running_slot, confirmed_slot, trial_slot, transfer, flags;
  uint16_t last_error;
  uint8_t sha256[EOB_SHA256_SIZE];
  uint32_t image_size;
  uint16_t chunk_size;
  uint32_t chunks_total, chunks_missing;
  uint8_t n_ranges;
  eob_range missing[EOB_STATUS_MAX_RANGES];
} eob_model_status;

typedef struct {
  uint8_t protocol;
  uint32_t capabilities;
  uint16_t max_payload;
  eob_str device_id, firmware_version, model_name, model_version;
  uint8_t model_sha256[EOB_SHA256_SIZE];
  uint8_t model_format;
  uint32_t arena_bytes;
  eob_tensor input, output;
  uint8_t slot_count, running_slot, boot_state, boot_flags;
  uint32_t slot_size;
} eob_hello;

typedef struct {
  uint32_t tseq;
  uint64_t uptime_ms;
  uint32_t inferences, errors;
  uint32_t latency_count, latency_min_us, latency_mean_us, latency_p50_us, latency_p90_us, latency_p99_us,
      latency_max_us;
  uint32_t ram_free;
  int16_t temperature_centi;
  uint32_t rx_frames, rx_dropped, tx_dropped;
  uint8_t running_slot, boot_state;
} eob_telemetry;

typedef struct { uint8_t level; uint16_t code; uint64_t uptime_ms; eob_str text; } eob_event;
typedef struct { uint8_t request; uint32_t value; } eob_ack;
typedef struct { uint8_t request; uint16_t error; eob_str detail; } eob_nack;

typedef struct {
  uint8_t type; /* eob_msg_type: selects the member of u; the empty requests have none */
  union {
    eob_ping ping; /* EOB_PING and EOB_PONG */
    eob_infer_req infer_req;
    eob_infer_resp infer_resp;
    eob_model_offer offer;
    eob_model_chunk chunk;
    eob_model_commit commit;
    eob_model_status status;
    eob_hello hello;
    eob_telemetry telemetry;
    eob_event event;
    eob_ack ack;
    eob_nack nack;
  } u;
} eob_msg;

/* A frame's message into *out: EOB_OK, EOB_ERR_VERSION (header version is not 1), EOB_ERR_TYPE (unknown
 * type) or EOB_ERR_MALFORMED (short body, bytes left over, rank over 4, too many status ranges). */
eob_err eob_msg_decode(const eob_frame *frame, eob_msg *out);

/* Header (version 1, m->type, seq) and body into buf: true and *len, or false when a field is out of range
 * or the payload would pass cap or EOB_MAX_PAYLOAD. */
bool eob_msg_encode(const eob_msg *m, uint16_t seq, uint8_t *buf, size_t cap, size_t *len);

/* eob_msg_encode then eob_frame_encode: the line bytes in line (EOB_TX_BUFFER_SIZE is enough), using
 * payload (EOB_MAX_PAYLOAD bytes) as scratch; 0 on failure. */
size_t eob_msg_to_line(const eob_msg *m, uint16_t seq, uint8_t *payload, size_t payload_cap, uint8_t *line,
                       size_t line_cap);

/* A C string as an eob_str (the first 255 bytes at most). */
eob_str eob_str_of(const char *s);

/* The transfer tag of an image: its SHA-256's first 4 bytes as a u32 LE. */
uint32_t eob_transfer_tag(const uint8_t sha256[EOB_SHA256_SIZE]);

#ifdef __cplusplus
}
#endif

#endif
