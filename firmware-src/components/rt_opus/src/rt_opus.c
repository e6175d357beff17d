#include "rt_opus.h"

#include <stdlib.h>

#include <opus.h>

#include "rt_audio_frame.h"

struct rt_opus_enc {
    OpusEncoder *enc;
};

struct rt_opus_dec {
    OpusDecoder *dec;
};

rt_opus_enc_t *rt_opus_enc_new(uint32_t rate, int bitrate, int complexity, int *err)
{
    int e = OPUS_BAD_ARG;
    rt_opus_enc_t *self = NULL;
    if (!rt_opus_rate_ok(rate)) {
        goto out;
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        e = OPUS_ALLOC_FAIL;
        goto out;
    }
    self->enc = opus_encoder_create((opus_int32)rate, 1, OPUS_APPLICATION_VOIP, &e);
    if (self->enc == NULL || e != OPUS_OK) {
        free(self);
        self = NULL;
        goto out;
    }
    opus_encoder_ctl(self->enc, OPUS_SET_BITRATE(bitrate > 0 ? bitrate : RT_OPUS_BITRATE_DEFAULT));
    opus_encoder_ctl(self->enc, OPUS_SET_COMPLEXITY(complexity >= 0 && complexity <= 10 ? complexity : 0));
    opus_encoder_ctl(self->enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
out:
    if (err) {
        *err = self ? OPUS_OK : e;
    }
    return self;
}

int rt_opus_encode(rt_opus_enc_t *enc, const int16_t *pcm, size_t samples, uint8_t *out, size_t cap)
{
    if (enc == NULL || pcm == NULL || out == NULL) {
        return OPUS_BAD_ARG;
    }
    return opus_encode(enc->enc, pcm, (int)samples, out, (opus_int32)cap);
}

void rt_opus_enc_free(rt_opus_enc_t *enc)
{
    if (enc) {
        opus_encoder_destroy(enc->enc);
        free(enc);
    }
}

rt_opus_dec_t *rt_opus_dec_new(uint32_t rate, int *err)
{
    int e = OPUS_BAD_ARG;
    rt_opus_dec_t *self = NULL;
    if (rt_opus_rate_ok(rate) && (self = calloc(1, sizeof(*self))) != NULL) {
        self->dec = opus_decoder_create((opus_int32)rate, 1, &e);
        if (self->dec == NULL || e != OPUS_OK) {
            free(self);
            self = NULL;
        }
    } else if (rt_opus_rate_ok(rate)) {
        e = OPUS_ALLOC_FAIL;
    }
    if (err) {
        *err = self ? OPUS_OK : e;
    }
    return self;
}

int rt_opus_decode(rt_opus_dec_t *dec, const uint8_t *packet, size_t len, int16_t *pcm, size_t max_samples)
{
    if (dec == NULL || pcm == NULL) {
        return OPUS_BAD_ARG;
    }
    return opus_decode(dec->dec, packet, packet ? (opus_int32)len : 0, pcm, (int)max_samples, 0);
}

void rt_opus_dec_free(rt_opus_dec_t *dec)
{
    if (dec) {
        opus_decoder_destroy(dec->dec);
        free(dec);
    }
}

const char *rt_opus_error(int err)
{
    return opus_strerror(err);
}
