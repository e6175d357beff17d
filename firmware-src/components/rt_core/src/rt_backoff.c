#include "rt_backoff.h"

void rt_backoff_init(rt_backoff_t *b, uint32_t base_ms, uint32_t max_ms, uint32_t seed)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
    b->attempt = 0;
    b->rng = seed ? seed : 0x9E3779B9u;
}

uint32_t rt_backoff_ceiling(const rt_backoff_t *b)
{
    uint64_t delay = b->base_ms;
    for (uint32_t i = 0; i < b->attempt && delay < b->max_ms; i++) {
        delay *= 2;
    }
    return delay > b->max_ms ? b->max_ms : (uint32_t)delay;
}

static uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

uint32_t rt_backoff_next(rt_backoff_t *b)
{
    uint32_t ceiling = rt_backoff_ceiling(b);
    uint32_t half = ceiling / 2;
    uint32_t delay = half + xorshift32(&b->rng) % (ceiling - half + 1);
    if (b->attempt < 32) {
        b->attempt++;
    }
    return delay;
}

void rt_backoff_reset(rt_backoff_t *b)
{
    b->attempt = 0;
}
