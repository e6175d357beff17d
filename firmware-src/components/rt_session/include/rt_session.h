/* The Realtime session: a libpeer peer connection with an Opus audio track and the `oai-events`
 * data channel; the SDP offer is POSTed to <api_url>?model=<model> (rt_signal.h); once the channel
 * opens, session.update (instructions, voice) and a greeting response.create are sent. When the
 * link drops it reconnects with back-off (rt_link.h) instead of rebooting: a failed DTLS handshake, a
 * refused fingerprint or CONFIG_RT_MEDIA_TIMEOUT_S without any packet close the peer, one line each,
 * and a new offer follows. Every line goes through the session's log cap (rt_slog.h).
 *
 * Log lines (tag rt_session) that rtflash's monitor parses:
 *   peer state: <NEW|CHECKING|ICE_CONNECTED|CONNECTED|FAILED|DISCONNECTED|CLOSED>[: why]
 *     (ICE_CONNECTED: ICE only, DTLS running; CONNECTED: DTLS and SRTP up)
 *   datachannel open: oai-events
 *   audio: first packet from the peer (...)   (once per call)
 *   event: <type>
 */
#pragma once

#include <stdint.h>

#include "rt_config.h"
#include "rt_ring.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const rt_config_t *cfg;
    rt_ring_t *mic;      /* 16-bit mono PCM from the microphone */
    rt_ring_t *spk;      /* 16-bit mono PCM to the speaker */
    uint32_t rate;       /* sample rate of both rings */
} rt_session_params_t;

/* Start the session tasks (peer loop + Opus encoder). Returns false if they could not start. */
bool rt_session_start(const rt_session_params_t *params);

#ifdef __cplusplus
}
#endif
