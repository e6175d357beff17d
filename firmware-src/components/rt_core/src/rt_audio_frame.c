#include "rt_audio_frame.h"

#include <string.h>

size_t rt_frame_samples(uint32_t rate, uint32_t ms)
{
    if (rate == 0 || rate % 1000 != 0) {
        return 0;
    }
    return (size_t)(rate / 1000) * ms;
}

bool rt_opus_rate_ok(uint32_t rate)
{
    return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

bool rt_framer_init(rt_framer_t *framer, size_t samples)
{
    if (framer == NULL || samples == 0 || samples > RT_FRAME_MAX_SAMPLES) {
        return false;
    }
    framer->samples = samples;
    framer->fill = 0;
    return true;
}

size_t rt_framer_push(rt_framer_t *framer, const int16_t *pcm, size_t n, rt_frame_cb cb, void *ctx)
{
    size_t frames = 0;
    while (n > 0) {
        size_t take = framer->samples - framer->fill;
        if (take > n) {
            take = n;
        }
        memcpy(framer->buf + framer->fill, pcm, take * sizeof(int16_t));
        framer->fill += take;
        pcm += take;
        n -= take;
        if (framer->fill == framer->samples) {
            if (cb != NULL) {
                cb(framer->buf, framer->samples, ctx);
            }
            framer->fill = 0;
            frames++;
        }
    }
    return frames;
}

void rt_pcm_from_i32(const int32_t *in, int16_t *out, size_t n, unsigned gain_shift)
{
    if (gain_shift > 8) {
        gain_shift = 8;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t v = (int64_t)in[i] * (1LL << gain_shift);
        v /= 65536;  /* arithmetic scaling: keeps negative values correct */
        if (v > INT16_MAX) {
            v = INT16_MAX;
        } else if (v < INT16_MIN) {
            v = INT16_MIN;
        }
        out[i] = (int16_t)v;
    }
}

void rt_pcm_pick_channel(const int16_t *in, int16_t *out, size_t frames, unsigned channel)
{
    channel = channel ? 1 : 0;
    for (size_t i = 0; i < frames; i++) {
        out[i] = in[2 * i + channel];
    }
}

void rt_pcm_mono_to_stereo(const int16_t *in, int16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = in[i];
        out[2 * i + 1] = in[i];
    }
}
