/* The ESP-IDF transport for rt_signal_post_offer: our own TCP socket, TLS by esp-tls on it (verified against
 * the ESP-IDF certificate bundle, esp_crt_bundle_attach; CONFIG_MBEDTLS_CERTIFICATE_BUNDLE; never the
 * insecure esp-tls options), and the HTTP/1.1 POST of rt_http.c (the request the POSIX transport sends).
 * Why not esp_http_client: it creates its socket inside esp_http_client_open, TLS handshake included, and
 * has no way to set TCP_NODELAY on it. With Nagle on, mbedTLS's second flight (ClientKeyExchange,
 * ChangeCipherSpec, Finished: three writes) and esp_http_client's headers-then-body each stopped for the
 * server's delayed ACK (Linux: 40 ms): 80 of the ~100 ms the POST took on loopback (strace of the linux
 * build against the stand-in; bench/session_bench.py). With TCP_NODELAY set before the handshake, and the
 * request in one write, the POST takes ~20 ms.
 * Checked against ESP-IDF v5.5 esp_tls.h: esp_tls_init, esp_tls_set_conn_sockfd, esp_tls_set_conn_state
 * (ESP_TLS_CONNECTING: the socket is connected, esp-tls goes on with the handshake), esp_tls_conn_new_sync,
 * esp_tls_conn_read/write, esp_tls_get_error_handle,
 * esp_tls_get_and_clear_last_error, esp_tls_conn_http_new_sync, esp_tls_conn_destroy (closes the socket
 * too); esp_crt_bundle.h (esp_crt_bundle_attach). */
#include <stdbool.h> /* esp_crt_bundle.h uses bool without including it (ESP-IDF v5.5, seen on linux) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>  /* IPPROTO_TCP */
#include <netinet/tcp.h> /* TCP_NODELAY (ESP-IDF: lwip/port/include/netinet/tcp.h) */
#include <sys/select.h> /* the connect wait */
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "esp_crt_bundle.h"
#include "esp_log.h"
#include "esp_tls.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509.h"
#include "sdkconfig.h"

#include "rt_config.h"
#include "rt_http.h"
#include "rt_signal.h"

#define MAX_BODY 16384
#define MAX_HEAD 4096

#if CONFIG_IDF_TARGET_LINUX
/* linux target only: RTFLASH_CA_FILE names a PEM file whose CA(s) are trusted instead of the
 * certificate bundle (a local stand-in of the API with a test CA). TLS stays verified, host name
 * included; the device build has no such option. Returns the PEM (malloc'd) or NULL with `why`. */
static char *read_ca_file(const char *path, rt_signal_info_t *info)
{
    FILE *fp = fopen(path, "rb");
    char *pem = NULL;
    long size = -1;
    if (fp != NULL && fseek(fp, 0, SEEK_END) == 0) {
        size = ftell(fp);
        rewind(fp);
    }
    if (size > 0 && size < 256 * 1024 && (pem = malloc((size_t)size + 1)) != NULL) {
        if (fread(pem, 1, (size_t)size, fp) == (size_t)size) {
            pem[size] = '\0';
        } else {
            free(pem);
            pem = NULL;
        }
    }
    if (fp != NULL) {
        fclose(fp);
    }
    if (pem == NULL || strstr(pem, "-----BEGIN CERTIFICATE-----") == NULL) {
        snprintf(info->why, sizeof(info->why), "RTFLASH_CA_FILE %.100s: not a readable PEM certificate file", path);
        free(pem);
        return NULL;
    }
    return pem;
}
#endif

static const unsigned char *s_ca_der;   /* relay mode's provisioned CA (rt_signal_trust_ca_der) */
static size_t s_ca_der_len;

void rt_signal_trust_ca_der(const unsigned char *der, size_t len)
{
    s_ca_der = der;
    s_ca_der_len = len;
}

/* Would the server's certificate chain verify if its host name were not checked? One diagnostic TLS
 * handshake (esp_tls_conn_http_new_sync, esp_tls.h v5.5) against the same trust anchors with
 * skip_common_name; nothing is sent over it (no request, no key) and it is closed at once.
 * Why: mbedTLS 3 keeps the peer certificate only once a handshake succeeds, so after a refusal
 * esp-tls finds no peer certificate and reports no verification flags, only
 * MBEDTLS_ERR_X509_CERT_VERIFY_FAILED: this tells "for another host" from "not trusted". */
static bool chain_trusted_ignoring_name(const char *url, const esp_tls_cfg_t *base)
{
    esp_tls_cfg_t cfg = *base;
    cfg.skip_common_name = true;
    esp_tls_t *tls = esp_tls_init();
    if (tls == NULL) {
        return false;
    }
    bool ok = esp_tls_conn_http_new_sync(url, &cfg, tls) == 1;
    esp_tls_conn_destroy(tls);
    return ok;
}

/* Why the TLS handshake failed, from mbedTLS's verification flags or code (one clear line). */
static void describe_tls_failure(esp_tls_t *tls, const char *url, const esp_tls_cfg_t *cfg, rt_signal_info_t *info)
{
    int tls_code = 0, flags = 0;
    esp_tls_error_handle_t handle = NULL;
    esp_err_t last = ESP_FAIL;
    if (esp_tls_get_error_handle(tls, &handle) == ESP_OK && handle != NULL) {
        last = esp_tls_get_and_clear_last_error(handle, &tls_code, &flags);
    }
    bool verify_failed = tls_code == -MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || tls_code == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED;
    if (flags == 0 && verify_failed) {
        flags = chain_trusted_ignoring_name(url, cfg) ? MBEDTLS_X509_BADCERT_CN_MISMATCH : MBEDTLS_X509_BADCERT_NOT_TRUSTED;
    }
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
        /* inferred (no flags): an expired certificate from a trusted CA lands here too */
        snprintf(info->why, sizeof(info->why), "TLS refused: the server's certificate is not signed by a trusted CA%s",
                 verify_failed ? " (or not valid today: check the clock)" : "");
    } else if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
        snprintf(info->why, sizeof(info->why), "TLS refused: the server's certificate is for another host");
    } else if (flags & MBEDTLS_X509_BADCERT_EXPIRED) {
        snprintf(info->why, sizeof(info->why), "TLS refused: the server's certificate has expired (check the clock)");
    } else if (flags != 0) {
        snprintf(info->why, sizeof(info->why), "TLS refused: certificate verification flags 0x%x", (unsigned)flags);
    } else {
        snprintf(info->why, sizeof(info->why), "cannot connect (TLS handshake failed): %s (mbedTLS -0x%04x)",
                 esp_err_to_name(last), (unsigned)(tls_code < 0 ? -tls_code : tls_code));
    }
}

/* A connected TCP socket to url->host:port within timeout_ms, TCP_NODELAY on (see the top of this file),
 * send/receive timeouts set; -1 with `why` ("cannot connect ..."). */
static int tcp_open(const rt_url_t *url, int timeout_ms, rt_signal_info_t *info)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", url->port);
    int rc = getaddrinfo(url->host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(info->why, sizeof(info->why), "cannot connect: cannot resolve %.100s (DNS)", url->host);
        if (res != NULL) {
            freeaddrinfo(res);
        }
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        int one = 1, flags = fcntl(fd, F_GETFL, 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* non-blocking connect, waited for with select: lwIP's blocking connect ignores SO_SNDTIMEO */
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        err = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            if (err == EINPROGRESS) {
                fd_set wset;
                FD_ZERO(&wset);
                FD_SET(fd, &wset);
                socklen_t len = sizeof(err);
                if (select(fd + 1, NULL, &wset, NULL, &tv) <= 0) {
                    err = ETIMEDOUT;
                } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
                    err = errno;
                }
            }
        }
        if (err == 0) {
            fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        } else {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(info->why, sizeof(info->why), "cannot connect to %.100s:%u: %s", url->host, url->port, strerror(err));
    }
    return fd;
}

/* The response: head, then the body until Content-Length, the chunked end, or the server's close (we
 * send Connection: close). On success the body (de-chunked, NUL-terminated) starts at *body. */
static rt_signal_result_t receive(esp_tls_t *tls, char *buf, size_t cap, int timeout_ms, char **body, int *status,
                                  rt_signal_info_t *info)
{
    rt_http_response_t resp = {0};
    size_t len = 0;
    int head = 0;
    uint32_t since = esp_log_timestamp();   /* the last bytes: each wait is timeout_ms at most */
    *status = 0;
    for (;;) {
        size_t got_body = head == 1 ? len - resp.header_len : 0;
        if (head == 1 && resp.content_length >= 0 && got_body >= (size_t)resp.content_length) {
            buf[resp.header_len + (size_t)resp.content_length] = '\0';
            break;
        }
        if (head == 1 && resp.chunked &&
            (strstr(buf + resp.header_len, "\r\n0\r\n") != NULL || strncmp(buf + resp.header_len, "0\r\n", 3) == 0)) {
            break;
        }
        if (len + 1 >= cap) {
            snprintf(info->why, sizeof(info->why), "answer larger than %d bytes", MAX_BODY);
            return RT_SIGNAL_TOO_LARGE;
        }
        /* A blocking read: it returns as soon as a record is in (no select() polling), WANT_READ when the
         * socket's SO_RCVTIMEO ran out or (linux target) the FreeRTOS tick's SIGALRM interrupted it. */
        ssize_t n = esp_tls_conn_read(tls, buf + len, cap - 1 - len);
        if (n == MBEDTLS_ERR_SSL_CONN_EOF) {
            n = 0;   /* FIN without close_notify: closed all the same */
        }
        if (n == ESP_TLS_ERR_SSL_WANT_READ || n == ESP_TLS_ERR_SSL_WANT_WRITE) {
            if ((int32_t)(esp_log_timestamp() - since) < timeout_ms) {
                continue;   /* nothing yet, or part of a TLS record so far: wait for the rest */
            }
            if (head != 1) {
                snprintf(info->why, sizeof(info->why), "no HTTP answer within %d s (server too slow)", timeout_ms / 1000);
            } else {
                snprintf(info->why, sizeof(info->why), "HTTP %d answer stalled: %u of %ld bytes within %d s", resp.status,
                         (unsigned)got_body, resp.content_length, timeout_ms / 1000);
            }
            return RT_SIGNAL_IO;
        }
        if (n < 0 && head != 1) {
            snprintf(info->why, sizeof(info->why), "the server closed the connection before any HTTP answer");
            return RT_SIGNAL_IO;
        }
        if (n < 0) {
            snprintf(info->why, sizeof(info->why), "HTTP %d answer cut off after %u bytes (connection error)", resp.status,
                     (unsigned)got_body);
            return RT_SIGNAL_IO;
        }
        if (n == 0) {   /* close_notify or FIN */
            if (head != 1) {
                snprintf(info->why, sizeof(info->why), "the server closed the connection before any HTTP answer");
                return RT_SIGNAL_IO;
            }
            if (resp.content_length >= 0 || resp.chunked) {
                snprintf(info->why, sizeof(info->why), "the server closed the connection mid-answer (HTTP %d, %u of %ld bytes)",
                         resp.status, (unsigned)got_body, resp.content_length);
                return RT_SIGNAL_IO;
            }
            break;   /* no length given: the close ends the body */
        }
        len += (size_t)n;
        buf[len] = '\0';
        since = esp_log_timestamp();
        if (head == 0) {
            head = rt_http_parse_head(buf, len, &resp);
            if (head < 0) {
                snprintf(info->why, sizeof(info->why), "not an HTTP answer from the server");
                return RT_SIGNAL_IO;
            }
            if (head == 0 && len >= MAX_HEAD) {
                snprintf(info->why, sizeof(info->why), "HTTP answer headers larger than %d bytes", MAX_HEAD);
                return RT_SIGNAL_TOO_LARGE;
            }
            if (head == 1) {
                *status = resp.status;
            }
        }
    }
    *body = buf + resp.header_len;
    if (resp.chunked && rt_http_dechunk(*body, len - resp.header_len) < 0) {
        snprintf(info->why, sizeof(info->why), "HTTP %d answer: malformed chunked body", resp.status);
        return RT_SIGNAL_IO;
    }
    return RT_SIGNAL_OK;
}

static bool write_all(esp_tls_t *tls, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = esp_tls_conn_write(tls, data, len);
        if (n == ESP_TLS_ERR_SSL_WANT_READ || n == ESP_TLS_ERR_SSL_WANT_WRITE) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* A failed handshake is E lines from esp-tls (twice) and the bundle, and rt_session then logs the reason
 * in one line of ours (describe_tls_failure). Theirs are shown only when the build logs at DEBUG or
 * VERBOSE (CONFIG_LOG_DEFAULT_LEVEL 4/5), where a developer wants every layer. Tags as the sources name
 * them (ESP-IDF v5.5: esp-tls/esp_tls.c, esp_tls_mbedtls.c, mbedtls/esp_crt_bundle). Needs
 * CONFIG_LOG_DYNAMIC_LEVEL_CONTROL (default y), else esp_log_level_set is a no-op (esp_log_level.h). */
static void quiet_transport_logs(void)
{
#if CONFIG_LOG_DEFAULT_LEVEL < 4
    static bool done;
    static const char *const tags[] = {"esp-tls", "esp-tls-mbedtls", "esp-x509-crt-bundle"};
    if (!done) {
        for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
            esp_log_level_set(tags[i], ESP_LOG_NONE);
        }
        done = true;
    }
#endif
}

rt_signal_result_t rt_signal_post_offer(const char *url, const char *api_key, const char *offer, char *answer,
                                        size_t answer_cap, int timeout_ms, rt_signal_info_t *info)
{
    memset(info, 0, sizeof(*info));
    quiet_transport_logs();
    rt_url_t parts;
    if (!rt_url_parse(url, &parts) || !parts.tls) {
        snprintf(info->why, sizeof(info->why), "not an https URL");
        return RT_SIGNAL_BAD_URL;
    }
    esp_tls_cfg_t cfg = {
        .timeout_ms = timeout_ms,
        .crt_bundle_attach = esp_crt_bundle_attach,
    };
    char *ca_pem = NULL;
#if CONFIG_IDF_TARGET_LINUX
    const char *ca_file = getenv("RTFLASH_CA_FILE");
    if (ca_file != NULL && *ca_file != '\0') {
        ca_pem = read_ca_file(ca_file, info);
        if (ca_pem == NULL) {
            return RT_SIGNAL_CONNECT;
        }
        cfg.cacert_buf = (const unsigned char *)ca_pem;
        cfg.cacert_bytes = (unsigned int)strlen(ca_pem) + 1;   /* PEM: the NUL counted, as mbedTLS wants */
        cfg.crt_bundle_attach = NULL;
    }
#endif
    if (ca_pem == NULL && s_ca_der != NULL) {
        cfg.cacert_buf = s_ca_der;
        cfg.cacert_bytes = (unsigned int)s_ca_der_len;
        cfg.crt_bundle_attach = NULL;
    }
    size_t request_cap = strlen(offer) + strlen(api_key) + 1024;
    char *request = malloc(request_cap);
    char *response = malloc(MAX_HEAD + MAX_BODY + 1);
    rt_signal_result_t result = RT_SIGNAL_IO;
    esp_tls_t *tls = NULL;
    int fd = -1;
    if (request == NULL || response == NULL) {
        snprintf(info->why, sizeof(info->why), "out of memory");
        goto done;
    }
    int n = rt_http_build_post(request, request_cap, parts.host, parts.port, true, parts.path, api_key,
                               "application/sdp", offer);
    if (n < 0) {
        snprintf(info->why, sizeof(info->why), "the offer does not fit the request buffer");
        goto done;
    }
    fd = tcp_open(&parts, timeout_ms, info);
    if (fd < 0) {
        result = RT_SIGNAL_CONNECT;
        goto done;
    }
    tls = esp_tls_init();
    if (tls == NULL || esp_tls_set_conn_sockfd(tls, fd) != ESP_OK || esp_tls_set_conn_state(tls, ESP_TLS_CONNECTING) != ESP_OK) {
        snprintf(info->why, sizeof(info->why), "out of memory for TLS");
        goto done;
    }
    fd = -1;   /* esp_tls_conn_destroy closes it from here on */
    if (esp_tls_conn_new_sync(parts.host, (int)strlen(parts.host), (int)parts.port, &cfg, tls) != 1) {
        describe_tls_failure(tls, url, &cfg, info);
        result = RT_SIGNAL_CONNECT;
        goto done;
    }
    if (!write_all(tls, request, (size_t)n)) {   /* headers and offer in one write: one TLS record */
        snprintf(info->why, sizeof(info->why), "sending the offer failed");
        goto done;
    }
    char *body = NULL;
    int status = 0;
    result = receive(tls, response, MAX_HEAD + MAX_BODY + 1, timeout_ms, &body, &status, info);
    if (result == RT_SIGNAL_OK) {
        result = rt_signal_finish(status, body, answer, answer_cap, info);
    }
done:
    if (tls != NULL) {
        esp_tls_conn_destroy(tls);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (request) {
        memset(request, 0, request_cap);   /* it held the key */
    }
    free(request);
    free(response);
    free(ca_pem);
    return result;
}
