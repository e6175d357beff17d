/* 16-bit PCM WAV files for the linux target: microphone input read from RT_WAV_IN, speaker output
 * written to RT_WAV_OUT. Only what the firmware needs: mono or stereo 16-bit PCM (stereo input is
 * mixed down), RIFF chunks in any order, the header patched with the final sizes on close.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    FILE *fp;
    uint32_t rate;
    uint16_t channels;
    uint32_t data_bytes;   /* reader: bytes left in the data chunk; writer: bytes written */
    bool writing;
} rt_wav_t;

/* Open for reading; on failure returns false and writes the reason into why. */
bool rt_wav_open_read(rt_wav_t *wav, const char *path, char *why, size_t why_cap);

/* Read up to n mono samples (stereo files are averaged); returns samples read (0 at the end). */
size_t rt_wav_read(rt_wav_t *wav, int16_t *out, size_t n);

/* Create a mono 16-bit file at `rate`. */
bool rt_wav_open_write(rt_wav_t *wav, const char *path, uint32_t rate, char *why, size_t why_cap);

bool rt_wav_write(rt_wav_t *wav, const int16_t *pcm, size_t n);

/* Writer: patch the RIFF and data sizes; both: close the file. */
bool rt_wav_close(rt_wav_t *wav);

#ifdef __cplusplus
}
#endif
