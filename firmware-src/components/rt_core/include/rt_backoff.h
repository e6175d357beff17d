/* Exponential back-off with jitter, for Wi-Fi and session reconnects.
 *
 * Why: rebooting on every network hiccup (as the upstream SDK does) loses logs and hammers the AP
 * and the API; waiting base*2^n (capped), with jitter so a room of devices does not retry in step,
 * recovers on its own. Deterministic for a given seed, so it is unit-testable.
 */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t base_ms;
    uint32_t max_ms;
    uint32_t attempt;
    uint32_t rng;
} rt_backoff_t;

void rt_backoff_init(rt_backoff_t *b, uint32_t base_ms, uint32_t max_ms, uint32_t seed);

/* The un-jittered delay of the next attempt: min(max, base * 2^attempt). */
uint32_t rt_backoff_ceiling(const rt_backoff_t *b);

/* Delay before the next attempt, in [ceiling/2, ceiling]; advances the attempt counter. */
uint32_t rt_backoff_next(rt_backoff_t *b);

/* After a success: the next failure starts again from base_ms. */
void rt_backoff_reset(rt_backoff_t *b);

#ifdef __cplusplus
}
#endif
