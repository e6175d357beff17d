/* DTLS certificate fingerprints of an SDP (RFC 8122 `a=fingerprint:<hash> <hex>`), kept apart from
 * libpeer and mbedTLS so it is unit-testable.
 *
 * Why: an answer may list several fingerprints (aiortc sends sha-256, sha-384 and sha-512, at session
 * or media level) and libpeer kept only the last line, cut to 160 bytes: a sha-512 line broke every
 * call. RFC 8122 section 5: pick the fingerprints of the most preferred hash function we support and
 * verify the peer's certificate against them; a mismatch refuses the peer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RT_FP_NONE = 0,
    RT_FP_SHA256 = 1 << 0,
    RT_FP_SHA384 = 1 << 1,
    RT_FP_SHA512 = 1 << 2,
} rt_fp_alg_t;

/* "sha-512 " + 64 bytes as "AB:" * 64 - 1 + NUL */
#define RT_FP_TEXT_MAX 208

typedef struct {
    rt_fp_alg_t alg;
    char value[RT_FP_TEXT_MAX];   /* upper-case hex pairs separated by ':' */
} rt_fingerprint_t;

/* "sha-256", "sha-384", "sha-512" ("?" otherwise). */
const char *rt_fp_alg_name(rt_fp_alg_t alg);

/* Digest size in bytes (0 for RT_FP_NONE). */
size_t rt_fp_alg_size(rt_fp_alg_t alg);

/* The fingerprint to verify against: among every `a=fingerprint` line of `sdp` (any level) whose
 * hash is in `supported` (RT_FP_* bits) and whose value is well-formed, the strongest hash
 * (sha-512 > sha-384 > sha-256), the first line of that hash. False, with `why` (one phrase), if none. */
bool rt_fp_pick(const char *sdp, unsigned supported, rt_fingerprint_t *out, char *why, size_t why_cap);

/* `digest` (size bytes) as "AB:CD:..." into out (size*3 bytes at least); returns out. */
char *rt_fp_hex(const unsigned char *digest, size_t size, char *out, size_t cap);

/* Same fingerprint value (hex case ignored). */
bool rt_fp_equal(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
