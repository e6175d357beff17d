/* Opus round trip through our wrapper with the real libopus: a 440 Hz tone, encoded in 20 ms VoIP
 * frames at low complexity and decoded, must come back as the same tone (after the codec delay). */
#include <math.h>
#include <stdlib.h>

#include "rt_audio_frame.h"
#include "rt_opus.h"
#include "rt_test.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Correlation of a and b shifted by `lag` samples, normalised to [-1, 1]. */
static double correlation(const int16_t *a, const int16_t *b, size_t n, size_t lag)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i + lag < n; i++) {
        ab += (double)a[i] * b[i + lag];
        aa += (double)a[i] * a[i];
        bb += (double)b[i + lag] * b[i + lag];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static void round_trip(uint32_t rate)
{
    int err = 0;
    rt_opus_enc_t *enc = rt_opus_enc_new(rate, RT_OPUS_BITRATE_DEFAULT, RT_OPUS_COMPLEXITY_DEFAULT, &err);
    rt_opus_dec_t *dec = rt_opus_dec_new(rate, &err);
    CHECK(enc != NULL && dec != NULL);
    if (enc == NULL || dec == NULL) {
        return;
    }
    size_t frame = rt_frame_samples(rate, RT_FRAME_MS);
    size_t frames = 50, total = frame * frames;   /* one second */
    int16_t *in = calloc(total, sizeof(int16_t)), *out = calloc(total, sizeof(int16_t));
    for (size_t i = 0; i < total; i++) {
        in[i] = (int16_t)(8000.0 * sin(2 * M_PI * 440.0 * (double)i / rate));
    }
    size_t bytes = 0;
    for (size_t f = 0; f < frames; f++) {
        uint8_t packet[RT_OPUS_MAX_PACKET];
        int n = rt_opus_encode(enc, in + f * frame, frame, packet, sizeof(packet));
        CHECK(n > 0 && n < 200);    /* ~75 bytes per 20 ms at 30 kbit/s */
        bytes += n > 0 ? (size_t)n : 0;
        int got = rt_opus_decode(dec, packet, (size_t)(n > 0 ? n : 0), out + f * frame, frame);
        CHECK(got == (int)frame);
    }
    CHECK(bytes > 2500 && bytes < 6000);   /* 30 kbit/s for one second is 3750 bytes */
    double best = 0;
    for (size_t lag = 0; lag < frame; lag++) {
        double c = correlation(in + frame, out + frame, total - 2 * frame, lag);
        best = c > best ? c : best;
    }
    CHECK(best > 0.9);
    int16_t plc[960];
    CHECK(rt_opus_decode(dec, NULL, 0, plc, frame) == (int)frame);   /* packet-loss concealment */
    free(in);
    free(out);
    rt_opus_enc_free(enc);
    rt_opus_dec_free(dec);
}

static void test_round_trip_16k(void) { round_trip(16000); }
static void test_round_trip_24k(void) { round_trip(24000); }

static void test_bad_arguments(void)
{
    int err = 0;
    CHECK(rt_opus_enc_new(44100, 0, 0, &err) == NULL && err < 0);
    CHECK(rt_opus_dec_new(11025, &err) == NULL && err < 0);
    CHECK(strlen(rt_opus_error(err)) > 0);
    rt_opus_enc_t *enc = rt_opus_enc_new(16000, 0, 0, NULL);
    int16_t pcm[100] = {0};
    uint8_t out[RT_OPUS_MAX_PACKET];
    CHECK(rt_opus_encode(enc, pcm, 100, out, sizeof(out)) < 0);   /* 100 samples is not a frame size */
    CHECK(rt_opus_encode(NULL, pcm, 320, out, sizeof(out)) < 0);
    rt_opus_enc_free(enc);
    rt_opus_enc_free(NULL);
    rt_opus_dec_free(NULL);
}

int main(void)
{
    RUN(test_round_trip_16k);
    RUN(test_round_trip_24k);
    RUN(test_bad_arguments);
    RT_TEST_DONE();
}
