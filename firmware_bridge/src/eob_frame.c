/* eob_frame.c: COBS, CRC-32 and the streaming frame decoder of firmware_bridge (WIRE.md, "Framing"). */
#include "eob_frame.h"

#include <string.h>

uint32_t eob_crc32_update(uint32_t crc, const uint8_t *data, size_t n) {
  /* bitwise, 4 bits at a time: a 16-entry table keeps it small on a microcontroller */
  static const uint32_t nibble[16] = {
      0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
      0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
  size_t i;
  crc = ~crc;
  for (i = 0; i < n; ++i) {
    crc ^= data[i];
    crc = (crc >> 4) ^ nibble[crc & 0x0Fu];
    crc = (crc >> 4) ^ nibble[crc & 0x0Fu];
  }
  return ~crc;
}

uint32_t eob_crc32(const uint8_t *data, size_t n) { return eob_crc32_update(0, data, n); }

/* A COBS encoder fed one byte at a time (so the payload and its CRC need not be contiguous). */
typedef struct {
  uint8_t *out;
  size_t cap, len, code_at;
  uint8_t code;
  bool ok;
} cobs_enc;

static void cobs_start(cobs_enc *e, uint8_t *out, size_t cap) {
  e->out = out;
  e->cap = cap;
  e->code_at = 0;
  e->len = 1; /* room for the first code byte */
  e->code = 1;
  e->ok = cap >= 1;
}

static void cobs_put(cobs_enc *e, uint8_t byte, bool last) {
  if (byte != 0) {
    if (e->len >= e->cap) {
      e->ok = false;
      return;
    }
    e->out[e->len++] = byte;
    ++e->code;
  }
  if (byte == 0 || e->code == 0xFF) {
    if (e->ok) e->out[e->code_at] = e->code;
    e->code = 1;
    e->code_at = e->len;
    if (byte == 0 || !last) { /* canonical: no empty block after a final full run */
      if (e->len >= e->cap) {
        e->ok = false;
        return;
      }
      ++e->len;
    } else {
      e->code_at = (size_t)-1; /* the final block is already closed */
    }
  }
}

static size_t cobs_finish(cobs_enc *e) {
  if (!e->ok) return 0;
  if (e->code_at != (size_t)-1) e->out[e->code_at] = e->code;
  return e->len;
}

size_t eob_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t out_cap) {
  cobs_enc e;
  size_t i;
  if (out == NULL || (in == NULL && n > 0)) return 0;
  cobs_start(&e, out, out_cap);
  for (i = 0; i < n && e.ok; ++i) cobs_put(&e, in[i], i + 1 == n);
  return cobs_finish(&e);
}

bool eob_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t out_cap, size_t *out_len) {
  size_t r = 0, w = 0;
  if (in == NULL || out == NULL || out_len == NULL) return false;
  while (r < n) {
    const uint8_t code = in[r];
    size_t k;
    if (code == 0 || (size_t)code > n - r) return false;
    if (w + (size_t)code - 1u > out_cap) return false;
    for (k = 1; k < code; ++k) {
      if (in[r + k] == 0) return false;
      out[w++] = in[r + k]; /* w <= r + k - 1 always: safe in place */
    }
    r += code;
    if (code < 0xFF && r < n) {
      if (w >= out_cap) return false;
      out[w++] = 0;
    }
  }
  *out_len = w;
  return true;
}

size_t eob_frame_encode(const uint8_t *payload, size_t n, uint8_t *out, size_t out_cap) {
  cobs_enc e;
  uint8_t crc_le[EOB_CRC_SIZE];
  uint32_t crc;
  size_t i, len;
  if (payload == NULL || out == NULL || n < EOB_HEADER_SIZE || n > EOB_MAX_PAYLOAD || out_cap < 2) return 0;
  crc = eob_crc32(payload, n);
  for (i = 0; i < EOB_CRC_SIZE; ++i) crc_le[i] = (uint8_t)(crc >> (8 * i));
  cobs_start(&e, out, out_cap - 1); /* keep room for the delimiter */
  for (i = 0; i < n && e.ok; ++i) cobs_put(&e, payload[i], false);
  for (i = 0; i < EOB_CRC_SIZE && e.ok; ++i) cobs_put(&e, crc_le[i], i + 1 == EOB_CRC_SIZE);
  len = cobs_finish(&e);
  if (len == 0) return 0;
  out[len] = 0;
  return len + 1;
}

bool eob_decoder_init(eob_decoder *d, uint8_t *buf, size_t cap, size_t max_payload) {
  if (d == NULL || buf == NULL || max_payload < EOB_HEADER_SIZE || max_payload > EOB_MAX_PAYLOAD ||
      cap < EOB_FRAME_MAX_ENCODED(max_payload) - 1u)
    return false;
  memset(d, 0, sizeof *d);
  d->buf = buf;
  d->cap = EOB_FRAME_MAX_ENCODED(max_payload) - 1u;
  d->max_payload = max_payload;
  return true;
}

void eob_decoder_reset(eob_decoder *d) {
  d->len = 0;
  d->skipping = false;
}

uint32_t eob_decoder_dropped(const eob_decoder *d) { return d->bad_cobs + d->bad_crc + d->oversize; }

static bool finish_frame(eob_decoder *d, eob_frame *out) {
  size_t n;
  uint32_t crc;
  const uint8_t *c;
  if (!eob_cobs_decode(d->buf, d->len, d->buf, d->cap, &n) || n < EOB_HEADER_SIZE + EOB_CRC_SIZE) {
    ++d->bad_cobs;
    return false;
  }
  n -= EOB_CRC_SIZE;
  if (n > d->max_payload) {
    ++d->oversize;
    return false;
  }
  c = d->buf + n;
  crc = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
  if (eob_crc32(d->buf, n) != crc) {
    ++d->bad_crc;
    return false;
  }
  ++d->frames;
  out->version = d->buf[0];
  out->type = d->buf[1];
  out->seq = (uint16_t)(d->buf[2] | d->buf[3] << 8);
  out->body = d->buf + EOB_HEADER_SIZE;
  out->body_len = n - EOB_HEADER_SIZE;
  return true;
}

bool eob_decoder_push(eob_decoder *d, uint8_t byte, eob_frame *out) {
  bool got = false;
  if (byte != 0) {
    if (d->skipping) return false;
    if (d->len >= d->cap) {
      ++d->oversize;
      d->len = 0;
      d->skipping = true;
      return false;
    }
    d->buf[d->len++] = byte;
    return false;
  }
  if (!d->skipping && d->len > 0) got = finish_frame(d, out);
  d->len = 0;
  d->skipping = false;
  return got;
}

size_t eob_decoder_feed(eob_decoder *d, const uint8_t *data, size_t n, eob_frame *out, bool *got) {
  size_t i;
  *got = false;
  for (i = 0; i < n; ++i) {
    if (eob_decoder_push(d, data[i], out)) {
      *got = true;
      return i + 1;
    }
  }
  return n;
}
