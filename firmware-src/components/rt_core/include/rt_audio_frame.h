/* 20 ms audio framing and PCM sample conversion.
 *
 * Why: Opus encodes fixed frames (20 ms = rate/50 samples) while I2S DMA hands out whatever its
 * buffers hold; the framer collects arbitrary chunks into whole frames. I2S MEMS microphones send
 * 24-bit samples left-justified in 32-bit slots, so they are scaled down to 16-bit here.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RT_FRAME_MS 20
#define RT_FRAME_MAX_SAMPLES (48000 / 1000 * RT_FRAME_MS)

/* Samples in one frame of `ms` milliseconds at `rate` Hz (0 when the rate is not a whole number
 * of samples per millisecond, e.g. 44100). */
size_t rt_frame_samples(uint32_t rate, uint32_t ms);

/* True for the rates Opus accepts: 8, 12, 16, 24 and 48 kHz. */
bool rt_opus_rate_ok(uint32_t rate);

typedef void (*rt_frame_cb)(const int16_t *frame, size_t samples, void *ctx);

typedef struct {
    int16_t buf[RT_FRAME_MAX_SAMPLES];
    size_t samples;   /* frame size */
    size_t fill;      /* samples collected so far */
} rt_framer_t;

/* Frame size in samples (1..RT_FRAME_MAX_SAMPLES); false when out of range. */
bool rt_framer_init(rt_framer_t *framer, size_t samples);

/* Add n samples; calls cb once per completed frame. Returns the number of frames completed. */
size_t rt_framer_push(rt_framer_t *framer, const int16_t *pcm, size_t n, rt_frame_cb cb, void *ctx);

/* 32-bit I2S slots to 16-bit PCM: takes the top 16 bits after a left shift of `gain_shift` bits
 * (0-8), saturating instead of wrapping. `in` and `out` may alias. */
void rt_pcm_from_i32(const int32_t *in, int16_t *out, size_t n, unsigned gain_shift);

/* Interleaved stereo to mono by taking one channel (0 left, 1 right). `out` may alias `in`. */
void rt_pcm_pick_channel(const int16_t *in, int16_t *out, size_t frames, unsigned channel);

/* Mono to interleaved stereo (both channels the same); out holds 2*n samples, must not alias. */
void rt_pcm_mono_to_stereo(const int16_t *in, int16_t *out, size_t n);

#ifdef __cplusplus
}
#endif
