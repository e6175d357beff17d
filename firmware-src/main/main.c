/* rtflash firmware entry point: settings from NVS (namespace "rtflash", written by
 * `rtflash provision`) or, on the linux target, from the environment; never from the binary.
 * Boot: NVS -> settings -> Wi-Fi (back-off) -> board audio -> Realtime session (reconnects by
 * itself). The task watchdog is on (sdkconfig.defaults); the app tasks subscribe to it. */
#include <stdlib.h>

#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#include "app_config.h"
#include "improv_console.h"
#include "rt_audio.h"
#include "rt_audio_frame.h"
#include "rt_session.h"

#if !CONFIG_IDF_TARGET_LINUX
#include "nvs_flash.h"
#include "wifi_sta.h"
#endif

#ifndef RT_FIRMWARE_VERSION
#define RT_FIRMWARE_VERSION "dev"
#endif

static const char *TAG = "rtflash";

#define RING_MS 200   /* 10 frames of slack each way */

static rt_config_t s_cfg;
static rt_ring_t s_mic, s_spk;

#if !CONFIG_IDF_TARGET_LINUX
/* APIs checked against ESP-IDF v5.4/v5.5 nvs_flash.h: nvs_flash_init, nvs_flash_erase,
 * ESP_ERR_NVS_NO_FREE_PAGES / ESP_ERR_NVS_NEW_VERSION_FOUND. */
static void init_nvs(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_LOGW(TAG, "NVS partition needs erasing (%s); credentials must be provisioned again", esp_err_to_name(err));
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
}
#endif

/* Nothing to do without settings: say so every minute rather than reboot-loop. */
static void wait_for_provisioning(void)
{
    for (;;) {
        vTaskDelay(pdMS_TO_TICKS(60000));
        ESP_LOGW(TAG, "still waiting for settings: provision them and reset the board");
    }
}

static bool make_ring(rt_ring_t *ring, uint32_t rate)
{
    size_t bytes = (size_t)rate / 1000 * RING_MS * sizeof(int16_t);
    void *storage = malloc(bytes);
    return storage != NULL && rt_ring_init(ring, storage, bytes);
}

void app_main(void)
{
    ESP_LOGI(TAG, "firmware %s board %s", RT_FIRMWARE_VERSION, CONFIG_RT_BOARD_NAME);
#if !CONFIG_IDF_TARGET_LINUX
    init_nvs();
#endif
    improv_console_start();   /* Wi-Fi settings over the console, also while waiting for them */
    if (!app_config_load(&s_cfg)) {
        wait_for_provisioning();
    }
#if !CONFIG_IDF_TARGET_LINUX
    if (!wifi_sta_start(s_cfg.wifi_ssid, s_cfg.wifi_pass)) {
        wait_for_provisioning();
    }
#endif
    uint32_t rate = rt_audio_rate();
    if (!rt_opus_rate_ok(rate) || !make_ring(&s_mic, rate) || !make_ring(&s_spk, rate)) {
        ESP_LOGE(TAG, "audio buffers: rate %u Hz unsupported or out of memory", (unsigned)rate);
        wait_for_provisioning();
    }
    esp_err_t err = rt_audio_start(&s_mic, &s_spk);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "audio set-up failed (%s): check the board's pins in boards/%s.toml", esp_err_to_name(err),
                 CONFIG_RT_BOARD_NAME);
    }
    rt_session_params_t params = {.cfg = &s_cfg, .mic = &s_mic, .spk = &s_spk, .rate = rate};
    if (!rt_session_start(&params)) {
        ESP_LOGE(TAG, "session tasks could not start");
    }
#if CONFIG_IDF_TARGET_LINUX
    for (;;) {   /* on the host, app_main returning would end the process */
        vTaskDelay(portMAX_DELAY);
    }
#endif
}
