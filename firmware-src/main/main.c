/* rtflash firmware entry point: credentials and session settings come from NVS (namespace
 * "rtflash", written by `rtflash provision`), never from the binary. */
#include <stdio.h>
#include <string.h>

#include "esp_log.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "sdkconfig.h"

static const char *TAG = "main";

static const char *const REQUIRED_KEYS[] = {"wifi_ssid", "wifi_pass", "api_key"};

/* Log, for each required key, whether it is present; never its value. Returns how many are missing. */
static int check_credentials(void)
{
    nvs_handle_t handle;
    esp_err_t err = nvs_open("rtflash", NVS_READONLY, &handle);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "no credentials in NVS (%s): run `rtflash provision --board %s`", esp_err_to_name(err),
                 CONFIG_RT_BOARD_NAME);
        return (int)(sizeof(REQUIRED_KEYS) / sizeof(REQUIRED_KEYS[0]));
    }
    int missing = 0;
    for (size_t i = 0; i < sizeof(REQUIRED_KEYS) / sizeof(REQUIRED_KEYS[0]); i++) {
        size_t length = 0;
        if (nvs_get_str(handle, REQUIRED_KEYS[i], NULL, &length) != ESP_OK) {
            ESP_LOGE(TAG, "credential '%s' missing: run `rtflash provision`", REQUIRED_KEYS[i]);
            missing++;
        }
    }
    nvs_close(handle);
    return missing;
}

void app_main(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_LOGW(TAG, "NVS partition needs erasing (%s); credentials must be provisioned again",
                 esp_err_to_name(err));
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
    ESP_LOGI(TAG, "rtflash firmware for board %s", CONFIG_RT_BOARD_NAME);
    if (check_credentials() == 0) {
        ESP_LOGI(TAG, "credentials present");
    }
}
