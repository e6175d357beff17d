/* Internal to rt_audio: shared helpers of the I2S, codec and WAV back-ends. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "rt_ring.h"
#include "sdkconfig.h"

#if CONFIG_RT_AUDIO_CODEC && !CONFIG_IDF_TARGET_LINUX
#include "driver/i2s_std.h"
/* Configure the codec(s) over I2C through esp_codec_dev and start the I2S data path. */
esp_err_t rt_codec_open(i2s_chan_handle_t tx, i2s_chan_handle_t rx);
#endif

/* Queue mic samples; a full ring drops them (counted in the ring) rather than stall the mic. */
void rt_audio_push_mic(rt_ring_t *mic, const int16_t *pcm, size_t n);

/* Start a task for the audio path: stack in PSRAM when the board has it, pinned to core 1. */
esp_err_t rt_audio_spawn(const char *name, void (*fn)(void *), uint32_t stack, unsigned prio);
