/* APIs checked against ESP-IDF v5.4/v5.5 (examples/wifi/getting_started/station, esp_wifi.h,
 * esp_event.h, esp_netif.h): esp_netif_init, esp_event_loop_create_default,
 * esp_netif_create_default_wifi_sta, WIFI_INIT_CONFIG_DEFAULT, esp_wifi_init,
 * esp_event_handler_instance_register (WIFI_EVENT / IP_EVENT_STA_GOT_IP), esp_wifi_set_mode,
 * esp_wifi_set_config(WIFI_IF_STA), esp_wifi_start, esp_wifi_connect; wifi_event_sta_connected_t,
 * wifi_event_sta_disconnected_t.reason, ip_event_got_ip_t + IPSTR/IP2STR; esp_timer_start_once;
 * esp_wifi_disconnect, esp_wifi_scan_start(NULL, true), esp_wifi_scan_get_ap_records, esp_wifi_clear_ap_list,
 * wifi_ap_record_t (ssid, rssi, authmode). */
#include <stdlib.h>
#include <string.h>

#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/semphr.h"

#include "rt_backoff.h"
#include "wifi_sta.h"

static const char *TAG = "wifi_sta";

#define GOT_IP BIT0

static EventGroupHandle_t s_events;
static rt_backoff_t s_backoff;
static esp_timer_handle_t s_retry;

static SemaphoreHandle_t s_lock;              /* wifi_sta_start (main) and wifi_sta_try (Improv) */
static portMUX_TYPE s_lock_mux = portMUX_INITIALIZER_UNLOCKED;
static bool s_inited, s_running, s_configured;

static SemaphoreHandle_t lock(void)
{
    if (s_lock == NULL) {
        SemaphoreHandle_t made = xSemaphoreCreateMutex();
        taskENTER_CRITICAL(&s_lock_mux);
        if (s_lock == NULL) {
            s_lock = made;
            made = NULL;
        }
        taskEXIT_CRITICAL(&s_lock_mux);
        if (made != NULL) {
            vSemaphoreDelete(made);
        }
    }
    return s_lock;
}

static void retry_now(void *arg)
{
    (void)arg;
    ESP_LOGI(TAG, "connecting");
    esp_wifi_connect();
}

static void on_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    if (base == WIFI_EVENT && id == WIFI_EVENT_STA_START) {
        if (s_configured) {
            ESP_LOGI(TAG, "started; connecting");
            esp_wifi_connect();
        }
    } else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_CONNECTED) {
        const wifi_event_sta_connected_t *ev = data;
        ESP_LOGI(TAG, "connected to %.*s", (int)ev->ssid_len, (const char *)ev->ssid);
    } else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
        const wifi_event_sta_disconnected_t *ev = data;
        xEventGroupClearBits(s_events, GOT_IP);
        uint32_t delay = rt_backoff_next(&s_backoff);
        ESP_LOGW(TAG, "disconnected (reason %d), retry in %u ms", (int)ev->reason, (unsigned)delay);
        esp_timer_stop(s_retry);
        esp_timer_start_once(s_retry, (uint64_t)delay * 1000);
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        const ip_event_got_ip_t *ev = data;
        ESP_LOGI(TAG, "got ip: " IPSTR, IP2STR(&ev->ip_info.ip));
        rt_backoff_reset(&s_backoff);
        xEventGroupSetBits(s_events, GOT_IP);
    }
}

/* wifi_sta_config_t's ssid[32] / password[64] take a full-length value without a NUL (cfg is zeroed
 * first), so copy the bytes rather than strncpy (GCC's -Wstringop-truncation, an error under -Werror=all). */
static bool copy_field(uint8_t *dst, size_t size, const char *src, const char *what)
{
    size_t len = strlen(src);
    if (len > size) {
        ESP_LOGE(TAG, "Wi-Fi %s is %u bytes, at most %u fit", what, (unsigned)len, (unsigned)size);
        return false;
    }
    memcpy(dst, src, len);
    return true;
}

/* Once: event group, retry timer, netif, the driver in station mode (not started). Under lock(). */
static bool init_once(void)
{
    if (s_inited) {
        return true;
    }
    s_events = xEventGroupCreate();
    rt_backoff_init(&s_backoff, 1000, 30000, esp_random());
    const esp_timer_create_args_t retry = {.callback = retry_now, .name = "wifi_retry"};
    if (s_events == NULL || esp_timer_create(&retry, &s_retry) != ESP_OK) {
        ESP_LOGE(TAG, "out of memory");
        return false;
    }
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    esp_netif_create_default_wifi_sta();
    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(esp_wifi_init(&init));
    ESP_ERROR_CHECK(esp_event_handler_instance_register(WIFI_EVENT, ESP_EVENT_ANY_ID, on_event, NULL, NULL));
    ESP_ERROR_CHECK(esp_event_handler_instance_register(IP_EVENT, IP_EVENT_STA_GOT_IP, on_event, NULL, NULL));
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    s_inited = true;
    return true;
}

static void run_driver(void)
{
    if (!s_running) {
        ESP_ERROR_CHECK(esp_wifi_start());   /* WIFI_EVENT_STA_START connects when configured */
        s_running = true;
    } else if (s_configured) {
        esp_wifi_connect();
    }
}

/* Set (or replace) the network; under lock(). */
static bool configure(const char *ssid, const char *password)
{
    wifi_config_t cfg = {0};
    if (!copy_field(cfg.sta.ssid, sizeof(cfg.sta.ssid), ssid, "SSID") ||
        !copy_field(cfg.sta.password, sizeof(cfg.sta.password), password, "password")) {
        return false;
    }
    cfg.sta.threshold.authmode = password[0] ? WIFI_AUTH_WPA2_PSK : WIFI_AUTH_OPEN;
    if (s_running) {
        esp_timer_stop(s_retry);
        esp_wifi_disconnect();   /* ESP_ERR_WIFI_NOT_CONNECT when it was not: nothing to undo */
        xEventGroupClearBits(s_events, GOT_IP);
    }
    ESP_ERROR_CHECK(esp_wifi_set_config(WIFI_IF_STA, &cfg));
    s_configured = true;
    ESP_LOGI(TAG, "station for \"%s\" (%s)", ssid, password[0] ? "WPA2/WPA3" : "open network");
    run_driver();
    return true;
}

bool wifi_sta_start(const char *ssid, const char *password)
{
    xSemaphoreTake(lock(), portMAX_DELAY);
    bool ok = init_once() && configure(ssid, password);
    xSemaphoreGive(lock());
    if (ok) {
        xEventGroupWaitBits(s_events, GOT_IP, pdFALSE, pdTRUE, portMAX_DELAY);
    }
    return ok;
}

bool wifi_sta_try(const char *ssid, const char *password, uint32_t timeout_ms)
{
    xSemaphoreTake(lock(), portMAX_DELAY);
    bool ok = init_once() && configure(ssid, password);
    xSemaphoreGive(lock());
    if (!ok) {
        return false;
    }
    EventBits_t bits = xEventGroupWaitBits(s_events, GOT_IP, pdFALSE, pdTRUE, pdMS_TO_TICKS(timeout_ms));
    return (bits & GOT_IP) != 0;
}

void wifi_sta_scan(wifi_sta_on_network emit, void *ctx)
{
    xSemaphoreTake(lock(), portMAX_DELAY);
    if (!init_once()) {
        xSemaphoreGive(lock());
        return;
    }
    run_driver();
    xSemaphoreGive(lock());
    if (esp_wifi_scan_start(NULL, true) != ESP_OK) {
        ESP_LOGW(TAG, "scan failed");
        return;
    }
    uint16_t count = 20;
    wifi_ap_record_t *records = calloc(count, sizeof(*records));
    if (records == NULL) {
        esp_wifi_clear_ap_list();
        return;
    }
    if (esp_wifi_scan_get_ap_records(&count, records) == ESP_OK) {
        for (uint16_t i = 0; i < count; i++) {
            emit(ctx, (const char *)records[i].ssid, records[i].rssi, records[i].authmode != WIFI_AUTH_OPEN);
        }
    }
    free(records);
}
