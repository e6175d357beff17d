/* SDP helpers for the signalling exchange with the Realtime API.
 *
 * Why: the answer comes back from an HTTP body whose line endings depend on the server, while
 * libpeer's parser splits lines on "\r\n" only; and an error page or an empty body must be caught
 * here, with a clear log line, rather than fed to the ICE agent.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    RT_SDP_HAS_AUDIO = 1 << 0,       /* an m=audio section */
    RT_SDP_HAS_OPUS = 1 << 1,        /* a=rtpmap:<pt> opus/48000/2 */
    RT_SDP_HAS_DATA = 1 << 2,        /* an m=application section (SCTP data channel) */
    RT_SDP_HAS_ICE = 1 << 3,         /* a=ice-ufrag and a=ice-pwd */
    RT_SDP_HAS_FINGERPRINT = 1 << 4, /* a=fingerprint (DTLS) */
};

/* The longest SDP line libpeer's parser takes (it copies each into a 256-byte stack buffer). */
#define RT_SDP_LINE_MAX 255

/* Feature bits of an SDP (0 when it does not start with "v=0"). */
unsigned rt_sdp_features(const char *sdp);

/* Check an answer is usable for an Opus + data-channel session (and has no line longer than
 * RT_SDP_LINE_MAX). On failure returns false and
 * writes the reason (one short phrase) into why. */
bool rt_sdp_check_answer(const char *sdp, char *why, size_t why_cap);

/* Copy `in` to `out` with every line ending made CRLF and a final CRLF; returns the length or -1
 * if out is too small. */
int rt_sdp_normalize(const char *in, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
