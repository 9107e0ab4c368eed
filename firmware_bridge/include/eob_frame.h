/* eob_frame.h: firmware_bridge framing (WIRE.md, "Framing"): COBS, a CRC-32 per frame, 0x00 delimiters.
 *
 * On the line a frame is COBS(payload || crc32(payload) as u32 LE) || 0x00, and a payload is the 4-byte
 * header (u8 version, u8 type, u16 seq LE) and the body. The decoder takes bytes as they come (one at a
 * time from a UART interrupt, or a block from a DMA buffer), drops and counts garbage, bad CRCs, broken
 * COBS and oversize frames, and resynchronises on the next 0x00. C99, no malloc, no globals: the caller
 * owns every buffer, and every function that can fail returns false (or 0) and must be checked.
 */
#ifndef EOB_FRAME_H_
#define EOB_FRAME_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eob_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EOB_PROTOCOL_VERSION 1
#define EOB_HEADER_SIZE 4
#define EOB_CRC_SIZE 4

/* Bytes on the line for a payload of p bytes at most, the 0x00 delimiter included. */
#define EOB_FRAME_MAX_ENCODED(p) ((p) + EOB_CRC_SIZE + ((p) + EOB_CRC_SIZE) / 254 + 2)
/* Receive buffer for the decoder (COBS bytes of the longest frame, delimiter excluded). */
#define EOB_RX_BUFFER_SIZE (EOB_FRAME_MAX_ENCODED(EOB_MAX_PAYLOAD) - 1)
/* Transmit buffer for eob_frame_encode (the delimiter included). */
#define EOB_TX_BUFFER_SIZE EOB_FRAME_MAX_ENCODED(EOB_MAX_PAYLOAD)

/* A frame that passed the CRC; body points into the decoder's buffer (valid until its next push). */
typedef struct {
  uint8_t version;
  uint8_t type;
  uint16_t seq;
  const uint8_t *body;
  size_t body_len;
} eob_frame;

/* CRC-32/ISO-HDLC (IEEE 802.3, zlib): eob_crc32(data, n) == eob_crc32_update(0, data, n); to run it over
 * pieces, pass the previous result as crc. crc32("123456789") == 0xCBF43926. */
uint32_t eob_crc32(const uint8_t *data, size_t n);
uint32_t eob_crc32_update(uint32_t crc, const uint8_t *data, size_t n);

/* COBS encode n bytes into out (canonical: no empty block after a final 254-byte run); the encoded length,
 * or 0 when out_cap is too small. in and out must not overlap. */
size_t eob_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t out_cap);
/* COBS decode n bytes (no 0x00 among them) into out; false on broken COBS or a too small out. out may be in
 * (decoding in place is safe). */
bool eob_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t out_cap, size_t *out_len);

/* The line bytes of a payload (header + body): COBS(payload || CRC) and the 0x00; the length, or 0 when the
 * payload is shorter than a header, longer than EOB_MAX_PAYLOAD, or out_cap (EOB_TX_BUFFER_SIZE is enough)
 * too small. */
size_t eob_frame_encode(const uint8_t *payload, size_t n, uint8_t *out, size_t out_cap);

/* The streaming decoder. */
typedef struct {
  uint8_t *buf;        /* caller-owned, cap bytes: EOB_RX_BUFFER_SIZE for max_payload = EOB_MAX_PAYLOAD */
  size_t cap;
  size_t max_payload;  /* header + body; frames with more are dropped as oversize */
  size_t len;          /* COBS bytes of the frame being received */
  bool skipping;       /* an oversize frame: dropping bytes up to the next 0x00 */
  uint32_t frames;     /* good frames */
  uint32_t bad_cobs;   /* broken COBS, or fewer than 8 bytes (header and CRC) */
  uint32_t bad_crc;
  uint32_t oversize;
} eob_decoder;

/* max_payload between 4 and EOB_MAX_PAYLOAD, and cap at least EOB_FRAME_MAX_ENCODED(max_payload) - 1;
 * false otherwise. */
bool eob_decoder_init(eob_decoder *d, uint8_t *buf, size_t cap, size_t max_payload);
/* Forget a half-received frame (the counters stay). */
void eob_decoder_reset(eob_decoder *d);
/* One byte in: true when it completed a good frame, then written to *out (its body lives in d->buf until
 * the next push). */
bool eob_decoder_push(eob_decoder *d, uint8_t byte, eob_frame *out);
/* Up to n bytes in, stopping after the first good frame: the bytes used (feed the rest in the next call);
 * *got says whether *out holds a frame. */
size_t eob_decoder_feed(eob_decoder *d, const uint8_t *data, size_t n, eob_frame *out, bool *got);
/* Frames dropped so far (bad_cobs + bad_crc + oversize). */
uint32_t eob_decoder_dropped(const eob_decoder *d);

#ifdef __cplusplus
}
#endif

#endif
