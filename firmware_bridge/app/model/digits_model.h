/* digits_model.h: an int8 model compiled to C by edgeops (--format c --codegen). Do not edit.
 *
 * Operators: RESHAPE x2, CONV_2D x2, MAX_POOL_2D, FULLY_CONNECTED, SOFTMAX
 * Build with every .c file of firmware_bridge/src, firmware_bridge/include on the include path.
 * float input 'image' is taken as int8 (the model's QUANTIZE is left to the caller: q = round(x / 0.00392156886) - 128, clamped to -128..127)
 * float output 'probabilities' is given as int8 (the model's DEQUANTIZE is left to the caller: x = 0.00390625 * (q + 128))
 */
#ifndef EDGEOPS_DIGITS_MODEL_H_
#define EDGEOPS_DIGITS_MODEL_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of scratch memory digits_invoke needs (every intermediate tensor at a fixed offset; no alignment
 * needed, nothing kept between calls). */
#define DIGITS_ARENA_SIZE 640

/* input 0: image_quantized, int8 [1, 1, 8, 8], real = scale * (q - zero point) */
#define DIGITS_INPUT_SIZE 64
#define DIGITS_INPUT_SCALE 0x1.0101020000000p-8f /* 0.00392156886 */
#define DIGITS_INPUT_ZERO_POINT -128
/* output 0: probabilities/int8, int8 [1, 10], real = scale * (q - zero point) */
#define DIGITS_OUTPUT_SIZE 10
#define DIGITS_OUTPUT_SCALE 0x1.0000000000000p-8f /* 0.00390625 */
#define DIGITS_OUTPUT_ZERO_POINT -128

/* Runs the model: reads the input(s), writes the output(s), uses arena as scratch. Returns 0, or -1 when a
 * pointer is NULL. Input and output buffers must not overlap the arena. */
int digits_invoke(const int8_t *input, int8_t *output, uint8_t *arena);

/* Blob mode: the constant arrays (weights, biases, per-channel multipliers and shifts, tables) are read
 * through a pointer to DIGITS_BLOB_SIZE bytes, 4-byte aligned, little-endian; everything else (operators,
 * shapes, scalar kernel parameters, the blob's layout) is compiled in and summed up by the graph hash.
 * A blob for this code comes from a model with the same graph hash (edgeops.bridge.image). */
#define DIGITS_BLOB_SIZE 5216
#define DIGITS_GRAPH_HASH_HEX "4f554e86ce4cf4d01c72f289fe367070a3f27fe350e21c606df6da7120711585"
#define DIGITS_GRAPH_HASH_BYTES {0x4f, 0x55, 0x4e, 0x86, 0xce, 0x4c, 0xf4, 0xd0, 0x1c, 0x72, 0xf2, 0x89, 0xfe, 0x36, 0x70, 0x70, 0xa3, 0xf2, 0x7f, 0xe3, 0x50, 0xe2, 0x1c, 0x60, 0x6d, 0xf6, 0xda, 0x71, 0x20, 0x71, 0x15, 0x85}

/* The blob of the model this code was generated from, as 32-bit words (so 4-byte aligned). */
extern const uint32_t digits_blob_words[];

/* As digits_invoke with the constants read from blob; -1 also when blob is NULL or not 4-byte aligned. */
int digits_invoke_blob(const uint8_t *blob, const int8_t *input, int8_t *output, uint8_t *arena);

/* 0 when every shift in blob is within -31..31, every bias within +-2^30 and every SOFTMAX exp table
 * non-negative with exp(0) at least 2^12 (so no blob makes a kernel shift out of range or overflow), -1
 * otherwise or when blob is NULL or not 4-byte aligned. Check a blob from outside the firmware with it
 * before digits_invoke_blob. */
int digits_blob_check(const uint8_t *blob);

#ifdef __cplusplus
}
#endif

#endif /* EDGEOPS_DIGITS_MODEL_H_ */
