#include "rt_audio_frame.h"
#include "rt_test.h"

typedef struct {
    int frames;
    int16_t first[4];
    int16_t last_sample;
} seen_t;

static void on_frame(const int16_t *frame, size_t samples, void *ctx)
{
    seen_t *seen = ctx;
    if (seen->frames < 4) {
        seen->first[seen->frames] = frame[0];
    }
    seen->last_sample = frame[samples - 1];
    seen->frames++;
}

static void test_frame_sizes(void)
{
    CHECK(rt_frame_samples(16000, RT_FRAME_MS) == 320);
    CHECK(rt_frame_samples(24000, RT_FRAME_MS) == 480);
    CHECK(rt_frame_samples(48000, RT_FRAME_MS) == RT_FRAME_MAX_SAMPLES);
    CHECK(rt_frame_samples(44100, RT_FRAME_MS) == 0);
    CHECK(rt_opus_rate_ok(16000) && rt_opus_rate_ok(24000) && !rt_opus_rate_ok(44100) && !rt_opus_rate_ok(22050));
}

static void test_framer_collects_odd_chunks(void)
{
    rt_framer_t f;
    seen_t seen = {0};
    int16_t pcm[1000];
    for (int i = 0; i < 1000; i++) {
        pcm[i] = (int16_t)i;
    }
    CHECK(!rt_framer_init(&f, 0));
    CHECK(!rt_framer_init(&f, RT_FRAME_MAX_SAMPLES + 1));
    CHECK(rt_framer_init(&f, 320));
    size_t frames = 0, at = 0;
    size_t chunks[] = {100, 250, 7, 3, 500, 140};   /* 1000 samples in uneven DMA-sized pieces */
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        frames += rt_framer_push(&f, pcm + at, chunks[i], on_frame, &seen);
        at += chunks[i];
    }
    CHECK(frames == 3 && seen.frames == 3);
    CHECK(seen.first[0] == 0 && seen.first[1] == 320 && seen.first[2] == 640);
    CHECK(seen.last_sample == 959);
    CHECK(f.fill == 40);
}

static void test_i32_to_i16_scaling(void)
{
    int32_t in[5] = {0x12345678, -0x12345678, INT32_MAX, INT32_MIN, 0x00010000};
    int16_t out[5];
    rt_pcm_from_i32(in, out, 5, 0);
    CHECK(out[0] == 0x1234);
    CHECK(out[1] == -0x1234);
    CHECK(out[2] == INT16_MAX && out[3] == INT16_MIN);
    CHECK(out[4] == 1);
    int32_t quiet[2] = {0x00100000, -0x00100000};
    rt_pcm_from_i32(quiet, out, 2, 4);     /* +24 dB */
    CHECK(out[0] == 0x100 && out[1] == -0x100);
    int32_t loud[1] = {0x40000000};
    rt_pcm_from_i32(loud, out, 1, 8);      /* saturates, never wraps */
    CHECK(out[0] == INT16_MAX);
}

static void test_channels(void)
{
    int16_t stereo[6] = {1, -1, 2, -2, 3, -3}, mono[3], back[6];
    rt_pcm_pick_channel(stereo, mono, 3, 1);
    CHECK(mono[0] == -1 && mono[1] == -2 && mono[2] == -3);
    rt_pcm_pick_channel(stereo, stereo, 3, 0);   /* in place */
    CHECK(stereo[0] == 1 && stereo[1] == 2 && stereo[2] == 3);
    rt_pcm_mono_to_stereo(mono, back, 3);
    CHECK(back[0] == -1 && back[1] == -1 && back[4] == -3 && back[5] == -3);
}

int main(void)
{
    RUN(test_frame_sizes);
    RUN(test_framer_collects_odd_chunks);
    RUN(test_i32_to_i16_scaling);
    RUN(test_channels);
    RT_TEST_DONE();
}
