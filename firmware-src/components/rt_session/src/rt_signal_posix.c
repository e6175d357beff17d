/* The POSIX-socket transport for rt_signal_post_offer: plain HTTP/1.1 over TCP with timeouts.
 * Used by the host tests against a 127.0.0.1 server; https URLs are refused (TLS is the
 * ESP-IDF transport's job, with the certificate bundle). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "rt_config.h"
#include "rt_http.h"
#include "rt_signal.h"

#define MAX_RESPONSE 16384

static int connect_to(const rt_url_t *url, int timeout_ms, rt_signal_info_t *info)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", url->port);
    int rc = getaddrinfo(url->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(info->why, sizeof(info->why), "cannot resolve %s: %s", url->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            snprintf(info->why, sizeof(info->why), "cannot connect to %s:%u: %s", url->host, url->port, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read until the body is complete (Content-Length, chunked end or connection close). */
static long receive(int fd, char *buf, size_t cap, rt_http_response_t *resp)
{
    size_t len = 0;
    int head = 0;
    for (;;) {
        if (len + 1 >= cap) {
            return -2;
        }
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (head == 0) {
            head = rt_http_parse_head(buf, len, resp);
            if (head < 0) {
                return -1;
            }
        }
        if (head == 1) {
            size_t body = len - resp->header_len;
            if (resp->content_length >= 0 && body >= (size_t)resp->content_length) {
                return (long)len;
            }
            if (resp->chunked && strstr(buf + resp->header_len, "\r\n0\r\n") != NULL) {
                return (long)len;
            }
        }
        if (n == 0) {
            return head == 1 ? (long)len : -1;
        }
    }
}

rt_signal_result_t rt_signal_post_offer(const char *url_text, const char *api_key, const char *offer, char *answer,
                                        size_t answer_cap, int timeout_ms, rt_signal_info_t *info)
{
    rt_url_t url;
    memset(info, 0, sizeof(*info));
    if (!rt_url_parse(url_text, &url)) {
        snprintf(info->why, sizeof(info->why), "not an http(s) URL");
        return RT_SIGNAL_BAD_URL;
    }
    if (url.tls) {
        snprintf(info->why, sizeof(info->why), "https needs the ESP-IDF transport; this build speaks plain http only");
        return RT_SIGNAL_BAD_URL;
    }
    size_t request_cap = strlen(offer) + 1024;
    char *request = malloc(request_cap);
    char *response = malloc(MAX_RESPONSE);
    rt_signal_result_t result = RT_SIGNAL_IO;
    int fd = -1;
    if (request == NULL || response == NULL) {
        snprintf(info->why, sizeof(info->why), "out of memory");
        goto done;
    }
    int n = rt_http_build_post(request, request_cap, url.host, url.port, false, url.path, api_key,
                               "application/sdp", offer);
    fd = connect_to(&url, timeout_ms, info);
    if (fd < 0) {
        result = RT_SIGNAL_CONNECT;
        goto done;
    }
    if (n < 0 || send_all(fd, request, (size_t)n) != 0) {
        snprintf(info->why, sizeof(info->why), "sending the offer failed: %s", strerror(errno));
        goto done;
    }
    rt_http_response_t resp;
    long got = receive(fd, response, MAX_RESPONSE, &resp);
    if (got == -2) {
        snprintf(info->why, sizeof(info->why), "response larger than %d bytes", MAX_RESPONSE);
        result = RT_SIGNAL_TOO_LARGE;
        goto done;
    }
    if (got < 0) {
        snprintf(info->why, sizeof(info->why), "no complete HTTP response (%s)", errno ? strerror(errno) : "closed");
        goto done;
    }
    char *body = response + resp.header_len;
    size_t body_len = (size_t)got - resp.header_len;
    if (resp.chunked) {
        long d = rt_http_dechunk(body, body_len);
        if (d < 0) {
            snprintf(info->why, sizeof(info->why), "malformed chunked body");
            goto done;
        }
    } else if (resp.content_length >= 0 && body_len > (size_t)resp.content_length) {
        body[resp.content_length] = '\0';
    }
    result = rt_signal_finish(resp.status, body, answer, answer_cap, info);
done:
    if (fd >= 0) {
        close(fd);
    }
    if (request) {
        memset(request, 0, request_cap);  /* it held the key */
    }
    free(request);
    free(response);
    return result;
}
