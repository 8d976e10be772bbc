/* SHA-256 (FIPS 180-4), for hashing bearer tokens: the gateway keeps only the digests of the
 * configured tokens and compares a request's digest in constant time, so a token is never held
 * in memory longer than it takes to hash it, and a timing side channel learns nothing. */
#ifndef CGW_CORE_SHA256_H
#define CGW_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CGW_SHA256_LEN 32

/* Writes the digest of `len` bytes at `data` into `out`. */
void cgw__sha256(const void *data, size_t len, uint8_t out[CGW_SHA256_LEN]);

/* Lowercase hex of the digest into `out` (65 bytes, NUL-terminated). */
void cgw__sha256_hex(const void *data, size_t len, char out[2 * CGW_SHA256_LEN + 1]);

/* 1 when the two digests are equal; always reads all 32 bytes (no early exit). */
int cgw__digest_equal(const uint8_t a[CGW_SHA256_LEN], const uint8_t b[CGW_SHA256_LEN]);

#endif
