/* eob_link.c: a device's serial link over the HAL: poll for requests, send replies, NACK bad frames. */
#include "eob_link.h"

#include <string.h>

bool eob_link_init(eob_link *l, const eob_hal *hal, eob_link_buffers *buf) {
  if (l == NULL || hal == NULL || buf == NULL || hal->write == NULL || hal->read == NULL) return false;
  memset(l, 0, sizeof *l);
  l->hal = hal;
  l->buf = buf;
  return eob_decoder_init(&l->rx, buf->rx, sizeof buf->rx, EOB_MAX_PAYLOAD);
}

bool eob_link_send(eob_link *l, const eob_msg *msg, uint16_t seq) {
  size_t n = eob_msg_to_line(msg, seq, l->buf->tx_payload, sizeof l->buf->tx_payload, l->buf->tx_line,
                             sizeof l->buf->tx_line);
  if (n == 0 || l->hal->write(l->hal->ctx, l->buf->tx_line, n) != n) {
    ++l->tx_dropped;
    return false;
  }
  ++l->tx_frames;
  return true;
}

bool eob_link_emit(eob_link *l, const eob_msg *msg) { return eob_link_send(l, msg, l->seq++); }

bool eob_link_ack(eob_link *l, uint8_t request, uint16_t seq, uint32_t value) {
  eob_msg m;
  memset(&m, 0, sizeof m);
  m.type = EOB_ACK;
  m.u.ack.request = request;
  m.u.ack.value = value;
  return eob_link_send(l, &m, seq);
}

bool eob_link_nack(eob_link *l, uint8_t request, uint16_t seq, uint16_t error, const char *detail) {
  eob_msg m;
  memset(&m, 0, sizeof m);
  m.type = EOB_NACK;
  m.u.nack.request = request;
  m.u.nack.error = error;
  m.u.nack.detail = eob_str_of(detail);
  return eob_link_send(l, &m, seq);
}

static const char *decode_detail(eob_err e) {
  switch (e) {
    case EOB_ERR_VERSION: return "protocol version not supported";
    case EOB_ERR_TYPE: return "unknown message type";
    default: return "malformed body";
  }
}

bool eob_link_poll(eob_link *l, eob_msg *msg, uint16_t *seq) {
  uint8_t byte;
  eob_frame f;
  while (l->hal->read(l->hal->ctx, &byte, 1) == 1) {
    eob_err e;
    if (!eob_decoder_push(&l->rx, byte, &f)) continue;
    e = eob_msg_decode(&f, msg);
    if (e == EOB_OK && (f.type & 0x80u) == 0) {
      *seq = f.seq;
      return true;
    }
    ++l->rx_rejected;
    if (e == EOB_OK) e = EOB_ERR_TYPE; /* a device-to-host type sent to the device */
    (void)eob_link_nack(l, f.type, f.seq, (uint16_t)e, decode_detail(e));
  }
  return false;
}

bool eob_link_handle_ping(eob_link *l, const eob_msg *msg, uint16_t seq) {
  eob_msg m;
  if (msg->type != EOB_PING) return false;
  m = *msg;
  m.type = EOB_PONG;
  if (!eob_link_send(l, &m, seq)) (void)eob_link_nack(l, EOB_PING, seq, EOB_ERR_TOO_LARGE, "pong too large");
  return true;
}

static const char *model_detail(eob_err e) {
  switch (e) {
    case EOB_ERR_BUSY: return "a trial image is running: confirm or revert first";
    case EOB_ERR_NO_TRANSFER: return "no matching MODEL_OFFER";
    case EOB_ERR_CHUNK_INDEX: return "chunk index or length wrong";
    case EOB_ERR_CHUNK_CRC: return "chunk CRC-32 mismatch";
    case EOB_ERR_INCOMPLETE: return "chunks missing";
    case EOB_ERR_HASH: return "image SHA-256 mismatch: offer again";
    case EOB_ERR_FLASH: return "flash failed: offer again";
    case EOB_ERR_NO_SPACE: return "image does not fit a slot";
    case EOB_ERR_MALFORMED: return "bad offer";
    default: return "model update refused";
  }
}

bool eob_link_handle_model(eob_link *l, eob_slots *slots, const eob_msg *msg, uint16_t seq) {
  eob_msg reply;
  eob_err e = EOB_OK;
  uint32_t missing = 0;
  switch (msg->type) {
    case EOB_MODEL_OFFER:
    case EOB_MODEL_CHUNK:
    case EOB_MODEL_COMMIT:
    case EOB_MODEL_STATUS_REQ:
      break;
    default:
      return false;
  }
  if (slots == NULL) {
    (void)eob_link_nack(l, msg->type, seq, EOB_ERR_UNSUPPORTED, "built without model update");
    return true;
  }
  if (msg->type == EOB_MODEL_OFFER) e = eob_slots_offer(slots, &msg->u.offer);
  if (msg->type == EOB_MODEL_CHUNK) e = eob_slots_chunk(slots, &msg->u.chunk, &missing);
  if (msg->type == EOB_MODEL_COMMIT) e = eob_slots_commit(slots, msg->u.commit.sha256);
  if (e != EOB_OK) {
    (void)eob_link_nack(l, msg->type, seq, (uint16_t)e, model_detail(e));
  } else if (msg->type == EOB_MODEL_CHUNK) {
    (void)eob_link_ack(l, EOB_MODEL_CHUNK, seq, missing);
  } else {
    memset(&reply, 0, sizeof reply);
    reply.type = EOB_MODEL_STATUS;
    eob_slots_status(slots, &reply.u.status);
    (void)eob_link_send(l, &reply, seq);
  }
  return true;
}

uint32_t eob_link_rx_frames(const eob_link *l) { return l->rx.frames; }
uint32_t eob_link_rx_dropped(const eob_link *l) { return eob_decoder_dropped(&l->rx) + l->rx_rejected; }
