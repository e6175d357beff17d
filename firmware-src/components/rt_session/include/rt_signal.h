/* Signalling: POST our SDP offer to the Realtime API's calls endpoint and get the SDP answer.
 *
 * Two transports behind this one function: HTTP/1.1 over esp-tls on our own TCP_NODELAY socket (TLS
 * verified with the certificate bundle; rt_signal_esp.c) on the device and the linux target, and a small
 * POSIX-socket HTTP/1.1 client (plain http only) for the host tests against a local server. Both send
 * rt_http.c's request.
 */
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    RT_SIGNAL_OK = 0,
    RT_SIGNAL_BAD_URL,       /* not an http(s) URL, or https on a build without TLS */
    RT_SIGNAL_CONNECT,       /* DNS, TCP or TLS failed */
    RT_SIGNAL_IO,            /* send/receive failed or timed out */
    RT_SIGNAL_HTTP_STATUS,   /* the server answered, but not 200/201 */
    RT_SIGNAL_BAD_ANSWER,    /* 2xx, but the body is not a usable SDP answer */
    RT_SIGNAL_TOO_LARGE,     /* answer larger than the buffer */
} rt_signal_result_t;

typedef struct {
    int status;          /* HTTP status, 0 if none */
    char why[160];       /* one line, never contains the key */
} rt_signal_info_t;

/* POST `offer` to `url` with `Authorization: Bearer <api_key>` and `Content-Type:
 * application/sdp`; on success the answer (CRLF-normalised, NUL-terminated) is in answer. */
rt_signal_result_t rt_signal_post_offer(const char *url, const char *api_key, const char *offer, char *answer,
                                        size_t answer_cap, int timeout_ms, rt_signal_info_t *info);

/* Relay mode (relay_ca): trust this CA certificate (DER, kept by reference: it must outlive every
 * call) instead of the certificate bundle. ESP-IDF transport only (the POSIX one is plain http). */
void rt_signal_trust_ca_der(const unsigned char *der, size_t len);

/* Shared by both transports: judge status + body, normalise the answer into `answer`. */
rt_signal_result_t rt_signal_finish(int status, const char *body, char *answer, size_t answer_cap,
                                    rt_signal_info_t *info);

#ifdef __cplusplus
}
#endif
