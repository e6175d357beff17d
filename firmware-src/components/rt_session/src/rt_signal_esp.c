/* The ESP-IDF transport for rt_signal_post_offer: esp_http_client, TLS verified against the
 * ESP-IDF certificate bundle (esp_crt_bundle_attach; CONFIG_MBEDTLS_CERTIFICATE_BUNDLE), never
 * the insecure esp-tls options. Streaming API (open/write/fetch_headers/read) so the answer lands in our
 * buffer whatever its length header says.
 * Checked against ESP-IDF v5.4/v5.5: esp_http_client.h (esp_http_client_config_t .url .method
 * .timeout_ms .crt_bundle_attach .buffer_size; esp_http_client_init/set_header/open/write/
 * fetch_headers/read/get_status_code/close/cleanup), esp_crt_bundle.h (esp_crt_bundle_attach). */
#include <stdbool.h> /* esp_crt_bundle.h uses bool without including it (ESP-IDF v5.5, seen on linux) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_crt_bundle.h"
#include "esp_http_client.h"
#include "esp_log.h"
#include "esp_tls.h"
#include "mbedtls/x509.h"
#include "sdkconfig.h"
#include <netinet/in.h>  /* IPPROTO_TCP */
#include <netinet/tcp.h> /* TCP_NODELAY (ESP-IDF: lwip/port/include/netinet/tcp.h) */
#include <sys/socket.h>  /* setsockopt */

#include "rt_signal.h"

#define MAX_BODY 16384

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
static bool chain_trusted_ignoring_name(const char *url, const esp_http_client_config_t *hc)
{
    esp_tls_cfg_t cfg = {
        .timeout_ms = hc->timeout_ms,
        .skip_common_name = true,
        .crt_bundle_attach = hc->crt_bundle_attach,
    };
    if (hc->cert_pem != NULL) {
        cfg.cacert_buf = (const unsigned char *)hc->cert_pem;
        cfg.cacert_bytes = (unsigned int)strlen(hc->cert_pem) + 1;
    } else if (hc->cert_der != NULL) {
        cfg.cacert_buf = (const unsigned char *)hc->cert_der;
        cfg.cacert_bytes = (unsigned int)hc->cert_len;
    }
    esp_tls_t *tls = esp_tls_init();
    if (tls == NULL) {
        return false;
    }
    bool ok = esp_tls_conn_http_new_sync(url, &cfg, tls) == 1;
    esp_tls_conn_destroy(tls);
    return ok;
}

/* Why a TLS connection failed, from mbedTLS's verification flags or code (one clear line). */
static void describe_tls_failure(esp_http_client_handle_t client, esp_err_t err, const char *url,
                                 const esp_http_client_config_t *cfg, rt_signal_info_t *info)
{
    int tls_code = 0, flags = 0;
    esp_http_client_get_and_clear_last_tls_error(client, &tls_code, &flags);
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
        snprintf(info->why, sizeof(info->why), "cannot connect (DNS, TCP or TLS): %s", esp_err_to_name(err));
    }
}

/* One failed connect is 4 E lines from ESP-IDF (esp-tls twice, transport_base, HTTP_CLIENT; seen on
 * linux with a refused port), and rt_session then logs the reason in one line of ours (describe_tls_
 * failure). Theirs are shown only when the build logs at DEBUG or VERBOSE (CONFIG_LOG_DEFAULT_LEVEL 4/5),
 * where a developer wants every layer. Tags as the sources name them (ESP-IDF v5.5: esp-tls/esp_tls.c,
 * esp_tls_mbedtls.c, tcp_transport/transport.c, esp_http_client.c, mbedtls/esp_crt_bundle). Needs
 * CONFIG_LOG_DYNAMIC_LEVEL_CONTROL (default y), else esp_log_level_set is a no-op (esp_log_level.h). */
static void quiet_transport_logs(void)
{
#if CONFIG_LOG_DEFAULT_LEVEL < 4
    static bool done;
    static const char *const tags[] = {"esp-tls", "esp-tls-mbedtls", "transport_base", "transport", "HTTP_CLIENT",
                                       "esp-x509-crt-bundle"};
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
    esp_http_client_config_t cfg = {
        .url = url,
        .method = HTTP_METHOD_POST,
        .timeout_ms = timeout_ms,
        .crt_bundle_attach = esp_crt_bundle_attach,
        .buffer_size = 2048,
        .buffer_size_tx = 2048,
        .disable_auto_redirect = true,
    };
    char *ca_pem = NULL;
#if CONFIG_IDF_TARGET_LINUX
    const char *ca_file = getenv("RTFLASH_CA_FILE");
    if (ca_file != NULL && *ca_file != '\0') {
        ca_pem = read_ca_file(ca_file, info);
        if (ca_pem == NULL) {
            return RT_SIGNAL_CONNECT;
        }
        cfg.cert_pem = ca_pem;
        cfg.cert_len = strlen(ca_pem) + 1;
        cfg.crt_bundle_attach = NULL;
    }
#endif
    if (ca_pem == NULL && s_ca_der != NULL) {   /* cert_der + cert_len: esp_http_client.h, v5.5 */
        cfg.cert_der = (const char *)s_ca_der;
        cfg.cert_len = s_ca_der_len;
        cfg.crt_bundle_attach = NULL;
    }
    esp_http_client_handle_t client = esp_http_client_init(&cfg);
    if (client == NULL) {
        snprintf(info->why, sizeof(info->why), "esp_http_client_init failed (bad URL or out of memory)");
        free(ca_pem);
        return RT_SIGNAL_BAD_URL;
    }
    size_t auth_len = strlen(api_key) + sizeof("Bearer ");
    char *auth = malloc(auth_len);
    char *body = malloc(MAX_BODY + 1);
    rt_signal_result_t result = RT_SIGNAL_IO;
    if (auth == NULL || body == NULL) {
        snprintf(info->why, sizeof(info->why), "out of memory");
        goto done;
    }
    snprintf(auth, auth_len, "Bearer %s", api_key);
    esp_http_client_set_header(client, "Authorization", auth);
    esp_http_client_set_header(client, "Content-Type", "application/sdp");
    esp_http_client_set_header(client, "Accept", "application/sdp");
    int offer_len = (int)strlen(offer);
    esp_err_t err = esp_http_client_open(client, offer_len);
    if (err != ESP_OK) {
        describe_tls_failure(client, err, url, &cfg, info);
        result = RT_SIGNAL_CONNECT;
        goto done;
    }
    /* The offer leaves in its own write after the headers: with Nagle on, it waits in our socket until the
     * server ACKs the headers, and the server (Linux: delayed ACK, 40 ms) holds that ACK because it has
     * nothing to say before the body: 40 ms of every call spent idle (strace of the linux build against
     * the stand-in, bench/session_bench.py). Setting TCP_NODELAY also pushes whatever is queued. */
    int one = 1;
    int fd = esp_http_client_get_socket(client);
    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (esp_http_client_write(client, offer, offer_len) != offer_len) {
        snprintf(info->why, sizeof(info->why), "sending the offer failed");
        goto done;
    }
    int64_t promised = esp_http_client_fetch_headers(client);
    if (promised == -ESP_ERR_HTTP_EAGAIN) {
        snprintf(info->why, sizeof(info->why), "no HTTP answer within %d s (server too slow)", timeout_ms / 1000);
        goto done;
    }
    if (promised < 0) {
        snprintf(info->why, sizeof(info->why), "the server closed the connection before any HTTP answer");
        goto done;
    }
    int status = esp_http_client_get_status_code(client);
    int len = 0;
    esp_http_client_get_and_clear_last_tls_error(client, NULL, NULL);
    for (;;) {
        int n = esp_http_client_read(client, body + len, MAX_BODY - len);
        if (n == -ESP_ERR_HTTP_EAGAIN) {
            snprintf(info->why, sizeof(info->why), "HTTP %d answer stalled: %d of %lld bytes within %d s", status, len,
                     (long long)promised, timeout_ms / 1000);
                goto done;
        }
        if (n < 0) {
            snprintf(info->why, sizeof(info->why), "HTTP %d answer cut off after %d bytes (connection error)", status, len);
            goto done;
        }
        if (n == 0) {
            break;
        }
        len += n;
        /* The server closed the connection (TLS close_notify / FIN) before the promised body: say so now.
         * esp_http_client_read returns the partial data and, asked again, waits out the whole timeout on a
         * socket that will never be readable (the peer waits for our close_notify). */
        if (!esp_http_client_is_complete_data_received(client) &&
            esp_http_client_get_and_clear_last_tls_error(client, NULL, NULL) == ESP_ERR_ESP_TLS_TCP_CLOSED_FIN) {
            snprintf(info->why, sizeof(info->why), "the server closed the connection mid-answer (HTTP %d, %d of %lld bytes)",
                     status, len, (long long)promised);
            goto done;
        }
        if (len >= MAX_BODY) {
            snprintf(info->why, sizeof(info->why), "answer larger than %d bytes", MAX_BODY);
            result = RT_SIGNAL_TOO_LARGE;
            goto done;
        }
    }
    body[len] = '\0';
    result = rt_signal_finish(status, body, answer, answer_cap, info);
done:
    esp_http_client_close(client);
    esp_http_client_cleanup(client);
    if (auth) {
        memset(auth, 0, auth_len);   /* it held the key */
    }
    free(auth);
    free(body);
    free(ca_pem);
    return result;
}
