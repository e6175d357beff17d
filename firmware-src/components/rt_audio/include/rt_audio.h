/* Board audio, configured from the CONFIG_RT_* symbols rtflash renders per board.
 *
 * The audio tasks only move PCM between the hardware and two rings: the microphone task writes
 * 16-bit mono samples into `mic`, the speaker task plays what it finds in `spk` (silence when it
 * is empty), so neither the I2S DMA nor the Opus codec ever waits for the other.
 *   RT_AUDIO_I2S   plain I2S mic (e.g. INMP441) and amp (e.g. MAX98357A): driver/i2s_std.h
 *   RT_AUDIO_CODEC ES8311 (speaker, and mic on the AtomS3R Echo Base) / ES7210 (mic) over I2C,
 *                  through Espressif's esp_codec_dev, the data on the same I2S standard bus
 *   RT_AUDIO_NONE  linux target: RT_WAV_IN / RT_WAV_OUT files, or silence
 */
#pragma once

#include <stdint.h>

#include "esp_err.h"
#include "rt_ring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Start the board's audio at CONFIG_RT_AUDIO_SAMPLE_RATE; the tasks run until reboot. */
esp_err_t rt_audio_start(rt_ring_t *mic, rt_ring_t *spk);

/* Sample rate actually in use (Hz). */
uint32_t rt_audio_rate(void);

#ifdef __cplusplus
}
#endif
