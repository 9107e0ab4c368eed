/* eob_link.h: the serial link of a device: frames in and out through the HAL, with replies and NACKs.
 *
 * One eob_link per serial port, with its buffers (eob_link_buffers, about 3 KB at EOB_MAX_PAYLOAD 1024)
 * owned by the caller. eob_link_poll() reads what the HAL has and returns the next request; a frame whose
 * message does not decode is answered with a NACK right there. Replies carry the request's seq;
 * eob_link_emit() numbers unsolicited frames (HELLO, TELEMETRY, EVENT) itself.
 */
#ifndef EOB_LINK_H_
#define EOB_LINK_H_

#include <stdbool.h>
#include <stdint.h>

#include "eob_frame.h"
#include "eob_hal.h"
#include "eob_msg.h"
#include "eob_slots.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  uint8_t rx[EOB_RX_BUFFER_SIZE];
  uint8_t tx_payload[EOB_MAX_PAYLOAD];
  uint8_t tx_line[EOB_TX_BUFFER_SIZE];
} eob_link_buffers;

typedef struct {
  const eob_hal *hal;
  eob_link_buffers *buf;
  eob_decoder rx;
  uint16_t seq;         /* the next unsolicited frame's seq */
  uint32_t tx_frames;   /* frames written whole */
  uint32_t tx_dropped;  /* frames the HAL did not take whole, or that did not encode */
  uint32_t rx_rejected; /* good frames answered with a NACK by eob_link_poll (version, type, body) */
} eob_link;

bool eob_link_init(eob_link *l, const eob_hal *hal, eob_link_buffers *buf);

/* Reads from the HAL until a request decodes (true: *msg and *seq set; strings and blobs point into the
 * link's receive buffer, valid until the next poll) or no byte is waiting (false). */
bool eob_link_poll(eob_link *l, eob_msg *msg, uint16_t *seq);

/* Sends msg with the given seq (a reply) / with the link's own next seq (unsolicited). */
bool eob_link_send(eob_link *l, const eob_msg *msg, uint16_t seq);
bool eob_link_emit(eob_link *l, const eob_msg *msg);
bool eob_link_ack(eob_link *l, uint8_t request, uint16_t seq, uint32_t value);
bool eob_link_nack(eob_link *l, uint8_t request, uint16_t seq, uint16_t error, const char *detail);

/* Answers PING with PONG; true when msg was a PING. */
bool eob_link_handle_ping(eob_link *l, const eob_msg *msg, uint16_t seq);
/* Answers MODEL_OFFER, MODEL_CHUNK, MODEL_COMMIT and MODEL_STATUS_REQ through the slots (NACK on an
 * error); true when msg was one of them. slots may be NULL: then they are answered NACK(UNSUPPORTED). */
bool eob_link_handle_model(eob_link *l, eob_slots *slots, const eob_msg *msg, uint16_t seq);

/* Receive-side counters for TELEMETRY. */
uint32_t eob_link_rx_frames(const eob_link *l);
uint32_t eob_link_rx_dropped(const eob_link *l);

#ifdef __cplusplus
}
#endif

#endif
