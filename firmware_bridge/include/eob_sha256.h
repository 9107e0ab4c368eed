/* eob_sha256.h: SHA-256 (FIPS 180-4), small and incremental, for checking model images on the device.
 * C99, no malloc, no globals; about 1 KB of Cortex-M4 code. */
#ifndef EOB_SHA256_H_
#define EOB_SHA256_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t block[64];
  size_t fill;
} eob_sha256;

void eob_sha256_init(eob_sha256 *s);
void eob_sha256_update(eob_sha256 *s, const uint8_t *data, size_t n);
void eob_sha256_final(eob_sha256 *s, uint8_t digest[32]);
/* One call: the digest of n bytes. */
void eob_sha256_of(const uint8_t *data, size_t n, uint8_t digest[32]);

#ifdef __cplusplus
}
#endif

#endif
