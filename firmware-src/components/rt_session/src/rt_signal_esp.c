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

#include "rt_signal.h"

#define MAX_BODY 16384

rt_signal_result_t rt_signal_post_offer(const char *url, const char *api_key, const char *offer, char *answer,
                                        size_t answer_cap, int timeout_ms, rt_signal_info_t *info)
{
    memset(info, 0, sizeof(*info));
    esp_http_client_config_t cfg = {
        .url = url,
        .method = HTTP_METHOD_POST,
        .timeout_ms = timeout_ms,
        .crt_bundle_attach = esp_crt_bundle_attach,
        .buffer_size = 2048,
        .buffer_size_tx = 2048,
        .disable_auto_redirect = true,
    };
    esp_http_client_handle_t client = esp_http_client_init(&cfg);
    if (client == NULL) {
        snprintf(info->why, sizeof(info->why), "esp_http_client_init failed (bad URL or out of memory)");
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
        snprintf(info->why, sizeof(info->why), "cannot connect (DNS, TCP or TLS): %s", esp_err_to_name(err));
        result = RT_SIGNAL_CONNECT;
        goto done;
    }
    if (esp_http_client_write(client, offer, offer_len) != offer_len) {
        snprintf(info->why, sizeof(info->why), "sending the offer failed");
        goto done;
    }
    if (esp_http_client_fetch_headers(client) < 0) {
        snprintf(info->why, sizeof(info->why), "no HTTP response headers");
        goto done;
    }
    int status = esp_http_client_get_status_code(client);
    int len = 0;
    for (;;) {
        int n = esp_http_client_read(client, body + len, MAX_BODY - len);
        if (n < 0) {
            snprintf(info->why, sizeof(info->why), "reading the answer failed");
            goto done;
        }
        if (n == 0) {
            break;
        }
        len += n;
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
    return result;
}
