/* check.h: the C tests' one assertion macro and file helper (host only; the tests may use stdio and malloc). */
#ifndef EOB_TEST_CHECK_H_
#define EOB_TEST_CHECK_H_

#include <stdio.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define TEST_HELPER __attribute__((unused))
#else
#define TEST_HELPER
#endif

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                        \
  do {                                                                     \
    ++check_count;                                                         \
    if (!(cond)) {                                                         \
      ++check_failures;                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

/* Reads a whole file into a malloc'd buffer; NULL (and a message) when it cannot. */
TEST_HELPER static unsigned char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  long size;
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  size = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = (unsigned char *)malloc(size > 0 ? (size_t)size : 1u);
  if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
    fprintf(stderr, "cannot read %s\n", path);
    fclose(f);
    free(buf);
    return NULL;
  }
  fclose(f);
  *n = (size_t)size;
  return buf;
}

TEST_HELPER static int check_report(const char *name) {
  printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
  return check_failures == 0 ? 0 : 1;
}

#endif
