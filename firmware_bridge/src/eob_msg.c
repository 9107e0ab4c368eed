/* eob_msg.c: encode and decode every firmware_bridge message (WIRE.md, "Message types").
 *
 * One field list per message, run in either direction by a small codec (writing reads the struct,
 * reading fills it), so a layout cannot differ between encoder and decoder.
 */
#include "eob_msg.h"

#include <string.h>

typedef struct {
  uint8_t *wbuf;       /* writing: the output, else NULL */
  const uint8_t *rbuf; /* reading: the body */
  size_t cap, pos;
  bool ok;
} codec;

static void raw(codec *c, void *p, size_t n) {
  if (!c->ok) return;
  if (n > c->cap - c->pos) {
    c->ok = false;
    return;
  }
  if (c->wbuf != NULL) {
    if (n) memcpy(c->wbuf + c->pos, p, n);
  } else if (n) {
    memcpy(p, c->rbuf + c->pos, n);
  }
  c->pos += n;
}

static void uint_le(codec *c, uint64_t *v, size_t n) {
  uint8_t b[8] = {0};
  size_t i;
  if (c->wbuf != NULL)
    for (i = 0; i < n; ++i) b[i] = (uint8_t)(*v >> (8 * i));
  raw(c, b, n);
  if (c->wbuf == NULL && c->ok) {
    *v = 0;
    for (i = 0; i < n; ++i) *v |= (uint64_t)b[i] << (8 * i);
  }
}

static void u8(codec *c, uint8_t *v) {
  uint64_t x = *v;
  uint_le(c, &x, 1);
  *v = (uint8_t)x;
}
static void u16(codec *c, uint16_t *v) {
  uint64_t x = *v;
  uint_le(c, &x, 2);
  *v = (uint16_t)x;
}
static void u32(codec *c, uint32_t *v) {
  uint64_t x = *v;
  uint_le(c, &x, 4);
  *v = (uint32_t)x;
}
static void u64(codec *c, uint64_t *v) { uint_le(c, v, 8); }
static void i16(codec *c, int16_t *v) {
  uint16_t x = (uint16_t)*v;
  u16(c, &x);
  *v = (int16_t)(x >= 0x8000u ? (int32_t)x - 0x10000 : (int32_t)x);
}
static void i32(codec *c, int32_t *v) {
  uint32_t x = (uint32_t)*v;
  u32(c, &x);
  *v = (int32_t)(x >= 0x80000000u ? -(int32_t)(~x) - 1 : (int32_t)x);
}
static void f32(codec *c, float *v) {
  uint32_t x;
  memcpy(&x, v, 4);
  u32(c, &x);
  memcpy(v, &x, 4);
}
static void sha(codec *c, uint8_t *v) { raw(c, v, EOB_SHA256_SIZE); }

/* a view of n bytes of the body (reading) or of *p (writing) */
static const uint8_t *view(codec *c, const uint8_t *p, size_t n) {
  const uint8_t *at;
  if (!c->ok) return NULL;
  if (n > c->cap - c->pos) {
    c->ok = false;
    return NULL;
  }
  if (c->wbuf != NULL) {
    if (n) memcpy(c->wbuf + c->pos, p, n);
    at = p;
  } else {
    at = c->rbuf + c->pos;
  }
  c->pos += n;
  return at;
}

static void str(codec *c, eob_str *s) {
  u8(c, &s->len);
  if (c->wbuf != NULL && s->len > 0 && s->data == NULL) c->ok = false;
  s->data = (const char *)view(c, (const uint8_t *)s->data, s->len);
}

static void blob(codec *c, eob_bytes *b) {
  u16(c, &b->len);
  if (c->wbuf != NULL && b->len > 0 && b->data == NULL) c->ok = false;
  b->data = view(c, b->data, b->len);
}

static void tensor(codec *c, eob_tensor *t) {
  uint8_t i;
  u8(c, &t->dtype);
  u8(c, &t->rank);
  if (t->rank > EOB_MAX_RANK) {
    c->ok = false;
    return;
  }
  for (i = 0; i < t->rank; ++i) u16(c, &t->dims[i]);
  f32(c, &t->scale);
  i32(c, &t->zero_point);
}

static void ping(codec *c, eob_ping *m) {
  u32(c, &m->nonce);
  blob(c, &m->data);
}

static void offer(codec *c, eob_model_offer *m) {
  u32(c, &m->image_size);
  u16(c, &m->chunk_size);
  u8(c, &m->format);
  sha(c, m->sha256);
  str(c, &m->name);
  str(c, &m->version);
}

static void chunk(codec *c, eob_model_chunk *m) {
  u32(c, &m->tag);
  u32(c, &m->index);
  u32(c, &m->crc32);
  blob(c, &m->data);
}

static void status(codec *c, eob_model_status *m) {
  uint8_t i;
  u8(c, &m->boot_state);
  u8(c, &m->running_slot);
  u8(c, &m->confirmed_slot);
  u8(c, &m->trial_slot);
  u8(c, &m->transfer);
  u8(c, &m->flags);
  u16(c, &m->last_error);
  sha(c, m->sha256);
  u32(c, &m->image_size);
  u16(c, &m->chunk_size);
  u32(c, &m->chunks_total);
  u32(c, &m->chunks_missing);
  u8(c, &m->n_ranges);
  if (m->n_ranges > EOB_STATUS_MAX_RANGES) {
    c->ok = false;
    return;
  }
  for (i = 0; i < m->n_ranges; ++i) {
    u32(c, &m->missing[i].first);
    u32(c, &m->missing[i].count);
  }
}

static void hello(codec *c, eob_hello *m) {
  u8(c, &m->protocol);
  u32(c, &m->capabilities);
  u16(c, &m->max_payload);
  str(c, &m->device_id);
  str(c, &m->firmware_version);
  str(c, &m->model_name);
  str(c, &m->model_version);
  sha(c, m->model_sha256);
  u8(c, &m->model_format);
  u32(c, &m->arena_bytes);
  tensor(c, &m->input);
  tensor(c, &m->output);
  u8(c, &m->slot_count);
  u8(c, &m->running_slot);
  u8(c, &m->boot_state);
  u8(c, &m->boot_flags);
  u32(c, &m->slot_size);
}

static void telemetry(codec *c, eob_telemetry *m) {
  u32(c, &m->tseq);
  u64(c, &m->uptime_ms);
  u32(c, &m->inferences);
  u32(c, &m->errors);
  u32(c, &m->latency_count);
  u32(c, &m->latency_min_us);
  u32(c, &m->latency_mean_us);
  u32(c, &m->latency_p50_us);
  u32(c, &m->latency_p90_us);
  u32(c, &m->latency_p99_us);
  u32(c, &m->latency_max_us);
  u32(c, &m->ram_free);
  i16(c, &m->temperature_centi);
  u32(c, &m->rx_frames);
  u32(c, &m->rx_dropped);
  u32(c, &m->tx_dropped);
  u8(c, &m->running_slot);
  u8(c, &m->boot_state);
}

/* The body of m in either direction; false for an unknown type. */
static bool body(codec *c, eob_msg *m) {
  switch (m->type) {
    case EOB_HELLO_REQ:
    case EOB_MODEL_STATUS_REQ:
    case EOB_TELEMETRY_REQ:
    case EOB_RESET:
      return true;
    case EOB_PING:
    case EOB_PONG:
      ping(c, &m->u.ping);
      return true;
    case EOB_INFER_REQ:
      blob(c, &m->u.infer_req.input);
      return true;
    case EOB_INFER_RESP:
      u16(c, &m->u.infer_resp.status);
      u32(c, &m->u.infer_resp.latency_us);
      blob(c, &m->u.infer_resp.output);
      return true;
    case EOB_MODEL_OFFER:
      offer(c, &m->u.offer);
      return true;
    case EOB_MODEL_CHUNK:
      chunk(c, &m->u.chunk);
      return true;
    case EOB_MODEL_COMMIT:
      sha(c, m->u.commit.sha256);
      return true;
    case EOB_MODEL_STATUS:
      status(c, &m->u.status);
      return true;
    case EOB_HELLO:
      hello(c, &m->u.hello);
      return true;
    case EOB_TELEMETRY:
      telemetry(c, &m->u.telemetry);
      return true;
    case EOB_EVENT:
      u8(c, &m->u.event.level);
      u16(c, &m->u.event.code);
      u64(c, &m->u.event.uptime_ms);
      str(c, &m->u.event.text);
      return true;
    case EOB_ACK:
      u8(c, &m->u.ack.request);
      u32(c, &m->u.ack.value);
      return true;
    case EOB_NACK:
      u8(c, &m->u.nack.request);
      u16(c, &m->u.nack.error);
      str(c, &m->u.nack.detail);
      return true;
    default:
      return false;
  }
}

eob_err eob_msg_decode(const eob_frame *frame, eob_msg *out) {
  codec c;
  if (frame == NULL || out == NULL) return EOB_ERR_MALFORMED;
  if (frame->version != EOB_PROTOCOL_VERSION) return EOB_ERR_VERSION;
  memset(out, 0, sizeof *out);
  out->type = frame->type;
  c.wbuf = NULL;
  c.rbuf = frame->body;
  c.cap = frame->body_len;
  c.pos = 0;
  c.ok = frame->body != NULL || frame->body_len == 0;
  if (!body(&c, out)) return EOB_ERR_TYPE;
  if (!c.ok || c.pos != frame->body_len) return EOB_ERR_MALFORMED;
  return EOB_OK;
}

bool eob_msg_encode(const eob_msg *m, uint16_t seq, uint8_t *buf, size_t cap, size_t *len) {
  codec c;
  eob_msg copy;
  if (m == NULL || buf == NULL || len == NULL || cap < EOB_HEADER_SIZE) return false;
  copy = *m; /* the codec takes non-const pointers; writing only reads them */
  buf[0] = EOB_PROTOCOL_VERSION;
  buf[1] = m->type;
  buf[2] = (uint8_t)seq;
  buf[3] = (uint8_t)(seq >> 8);
  c.wbuf = buf + EOB_HEADER_SIZE;
  c.rbuf = NULL;
  c.cap = (cap < EOB_MAX_PAYLOAD ? cap : EOB_MAX_PAYLOAD) - EOB_HEADER_SIZE;
  c.pos = 0;
  c.ok = true;
  if (!body(&c, &copy) || !c.ok) return false;
  *len = EOB_HEADER_SIZE + c.pos;
  return true;
}

size_t eob_msg_to_line(const eob_msg *m, uint16_t seq, uint8_t *payload, size_t payload_cap, uint8_t *line,
                       size_t line_cap) {
  size_t n;
  if (!eob_msg_encode(m, seq, payload, payload_cap, &n)) return 0;
  return eob_frame_encode(payload, n, line, line_cap);
}

eob_str eob_str_of(const char *s) {
  eob_str out;
  size_t n = s != NULL ? strlen(s) : 0;
  out.data = s;
  out.len = (uint8_t)(n > 255 ? 255 : n);
  return out;
}

uint32_t eob_transfer_tag(const uint8_t sha256[EOB_SHA256_SIZE]) {
  return (uint32_t)sha256[0] | (uint32_t)sha256[1] << 8 | (uint32_t)sha256[2] << 16 | (uint32_t)sha256[3] << 24;
}
