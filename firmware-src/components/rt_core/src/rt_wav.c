#include "rt_wav.h"

#include <errno.h>
#include <string.h>

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
}

static bool fail(rt_wav_t *wav, char *why, size_t cap, const char *reason)
{
    snprintf(why, cap, "%s", reason);
    if (wav->fp) {
        fclose(wav->fp);
        wav->fp = NULL;
    }
    return false;
}

bool rt_wav_open_read(rt_wav_t *wav, const char *path, char *why, size_t why_cap)
{
    uint8_t hdr[12], chunk[8], fmt[16];
    bool have_fmt = false;
    memset(wav, 0, sizeof(*wav));
    wav->fp = fopen(path, "rb");
    if (wav->fp == NULL) {
        snprintf(why, why_cap, "cannot open: %s", strerror(errno));
        return false;
    }
    if (fread(hdr, 1, 12, wav->fp) != 12 || memcmp(hdr, "RIFF", 4) || memcmp(hdr + 8, "WAVE", 4)) {
        return fail(wav, why, why_cap, "not a RIFF/WAVE file");
    }
    while (fread(chunk, 1, 8, wav->fp) == 8) {
        uint32_t size = le32(chunk + 4);
        if (memcmp(chunk, "fmt ", 4) == 0) {
            if (size < 16 || fread(fmt, 1, 16, wav->fp) != 16) {
                return fail(wav, why, why_cap, "short fmt chunk");
            }
            if (le16(fmt) != 1 || le16(fmt + 14) != 16) {
                return fail(wav, why, why_cap, "only 16-bit PCM WAV files are supported");
            }
            wav->channels = le16(fmt + 2);
            wav->rate = le32(fmt + 4);
            if (wav->channels < 1 || wav->channels > 2) {
                return fail(wav, why, why_cap, "only mono or stereo WAV files are supported");
            }
            have_fmt = true;
            if (fseek(wav->fp, (long)(size - 16 + (size & 1)), SEEK_CUR) != 0) {
                return fail(wav, why, why_cap, "truncated fmt chunk");
            }
        } else if (memcmp(chunk, "data", 4) == 0) {
            if (!have_fmt) {
                return fail(wav, why, why_cap, "data chunk before fmt chunk");
            }
            wav->data_bytes = size;
            return true;
        } else if (fseek(wav->fp, (long)(size + (size & 1)), SEEK_CUR) != 0) {
            return fail(wav, why, why_cap, "truncated chunk");
        }
    }
    return fail(wav, why, why_cap, "no data chunk");
}

size_t rt_wav_read(rt_wav_t *wav, int16_t *out, size_t n)
{
    size_t done = 0;
    uint8_t frame[4];
    size_t frame_bytes = (size_t)wav->channels * 2;
    while (done < n && wav->data_bytes >= frame_bytes) {
        if (fread(frame, 1, frame_bytes, wav->fp) != frame_bytes) {
            wav->data_bytes = 0;
            break;
        }
        wav->data_bytes -= (uint32_t)frame_bytes;
        int32_t left = (int16_t)le16(frame);
        int32_t sample = wav->channels == 2 ? (left + (int16_t)le16(frame + 2)) / 2 : left;
        out[done++] = (int16_t)sample;
    }
    return done;
}

static bool write_header(rt_wav_t *wav)
{
    uint8_t h[44];
    memcpy(h, "RIFF", 4);
    put32(h + 4, 36 + wav->data_bytes);
    memcpy(h + 8, "WAVEfmt ", 8);
    put32(h + 16, 16);
    put16(h + 20, 1);
    put16(h + 22, 1);
    put32(h + 24, wav->rate);
    put32(h + 28, wav->rate * 2);
    put16(h + 32, 2);
    put16(h + 34, 16);
    memcpy(h + 36, "data", 4);
    put32(h + 40, wav->data_bytes);
    return fwrite(h, 1, sizeof(h), wav->fp) == sizeof(h);
}

bool rt_wav_open_write(rt_wav_t *wav, const char *path, uint32_t rate, char *why, size_t why_cap)
{
    memset(wav, 0, sizeof(*wav));
    wav->fp = fopen(path, "wb");
    if (wav->fp == NULL) {
        snprintf(why, why_cap, "cannot create: %s", strerror(errno));
        return false;
    }
    wav->rate = rate;
    wav->channels = 1;
    wav->writing = true;
    if (!write_header(wav)) {
        return fail(wav, why, why_cap, "cannot write the WAV header");
    }
    return true;
}

bool rt_wav_write(rt_wav_t *wav, const int16_t *pcm, size_t n)
{
    uint8_t buf[256];
    while (n > 0) {
        size_t k = n < sizeof(buf) / 2 ? n : sizeof(buf) / 2;
        for (size_t i = 0; i < k; i++) {
            put16(buf + 2 * i, (uint16_t)pcm[i]);
        }
        if (fwrite(buf, 2, k, wav->fp) != k) {
            return false;
        }
        wav->data_bytes += (uint32_t)(2 * k);
        pcm += k;
        n -= k;
    }
    return true;
}

bool rt_wav_close(rt_wav_t *wav)
{
    bool ok = true;
    if (wav->fp == NULL) {
        return false;
    }
    if (wav->writing) {
        ok = fseek(wav->fp, 0, SEEK_SET) == 0 && write_header(wav);
    }
    ok = fclose(wav->fp) == 0 && ok;
    wav->fp = NULL;
    return ok;
}
