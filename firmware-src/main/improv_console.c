/* Improv Wi-Fi serial on the console, beside the log output (protocol and service: rt_core/rt_improv).
 *
 * Device: the console's own driver is installed and the VFS switched to it, so log lines and Improv
 * packets share one interrupt-driven path, and the reader task gets bytes with a timeout.
 * APIs checked against ESP-IDF v5.5 (components/esp_driver_usb_serial_jtag/include/driver/
 * usb_serial_jtag.h + usb_serial_jtag_vfs.h: USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT,
 * usb_serial_jtag_driver_install, usb_serial_jtag_is_driver_installed, usb_serial_jtag_read_bytes,
 * usb_serial_jtag_vfs_use_driver; components/esp_driver_uart/include/driver/uart.h + uart_vfs.h:
 * uart_is_driver_installed, uart_driver_install, uart_read_bytes, uart_vfs_dev_use_driver;
 * nvs.h: nvs_open(NVS_READWRITE), nvs_set_str, nvs_get_str, nvs_commit, nvs_close; freertos/semphr.h
 * xSemaphoreCreateBinary, xSemaphoreGive, xSemaphoreTake).
 * New settings wake app_main (improv_console_wait_settings), which loads them and goes on: no reboot.
 * Linux target: stdin/stdout (a pty or pipes), polled so the FreeRTOS POSIX port never blocks in
 * read(); the settings go to $RTFLASH_SETTINGS_FILE (0600; the linux stand-in for NVS, same keys).
 * The password is never logged: only the SSID and the password's length. */
#include "improv_console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#include "rt_config.h"
#include "rt_improv.h"

#if CONFIG_IDF_TARGET_LINUX
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#else
#include "nvs.h"
#include "wifi_sta.h"
#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
#include "driver/usb_serial_jtag.h"
#include "driver/usb_serial_jtag_vfs.h"
#elif CONFIG_ESP_CONSOLE_UART
#include "driver/uart.h"
#include "driver/uart_vfs.h"
#endif
#endif

#ifndef RT_FIRMWARE_VERSION
#define RT_FIRMWARE_VERSION "dev"
#endif
#ifndef CONFIG_RT_IMPROV_REDIRECT_URL
#define CONFIG_RT_IMPROV_REDIRECT_URL ""
#endif

#define IDLE_DROP_MS 2000        /* a half packet older than this is dropped (INVALID_RPC) */
#define POLL_MS 20
#define CONNECT_TIMEOUT_MS 20000

static const char *TAG = "improv";

static rt_improv_service_t s_svc;
static rt_improv_ops_t s_ops;
static bool s_was_provisioned;
static SemaphoreHandle_t s_settings;   /* given each time Wi-Fi settings are stored */

static void console_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    fflush(stdout);   /* log text first, so the packet starts a line */
    fwrite(data, 1, len, stdout);
    fflush(stdout);
}

static void on_change(void *ctx, rt_improv_state_t state, rt_improv_error_t error, const char *ssid)
{
    (void)ctx;
    if (error != RT_IMPROV_ERR_NONE) {
        ESP_LOGW(TAG, "error: %s (state %s)", rt_improv_error_name(error), rt_improv_state_name(state));
    } else if (ssid != NULL) {
        ESP_LOGI(TAG, "state: %s (Wi-Fi \"%s\")", rt_improv_state_name(state), ssid);
        if (state == RT_IMPROV_STATE_PROVISIONED && s_settings != NULL) {
            xSemaphoreGive(s_settings);   /* tried and stored: app_main may be waiting for them */
        }
    } else {
        ESP_LOGI(TAG, "state: %s", rt_improv_state_name(state));
    }
}

#if CONFIG_IDF_TARGET_LINUX
/* The linux build has no NVS partition: the keys go to a file, one `key<TAB>length<TAB>bytes` line each. */
static const char *settings_file(void)
{
    const char *path = getenv("RTFLASH_SETTINGS_FILE");
    return path && *path ? path : NULL;
}

static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static bool write_entry(int fd, const char *key, const char *value)
{
    char head[48];
    int n = snprintf(head, sizeof(head), "%s\t%u\t", key, (unsigned)strlen(value));
    return n > 0 && write_all(fd, head, (size_t)n) && write_all(fd, value, strlen(value)) && write_all(fd, "\n", 1);
}

static bool store(void *ctx, const char *ssid, const char *pass)
{
    (void)ctx;
    const char *path = settings_file();
    if (path == NULL) {
        ESP_LOGW(TAG, "RTFLASH_SETTINGS_FILE is not set: the Wi-Fi settings are kept for this run only");
        return true;
    }
    char tmp[512];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        ESP_LOGE(TAG, "RTFLASH_SETTINGS_FILE is too long");
        return false;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        ESP_LOGE(TAG, "cannot write %s: %s", tmp, strerror(errno));
        return false;
    }
    bool ok = write_entry(fd, "wifi_ssid", ssid) && write_entry(fd, "wifi_pass", pass) && fsync(fd) == 0;
    ok = (close(fd) == 0) && ok && rename(tmp, path) == 0;
    if (!ok) {
        ESP_LOGE(TAG, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    return ok;
}

/* Whether the settings file holds a wifi_ssid line with a non-empty value. */
static bool stored_ssid(char *out, size_t cap)
{
    const char *path = settings_file();
    FILE *f = path ? fopen(path, "rb") : NULL;
    bool found = false;
    char key[32];
    unsigned len = 0;
    while (f != NULL && !found && fscanf(f, "%31[^\t]\t%u\t", key, &len) == 2 && len < 4096) {
        char value[4096];
        if (fread(value, 1, len, f) != len || fgetc(f) != '\n') {
            break;
        }
        value[len] = '\0';
        if (strcmp(key, "wifi_ssid") == 0 && len > 0 && len < cap) {
            memcpy(out, value, len + 1);
            found = true;
        }
        memset(value, 0, sizeof(value));
    }
    if (f != NULL) {
        fclose(f);
    }
    return found;
}

static bool try_connect(void *ctx, const char *ssid, const char *pass)
{
    (void)ctx;
    ESP_LOGI(TAG, "Wi-Fi settings for \"%s\" (%u-character password); linux target: no Wi-Fi to try", ssid,
             (unsigned)strlen(pass));
    return true;
}

/* poll() then read(): never a blocking read in a FreeRTOS task on the POSIX port. -1 at EOF/error. */
static int read_some(uint8_t *buf, size_t cap)
{
    struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
    int ready = poll(&pfd, 1, 0);
    if (ready < 0) {
        return errno == EINTR ? 0 : -1;
    }
    if (ready == 0) {
        vTaskDelay(pdMS_TO_TICKS(POLL_MS));
        return 0;
    }
    ssize_t n = read(STDIN_FILENO, buf, cap);
    if (n < 0 && errno == EIO) {
        vTaskDelay(pdMS_TO_TICKS(POLL_MS));   /* a pty with no one on the other side yet: wait */
        return 0;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return 0;
    }
    return n > 0 ? (int)n : -1;
}

static bool console_open(void)
{
    return true;
}

#else  /* the device */

static bool store(void *ctx, const char *ssid, const char *pass)
{
    (void)ctx;
    nvs_handle_t handle;
    esp_err_t err = nvs_open(RT_NVS_NAMESPACE, NVS_READWRITE, &handle);
    if (err == ESP_OK) {
        err = nvs_set_str(handle, "wifi_ssid", ssid);
        if (err == ESP_OK) {
            err = nvs_set_str(handle, "wifi_pass", pass);
        }
        if (err == ESP_OK) {
            err = nvs_commit(handle);
        }
        nvs_close(handle);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "cannot store the Wi-Fi settings in NVS namespace \"%s\": %s", RT_NVS_NAMESPACE,
                 esp_err_to_name(err));
    }
    return err == ESP_OK;
}

static bool stored_ssid(char *out, size_t cap)
{
    nvs_handle_t handle;
    if (nvs_open(RT_NVS_NAMESPACE, NVS_READONLY, &handle) != ESP_OK) {
        return false;
    }
    size_t len = cap;
    bool found = nvs_get_str(handle, "wifi_ssid", out, &len) == ESP_OK && len > 1;
    nvs_close(handle);
    return found;
}

static bool try_connect(void *ctx, const char *ssid, const char *pass)
{
    (void)ctx;
    ESP_LOGI(TAG, "Wi-Fi settings for \"%s\" (%u-character password): trying", ssid, (unsigned)strlen(pass));
    return wifi_sta_try(ssid, pass, CONNECT_TIMEOUT_MS);
}

typedef struct {
    void *svc;
    rt_improv_emit_network emit;
} scan_ctx_t;

static void scan_one(void *ctx, const char *ssid, int rssi, bool secured)
{
    scan_ctx_t *s = ctx;
    if (ssid[0] != '\0') {
        s->emit(s->svc, ssid, rssi, secured);
    }
}

static void scan(void *ctx, void *svc, rt_improv_emit_network emit)
{
    (void)ctx;
    scan_ctx_t s = {.svc = svc, .emit = emit};
    wifi_sta_scan(scan_one, &s);
}

#if CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG
static bool console_open(void)
{
    if (!usb_serial_jtag_is_driver_installed()) {
        usb_serial_jtag_driver_config_t cfg = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
        esp_err_t err = usb_serial_jtag_driver_install(&cfg);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "USB-Serial-JTAG driver: %s; Improv is off", esp_err_to_name(err));
            return false;
        }
    }
    usb_serial_jtag_vfs_use_driver();
    return true;
}

static int read_some(uint8_t *buf, size_t cap)
{
    return usb_serial_jtag_read_bytes(buf, cap, pdMS_TO_TICKS(POLL_MS));
}
#elif CONFIG_ESP_CONSOLE_UART
static bool console_open(void)
{
    if (!uart_is_driver_installed(CONFIG_ESP_CONSOLE_UART_NUM)) {
        esp_err_t err = uart_driver_install(CONFIG_ESP_CONSOLE_UART_NUM, 512, 0, 0, NULL, 0);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "UART%d driver: %s; Improv is off", CONFIG_ESP_CONSOLE_UART_NUM, esp_err_to_name(err));
            return false;
        }
    }
    uart_vfs_dev_use_driver(CONFIG_ESP_CONSOLE_UART_NUM);
    return true;
}

static int read_some(uint8_t *buf, size_t cap)
{
    return uart_read_bytes(CONFIG_ESP_CONSOLE_UART_NUM, buf, cap, pdMS_TO_TICKS(POLL_MS));
}
#else
static bool console_open(void)
{
    ESP_LOGW(TAG, "no UART or USB-Serial-JTAG console: Improv is off");
    return false;
}

static int read_some(uint8_t *buf, size_t cap)
{
    (void)buf;
    (void)cap;
    return -1;
}
#endif
#endif

static void reader_task(void *arg)
{
    (void)arg;
    uint8_t buf[128];
    uint32_t quiet_ms = 0;
    for (;;) {
        int n = read_some(buf, sizeof(buf));
        if (n < 0) {
            ESP_LOGI(TAG, "console input closed: Improv off");
            break;
        }
        if (n > 0) {
            rt_improv_service_feed(&s_svc, buf, (size_t)n);
            memset(buf, 0, (size_t)n);
            quiet_ms = 0;
        } else if (rt_improv_pending(&s_svc.parser) && (quiet_ms += POLL_MS) >= IDLE_DROP_MS) {
            rt_improv_service_idle(&s_svc);
            quiet_ms = 0;
        }
    }
    vTaskDelete(NULL);
}

bool improv_console_start(void)
{
    static char chip[64], name[48];
    char ssid[RT_SSID_MAX + 1] = "";
    s_was_provisioned = stored_ssid(ssid, sizeof(ssid));
    snprintf(chip, sizeof(chip), "%s/%s", CONFIG_RT_BOARD_NAME, CONFIG_IDF_TARGET);
    snprintf(name, sizeof(name), "rtflash %s", CONFIG_RT_BOARD_NAME);
    s_ops = (rt_improv_ops_t){.write = console_write, .connect = try_connect, .store = store,
#if !CONFIG_IDF_TARGET_LINUX
                              .scan = scan,
#endif
                              .on_change = on_change, .firmware = "rtflash", .version = RT_FIRMWARE_VERSION,
                              .chip = chip, .device_name = name, .redirect_url = CONFIG_RT_IMPROV_REDIRECT_URL};
    rt_improv_service_init(&s_svc, &s_ops, s_was_provisioned);
    s_settings = xSemaphoreCreateBinary();
    if (s_settings == NULL || !console_open()) {
        return false;
    }
    if (xTaskCreate(reader_task, "improv", 4096, NULL, 3, NULL) != pdPASS) {
        ESP_LOGE(TAG, "out of memory: Improv is off");
        return false;
    }
    ESP_LOGI(TAG, "Improv Wi-Fi serial on the console (%s)", s_was_provisioned ? "provisioned" : "waiting for Wi-Fi settings");
    return true;
}

bool improv_console_wait_settings(uint32_t timeout_ms)
{
    if (s_settings == NULL) {
        vTaskDelay(pdMS_TO_TICKS(timeout_ms));
        return false;
    }
    return xSemaphoreTake(s_settings, pdMS_TO_TICKS(timeout_ms)) == pdTRUE;
}
