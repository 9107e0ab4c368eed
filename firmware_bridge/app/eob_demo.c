/* eob_demo.c: the demo application (see eob_demo.h): requests, telemetry, the inference loop, model images. */
#include "eob_demo.h"

#include <string.h>

static const uint8_t graph_hash[EOB_SHA256_SIZE] = DIGITS_GRAPH_HASH_BYTES;

#define BUILTIN_NAME "digits"
#define BUILTIN_VERSION "builtin"

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void copy_field(char *dst, size_t cap, const uint8_t *src, size_t n) {
  size_t k = 0;
  while (k < n && k + 1 < cap && src[k] != 0) {
    dst[k] = (char)src[k];
    ++k;
  }
  dst[k] = '\0';
}

/* ---- clock ---- */

static void tick(eob_demo *d) {
  uint32_t now = d->hal->micros(d->hal->ctx);
  d->uptime_us += (uint32_t)(now - d->last_us);
  d->last_us = now;
}

uint64_t eob_demo_uptime_ms(eob_demo *d) {
  tick(d);
  return d->uptime_us / 1000u;
}

static void event(eob_demo *d, uint8_t level, uint16_t code, const char *text) {
  eob_msg m;
  memset(&m, 0, sizeof m);
  m.type = EOB_EVENT;
  m.u.event.level = level;
  m.u.event.code = code;
  m.u.event.uptime_ms = eob_demo_uptime_ms(d);
  m.u.event.text = eob_str_of(text);
  (void)eob_link_emit(&d->link, &m);
}

static void firmware_string(eob_demo *d) {
  static const char hex[] = "0123456789abcdef";
  size_t n = strlen(d->cfg.firmware_version), k;
  if (n > sizeof d->firmware - 24) n = sizeof d->firmware - 24;
  memcpy(d->firmware, d->cfg.firmware_version, n);
  memcpy(d->firmware + n, " graph:", 7);
  n += 7;
  for (k = 0; k < 8; ++k) {
    d->firmware[n++] = hex[graph_hash[k] >> 4];
    d->firmware[n++] = hex[graph_hash[k] & 15];
  }
  d->firmware[n] = '\0';
}

/* ---- the model ---- */

/* Checks a slot image's header against this firmware's graph; EOB_OK and name/version into d when it fits. */
static eob_err check_header(eob_demo *d, const uint8_t *h, uint32_t image_size, bool take_names) {
  if (image_size != EOB_DEMO_IMAGE_SIZE || rd32(h) != EOB_DEMO_IMAGE_MAGIC || rd16(h + 4) != 1 ||
      rd16(h + 6) != EOB_DEMO_IMAGE_HEADER || rd32(h + 40) != DIGITS_BLOB_SIZE)
    return EOB_ERR_MALFORMED;
  if (memcmp(h + 8, graph_hash, EOB_SHA256_SIZE) != 0) return EOB_ERR_UNSUPPORTED;
  if (take_names) {
    copy_field(d->model_name, sizeof d->model_name, h + 48, 32);
    copy_field(d->model_version, sizeof d->model_version, h + 80, 16);
  }
  return EOB_OK;
}

static void use_builtin(eob_demo *d) {
  d->model_blob = (const uint8_t *)(const void *)digits_blob_words;
  strcpy(d->model_name, BUILTIN_NAME);
  strcpy(d->model_version, BUILTIN_VERSION);
  memset(d->model_sha256, 0, sizeof d->model_sha256);
}

/* Loads the image of slot (its SHA-256 checked over the flash) into d->blob; EOB_OK or why not. */
static eob_err load_slot(eob_demo *d, uint8_t slot) {
  eob_slot_image info;
  uint8_t header[EOB_DEMO_IMAGE_HEADER];
  uint32_t off = eob_slots_image_offset(&d->slots);
  uint8_t region = eob_slots_region(slot);
  eob_err e;
  if (!eob_slots_image_info(&d->slots, slot, true, &info)) return EOB_ERR_HASH;
  if (info.format != EOB_DEMO_IMAGE_FORMAT) return EOB_ERR_UNSUPPORTED;
  if (!d->hal->flash_read(d->hal->ctx, region, off, header, sizeof header) ||
      !d->hal->flash_read(d->hal->ctx, region, off + EOB_DEMO_IMAGE_HEADER, (uint8_t *)d->blob, DIGITS_BLOB_SIZE))
    return EOB_ERR_FLASH;
  e = check_header(d, header, info.image_size, false);
  if (e != EOB_OK) return e;
  if (eob_crc32((const uint8_t *)d->blob, DIGITS_BLOB_SIZE) != rd32(header + 44)) return EOB_ERR_HASH;
  if (digits_blob_check((const uint8_t *)d->blob) != 0) return EOB_ERR_MALFORMED; /* values no kernel takes */
  (void)check_header(d, header, info.image_size, true);
  memcpy(d->model_sha256, info.sha256, EOB_SHA256_SIZE);
  d->model_blob = (const uint8_t *)(const void *)d->blob;
  return EOB_OK;
}

/* The model of d->slots.running, or the built-in one when that is none or cannot be loaded. */
static eob_err load_running(eob_demo *d) {
  eob_err e;
  if (!d->has_slots || d->slots.running == EOB_SLOT_NONE) {
    use_builtin(d);
    return EOB_OK;
  }
  e = load_slot(d, d->slots.running);
  if (e != EOB_OK) use_builtin(d);
  return e;
}

uint16_t eob_demo_infer(eob_demo *d, const int8_t *input, uint32_t *latency_us) {
  uint32_t t0 = d->hal->micros(d->hal->ctx), dt;
  int rc = digits_invoke_blob(d->model_blob, input, d->output, d->arena);
  dt = d->hal->micros(d->hal->ctx) - t0;
  *latency_us = dt;
  ++d->inferences;
  if (rc != 0) {
    ++d->errors;
    return EOB_ERR_INFER;
  }
  if (d->lat_n < EOB_DEMO_LATENCY_WINDOW) d->lat[d->lat_n] = dt;
  if (d->lat_n == 0 || dt < d->lat_min) d->lat_min = dt;
  if (dt > d->lat_max) d->lat_max = dt;
  d->lat_sum += dt;
  ++d->lat_n;
  return EOB_OK;
}

static uint32_t argmax(const int8_t *v, uint32_t n) {
  uint32_t best = 0, k;
  for (k = 1; k < n; ++k)
    if (v[k] > v[best]) best = k;
  return best;
}

uint32_t eob_demo_health(eob_demo *d, const uint8_t *blob, uint32_t *max_latency_us) {
  const uint8_t *saved = d->model_blob;
  uint32_t k, correct = 0, lat, worst = 0;
  if (blob != NULL) d->model_blob = blob;
  for (k = 0; k < DIGITS_SAMPLE_COUNT; ++k) {
    if (eob_demo_infer(d, digits_samples[k], &lat) != EOB_OK) {
      worst = 0xFFFFFFFFu;
      continue;
    }
    if (lat > worst) worst = lat;
    if (argmax(d->output, DIGITS_OUTPUT_SIZE) == digits_labels[k]) ++correct;
  }
  d->model_blob = saved;
  *max_latency_us = worst;
  return correct;
}

/* ---- messages ---- */

static void tensor(eob_tensor *t, uint16_t size, float scale, int32_t zero_point) {
  t->dtype = EOB_INT8;
  t->rank = 1;
  t->dims[0] = size;
  t->scale = scale;
  t->zero_point = zero_point;
}

static void send_hello(eob_demo *d, bool reply, uint16_t seq) {
  eob_msg m;
  eob_hello *h = &m.u.hello;
  memset(&m, 0, sizeof m);
  m.type = EOB_HELLO;
  h->protocol = 1;
  h->capabilities = EOB_CAP_INFER | (d->has_slots ? EOB_CAP_MODEL_UPDATE : 0u) |
                    (d->board.temperature != NULL ? EOB_CAP_TEMPERATURE : 0u) | EOB_CAP_RESET;
  h->max_payload = EOB_MAX_PAYLOAD;
  h->device_id = eob_str_of(d->cfg.device_id);
  h->firmware_version = eob_str_of(d->firmware);
  h->model_name = eob_str_of(d->model_name);
  h->model_version = eob_str_of(d->model_version);
  memcpy(h->model_sha256, d->model_sha256, EOB_SHA256_SIZE);
  h->model_format = EOB_DEMO_IMAGE_FORMAT;
  h->arena_bytes = DIGITS_ARENA_SIZE;
  tensor(&h->input, DIGITS_INPUT_SIZE, DIGITS_INPUT_SCALE, DIGITS_INPUT_ZERO_POINT);
  tensor(&h->output, DIGITS_OUTPUT_SIZE, DIGITS_OUTPUT_SCALE, DIGITS_OUTPUT_ZERO_POINT);
  if (d->has_slots) {
    h->slot_count = 2;
    h->running_slot = d->slots.running;
    h->boot_state = d->slots.table.state;
    h->boot_flags = d->slots.table.flags;
    h->slot_size = d->slots.geo.slot_size - d->slots.geo.header_size;
  } else {
    h->running_slot = EOB_SLOT_NONE;
  }
  if (reply) {
    (void)eob_link_send(&d->link, &m, seq);
  } else {
    (void)eob_link_emit(&d->link, &m);
  }
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void sort_u32(uint32_t *v, uint32_t n) { /* insertion sort: n is at most EOB_DEMO_LATENCY_WINDOW */
  uint32_t i, j;
  for (i = 1; i < n; ++i) {
    uint32_t x = v[i];
    for (j = i; j > 0 && cmp_u32(&v[j - 1], &x) > 0; --j) v[j] = v[j - 1];
    v[j] = x;
  }
}

static uint32_t pct(const uint32_t *sorted, uint32_t n, uint32_t p) { /* nearest rank */
  uint32_t rank = (p * n + 99u) / 100u;
  return sorted[rank == 0 ? 0 : rank - 1];
}

static void send_telemetry(eob_demo *d, bool reply, uint16_t seq) {
  eob_msg m;
  eob_telemetry *t = &m.u.telemetry;
  uint32_t n = d->lat_n < EOB_DEMO_LATENCY_WINDOW ? d->lat_n : EOB_DEMO_LATENCY_WINDOW;
  int16_t centi;
  memset(&m, 0, sizeof m);
  m.type = EOB_TELEMETRY;
  t->tseq = d->tseq++;
  t->uptime_ms = eob_demo_uptime_ms(d);
  t->inferences = d->inferences;
  t->errors = d->errors;
  t->latency_count = d->lat_n;
  if (d->lat_n > 0) {
    sort_u32(d->lat, n);
    t->latency_min_us = d->lat_min;
    t->latency_max_us = d->lat_max;
    t->latency_mean_us = (uint32_t)(d->lat_sum / d->lat_n);
    t->latency_p50_us = pct(d->lat, n, 50);
    t->latency_p90_us = pct(d->lat, n, 90);
    t->latency_p99_us = pct(d->lat, n, 99);
  }
  t->ram_free = d->board.ram_free != NULL ? d->board.ram_free(d->board.ctx) : EOB_RAM_UNKNOWN;
  t->temperature_centi = EOB_TEMPERATURE_UNKNOWN;
  if (d->board.temperature != NULL && d->board.temperature(d->board.ctx, &centi)) t->temperature_centi = centi;
  t->rx_frames = eob_link_rx_frames(&d->link);
  t->rx_dropped = eob_link_rx_dropped(&d->link);
  t->tx_dropped = d->link.tx_dropped;
  t->running_slot = d->has_slots ? d->slots.running : EOB_SLOT_NONE;
  t->boot_state = d->has_slots ? d->slots.table.state : EOB_BOOT_CONFIRMED;
  d->lat_n = 0;
  d->lat_min = d->lat_max = 0;
  d->lat_sum = 0;
  if (reply) {
    (void)eob_link_send(&d->link, &m, seq);
  } else {
    (void)eob_link_emit(&d->link, &m);
  }
}

static void answer_infer(eob_demo *d, const eob_msg *req, uint16_t seq) {
  eob_msg m;
  uint32_t lat = 0;
  memset(&m, 0, sizeof m);
  m.type = EOB_INFER_RESP;
  if (req->u.infer_req.input.len != DIGITS_INPUT_SIZE) {
    m.u.infer_resp.status = EOB_ERR_INPUT_SIZE;
  } else {
    int8_t input[DIGITS_INPUT_SIZE];
    memcpy(input, req->u.infer_req.input.data, sizeof input);
    m.u.infer_resp.status = eob_demo_infer(d, input, &lat);
  }
  m.u.infer_resp.latency_us = lat;
  if (m.u.infer_resp.status == EOB_OK) {
    m.u.infer_resp.output.data = (const uint8_t *)d->output;
    m.u.infer_resp.output.len = DIGITS_OUTPUT_SIZE;
  }
  (void)eob_link_send(&d->link, &m, seq);
}

/* MODEL_OFFER of another format or size, or MODEL_COMMIT of a complete image for another graph: refused
 * before the library sees it. true when msg was answered here. */
static bool refuse_foreign_image(eob_demo *d, const eob_msg *msg, uint16_t seq) {
  uint8_t header[EOB_DEMO_IMAGE_HEADER];
  eob_slots *s = &d->slots;
  if (!d->has_slots) return false;
  if (msg->type == EOB_MODEL_OFFER) {
    if (msg->u.offer.format != EOB_DEMO_IMAGE_FORMAT) {
      (void)eob_link_nack(&d->link, msg->type, seq, EOB_ERR_UNSUPPORTED, "image format is not this firmware's (1)");
      return true;
    }
    if (msg->u.offer.image_size != EOB_DEMO_IMAGE_SIZE) {
      (void)eob_link_nack(&d->link, msg->type, seq, EOB_ERR_UNSUPPORTED,
                          "image size is not this firmware's graph: another model");
      return true;
    }
    return false;
  }
  if (msg->type != EOB_MODEL_COMMIT || s->transfer != EOB_TRANSFER_RECEIVING || s->chunks_missing != 0 ||
      memcmp(msg->u.commit.sha256, s->image.sha256, EOB_SHA256_SIZE) != 0)
    return false;
  if (!d->hal->flash_read(d->hal->ctx, eob_slots_region(s->target), eob_slots_image_offset(s), header,
                          sizeof header))
    return false; /* the library's own read fails the same way and answers FLASH */
  switch (check_header(d, header, s->image.image_size, false)) {
    case EOB_OK: return false;
    case EOB_ERR_UNSUPPORTED:
      (void)eob_link_nack(&d->link, msg->type, seq, EOB_ERR_UNSUPPORTED,
                          "image is for another graph (graph hash differs): refused");
      return true;
    default:
      (void)eob_link_nack(&d->link, msg->type, seq, EOB_ERR_MALFORMED, "image header is not a digits blob image");
      return true;
  }
}

static void handle(eob_demo *d, const eob_msg *msg, uint16_t seq) {
  uint8_t transfer_before = d->slots.transfer;
  if (eob_link_handle_ping(&d->link, msg, seq)) return;
  if (refuse_foreign_image(d, msg, seq)) return;
  if (eob_link_handle_model(&d->link, d->has_slots ? &d->slots : NULL, msg, seq)) {
    if (msg->type == EOB_MODEL_COMMIT && transfer_before != EOB_TRANSFER_VERIFIED &&
        d->slots.transfer == EOB_TRANSFER_VERIFIED)
      event(d, EOB_INFO, EOB_EV_IMAGE_VERIFIED, "image verified: pending, runs in test at the next start");
    return;
  }
  switch (msg->type) {
    case EOB_HELLO_REQ: send_hello(d, true, seq); break;
    case EOB_TELEMETRY_REQ: send_telemetry(d, true, seq); break;
    case EOB_INFER_REQ: answer_infer(d, msg, seq); break;
    case EOB_RESET:
      (void)eob_link_ack(&d->link, EOB_RESET, seq, 0);
      d->reset_requested = true;
      break;
    default: (void)eob_link_nack(&d->link, msg->type, seq, EOB_ERR_TYPE, "not a request this device takes"); break;
  }
}

/* ---- start and loop ---- */

static void trial(eob_demo *d, eob_err loaded) {
  uint32_t correct = 0, worst = 0;
  event(d, EOB_INFO, EOB_EV_TRIAL_STARTED, "trial image started: health check");
  if (loaded == EOB_OK) correct = eob_demo_health(d, NULL, &worst);
  if (loaded == EOB_OK && correct >= d->cfg.health_min_correct && worst <= d->cfg.health_max_latency_us &&
      eob_slots_confirm(&d->slots) == EOB_OK) {
    event(d, EOB_INFO, EOB_EV_CONFIRMED, "trial image confirmed");
    return;
  }
  (void)eob_slots_revert(&d->slots);
  event(d, EOB_WARNING, EOB_EV_REVERTED,
        loaded != EOB_OK ? "trial image does not load: reverted" : "trial image failed its health check: reverted");
  if (load_running(d) != EOB_OK) event(d, EOB_ERROR, EOB_EV_MODEL_FALLBACK, "confirmed image damaged: built-in model");
}

bool eob_demo_init(eob_demo *d, const eob_hal *hal, const eob_flash_geometry *geo, const eob_demo_board *board,
                   const eob_demo_config *cfg) {
  eob_err loaded;
  if (d == NULL || hal == NULL || cfg == NULL || hal->micros == NULL) return false;
  memset(d, 0, sizeof *d);
  d->hal = hal;
  d->cfg = *cfg;
  if (d->cfg.device_id == NULL) d->cfg.device_id = "mcu";
  if (d->cfg.firmware_version == NULL) d->cfg.firmware_version = "";
  if (board != NULL) d->board = *board;
  firmware_string(d);
  d->last_us = hal->micros(hal->ctx);
  if (!eob_link_init(&d->link, hal, &d->bufs)) return false;
  if (geo != NULL) {
    if (hal->flash_read == NULL || hal->flash_erase == NULL || hal->flash_write == NULL ||
        !eob_slots_init(&d->slots, hal, geo))
      return false;
    d->has_slots = true;
    (void)eob_slots_boot(&d->slots);
  }
  loaded = load_running(d);
  send_hello(d, false, 0);
  if (d->has_slots && d->slots.table.state == EOB_BOOT_TESTING) {
    trial(d, loaded);
  } else if (loaded != EOB_OK) {
    event(d, EOB_ERROR, EOB_EV_MODEL_FALLBACK, "confirmed image damaged: built-in model");
  }
  tick(d);
  d->next_loop_us = d->uptime_us + (uint64_t)d->cfg.loop_ms * 1000u;
  d->next_telemetry_us = d->uptime_us + (uint64_t)d->cfg.telemetry_ms * 1000u;
  return true;
}

bool eob_demo_step(eob_demo *d) {
  eob_msg msg;
  uint16_t seq;
  int budget = 8; /* requests per step, so the loop and telemetry keep their pace */
  while (!d->reset_requested && budget-- > 0 && eob_link_poll(&d->link, &msg, &seq)) handle(d, &msg, seq);
  if (d->reset_requested) {
    if (d->board.reset == NULL) return false;
    d->board.reset(d->board.ctx);
    return false;
  }
  tick(d);
  if (d->cfg.loop_ms > 0 && d->uptime_us >= d->next_loop_us) {
    uint32_t lat;
    uint32_t k = d->sample++ % DIGITS_SAMPLE_COUNT;
    if (eob_demo_infer(d, digits_samples[k], &lat) != EOB_OK) {
      event(d, EOB_ERROR, EOB_EV_INFER_FAILED, "inference failed");
    } else if (argmax(d->output, DIGITS_OUTPUT_SIZE) == digits_labels[k]) {
      ++d->correct;
    }
    d->next_loop_us += (uint64_t)d->cfg.loop_ms * 1000u;
    if (d->next_loop_us < d->uptime_us) d->next_loop_us = d->uptime_us; /* fell behind: no burst */
  }
  if (d->cfg.telemetry_ms > 0 && d->uptime_us >= d->next_telemetry_us) {
    send_telemetry(d, false, 0);
    d->next_telemetry_us += (uint64_t)d->cfg.telemetry_ms * 1000u;
    if (d->next_telemetry_us < d->uptime_us) d->next_telemetry_us = d->uptime_us;
  }
  return true;
}
