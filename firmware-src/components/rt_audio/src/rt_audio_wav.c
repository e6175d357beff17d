/* Audio without hardware: the linux target (and a board with RT_AUDIO_NONE). The "microphone"
 * plays the WAV file named by RT_WAV_IN (or silence) in real time, 20 ms at a time; the "speaker"
 * writes what the model says to RT_WAV_OUT (or drops it). */
#include "sdkconfig.h"

#if CONFIG_IDF_TARGET_LINUX || CONFIG_RT_AUDIO_NONE

#include <stdlib.h>
#include <string.h>

#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "rt_audio.h"
#include "rt_audio_frame.h"
#include "rt_audio_priv.h"
#include "rt_wav.h"

static const char *TAG = "rt_audio";
static rt_ring_t *s_mic, *s_spk;
static rt_wav_t s_in, s_out;
static bool s_have_in, s_have_out;

uint32_t rt_audio_rate(void)
{
    return CONFIG_RT_AUDIO_SAMPLE_RATE;
}

/* Keep the RIFF and data sizes of RT_WAV_OUT current after every write, so the file is a valid WAV
 * up to the last frame whenever the process ends (SIGTERM, Ctrl-C: rt_wav_close never runs). */
static void patch_sizes(rt_wav_t *wav)
{
    uint8_t le[4];
    long end = ftell(wav->fp);
    uint32_t sizes[2] = {36 + wav->data_bytes, wav->data_bytes};
    static const long at[2] = {4, 40};   /* rt_wav's 44-byte header: RIFF size, data size */
    for (int i = 0; i < 2 && end > 0; i++) {
        for (int b = 0; b < 4; b++) {
            le[b] = (uint8_t)(sizes[i] >> (8 * b));
        }
        if (fseek(wav->fp, at[i], SEEK_SET) != 0 || fwrite(le, 1, sizeof(le), wav->fp) != sizeof(le)) {
            break;
        }
    }
    if (end > 0) {
        fseek(wav->fp, end, SEEK_SET);
    }
    fflush(wav->fp);
}

static void wav_task(void *arg)
{
    (void)arg;
    const size_t n = rt_frame_samples(CONFIG_RT_AUDIO_SAMPLE_RATE, RT_FRAME_MS);
    static int16_t pcm[RT_FRAME_MAX_SAMPLES];
    TickType_t wake = xTaskGetTickCount();
    for (;;) {
        size_t got = s_have_in ? rt_wav_read(&s_in, pcm, n) : 0;
        if (s_have_in && got < n) {
            ESP_LOGI(TAG, "RT_WAV_IN finished; sending silence from now on");
            rt_wav_close(&s_in);
            s_have_in = false;
        }
        memset(pcm + got, 0, (n - got) * sizeof(int16_t));
        rt_audio_push_mic(s_mic, pcm, n);
        /* The speaker plays silence when the ring is empty; so does the WAV, one frame per 20 ms,
         * so its timeline is real time since start (a round trip can be measured in it). */
        size_t out = rt_ring_read(s_spk, pcm, n * sizeof(int16_t)) / sizeof(int16_t);
        memset(pcm + out, 0, (n - out) * sizeof(int16_t));
        if (s_have_out && rt_wav_write(&s_out, pcm, n)) {
            patch_sizes(&s_out);
        }
        xTaskDelayUntil(&wake, pdMS_TO_TICKS(RT_FRAME_MS));   /* 20 ms = 2 ticks at 100 Hz */
    }
}

esp_err_t rt_audio_start(rt_ring_t *mic, rt_ring_t *spk)
{
    char why[96];
    const char *in = getenv("RT_WAV_IN"), *out = getenv("RT_WAV_OUT");
    s_mic = mic;
    s_spk = spk;
    if (in && *in) {
        s_have_in = rt_wav_open_read(&s_in, in, why, sizeof(why));
        if (!s_have_in) {
            ESP_LOGE(TAG, "RT_WAV_IN %s: %s; sending silence", in, why);
        } else if (s_in.rate != CONFIG_RT_AUDIO_SAMPLE_RATE) {
            ESP_LOGE(TAG, "RT_WAV_IN %s is %u Hz, the firmware runs at %d Hz: convert it (sox in.wav -r %d out.wav)",
                     in, (unsigned)s_in.rate, CONFIG_RT_AUDIO_SAMPLE_RATE, CONFIG_RT_AUDIO_SAMPLE_RATE);
            rt_wav_close(&s_in);
            s_have_in = false;
        } else {
            ESP_LOGI(TAG, "microphone: %s", in);
        }
    } else {
        ESP_LOGI(TAG, "microphone: silence (set RT_WAV_IN to a 16-bit mono WAV at %d Hz)", CONFIG_RT_AUDIO_SAMPLE_RATE);
    }
    if (out && *out) {
        s_have_out = rt_wav_open_write(&s_out, out, CONFIG_RT_AUDIO_SAMPLE_RATE, why, sizeof(why));
        if (!s_have_out) {
            ESP_LOGE(TAG, "RT_WAV_OUT %s: %s; speaker output dropped", out, why);
        } else {
            ESP_LOGI(TAG, "speaker: %s", out);
        }
    }
    return xTaskCreate(wav_task, "rt_wav", 8192, NULL, 5, NULL) == pdPASS ? ESP_OK : ESP_ERR_NO_MEM;
}

#endif
