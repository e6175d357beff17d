/* ES8311 / ES7210 codec boards (ESP32-S3-BOX-3, AtomS3R + Echo Base): the codecs are configured
 * over I2C with Espressif's esp_codec_dev (registry component espressif/esp_codec_dev, pinned in
 * deps.toml); audio data then flows through the I2S channels opened in rt_audio_i2s.c.
 * APIs checked: driver/i2c_master.h (i2c_new_master_bus, i2c_master_bus_config_t) in ESP-IDF v5.4/5.5;
 * esp_codec_dev v1.5 include/esp_codec_dev.h (esp_codec_dev_new/open/set_out_vol/set_in_gain),
 * esp_codec_dev_defaults.h (audio_codec_new_i2c_ctrl with bus_handle, audio_codec_new_i2s_data,
 * audio_codec_new_gpio), es8311_codec.h (es8311_codec_new), es7210_adc.h (es7210_codec_new, ES7210_SEL_MIC1/2: v1.5.4 spells them ES7210_, not
 * ES7120_). */
#include "sdkconfig.h"

#if CONFIG_RT_AUDIO_CODEC && !CONFIG_IDF_TARGET_LINUX

#include "driver/i2c_master.h"
#include "esp_check.h"
#include "esp_codec_dev.h"
#include "esp_codec_dev_defaults.h"
#include "esp_log.h"
#include "es7210_adc.h"
#include "es8311_codec.h"

#include "rt_audio_priv.h"

static const char *TAG = "rt_codec";

/* Kconfig bools are undefined when off: turn them into 0/1 for use in C expressions. */
#if CONFIG_RT_CODEC_ADC_ES8311
#define ES8311_MIC 1
#else
#define ES8311_MIC 0
#endif
#if CONFIG_RT_CODEC_ES8311
#define HAS_ES8311 1
#else
#define HAS_ES8311 0
#endif
#if CONFIG_RT_CODEC_ADC_ES7210
#define HAS_ES7210 1
#else
#define HAS_ES7210 0
#endif

static i2c_master_bus_handle_t s_bus;
static esp_codec_dev_handle_t s_out, s_in;

static esp_err_t open_bus(void)
{
    i2c_master_bus_config_t bus = {
        .i2c_port = CONFIG_RT_I2C_PORT,
        .sda_io_num = (gpio_num_t)CONFIG_RT_I2C_SDA_GPIO,
        .scl_io_num = (gpio_num_t)CONFIG_RT_I2C_SCL_GPIO,
        .clk_source = I2C_CLK_SRC_DEFAULT,
        .glitch_ignore_cnt = 7,
        .flags = {.enable_internal_pullup = true},
    };
    return i2c_new_master_bus(&bus, &s_bus);
}

/* esp_codec_dev takes 8-bit I2C addresses (ES8311_CODEC_DEFAULT_ADDR is 0x30 for 7-bit 0x18). */
static const audio_codec_ctrl_if_t *ctrl_for(uint8_t addr7)
{
    audio_codec_i2c_cfg_t cfg = {.port = CONFIG_RT_I2C_PORT, .addr = (uint8_t)(addr7 << 1), .bus_handle = s_bus};
    return audio_codec_new_i2c_ctrl(&cfg);
}

esp_err_t rt_codec_open(i2s_chan_handle_t tx, i2s_chan_handle_t rx)
{
    ESP_RETURN_ON_ERROR(open_bus(), TAG, "I2C bus on SDA %d / SCL %d", CONFIG_RT_I2C_SDA_GPIO, CONFIG_RT_I2C_SCL_GPIO);
    audio_codec_i2s_cfg_t i2s = {.port = CONFIG_RT_SPK_I2S_PORT, .rx_handle = rx, .tx_handle = tx};
    const audio_codec_data_if_t *data = audio_codec_new_i2s_data(&i2s);
    const audio_codec_gpio_if_t *gpio = audio_codec_new_gpio();
    ESP_RETURN_ON_FALSE(data && gpio, ESP_ERR_NO_MEM, TAG, "codec data/gpio interface");
    esp_codec_dev_sample_info_t fs = {
        .bits_per_sample = 16, .channel = 1, .channel_mask = 0, .sample_rate = CONFIG_RT_AUDIO_SAMPLE_RATE,
    };

#if CONFIG_RT_CODEC_ES8311
    es8311_codec_cfg_t dac = {
        .ctrl_if = ctrl_for(CONFIG_RT_ES8311_ADDR),
        .gpio_if = gpio,
        .codec_mode = ES8311_MIC ? ESP_CODEC_DEV_WORK_MODE_BOTH : ESP_CODEC_DEV_WORK_MODE_DAC,
        .pa_pin = -1,             /* the amplifier pin is driven by rt_audio_i2s.c (amp_enable) */
        .pa_reverted = false,
        .master_mode = false,
        .use_mclk = CONFIG_RT_SPK_MCLK_GPIO >= 0,
    };
    ESP_RETURN_ON_FALSE(dac.ctrl_if, ESP_FAIL, TAG, "ES8311 at 0x%02x: no I2C control", CONFIG_RT_ES8311_ADDR);
    const audio_codec_if_t *es8311 = es8311_codec_new(&dac);
    ESP_RETURN_ON_FALSE(es8311, ESP_FAIL, TAG, "ES8311 at 0x%02x did not answer", CONFIG_RT_ES8311_ADDR);
    esp_codec_dev_cfg_t out = {.dev_type = ES8311_MIC ? ESP_CODEC_DEV_TYPE_IN_OUT : ESP_CODEC_DEV_TYPE_OUT,
                               .codec_if = es8311, .data_if = data};
    s_out = esp_codec_dev_new(&out);
    ESP_RETURN_ON_FALSE(s_out, ESP_FAIL, TAG, "ES8311 device");
    ESP_RETURN_ON_FALSE(esp_codec_dev_open(s_out, &fs) == ESP_CODEC_DEV_OK, ESP_FAIL, TAG, "ES8311 open");
    esp_codec_dev_set_out_vol(s_out, CONFIG_RT_SPEAKER_VOLUME);
#if CONFIG_RT_CODEC_ADC_ES8311
    s_in = s_out;   /* one chip, both directions */
    esp_codec_dev_set_in_gain(s_in, CONFIG_RT_MIC_GAIN_DB);
#endif
#endif

#if CONFIG_RT_CODEC_ADC_ES7210
    es7210_codec_cfg_t adc = {
        .ctrl_if = ctrl_for(CONFIG_RT_ES7210_ADDR),
        .master_mode = false,
        .mic_selected = ES7210_SEL_MIC1 | ES7210_SEL_MIC2,
    };
    ESP_RETURN_ON_FALSE(adc.ctrl_if, ESP_FAIL, TAG, "ES7210 at 0x%02x: no I2C control", CONFIG_RT_ES7210_ADDR);
    const audio_codec_if_t *es7210 = es7210_codec_new(&adc);
    ESP_RETURN_ON_FALSE(es7210, ESP_FAIL, TAG, "ES7210 at 0x%02x did not answer", CONFIG_RT_ES7210_ADDR);
    esp_codec_dev_cfg_t in = {.dev_type = ESP_CODEC_DEV_TYPE_IN, .codec_if = es7210, .data_if = data};
    s_in = esp_codec_dev_new(&in);
    ESP_RETURN_ON_FALSE(s_in, ESP_FAIL, TAG, "ES7210 device");
    ESP_RETURN_ON_FALSE(esp_codec_dev_open(s_in, &fs) == ESP_CODEC_DEV_OK, ESP_FAIL, TAG, "ES7210 open");
    esp_codec_dev_set_in_gain(s_in, CONFIG_RT_MIC_GAIN_DB);
#endif
    /* esp_codec_dev_open enabled the I2S channels through the data interface; the rt_mic and
     * rt_spk tasks read and write them directly (same format: 16-bit mono). */
    ESP_LOGI(TAG, "codec ready (%s%s)", HAS_ES8311 ? "ES8311" : "", HAS_ES7210 ? " + ES7210" : "");
    return ESP_OK;
}

#endif /* CONFIG_RT_AUDIO_CODEC && !CONFIG_IDF_TARGET_LINUX */
