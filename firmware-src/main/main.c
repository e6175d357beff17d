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
#include <string.h>

#include "nvs_flash.h"
#include "wifi_sta.h"
#if CONFIG_NVS_ENCRYPTION
#include "nvs_sec_provider.h"
#endif
#endif

#ifndef RT_FIRMWARE_VERSION
#define RT_FIRMWARE_VERSION "dev"
#endif

static const char *TAG = "rtflash";

#define RING_MS 200   /* 10 frames of slack each way */

static rt_config_t s_cfg;
static rt_ring_t s_mic, s_spk;

#if !CONFIG_IDF_TARGET_LINUX && CONFIG_NVS_ENCRYPTION
/* NVS encrypted, its XTS keys derived by the HMAC peripheral from the eFuse key rtflash provision
 * --encrypt burned (CONFIG_NVS_SEC_KEY_PROTECT_USING_HMAC, key block CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID
 * from the board's [security] settings). Checked against ESP-IDF v5.5 nvs_sec_provider.h
 * (nvs_sec_config_hmac_t, NVS_SEC_PROVIDER_CFG_HMAC_DEFAULT, nvs_sec_provider_register_hmac) and
 * nvs_flash.h (nvs_flash_read_security_cfg_v2, nvs_flash_secure_init, ESP_ERR_NVS_SEC_HMAC_KEY_NOT_FOUND).
 * Never nvs_flash_generate_keys_v2: with no key burned it would burn a fresh one that rtflash does not
 * know, and the provisioned partition could never be read. */
static bool init_nvs(void)
{
    nvs_sec_config_hmac_t hmac_cfg = NVS_SEC_PROVIDER_CFG_HMAC_DEFAULT();
    nvs_sec_scheme_t *scheme = NULL;
    nvs_sec_cfg_t keys;
    esp_err_t err = nvs_sec_provider_register_hmac(&hmac_cfg, &scheme);
    if (err == ESP_OK) {
        err = nvs_flash_read_security_cfg_v2(scheme, &keys);
    }
    if (err == ESP_ERR_NVS_SEC_HMAC_KEY_NOT_FOUND) {
        ESP_LOGE(TAG, "NVS is encrypted but eFuse BLOCK_KEY%d holds no HMAC key: run `rtflash provision --board %s "
                      "--encrypt`", CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID, CONFIG_RT_BOARD_NAME);
        return false;
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "NVS encryption keys unavailable (%s)", esp_err_to_name(err));
        return false;
    }
    err = nvs_flash_secure_init(&keys);
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_LOGW(TAG, "NVS partition needs erasing (%s); credentials must be provisioned again", esp_err_to_name(err));
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_secure_init(&keys);
    }
    memset(&keys, 0, sizeof(keys));
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "encrypted NVS: %s", esp_err_to_name(err));
        return false;
    }
    ESP_LOGI(TAG, "NVS: encrypted (keys from the eFuse HMAC key in BLOCK_KEY%d)", CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID);
    return true;
}
#elif !CONFIG_IDF_TARGET_LINUX
/* APIs checked against ESP-IDF v5.4/v5.5 nvs_flash.h: nvs_flash_init, nvs_flash_erase,
 * ESP_ERR_NVS_NO_FREE_PAGES / ESP_ERR_NVS_NEW_VERSION_FOUND. */
static bool init_nvs(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_LOGW(TAG, "NVS partition needs erasing (%s); credentials must be provisioned again", esp_err_to_name(err));
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
    ESP_LOGI(TAG, "NVS: plain (credentials readable from flash; [security] nvs_encryption = \"hmac\" encrypts them)");
    return true;
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

/* The settings, and on the device Wi-Fi up with them. While they are incomplete, wait for Improv to
 * store new ones and load again (no reboot: a browser install sets Wi-Fi this way), saying so every
 * minute. A wrong network is no set-up error: wifi_sta_start retries it with back-off until Improv
 * replaces it. */
static void load_settings(void)
{
    for (;;) {
        if (app_config_load(&s_cfg)) {
#if CONFIG_IDF_TARGET_LINUX
            return;
#else
            if (wifi_sta_start(s_cfg.wifi_ssid, s_cfg.wifi_pass)) {
                return;
            }
#endif
        }
        while (!improv_console_wait_settings(60000)) {
            ESP_LOGW(TAG, "still waiting for settings: Improv Wi-Fi (rtflash provision --improv), or provision "
                          "them and reset the board");
        }
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
#if CONFIG_IDF_TARGET_LINUX
    ESP_LOGI(TAG, "NVS: none on the linux target: settings come from the environment (plain, never stored)");
#else
    if (!init_nvs()) {
        wait_for_provisioning();
    }
#endif
    improv_console_start();   /* Wi-Fi settings over the console, also while waiting for them */
    load_settings();
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
