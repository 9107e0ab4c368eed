/* eob_demo.h: the portable demo application of firmware_bridge: the example digits model, compiled by
 * `edgeops convert --format c --codegen` in blob mode (app/model/), served over the serial link.
 *
 * Call eob_demo_init() once at start and eob_demo_step() from the main loop, as often as it can run; it never
 * blocks. It answers every request of WIRE.md (HELLO_REQ, PING, INFER_REQ, MODEL_*, TELEMETRY_REQ, RESET),
 * sends HELLO after every start, TELEMETRY every telemetry_ms and EVENTs, and runs the model on its built-in
 * labelled samples every loop_ms (the inference loop that TELEMETRY reports).
 *
 * Model updates (image format EOB_DEMO_IMAGE_FORMAT): the firmware keeps the compiled graph; a slot image
 * carries the model's constant data (the blob: weights, biases, per-channel multipliers and shifts, tables)
 * behind a 96-byte header that binds it to the graph:
 *
 *   offset size field
 *   0      4    magic 0x4D424F45 ("EOBM"), u32 LE
 *   4      2    layout version (1)
 *   6      2    header size (96): the blob starts there
 *   8      32   graph hash: DIGITS_GRAPH_HASH_BYTES of the code the blob is for
 *   40     4    blob size (DIGITS_BLOB_SIZE)
 *   44     4    CRC-32 of the blob
 *   48     32   model name, NUL-padded
 *   80     16   model version, NUL-padded
 *
 * HELLO.firmware_version is cfg.firmware_version followed by " graph:" and the first 8 bytes of the graph
 * hash in hex, so a host can tell which images fit before it sends one.
 * An offer of another format or size, or a commit of an image whose header is not for this graph, is refused
 * (NACK UNSUPPORTED). A committed image starts in TESTING at the next start: the health check runs the
 * built-in samples and confirms it when at least health_min_correct are classified right and no run took
 * over health_max_latency_us; otherwise it reverts to the confirmed model at once (and a start in TESTING,
 * a reset during the check, reverts too). Build images with edgeops.bridge.image.build_image().
 *
 * All state lives in the caller's eob_demo (about 12 KB with the default EOB_MAX_PAYLOAD); no malloc, no
 * globals. C99.
 */
#ifndef EOB_DEMO_H_
#define EOB_DEMO_H_

#include <stdbool.h>
#include <stdint.h>

#include "digits_model.h"
#include "digits_samples.h"
#include "eob_link.h"
#include "eob_slots.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EOB_DEMO_IMAGE_FORMAT 1         /* MODEL_OFFER.format / HELLO.model_format of a digits blob image */
#define EOB_DEMO_IMAGE_MAGIC 0x4D424F45u /* "EOBM" */
#define EOB_DEMO_IMAGE_HEADER 96
#define EOB_DEMO_IMAGE_SIZE (EOB_DEMO_IMAGE_HEADER + DIGITS_BLOB_SIZE)
#define EOB_DEMO_LATENCY_WINDOW 128     /* runs whose latency a TELEMETRY summarises exactly (then min/max/mean) */

/* EVENT codes (WIRE.md's suggestions, plus the demo's own). */
#define EOB_EV_IMAGE_VERIFIED 0x0101
#define EOB_EV_TRIAL_STARTED 0x0103
#define EOB_EV_CONFIRMED 0x0104
#define EOB_EV_REVERTED 0x0105
#define EOB_EV_MODEL_FALLBACK 0x0106 /* a slot image could not be loaded: the built-in model runs */
#define EOB_EV_INFER_FAILED 0x0201

typedef struct {
  const char *device_id;        /* [A-Za-z0-9._-], at most 64 */
  const char *firmware_version;
  uint32_t loop_ms;             /* run the model on the next built-in sample every loop_ms; 0: never */
  uint32_t telemetry_ms;        /* unsolicited TELEMETRY every telemetry_ms; 0: only on request */
  uint32_t health_min_correct;  /* of DIGITS_SAMPLE_COUNT samples, for a trial image to be confirmed */
  uint32_t health_max_latency_us;
} eob_demo_config;

/* What the board adds to the HAL. Any pointer may be NULL. */
typedef struct {
  void *ctx;
  uint32_t (*ram_free)(void *ctx);              /* bytes; NULL: unknown */
  bool (*temperature)(void *ctx, int16_t *centi); /* NULL or false: no sensor */
  void (*reset)(void *ctx);                     /* restart the device (called after RESET's ACK is sent) */
} eob_demo_board;

typedef struct {
  eob_link link;
  eob_link_buffers bufs;
  eob_slots slots;
  const eob_hal *hal;
  eob_demo_config cfg;
  eob_demo_board board;
  bool has_slots;
  /* the running model */
  uint32_t blob[(DIGITS_BLOB_SIZE + 3) / 4]; /* a slot image's constants, copied from flash */
  const uint8_t *model_blob;                 /* blob, or the built-in digits_blob_words */
  char firmware[80];                         /* cfg.firmware_version + " graph:" + 16 hex of the graph hash */
  char model_name[EOB_NAME_MAX + 1];
  char model_version[EOB_VERSION_MAX + 1];
  uint8_t model_sha256[EOB_SHA256_SIZE];
  uint8_t arena[DIGITS_ARENA_SIZE];
  int8_t output[DIGITS_OUTPUT_SIZE];
  /* clocks */
  uint32_t last_us;
  uint64_t uptime_us;
  uint64_t next_loop_us, next_telemetry_us;
  /* counters */
  uint32_t sample;     /* the next built-in sample of the loop */
  uint32_t inferences, errors, correct;
  uint32_t tseq;
  uint32_t lat_n, lat_min, lat_max;
  uint64_t lat_sum;
  uint32_t lat[EOB_DEMO_LATENCY_WINDOW];
  bool reset_requested;
} eob_demo;

/* Starts the application: the link, the slots (eob_slots_boot: a PENDING image starts in TESTING), the model
 * of the running slot, HELLO, then the health check of a trial image (EVENTs trial started, then confirmed or
 * reverted). geo may be NULL: no model update (HELLO.slot_count 0). false when the HAL lacks serial I/O or a
 * clock, or the geometry is bad. */
bool eob_demo_init(eob_demo *d, const eob_hal *hal, const eob_flash_geometry *geo, const eob_demo_board *board,
                   const eob_demo_config *cfg);

/* Answers what arrived, runs the loop's inference and sends TELEMETRY when due. Returns false once a RESET
 * was acknowledged and board->reset is NULL (the caller restarts the device then). */
bool eob_demo_step(eob_demo *d);

/* Runs the running model on one input (DIGITS_INPUT_SIZE bytes) into d->output and counts it: 0, or an
 * eob_err (EOB_ERR_INFER). *latency_us gets the run's time. */
uint16_t eob_demo_infer(eob_demo *d, const int8_t *input, uint32_t *latency_us);

/* The health check: correct classifications of the built-in samples with the given blob (NULL: the running
 * model), and the slowest run in *max_latency_us. */
uint32_t eob_demo_health(eob_demo *d, const uint8_t *blob, uint32_t *max_latency_us);

/* Milliseconds since init, from the HAL's microsecond clock (wraps handled while step is called at least
 * once every 71 minutes). */
uint64_t eob_demo_uptime_ms(eob_demo *d);

#ifdef __cplusplus
}
#endif

#endif
