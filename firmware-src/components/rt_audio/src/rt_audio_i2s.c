/* Plain I2S and codec boards (ESP32-S3). I2S standard mode, Philips format, master role.
 * APIs checked against ESP-IDF v5.4/v5.5: driver/i2s_std.h (i2s_channel_init_std_mode,
 * I2S_STD_CLK_DEFAULT_CONFIG, I2S_STD_PHILIPS_SLOT_DEFAULT_CONFIG, i2s_std_gpio_config_t),
 * driver/i2s_common.h (I2S_CHANNEL_DEFAULT_CONFIG, i2s_new_channel, i2s_channel_enable/read/write),
 * driver/gpio.h for the amplifier enable pin. */
#include "sdkconfig.h"

#if !CONFIG_IDF_TARGET_LINUX && !CONFIG_RT_AUDIO_NONE

#include <string.h>

#include "driver/gpio.h"
#include "driver/i2s_std.h"
#include "esp_check.h"
#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_task_wdt.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "rt_audio.h"
#include "rt_audio_frame.h"
#include "rt_audio_priv.h"

static const char *TAG = "rt_audio";

/* A Kconfig bool that is off is not defined in sdkconfig.h at all: make it 0/1 for C expressions. */
#if defined(CONFIG_RT_MIC_SLOT_RIGHT) && CONFIG_RT_MIC_SLOT_RIGHT
#define MIC_SLOT_RIGHT true
#else
#define MIC_SLOT_RIGHT false
#endif

static i2s_chan_handle_t s_tx, s_rx;
static rt_ring_t *s_mic, *s_spk;

uint32_t rt_audio_rate(void)
{
    return CONFIG_RT_AUDIO_SAMPLE_RATE;
}

static gpio_num_t pin(int gpio)
{
    return gpio < 0 ? I2S_GPIO_UNUSED : (gpio_num_t)gpio;
}

/* Plain I2S mics send 24 bits in 32-bit slots: read 32-bit mono from the wired slot.
 * Codec ADCs (ES8311/ES7210) are read as 16-bit, like the DAC side. */
static i2s_data_bit_width_t mic_bits(void)
{
#if CONFIG_RT_AUDIO_I2S
    return I2S_DATA_BIT_WIDTH_32BIT;
#else
    return I2S_DATA_BIT_WIDTH_16BIT;
#endif
}

static esp_err_t init_channel(i2s_chan_handle_t chan, i2s_data_bit_width_t bits, bool right_slot, int mclk, int bclk,
                              int ws, int dout, int din)
{
    i2s_std_config_t cfg = {
        .clk_cfg = I2S_STD_CLK_DEFAULT_CONFIG(CONFIG_RT_AUDIO_SAMPLE_RATE),
        .slot_cfg = I2S_STD_PHILIPS_SLOT_DEFAULT_CONFIG(bits, I2S_SLOT_MODE_MONO),
        .gpio_cfg = {
            .mclk = pin(mclk),
            .bclk = pin(bclk),
            .ws = pin(ws),
            .dout = pin(dout),
            .din = pin(din),
            .invert_flags = {.mclk_inv = false, .bclk_inv = false, .ws_inv = false},
        },
    };
    cfg.slot_cfg.slot_mask = right_slot ? I2S_STD_SLOT_RIGHT : I2S_STD_SLOT_LEFT;
    return i2s_channel_init_std_mode(chan, &cfg);
}

static esp_err_t open_i2s(void)
{
    i2s_chan_config_t spk_cfg = I2S_CHANNEL_DEFAULT_CONFIG((i2s_port_t)CONFIG_RT_SPK_I2S_PORT, I2S_ROLE_MASTER);
    spk_cfg.auto_clear = true;  /* underrun plays silence, not the last buffer again */
#if CONFIG_RT_I2S_DUPLEX
    /* One controller for both directions (codec boards): TX and RX share BCLK/WS/MCLK. */
    ESP_RETURN_ON_ERROR(i2s_new_channel(&spk_cfg, &s_tx, &s_rx), TAG, "i2s_new_channel (duplex)");
    ESP_RETURN_ON_ERROR(init_channel(s_tx, I2S_DATA_BIT_WIDTH_16BIT, false, CONFIG_RT_SPK_MCLK_GPIO,
                                     CONFIG_RT_SPK_BCLK_GPIO, CONFIG_RT_SPK_WS_GPIO, CONFIG_RT_SPK_DOUT_GPIO,
                                     CONFIG_RT_MIC_DIN_GPIO), TAG, "speaker channel");
    ESP_RETURN_ON_ERROR(init_channel(s_rx, mic_bits(), MIC_SLOT_RIGHT, CONFIG_RT_SPK_MCLK_GPIO,
                                     CONFIG_RT_SPK_BCLK_GPIO, CONFIG_RT_SPK_WS_GPIO, CONFIG_RT_SPK_DOUT_GPIO,
                                     CONFIG_RT_MIC_DIN_GPIO), TAG, "mic channel");
#else
    i2s_chan_config_t mic_cfg = I2S_CHANNEL_DEFAULT_CONFIG((i2s_port_t)CONFIG_RT_MIC_I2S_PORT, I2S_ROLE_MASTER);
    ESP_RETURN_ON_ERROR(i2s_new_channel(&spk_cfg, &s_tx, NULL), TAG, "i2s_new_channel (speaker)");
    ESP_RETURN_ON_ERROR(i2s_new_channel(&mic_cfg, NULL, &s_rx), TAG, "i2s_new_channel (mic)");
    ESP_RETURN_ON_ERROR(init_channel(s_tx, I2S_DATA_BIT_WIDTH_16BIT, false, CONFIG_RT_SPK_MCLK_GPIO,
                                     CONFIG_RT_SPK_BCLK_GPIO, CONFIG_RT_SPK_WS_GPIO, CONFIG_RT_SPK_DOUT_GPIO, -1),
                        TAG, "speaker channel");
    ESP_RETURN_ON_ERROR(init_channel(s_rx, mic_bits(), MIC_SLOT_RIGHT, CONFIG_RT_MIC_MCLK_GPIO,
                                     CONFIG_RT_MIC_BCLK_GPIO, CONFIG_RT_MIC_WS_GPIO, -1, CONFIG_RT_MIC_DIN_GPIO),
                        TAG, "mic channel");
#endif
    return ESP_OK;
}

static esp_err_t amp_enable(void)
{
#if CONFIG_RT_AMP_ENABLE_GPIO >= 0
    gpio_config_t io = {
        .pin_bit_mask = 1ULL << CONFIG_RT_AMP_ENABLE_GPIO,
        .mode = GPIO_MODE_OUTPUT,
        .pull_up_en = GPIO_PULLUP_DISABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    ESP_RETURN_ON_ERROR(gpio_config(&io), TAG, "amp enable gpio");
    ESP_RETURN_ON_ERROR(gpio_set_level((gpio_num_t)CONFIG_RT_AMP_ENABLE_GPIO, CONFIG_RT_AMP_ENABLE_LEVEL), TAG,
                        "amp enable level");
    ESP_LOGI(TAG, "amplifier enabled on GPIO%d", CONFIG_RT_AMP_ENABLE_GPIO);
#endif
    return ESP_OK;
}

#define CHUNK_SAMPLES (CONFIG_RT_AUDIO_SAMPLE_RATE / 100)   /* 10 ms per I2S transfer */

static void mic_task(void *arg)
{
    (void)arg;
    static int32_t raw[CHUNK_SAMPLES];
    static int16_t pcm[CHUNK_SAMPLES];
    size_t width = mic_bits() == I2S_DATA_BIT_WIDTH_32BIT ? 4 : 2;
    esp_task_wdt_add(NULL);
    for (;;) {
        size_t got = 0;
        esp_err_t err = i2s_channel_read(s_rx, raw, CHUNK_SAMPLES * width, &got, 100);
        esp_task_wdt_reset();
        if (err != ESP_OK && err != ESP_ERR_TIMEOUT) {
            ESP_LOGW(TAG, "mic read: %s", esp_err_to_name(err));
            continue;
        }
        size_t n = got / width;
        if (width == 4) {
#if CONFIG_RT_AUDIO_I2S
            rt_pcm_from_i32(raw, pcm, n, CONFIG_RT_MIC_GAIN_SHIFT);
#endif
            rt_audio_push_mic(s_mic, pcm, n);
        } else {
            rt_audio_push_mic(s_mic, (const int16_t *)raw, n);
        }
    }
}

static void spk_task(void *arg)
{
    (void)arg;
    static int16_t pcm[CHUNK_SAMPLES];
    esp_task_wdt_add(NULL);
    for (;;) {
        size_t got = rt_ring_read(s_spk, pcm, sizeof(pcm));
        if (got < sizeof(pcm)) {
            memset((uint8_t *)pcm + got, 0, sizeof(pcm) - got);   /* underrun: pad with silence */
        }
        size_t written = 0;
        esp_err_t err = i2s_channel_write(s_tx, pcm, sizeof(pcm), &written, 100);
        esp_task_wdt_reset();
        if (err != ESP_OK && err != ESP_ERR_TIMEOUT) {
            ESP_LOGW(TAG, "speaker write: %s", esp_err_to_name(err));
        }
    }
}

esp_err_t rt_audio_start(rt_ring_t *mic, rt_ring_t *spk)
{
    s_mic = mic;
    s_spk = spk;
    ESP_RETURN_ON_ERROR(open_i2s(), TAG, "I2S set-up");
#if CONFIG_RT_AUDIO_CODEC
    /* The codec needs MCLK/BCLK running while it is configured, and I2C set-up before data. */
    ESP_RETURN_ON_ERROR(rt_codec_open(s_tx, s_rx), TAG, "codec set-up");
#else
    ESP_RETURN_ON_ERROR(i2s_channel_enable(s_tx), TAG, "enable speaker");
    ESP_RETURN_ON_ERROR(i2s_channel_enable(s_rx), TAG, "enable mic");
#endif
    ESP_RETURN_ON_ERROR(amp_enable(), TAG, "amplifier");
#if CONFIG_RT_AUDIO_CODEC
    ESP_LOGI(TAG, "audio: codec over I2C, %d Hz mono, 20 ms frames", CONFIG_RT_AUDIO_SAMPLE_RATE);
#else
    ESP_LOGI(TAG, "audio: plain I2S, %d Hz mono, 20 ms frames", CONFIG_RT_AUDIO_SAMPLE_RATE);
#endif
    ESP_RETURN_ON_ERROR(rt_audio_spawn("rt_mic", mic_task, 4096, 6), TAG, "mic task");
    ESP_RETURN_ON_ERROR(rt_audio_spawn("rt_spk", spk_task, 4096, 6), TAG, "speaker task");
    return ESP_OK;
}

#endif /* !CONFIG_IDF_TARGET_LINUX && !CONFIG_RT_AUDIO_NONE */
