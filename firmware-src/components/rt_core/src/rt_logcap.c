#include "rt_logcap.h"

void rt_logcap_init(rt_logcap_t *cap, uint32_t per_s, uint32_t burst)
{
    cap->per_s = per_s ? per_s : 1;
    cap->burst = burst ? burst : 1;
    cap->milli_tokens = cap->burst * 1000u;
    cap->last_ms = 0;
    cap->dropped = 0;
    cap->started = false;
}

bool rt_logcap_take(rt_logcap_t *cap, uint32_t now_ms, uint32_t *dropped)
{
    if (!cap->started) {
        cap->started = true;
        cap->last_ms = now_ms;
    }
    uint32_t elapsed = now_ms - cap->last_ms;   /* wraps correctly */
    cap->last_ms = now_ms;
    uint64_t tokens = (uint64_t)cap->milli_tokens + (uint64_t)elapsed * cap->per_s;
    uint64_t full = (uint64_t)cap->burst * 1000u;
    cap->milli_tokens = (uint32_t)(tokens > full ? full : tokens);
    if (cap->milli_tokens < 1000u) {
        cap->dropped++;
        return false;
    }
    cap->milli_tokens -= 1000u;
    if (dropped) {
        *dropped = cap->dropped;
    }
    cap->dropped = 0;
    return true;
}
