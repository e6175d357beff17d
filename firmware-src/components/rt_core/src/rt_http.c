#include "rt_http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rt_http_build_post(char *out, size_t cap, const char *host, unsigned port, bool tls, const char *path,
                       const char *bearer, const char *content_type, const char *body)
{
    char host_header[160];
    bool default_port = (tls && port == 443) || (!tls && port == 80);
    if (default_port) {
        snprintf(host_header, sizeof(host_header), "%s", host);
    } else {
        snprintf(host_header, sizeof(host_header), "%s:%u", host, port);
    }
    size_t body_len = strlen(body);
    int n = snprintf(out, cap,
                     "POST %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Authorization: Bearer %s\r\n"
                     "Content-Type: %s\r\n"
                     "Accept: application/sdp\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     path, host_header, bearer, content_type, body_len);
    if (n < 0 || (size_t)n + body_len >= cap) {
        return -1;
    }
    memcpy(out + n, body, body_len + 1);
    return n + (int)body_len;
}

/* First CRLF in [p, limit + 2), or limit when none: bounded, unlike strstr. */
static const char *find_crlf(const char *p, const char *limit)
{
    for (; p < limit; p++) {
        if (p[0] == '\r' && p[1] == '\n') {
            return p;
        }
    }
    return limit;
}

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char)line[i]) != tolower((unsigned char)name[i])) {
            return false;
        }
    }
    const char *v = line + n + 1;
    while (v < line + len && (*v == ' ' || *v == '\t')) {
        v++;
    }
    *value = v;
    return true;
}

static void copy_value(char *dst, size_t cap, const char *v, const char *end)
{
    size_t n = (size_t)(end - v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

int rt_http_parse_head(const char *buf, size_t len, rt_http_response_t *resp)
{
    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i;
            break;
        }
    }
    if (end == NULL) {
        return len > 16384 ? -1 : 0;
    }
    resp->header_len = (size_t)(end - buf) + 4;
    if (end - buf < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' || !isdigit((unsigned char)buf[9]) ||
        !isdigit((unsigned char)buf[10]) || !isdigit((unsigned char)buf[11])) {
        return -1;
    }
    resp->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    const char *line = find_crlf(buf, end) + 2;  /* first header line; `end` is the CRLF CRLF */
    while (line < end) {
        const char *eol = find_crlf(line, end);
        size_t n = (size_t)(eol - line);
        const char *v;
        if (header_is(line, n, "Content-Length", &v)) {
            char *stop;
            long cl = strtol(v, &stop, 10);
            if (stop == v || cl < 0) {
                return -1;
            }
            resp->content_length = cl;
        } else if (header_is(line, n, "Transfer-Encoding", &v)) {
            char te[32];
            copy_value(te, sizeof(te), v, eol);
            for (char *p = te; *p; p++) {
                *p = (char)tolower((unsigned char)*p);
            }
            resp->chunked = strstr(te, "chunked") != NULL;
        } else if (header_is(line, n, "Content-Type", &v)) {
            copy_value(resp->content_type, sizeof(resp->content_type), v, eol);
        } else if (header_is(line, n, "Location", &v)) {
            copy_value(resp->location, sizeof(resp->location), v, eol);
        }
        line = eol + 2;
    }
    return 1;
}

long rt_http_dechunk(char *body, size_t len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *stop;
        if (in >= len) {
            return -1;
        }
        unsigned long size = strtoul(body + in, &stop, 16);
        if (stop == body + in) {
            return -1;
        }
        char *crlf = strstr(stop, "\r\n");  /* skips chunk extensions */
        if (crlf == NULL || (size_t)(crlf - body) >= len) {
            return -1;
        }
        in = (size_t)(crlf - body) + 2;
        if (size == 0) {
            body[out] = '\0';
            return (long)out;
        }
        if (in + size + 2 > len) {
            return -1;
        }
        memmove(body + out, body + in, size);
        out += size;
        in += size + 2;
    }
}
