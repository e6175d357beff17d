/* HTTP/1.1 pieces for the SDP POST: the request text and a response parser.
 *
 * Why pure C: the same request is sent over esp-tls on the device (rt_signal_esp.c) and by the small
 * POSIX client used on the host, and the parser must cope with what a server really sends (status
 * line, headers in any case, Content-Length or chunked body, a 4xx JSON error instead of SDP).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "POST <path> HTTP/1.1" with Host, Authorization: Bearer, Content-Type: application/sdp,
 * Accept, Content-Length, Connection: close, then the body. Returns length or -1. */
int rt_http_build_post(char *out, size_t cap, const char *host, unsigned port, bool tls, const char *path,
                       const char *bearer, const char *content_type, const char *body);

typedef struct {
    int status;             /* e.g. 201 */
    long content_length;    /* -1 when absent */
    bool chunked;
    size_t header_len;      /* bytes up to and including the blank line */
    char content_type[64];
    char location[128];
} rt_http_response_t;

/* Parse status line and headers from buf[0..len) (buf NUL-terminated at len). Returns 1 when complete, 0 when more bytes are
 * needed, -1 when malformed. */
int rt_http_parse_head(const char *buf, size_t len, rt_http_response_t *resp);

/* Decode a chunked body in place (NUL-terminated at len); returns the decoded length or -1 if incomplete/malformed. */
long rt_http_dechunk(char *body, size_t len);

#ifdef __cplusplus
}
#endif
