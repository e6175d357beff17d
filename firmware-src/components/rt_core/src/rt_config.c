#include "rt_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(name) offsetof(rt_config_t, name), sizeof(((rt_config_t *)0)->name)

const rt_config_key_t RT_CONFIG_KEYS[] = {
    {"wifi_ssid", FIELD(wifi_ssid), true, false},
    {"wifi_pass", FIELD(wifi_pass), false, true},
    {"api_key", FIELD(api_key), false, true},   /* required unless relay_url + relay_token (rt_config_check) */
    {"model", FIELD(model), false, false},
    {"voice", FIELD(voice), false, false},
    {"instructions", FIELD(instructions), false, false},
    {"api_url", FIELD(api_url), false, false},
    {"relay_url", FIELD(relay_url), false, false},
    {"relay_token", FIELD(relay_token), false, true},
    {"relay_ca", FIELD(relay_ca), false, false},
};
const size_t RT_CONFIG_KEY_COUNT = sizeof(RT_CONFIG_KEYS) / sizeof(RT_CONFIG_KEYS[0]);

static const rt_config_key_t *lookup(const char *key)
{
    for (size_t i = 0; i < RT_CONFIG_KEY_COUNT; i++) {
        if (strcmp(RT_CONFIG_KEYS[i].key, key) == 0) {
            return &RT_CONFIG_KEYS[i];
        }
    }
    return NULL;
}

void rt_config_defaults(rt_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->model, RT_DEFAULT_MODEL);
    strcpy(cfg->voice, RT_DEFAULT_VOICE);
    strcpy(cfg->api_url, RT_DEFAULT_API_URL);
}

char *rt_config_field(rt_config_t *cfg, const char *key)
{
    const rt_config_key_t *k = lookup(key);
    return k ? (char *)cfg + k->offset : NULL;
}

bool rt_config_set(rt_config_t *cfg, const char *key, const char *value)
{
    const rt_config_key_t *k = lookup(key);
    if (k == NULL || value == NULL || strlen(value) >= k->size) {
        return false;
    }
    memcpy((char *)cfg + k->offset, value, strlen(value) + 1);
    return true;
}

static bool all_chars(const char *s, const char *allowed_extra)
{
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && strchr(allowed_extra, *s) == NULL) {
            return false;
        }
    }
    return true;
}

bool rt_config_check_value(const char *key, const char *value, char *why, size_t why_cap)
{
    size_t len = value ? strlen(value) : 0;
    if (why_cap) {
        why[0] = '\0';
    }
    if (value == NULL) {
        snprintf(why, why_cap, "%s is missing", key);
        return false;
    }
    if (strcmp(key, "wifi_ssid") == 0) {
        if (len < 1 || len > RT_SSID_MAX) {
            snprintf(why, why_cap, "wifi_ssid is %zu bytes; an SSID has 1-32 bytes", len);
            return false;
        }
    } else if (strcmp(key, "wifi_pass") == 0) {
        bool hex64 = len == 64 && strspn(value, "0123456789abcdefABCDEF") == 64;
        for (const char *p = value; *p; p++) {
            if (*p < 0x20 || *p > 0x7E) {
                snprintf(why, why_cap, "wifi_pass has non-printable characters");
                return false;
            }
        }
        if (len != 0 && !hex64 && (len < 8 || len > 63)) {
            snprintf(why, why_cap, "wifi_pass is %zu characters; WPA2 needs 8-63 (or empty for an open network)", len);
            return false;
        }
    } else if (strcmp(key, "api_key") == 0) {
        if (len < 20 || strncmp(value, "sk-", 3) != 0 || strpbrk(value, " \t\r\n") != NULL) {
            snprintf(why, why_cap, "api_key (%zu characters) does not look like an OpenAI key (sk-..., no spaces)", len);
            return false;
        }
    } else if (strcmp(key, "model") == 0) {
        if (len == 0 || len > RT_MODEL_MAX || !all_chars(value, "-._:")) {
            snprintf(why, why_cap, "model must be 1-%d characters of A-Z a-z 0-9 - . _ :", RT_MODEL_MAX);
            return false;
        }
    } else if (strcmp(key, "voice") == 0) {
        if (len == 0 || len > RT_VOICE_MAX || !all_chars(value, "-_")) {
            snprintf(why, why_cap, "voice must be 1-%d characters of A-Z a-z 0-9 - _", RT_VOICE_MAX);
            return false;
        }
    } else if (strcmp(key, "instructions") == 0) {
        if (len >= RT_INSTRUCTIONS_MAX) {
            snprintf(why, why_cap, "instructions are %zu bytes; at most %d", len, RT_INSTRUCTIONS_MAX - 1);
            return false;
        }
    } else if (strcmp(key, "api_url") == 0) {
        rt_url_t url;
        if (!rt_url_parse(value, &url) || !url.tls) {
            snprintf(why, why_cap, "api_url is not an https://host[:port]/path URL (the device verifies the API's "
                                   "certificate; plain http would send the key in the clear)");
            return false;
        }
    } else if (strcmp(key, "relay_url") == 0) {
        rt_url_t url;
        if (!rt_url_parse(value, &url) || !url.tls) {
            snprintf(why, why_cap, "relay_url is not an https://host[:port]/path URL (the device verifies the relay's "
                                   "certificate; plain http would send the token in the clear)");
            return false;
        }
    } else if (strcmp(key, "relay_token") == 0) {
        if (strncmp(value, "sk-", 3) == 0) {
            snprintf(why, why_cap, "relay_token looks like an OpenAI API key (sk-...): give the device token "
                                   "`rtflash relay enroll` made");
            return false;
        }
        if (len < 16 || len > RT_TOKEN_MAX || !all_chars(value, "-_")) {
            snprintf(why, why_cap, "relay_token (%zu characters) is not a device token (16-%d characters of A-Z a-z "
                                   "0-9 - _)", len, RT_TOKEN_MAX);
            return false;
        }
    } else if (strcmp(key, "relay_ca") == 0) {
        size_t body = strcspn(value, "=");   /* '=' only as the last one or two characters */
        if (len < 64 || len >= RT_RELAY_CA_MAX || len % 4 != 0 || !all_chars(value, "+/=") || len - body > 2 ||
            strspn(value + body, "=") != len - body) {
            snprintf(why, why_cap, "relay_ca (%zu characters) is not the base64 of a DER certificate, one line", len);
            return false;
        }
    } else {
        snprintf(why, why_cap, "%s is not a key rtflash writes", key);
        return false;
    }
    return true;
}

bool rt_config_check(const rt_config_t *cfg, bool need_wifi, char *why, size_t why_cap)
{
    for (size_t i = 0; i < RT_CONFIG_KEY_COUNT; i++) {
        const rt_config_key_t *k = &RT_CONFIG_KEYS[i];
        bool wifi = strncmp(k->key, "wifi_", 5) == 0;
        if (wifi && !need_wifi) {
            continue;
        }
        const char *value = (const char *)cfg + k->offset;
        if (value[0] == '\0') {
            if (k->required) {
                snprintf(why, why_cap, "%s is missing", k->key);
                return false;
            }
            continue;   /* optional and unset (wifi_pass: an open network) */
        }
        if (!rt_config_check_value(k->key, value, why, why_cap)) {
            return false;
        }
    }
    if (cfg->relay_url[0] != '\0' && cfg->relay_token[0] == '\0') {
        snprintf(why, why_cap, "relay_url is set but relay_token is missing");
        return false;
    }
    if (cfg->relay_token[0] != '\0' && cfg->relay_url[0] == '\0') {
        snprintf(why, why_cap, "relay_token is set but relay_url is missing");
        return false;
    }
    if (rt_config_mode(cfg) == RT_MODE_NONE) {
        snprintf(why, why_cap, "api_key is missing (and no relay_url + relay_token: relay mode needs no key)");
        return false;
    }
    return true;
}

rt_mode_t rt_config_mode(const rt_config_t *cfg)
{
    if (cfg->relay_url[0] != '\0' && cfg->relay_token[0] != '\0') {
        return RT_MODE_RELAY;
    }
    return cfg->api_key[0] != '\0' ? RT_MODE_DIRECT : RT_MODE_NONE;
}

const char *rt_mode_name(rt_mode_t mode)
{
    switch (mode) {
    case RT_MODE_RELAY: return "relay";
    case RT_MODE_DIRECT: return "direct";
    default: return "none";
    }
}

int rt_config_offer_url(const rt_config_t *cfg, char *out, size_t cap)
{
    if (rt_config_mode(cfg) != RT_MODE_RELAY) {
        return rt_calls_url(out, cap, cfg->api_url, cfg->model);
    }
    size_t n = strlen(cfg->relay_url);
    if (n >= cap) {
        return -1;
    }
    memcpy(out, cfg->relay_url, n + 1);
    return (int)n;
}

const char *rt_config_bearer(const rt_config_t *cfg)
{
    return rt_config_mode(cfg) == RT_MODE_RELAY ? cfg->relay_token : cfg->api_key;
}

uint32_t rt_config_refused_hold_ms(const rt_config_t *cfg, int status, char *line, size_t cap)
{
    if (cap) {
        line[0] = '\0';
    }
    if (rt_config_mode(cfg) != RT_MODE_RELAY || (status != 401 && status != 403)) {
        return 0;
    }
    snprintf(line, cap, "the relay refused this device's token (HTTP %d: revoked or not enrolled); "
                        "`rtflash relay enroll NAME --replace`, provision again and reset; next try in %u min",
             status, (unsigned)(RT_REFUSED_HOLD_MS / 60000u));
    return RT_REFUSED_HOLD_MS;
}

int rt_calls_url(char *out, size_t cap, const char *api_url, const char *model)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(api_url);
    if (n + 8 >= cap) {
        return -1;
    }
    memcpy(out, api_url, n);
    const char *sep = strchr(api_url, '?') ? "&model=" : "?model=";
    memcpy(out + n, sep, 7);
    n += 7;
    for (const unsigned char *p = (const unsigned char *)model; *p; p++) {
        bool plain = isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (n + (plain ? 1 : 3) >= cap) {
            return -1;
        }
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 0xF];
        }
    }
    out[n] = '\0';
    return (int)n;
}

bool rt_url_parse(const char *url, rt_url_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *rest;
    if (strncmp(url, "https://", 8) == 0) {
        out->tls = true;
        out->port = 443;
        rest = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        out->port = 80;
        rest = url + 7;
    } else {
        return false;
    }
    size_t host_len = strcspn(rest, ":/?");
    if (host_len == 0 || host_len >= sizeof(out->host)) {
        return false;
    }
    memcpy(out->host, rest, host_len);
    for (size_t i = 0; i < host_len; i++) {
        if (!isalnum((unsigned char)out->host[i]) && out->host[i] != '-' && out->host[i] != '.') {
            return false;
        }
    }
    rest += host_len;
    if (*rest == ':') {
        char *end;
        unsigned long port = strtoul(rest + 1, &end, 10);
        if (end == rest + 1 || port == 0 || port > 65535 || (*end != '\0' && *end != '/' && *end != '?')) {
            return false;
        }
        out->port = (unsigned)port;
        rest = end;
    }
    if (*rest == '\0') {
        strcpy(out->path, "/");
    } else {
        size_t len = strlen(rest);
        if (len + (*rest == '?' ? 1 : 0) >= sizeof(out->path)) {
            return false;
        }
        if (*rest == '?') {
            out->path[0] = '/';
            memcpy(out->path + 1, rest, len + 1);
        } else {
            memcpy(out->path, rest, len + 1);
        }
    }
    for (const char *p = out->path; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F) {
            return false;
        }
    }
    return true;
}
