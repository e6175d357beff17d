#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "rt_test.h"
#include "rt_wav.h"

static char dir[64];

static const char *tmp(const char *name)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

static void test_round_trip(void)
{
    rt_wav_t w;
    char why[80];
    int16_t pcm[1000], back[1200];
    for (int i = 0; i < 1000; i++) {
        pcm[i] = (int16_t)((i * 37) - 18000);
    }
    CHECK(rt_wav_open_write(&w, tmp("a.wav"), 24000, why, sizeof(why)));
    CHECK(rt_wav_write(&w, pcm, 600) && rt_wav_write(&w, pcm + 600, 400));
    CHECK(rt_wav_close(&w));
    rt_wav_t r;
    CHECK(rt_wav_open_read(&r, tmp("a.wav"), why, sizeof(why)));
    CHECK(r.rate == 24000 && r.channels == 1 && r.data_bytes == 2000);
    size_t got = rt_wav_read(&r, back, 1200);
    CHECK(got == 1000);
    CHECK(memcmp(pcm, back, sizeof(pcm)) == 0);
    CHECK(rt_wav_read(&r, back, 10) == 0);
    rt_wav_close(&r);
}

static void put16(FILE *f, unsigned v) { fputc((int)(v & 0xFF), f); fputc((int)(v >> 8), f); }
static void put32(FILE *f, unsigned v) { put16(f, v & 0xFFFF); put16(f, v >> 16); }

static void test_stereo_with_extra_chunks(void)
{
    FILE *f = fopen(tmp("s.wav"), "wb");
    fwrite("RIFF", 1, 4, f); put32(f, 4 + 8 + 3 + 1 + 8 + 18 + 8 + 8);
    fwrite("WAVE", 1, 4, f);
    fwrite("LIST", 1, 4, f); put32(f, 3); fwrite("abc", 1, 3, f); fputc(0, f);   /* odd chunk + pad */
    fwrite("fmt ", 1, 4, f); put32(f, 18); put16(f, 1); put16(f, 2); put32(f, 16000); put32(f, 64000);
    put16(f, 4); put16(f, 16); put16(f, 0);                                         /* 18-byte fmt */
    fwrite("data", 1, 4, f); put32(f, 8);
    put16(f, 1000); put16(f, 3000); put16(f, (unsigned)(uint16_t)-2000); put16(f, (unsigned)(uint16_t)-4000);
    fclose(f);
    rt_wav_t r;
    char why[80];
    int16_t out[4];
    CHECK(rt_wav_open_read(&r, tmp("s.wav"), why, sizeof(why)));
    CHECK(r.channels == 2 && r.rate == 16000);
    CHECK(rt_wav_read(&r, out, 4) == 2);
    CHECK(out[0] == 2000 && out[1] == -3000);
    rt_wav_close(&r);
}

static void test_rejects(void)
{
    rt_wav_t r;
    char why[80];
    CHECK(!rt_wav_open_read(&r, tmp("missing.wav"), why, sizeof(why)));
    CHECK(strstr(why, "cannot open") != NULL);
    FILE *f = fopen(tmp("t.txt"), "wb");
    fputs("hello, not a wav file", f);
    fclose(f);
    CHECK(!rt_wav_open_read(&r, tmp("t.txt"), why, sizeof(why)));
    CHECK_STR(why, "not a RIFF/WAVE file");
    f = fopen(tmp("f.wav"), "wb");
    fwrite("RIFF", 1, 4, f); put32(f, 36); fwrite("WAVEfmt ", 1, 8, f); put32(f, 16);
    put16(f, 3); put16(f, 1); put32(f, 16000); put32(f, 64000); put16(f, 4); put16(f, 32);   /* float */
    fclose(f);
    CHECK(!rt_wav_open_read(&r, tmp("f.wav"), why, sizeof(why)));
    CHECK_STR(why, "only 16-bit PCM WAV files are supported");
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rt-wav-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return 2;
    }
    RUN(test_round_trip);
    RUN(test_stereo_with_extra_chunks);
    RUN(test_rejects);
    const char *names[] = {"a.wav", "s.wav", "t.txt", "f.wav"};
    for (size_t i = 0; i < 4; i++) {
        unlink(tmp(names[i]));
    }
    rmdir(dir);
    RT_TEST_DONE();
}
