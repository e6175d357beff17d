/* Opus for the session: mono VoIP encoder (low complexity, for the ESP32-S3's budget) and decoder,
 * 20 ms frames. A thin wrapper over libopus so the rest of the firmware never sees opus.h, and so
 * the host tests can run the exact same code against Debian's libopus.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RT_OPUS_MAX_PACKET 1276   /* RFC 6716: the largest packet for one frame */
#define RT_OPUS_BITRATE_DEFAULT 30000
#define RT_OPUS_COMPLEXITY_DEFAULT 0

typedef struct rt_opus_enc rt_opus_enc_t;
typedef struct rt_opus_dec rt_opus_dec_t;

/* NULL when the rate is not one Opus supports or libopus fails (error code in *err if given). */
rt_opus_enc_t *rt_opus_enc_new(uint32_t rate, int bitrate, int complexity, int *err);

/* Encode one frame of `samples` (must be a valid Opus frame size, e.g. rate/50); returns bytes
 * written to out, or a negative libopus error. */
int rt_opus_encode(rt_opus_enc_t *enc, const int16_t *pcm, size_t samples, uint8_t *out, size_t cap);

void rt_opus_enc_free(rt_opus_enc_t *enc);

rt_opus_dec_t *rt_opus_dec_new(uint32_t rate, int *err);

/* Decode one packet (NULL/0 for packet-loss concealment) into at most max_samples; returns samples
 * or a negative libopus error. */
int rt_opus_decode(rt_opus_dec_t *dec, const uint8_t *packet, size_t len, int16_t *pcm, size_t max_samples);

void rt_opus_dec_free(rt_opus_dec_t *dec);

/* libopus's error string for a negative return. */
const char *rt_opus_error(int err);

#ifdef __cplusplus
}
#endif
