/* NVS (device) or environment (linux) into rt_config_t. APIs checked against ESP-IDF v5.4/v5.5
 * components/nvs_flash/include/nvs.h: nvs_open(namespace, NVS_READONLY, &handle), nvs_get_str
 * (length query with out_value NULL, then the read), nvs_close; ESP_ERR_NVS_NOT_FOUND.
 * Relay mode's CA (relay_ca: base64 of the DER, one line) with mbedTLS 3 (components/mbedtls/mbedtls/
 * include/mbedtls): base64.h mbedtls_base64_decode(dst, dlen, &olen, src, slen); x509_crt.h
 * mbedtls_x509_crt_init/parse_der/free; MBEDTLS_ERR_BASE64_INVALID_CHARACTER. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_log.h"
#include "sdkconfig.h"

#include "mbedtls/base64.h"
#include "mbedtls/x509_crt.h"

#include "app_config.h"
#include "rt_signal.h"

#if !CONFIG_IDF_TARGET_LINUX
#include "nvs.h"
#endif

static const char *TAG = "rtflash";

#if CONFIG_IDF_TARGET_LINUX
#define NEED_WIFI false

/* Environment names for each key: rtflash's own, then the upstream SDK's where it had one. */
static const char *env_for(const char *key, int which)
{
    static const char *const names[][3] = {
        {"api_key", "RTFLASH_OPENAI_API_KEY", "OPENAI_API_KEY"},
        {"model", "RTFLASH_MODEL", NULL},
        {"voice", "RTFLASH_VOICE", NULL},
        {"instructions", "RTFLASH_INSTRUCTIONS", NULL},
        {"api_url", "RTFLASH_API_URL", NULL},
        {"relay_url", "RTFLASH_RELAY_URL", NULL},
        {"relay_token", "RTFLASH_RELAY_TOKEN", NULL},
        {"relay_ca", "RTFLASH_RELAY_CA", NULL},   /* as in NVS: base64 of the CA's DER, one line */
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(names[i][0], key) == 0) {
            return names[i][which];
        }
    }
    return NULL;
}

static void read_source(rt_config_t *cfg)
{
    for (size_t i = 0; i < RT_CONFIG_KEY_COUNT; i++) {
        const char *key = RT_CONFIG_KEYS[i].key;
        for (int which = 1; which <= 2; which++) {
            const char *name = env_for(key, which);
            const char *value = name ? getenv(name) : NULL;
            if (value && *value) {
                if (!rt_config_set(cfg, key, value)) {
                    ESP_LOGE(TAG, "%s from $%s is too long (%u bytes); ignored", key, name, (unsigned)strlen(value));
                }
                break;
            }
        }
    }
}
#else
#define NEED_WIFI true

static void read_source(rt_config_t *cfg)
{
    nvs_handle_t handle;
    esp_err_t err = nvs_open(RT_NVS_NAMESPACE, NVS_READONLY, &handle);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "no settings in NVS namespace \"%s\" (%s): run `rtflash provision --board %s`", RT_NVS_NAMESPACE,
                 esp_err_to_name(err), CONFIG_RT_BOARD_NAME);
        return;
    }
    for (size_t i = 0; i < RT_CONFIG_KEY_COUNT; i++) {
        const rt_config_key_t *k = &RT_CONFIG_KEYS[i];
        size_t length = 0;
        err = nvs_get_str(handle, k->key, NULL, &length);
        if (err == ESP_ERR_NVS_NOT_FOUND) {
            continue;
        }
        if (err != ESP_OK || length > k->size) {
            ESP_LOGE(TAG, "NVS key %s unreadable or too long (%s, %u bytes); using the default", k->key,
                     esp_err_to_name(err), (unsigned)length);
            continue;
        }
        length = k->size;
        err = nvs_get_str(handle, k->key, (char *)cfg + k->offset, &length);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "NVS key %s: %s", k->key, esp_err_to_name(err));
        }
    }
    nvs_close(handle);
}
#endif

/* The relay's CA, decoded once at boot; rt_signal keeps a pointer to it. */
static unsigned char s_relay_ca_der[RT_RELAY_CA_MAX / 4 * 3];

/* relay_ca -> DER, checked with mbedTLS, handed to the signalling transport. One line if unusable. */
static bool trust_relay_ca(const char *b64)
{
    size_t der_len = 0;
    int rc = mbedtls_base64_decode(s_relay_ca_der, sizeof(s_relay_ca_der), &der_len, (const unsigned char *)b64,
                                   strlen(b64));
    if (rc != 0) {
        ESP_LOGE(TAG, "relay_ca is not valid base64 (mbedtls -0x%04x): provision again with --relay-ca FILE", -rc);
        return false;
    }
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    rc = mbedtls_x509_crt_parse_der(&crt, s_relay_ca_der, der_len);
    mbedtls_x509_crt_free(&crt);
    if (rc != 0) {
        ESP_LOGE(TAG, "relay_ca is not a DER certificate (mbedtls -0x%04x): provision again with --relay-ca FILE", -rc);
        return false;
    }
    rt_signal_trust_ca_der(s_relay_ca_der, der_len);
    ESP_LOGI(TAG, "relay_ca: %u-byte certificate trusted for the relay (instead of the certificate bundle)",
             (unsigned)der_len);
    return true;
}

/* One line on the mode; a warning when the API key is on the device. */
static void log_mode(const rt_config_t *cfg)
{
    if (rt_config_mode(cfg) == RT_MODE_RELAY) {
        ESP_LOGI(TAG, "mode: relay (%.*s): no API key needed on this device", 80, cfg->relay_url);
        if (cfg->api_key[0] != '\0') {
            ESP_LOGW(TAG, "api_key is also stored on this device and is not used: provision again with --relay "
                          "to remove it");
        }
    } else {
        ESP_LOGW(TAG, "mode: direct: the OpenAI API key is stored on this device, readable by anyone holding the board "
                      "(`rtflash provision --relay URL --device NAME` keeps it off)");
    }
}

bool app_config_load(rt_config_t *cfg)
{
    rt_config_defaults(cfg);
    read_source(cfg);
    for (size_t i = 0; i < RT_CONFIG_KEY_COUNT; i++) {
        const rt_config_key_t *k = &RT_CONFIG_KEYS[i];
        const char *value = (const char *)cfg + k->offset;
        if (!NEED_WIFI && strncmp(k->key, "wifi_", 5) == 0) {
            continue;
        }
        bool relay_key = strncmp(k->key, "relay_", 6) == 0;
        if (relay_key && *value == '\0') {
            continue;   /* direct mode: nothing to say about the relay */
        }
        if (k->secret || strcmp(k->key, "relay_ca") == 0) {
            ESP_LOGI(TAG, "%s: %s (%u characters)", k->key, *value ? "present" : "missing", (unsigned)strlen(value));
        } else if (*value) {
            ESP_LOGI(TAG, "%s: %.*s%s", k->key, 60, value, strlen(value) > 60 ? "..." : "");
        } else {
            ESP_LOGI(TAG, "%s: %s", k->key, k->required ? "missing" : "(default)");
        }
    }
    char why[160];
    if (!rt_config_check(cfg, NEED_WIFI, why, sizeof(why))) {
#if CONFIG_IDF_TARGET_LINUX
        ESP_LOGE(TAG, "cannot start: %s; set OPENAI_API_KEY, or RTFLASH_RELAY_URL + RTFLASH_RELAY_TOKEN (or use "
                      "`rtflash exec`)", why);
#else
        ESP_LOGE(TAG, "cannot start: %s; run `rtflash provision --board %s`", why, CONFIG_RT_BOARD_NAME);
#endif
        return false;
    }
    log_mode(cfg);
    if (rt_config_mode(cfg) == RT_MODE_RELAY && cfg->relay_ca[0] != '\0' && !trust_relay_ca(cfg->relay_ca)) {
        return false;
    }
    return true;
}
