/* What the session does when the peer connection changes state, kept apart from libpeer so it is
 * unit-testable: start audio once media flows, reconnect with back-off when the link is lost
 * (never reboot), and the exact state names the log line `peer state: <STATE>` uses (rtflash's
 * monitor parses them).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "rt_backoff.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The session's states, honest about what is up (libpeer's PeerConnectionState is mapped explicitly:
 * its CONNECTED means only ICE, its COMPLETED DTLS done):
 *   CHECKING       ICE connectivity checks running
 *   ICE_CONNECTED  a candidate pair works; the DTLS handshake is running, no media yet
 *   CONNECTED      DTLS done and SRTP keyed: audio flows, the data channel can open
 *   FAILED         ICE or DTLS failed (or the peer's certificate was refused)
 *   DISCONNECTED / CLOSED  the link went away after being up */
typedef enum {
    RT_PEER_CLOSED = 0,
    RT_PEER_NEW,
    RT_PEER_CHECKING,
    RT_PEER_ICE_CONNECTED,
    RT_PEER_CONNECTED,
    RT_PEER_FAILED,
    RT_PEER_DISCONNECTED,
} rt_peer_state_t;

typedef enum {
    RT_LINK_NONE = 0,       /* nothing to do */
    RT_LINK_MEDIA_UP,       /* DTLS + SRTP up: start sending audio */
    RT_LINK_RECONNECT,      /* tear down; reconnect after `delay_ms` */
} rt_link_action_t;

typedef struct {
    rt_peer_state_t state;
    bool media_up;
    bool channel_open;
    bool greeted;           /* session.update + response.create sent on this connection */
    uint32_t connects;      /* successful connections so far */
    rt_backoff_t backoff;
} rt_link_t;

void rt_link_init(rt_link_t *link, uint32_t seed);

/* "NEW", "CHECKING", "ICE_CONNECTED", "CONNECTED", "FAILED", "DISCONNECTED", "CLOSED" ("UNKNOWN" otherwise). */
const char *rt_peer_state_name(rt_peer_state_t state);

/* Feed a state change; *delay_ms is set for RT_LINK_RECONNECT. */
rt_link_action_t rt_link_on_state(rt_link_t *link, rt_peer_state_t state, uint32_t *delay_ms);

/* The data channel opened; returns true exactly once per connection: send the greeting now. */
bool rt_link_on_channel_open(rt_link_t *link);

/* Signalling (the SDP POST) failed: back off before the next attempt. */
uint32_t rt_link_on_signal_error(rt_link_t *link);

/* A new connection attempt starts (clears the per-connection flags, keeps the back-off). */
void rt_link_restart(rt_link_t *link);

#ifdef __cplusplus
}
#endif
