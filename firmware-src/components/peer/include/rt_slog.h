/* The session's log (rt_session and libpeer), capped: at most RT_SLOG_PER_S lines a second sustained,
 * bursts of RT_SLOG_BURST (a call's set-up and its first events), whatever happens (rt_logcap.h).
 * A line over the cap is dropped and counted; the next printed line says how many. */
#pragma once

#include "esp_log.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RT_SLOG_PER_S 5
#define RT_SLOG_BURST 30

/* Once, before the session's tasks start. */
void rt_slog_init(void);

void rt_slog(esp_log_level_t level, const char *tag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
