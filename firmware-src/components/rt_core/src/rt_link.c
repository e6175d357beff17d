#include "rt_link.h"

#include <string.h>

#define RECONNECT_BASE_MS 1000
#define RECONNECT_MAX_MS 60000

void rt_link_init(rt_link_t *link, uint32_t seed)
{
    memset(link, 0, sizeof(*link));
    link->state = RT_PEER_NEW;
    rt_backoff_init(&link->backoff, RECONNECT_BASE_MS, RECONNECT_MAX_MS, seed);
}

const char *rt_peer_state_name(rt_peer_state_t state)
{
    switch (state) {
    case RT_PEER_NEW: return "NEW";
    case RT_PEER_CHECKING: return "CHECKING";
    case RT_PEER_ICE_CONNECTED: return "ICE_CONNECTED";
    case RT_PEER_CONNECTED: return "CONNECTED";
    case RT_PEER_FAILED: return "FAILED";
    case RT_PEER_DISCONNECTED: return "DISCONNECTED";
    case RT_PEER_CLOSED: return "CLOSED";
    }
    return "UNKNOWN";
}

rt_link_action_t rt_link_on_state(rt_link_t *link, rt_peer_state_t state, uint32_t *delay_ms)
{
    rt_peer_state_t before = link->state;
    link->state = state;
    switch (state) {
    case RT_PEER_CONNECTED:
        if (!link->media_up) {
            link->media_up = true;
            link->connects++;
            rt_backoff_reset(&link->backoff);
            return RT_LINK_MEDIA_UP;
        }
        return RT_LINK_NONE;
    case RT_PEER_FAILED:
    case RT_PEER_DISCONNECTED:
    case RT_PEER_CLOSED:
        if (before == RT_PEER_FAILED || before == RT_PEER_DISCONNECTED || before == RT_PEER_CLOSED) {
            return RT_LINK_NONE;  /* already reconnecting */
        }
        link->media_up = false;
        link->channel_open = false;
        if (delay_ms) {
            *delay_ms = rt_backoff_next(&link->backoff);
        }
        return RT_LINK_RECONNECT;
    default:
        return RT_LINK_NONE;
    }
}

bool rt_link_on_channel_open(rt_link_t *link)
{
    link->channel_open = true;
    if (link->greeted) {
        return false;
    }
    link->greeted = true;
    return true;
}

uint32_t rt_link_on_signal_error(rt_link_t *link)
{
    return rt_backoff_next(&link->backoff);
}

void rt_link_restart(rt_link_t *link)
{
    link->state = RT_PEER_NEW;
    link->media_up = false;
    link->channel_open = false;
    link->greeted = false;
}
