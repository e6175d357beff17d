/* rt_slog (include/rt_slog.h) and libpeer's log through it: libpeer is built with LOG_REDIRECT 1
 * (patch_dtls.cmake), so its LOGx lines call peer_log() here instead of printf. ESP-IDF APIs:
 * esp_log.h ESP_LOG_LEVEL, esp_log_level_get, esp_log_timestamp (components/log/include). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"

#include "rt_logcap.h"
#include "rt_slog.h"

static rt_logcap_t s_cap;
static SemaphoreHandle_t s_lock;
static char s_line[640];

void rt_slog_init(void)
{
    if (s_lock == NULL) {
        rt_logcap_init(&s_cap, RT_SLOG_PER_S, RT_SLOG_BURST);
        s_lock = xSemaphoreCreateMutex();
    }
}

static void vlog(esp_log_level_t level, const char *tag, const char *prefix, const char *fmt, va_list ap)
{
    if (level > esp_log_level_get(tag)) {
        return;   /* filtered out anyway: costs no token */
    }
    rt_slog_init();   /* rt_session_start calls it first; this covers a line logged before */
    if (s_lock == NULL) {
        return;
    }
    xSemaphoreTake(s_lock, portMAX_DELAY);
    uint32_t dropped = 0;
    if (rt_logcap_take(&s_cap, esp_log_timestamp(), &dropped)) {
        int n = snprintf(s_line, sizeof(s_line), "%s", prefix);
        vsnprintf(s_line + n, sizeof(s_line) - (size_t)n, fmt, ap);
        size_t len = strlen(s_line);
        while (len > 0 && (s_line[len - 1] == '\n' || s_line[len - 1] == '\r')) {
            s_line[--len] = '\0';
        }
        if (dropped) {
            ESP_LOG_LEVEL(level, tag, "%s (%u lines dropped by the log cap)", s_line, (unsigned)dropped);
        } else {
            ESP_LOG_LEVEL(level, tag, "%s", s_line);
        }
    }
    xSemaphoreGive(s_lock);
}

void rt_slog(esp_log_level_t level, const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, tag, "", fmt, ap);
    va_end(ap);
}

/* libpeer's utils.h (LOG_REDIRECT): level tags "ERROR", "WARN", "INFO", "DEBUG"; file_name is
 * already short (libpeer/<file>.c, -fmacro-prefix-map). libpeer's INFO lines are its set-up chatter
 * (buffer sizes, socket numbers, "Created inbound SRTP session"), four or more per call: they become
 * debug, so a call's console shows the session's own lines; its warnings and errors stay. */
void peer_log(char *level_tag, const char *file_name, int line_number, const char *fmt, ...);
void peer_log(char *level_tag, const char *file_name, int line_number, const char *fmt, ...)
{
    esp_log_level_t level = ESP_LOG_DEBUG;
    if (strcmp(level_tag, "ERROR") == 0) {
        level = ESP_LOG_ERROR;
    } else if (strcmp(level_tag, "WARN") == 0) {
        level = ESP_LOG_WARN;
    }
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s:%d ", file_name, line_number);
    va_list ap;
    va_start(ap, fmt);
    vlog(level, "libpeer", prefix, fmt, ap);
    va_end(ap);
}
