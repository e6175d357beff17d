/* A cap on how many lines the session (rt_session and libpeer) may log: a token bucket.
 *
 * Why: a peer that fails the same way over and over made libpeer log 2,497 lines in 25 s, drowning
 * the serial console (and, on a device, the CPU) in one repeated error. Each line costs a token;
 * tokens come back at `per_s` a second up to `burst` (a call's setup and first events fit in a
 * burst); a line without a token is counted, not printed, and the next printed line says how many
 * were dropped. Time comes from the caller (milliseconds), so it is unit-testable.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t per_s;        /* sustained lines a second */
    uint32_t burst;        /* tokens at most */
    uint32_t milli_tokens; /* tokens * 1000 (fractional refill) */
    uint32_t last_ms;
    uint32_t dropped;      /* lines dropped since the last printed one */
    bool started;
} rt_logcap_t;

void rt_logcap_init(rt_logcap_t *cap, uint32_t per_s, uint32_t burst);

/* May a line be printed at now_ms? On true, *dropped (if given) is how many lines were dropped
 * before this one (say so on this line); the counter then restarts. */
bool rt_logcap_take(rt_logcap_t *cap, uint32_t now_ms, uint32_t *dropped);

#ifdef __cplusplus
}
#endif
