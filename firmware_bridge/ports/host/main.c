/* ports/host/main.c: the demo firmware (app/eob_demo) as a Linux process talking over a pseudo-terminal,
 * with its flash in a file: a "device" for the tests of the gateway, without hardware.
 *
 *   eob_device --tty PATH --flash FILE --id ID [--loop-ms N] [--telemetry-ms N] [--firmware VERSION]
 *
 * --tty PATH: when PATH is a character device (a serial port, a pty slave someone else opened), the device
 *   opens it. Otherwise the device creates a pseudo-terminal, keeps its master and makes PATH a symlink to the
 *   slave (replacing an old link): the host opens PATH (pyserial: serial.Serial(PATH)). A killed device takes
 *   its pty with it (the host sees the cable pulled); a new one makes a new pty behind the same PATH.
 * --flash FILE: the slot table and the two slots, created blank (0xFF) when missing. Every erase and write goes
 *   to the file at once (pwrite), so a kill leaves exactly the flash operations done so far.
 * RESET: the ACK is sent, then the process re-executes itself on the same pty (the host's port stays open).
 * SIGTERM or SIGINT: exits 0.
 */
#define _XOPEN_SOURCE 600

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "eob_demo.h"

/* Flash geometry: 1 KB erase units, 4-byte writes, slots of 4 KB header + 16 KB image. */
#define ERASE 1024u
#define TABLE_SIZE (2u * ERASE)
#define SLOT_HEADER 4096u
#define SLOT_SIZE (SLOT_HEADER + 16384u)
#define FLASH_SIZE (TABLE_SIZE + 2u * SLOT_SIZE)

typedef struct {
  int tty;
  int flash;
  char **argv;
  int argc;
} host;

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

/* ---- serial ---- */

static size_t tty_write(void *ctx, const uint8_t *data, size_t n) {
  host *h = (host *)ctx;
  size_t done = 0;
  int waits = 0;
  while (done < n) {
    ssize_t k = write(h->tty, data + done, n - done);
    if (k > 0) {
      done += (size_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno == EAGAIN && waits++ < 20) { /* the host is slow to read: wait up to ~100 ms */
      struct pollfd p;
      p.fd = h->tty;
      p.events = POLLOUT;
      p.revents = 0;
      (void)poll(&p, 1, 5);
      continue;
    }
    break; /* nobody listening (EIO) or the buffer stays full: the rest is lost, the frame counted dropped */
  }
  return done;
}

static size_t tty_read(void *ctx, uint8_t *data, size_t n) {
  host *h = (host *)ctx;
  ssize_t k = read(h->tty, data, n);
  return k > 0 ? (size_t)k : 0; /* EAGAIN: nothing waiting; EIO: no host has the pty open */
}

static uint32_t micros(void *ctx) {
  struct timespec ts;
  (void)ctx;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

static int set_raw(int fd) {
  struct termios t;
  if (tcgetattr(fd, &t) != 0) return -1;
  t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF);
  t.c_oflag &= ~(tcflag_t)OPOST;
  t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
  t.c_cflag |= CS8;
  t.c_cc[VMIN] = 0;
  t.c_cc[VTIME] = 0;
  return tcsetattr(fd, TCSANOW, &t);
}

/* A new pty whose slave PATH links to; the master's fd, or -1. */
static int make_pty(const char *path) {
  char tmp[4096];
  const char *slave;
  int fd, s;
  fd = posix_openpt(O_RDWR | O_NOCTTY);
  if (fd < 0 || grantpt(fd) != 0 || unlockpt(fd) != 0 || (slave = ptsname(fd)) == NULL) {
    perror("eob_device: pty");
    return -1;
  }
  /* raw on the slave side (the settings stay with the pty), so no echo and no line editing of the frames */
  s = open(slave, O_RDWR | O_NOCTTY);
  if (s < 0 || set_raw(s) != 0) {
    perror("eob_device: pty slave");
    return -1;
  }
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= sizeof tmp) return -1;
  (void)unlink(tmp);
  if (symlink(slave, tmp) != 0 || rename(tmp, path) != 0) {
    perror("eob_device: symlink --tty");
    return -1;
  }
  close(s);
  return fd;
}

static int open_tty(const char *path) {
  struct stat st;
  int fd;
  if (lstat(path, &st) == 0 && S_ISCHR(st.st_mode)) {
    fd = open(path, O_RDWR | O_NOCTTY);
    if (fd < 0 || set_raw(fd) != 0) {
      perror("eob_device: --tty");
      return -1;
    }
  } else {
    fd = make_pty(path);
  }
  return fd;
}

/* ---- flash in a file ---- */

static long region_base(uint8_t region) {
  return region == EOB_REGION_TABLE ? 0L : (long)(TABLE_SIZE + (region - 1u) * SLOT_SIZE);
}

static uint32_t region_size(uint8_t region) { return region == EOB_REGION_TABLE ? TABLE_SIZE : SLOT_SIZE; }

static bool in_region(uint8_t region, uint32_t offset, uint32_t n) {
  return region <= EOB_REGION_SLOT1 && offset <= region_size(region) && n <= region_size(region) - offset;
}

static bool flash_read(void *ctx, uint8_t region, uint32_t offset, uint8_t *data, uint32_t n) {
  host *h = (host *)ctx;
  return in_region(region, offset, n) && pread(h->flash, data, n, region_base(region) + (long)offset) == (ssize_t)n;
}

static bool flash_write(void *ctx, uint8_t region, uint32_t offset, const uint8_t *data, uint32_t n) {
  host *h = (host *)ctx;
  return in_region(region, offset, n) && pwrite(h->flash, data, n, region_base(region) + (long)offset) == (ssize_t)n;
}

static bool flash_erase(void *ctx, uint8_t region, uint32_t offset, uint32_t n) {
  uint8_t ff[ERASE];
  uint32_t k;
  if (offset % ERASE != 0 || n % ERASE != 0) return false;
  memset(ff, 0xFF, sizeof ff);
  for (k = 0; k < n; k += ERASE)
    if (!flash_write(ctx, region, offset + k, ff, ERASE)) return false;
  return true;
}

static int open_flash(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT, 0644);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    perror("eob_device: --flash");
    return -1;
  }
  if (st.st_size < (off_t)FLASH_SIZE) { /* a new board: blank flash */
    uint8_t ff[ERASE];
    long at;
    memset(ff, 0xFF, sizeof ff);
    for (at = (long)st.st_size; at < (long)FLASH_SIZE; at += (long)ERASE) {
      size_t n = (long)FLASH_SIZE - at < (long)ERASE ? (size_t)((long)FLASH_SIZE - at) : ERASE;
      if (pwrite(fd, ff, n, at) != (ssize_t)n) {
        perror("eob_device: --flash");
        return -1;
      }
    }
  }
  return fd;
}

/* ---- reset: exec ourselves again on the same tty ---- */

static void board_reset(void *ctx) {
  host *h = (host *)ctx;
  char fdarg[32];
  char **args = (char **)calloc((size_t)h->argc + 3, sizeof *args);
  int k, n = 0;
  if (args == NULL) exit(1);
  for (k = 0; k < h->argc; ++k) {
    if (strcmp(h->argv[k], "--tty-fd") == 0) {
      ++k; /* dropped: set again below */
      continue;
    }
    args[n++] = h->argv[k];
  }
  snprintf(fdarg, sizeof fdarg, "%d", h->tty);
  args[n++] = (char *)"--tty-fd";
  args[n++] = fdarg;
  args[n] = NULL;
  (void)fcntl(h->tty, F_SETFD, 0); /* the pty survives the exec */
  close(h->flash);
  execv("/proc/self/exe", args);
  perror("eob_device: re-exec");
  exit(1);
}

static void usage(void) {
  fprintf(stderr, "usage: eob_device --tty PATH --flash FILE --id ID [--loop-ms N] [--telemetry-ms N] "
                  "[--firmware VERSION]\n");
  exit(2);
}

int main(int argc, char **argv) {
  static eob_demo demo; /* about 12 KB: not on the stack */
  host h;
  eob_hal hal;
  eob_demo_board board;
  eob_demo_config cfg;
  eob_flash_geometry geo;
  const char *tty = NULL, *flash = NULL;
  int tty_fd = -1, k;
  struct sigaction sa;

  memset(&cfg, 0, sizeof cfg);
  cfg.firmware_version = "host-0.1";
  cfg.loop_ms = 200;
  cfg.telemetry_ms = 1000;
  cfg.health_min_correct = DIGITS_SAMPLE_COUNT * 8u / 10u;
  cfg.health_max_latency_us = 200000u;
  for (k = 1; k < argc; ++k) {
    const char *v = k + 1 < argc ? argv[k + 1] : NULL;
    if (v == NULL) usage();
    if (strcmp(argv[k], "--tty") == 0) tty = v;
    else if (strcmp(argv[k], "--tty-fd") == 0) tty_fd = atoi(v);
    else if (strcmp(argv[k], "--flash") == 0) flash = v;
    else if (strcmp(argv[k], "--id") == 0) cfg.device_id = v;
    else if (strcmp(argv[k], "--loop-ms") == 0) cfg.loop_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(argv[k], "--telemetry-ms") == 0) cfg.telemetry_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(argv[k], "--firmware") == 0) cfg.firmware_version = v;
    else usage();
    ++k;
  }
  if (tty == NULL || flash == NULL || cfg.device_id == NULL) usage();

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  memset(&h, 0, sizeof h);
  h.argc = argc;
  h.argv = argv;
  h.tty = tty_fd >= 0 ? tty_fd : open_tty(tty);
  h.flash = open_flash(flash);
  if (h.tty < 0 || h.flash < 0) return 1;
  (void)fcntl(h.tty, F_SETFL, fcntl(h.tty, F_GETFL) | O_NONBLOCK);
  (void)fcntl(h.tty, F_SETFD, FD_CLOEXEC);

  memset(&hal, 0, sizeof hal);
  hal.ctx = &h;
  hal.write = tty_write;
  hal.read = tty_read;
  hal.micros = micros;
  hal.flash_read = flash_read;
  hal.flash_erase = flash_erase;
  hal.flash_write = flash_write;
  memset(&board, 0, sizeof board);
  board.ctx = &h;
  board.reset = board_reset;
  geo.erase_size = ERASE;
  geo.write_size = 4;
  geo.slot_size = SLOT_SIZE;
  geo.header_size = SLOT_HEADER;

  if (!eob_demo_init(&demo, &hal, &geo, &board, &cfg)) {
    fprintf(stderr, "eob_device: init failed\n");
    return 1;
  }
  while (!stop_requested) {
    struct pollfd p;
    if (!eob_demo_step(&demo)) break;
    p.fd = h.tty;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, 2) > 0 && (p.revents & POLLIN) == 0) {
      struct timespec ts = {0, 2000000L}; /* POLLHUP: no host on the pty; don't spin */
      nanosleep(&ts, NULL);
    }
  }
  close(h.flash);
  close(h.tty);
  return 0;
}
