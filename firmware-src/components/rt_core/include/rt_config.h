/* Credentials and session settings as the firmware reads them (NVS namespace "rtflash" on the
 * device, the environment on the linux target), and their validation.
 *
 * Why here: the same rules rtflash applies before provisioning (orchestrator/rtflash/credentials.py)
 * are applied again on the device, so a corrupt or hand-written NVS partition gives one clear log
 * line naming the key, never a crash or a confusing TLS error. Values are never logged; only
 * their presence and length.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RT_NVS_NAMESPACE "rtflash"
#define RT_DEFAULT_API_URL "https://api.openai.com/v1/realtime/calls"
#define RT_DEFAULT_MODEL "gpt-realtime"
#define RT_DEFAULT_VOICE "alloy"

#define RT_SSID_MAX 32
#define RT_PASS_MAX 64
#define RT_KEY_MAX 256
#define RT_MODEL_MAX 64
#define RT_VOICE_MAX 32
#define RT_INSTRUCTIONS_MAX 3968  /* NVS string limit used by rtflash (3967 bytes + NUL) */
#define RT_URL_MAX 256
#define RT_TOKEN_MAX 64           /* relay device token: rtd_ + 43 base64url characters today */
#define RT_RELAY_CA_MAX 3968      /* base64 of the relay CA's DER, one NVS string (3967 bytes + NUL) */
#define RT_REFUSED_HOLD_MS (30u * 60u * 1000u)  /* next try after the relay refused the token */

typedef struct {
    char wifi_ssid[RT_SSID_MAX + 1];
    char wifi_pass[RT_PASS_MAX + 1];
    char api_key[RT_KEY_MAX + 1];
    char model[RT_MODEL_MAX + 1];
    char voice[RT_VOICE_MAX + 1];
    char instructions[RT_INSTRUCTIONS_MAX];
    char api_url[RT_URL_MAX + 1];
    /* relay mode (`rtflash provision --relay`): no api_key on the device; the offer goes to relay_url
     * with relay_token as Bearer, TLS verified against relay_ca (when set) or the certificate bundle */
    char relay_url[RT_URL_MAX + 1];
    char relay_token[RT_TOKEN_MAX + 1];
    char relay_ca[RT_RELAY_CA_MAX];
} rt_config_t;

/* How the device sets up its calls. Relay wins when both are provisioned (the safer of the two). */
typedef enum {
    RT_MODE_NONE = 0,   /* neither: cannot start */
    RT_MODE_DIRECT,     /* api_key on the device, offer straight to api_url */
    RT_MODE_RELAY,      /* relay_url + relay_token, no key needed */
} rt_mode_t;

/* One NVS key the firmware reads: its name, where it goes, whether boot needs it. */
typedef struct {
    const char *key;
    size_t offset;
    size_t size;
    bool required;       /* required on hardware (Wi-Fi ones are not needed on linux) */
    bool secret;
} rt_config_key_t;

/* The keys of namespace "rtflash", in the order rtflash writes them. */
extern const rt_config_key_t RT_CONFIG_KEYS[];
extern const size_t RT_CONFIG_KEY_COUNT;

/* Defaults for the optional keys (model, voice, api_url); credentials empty. */
void rt_config_defaults(rt_config_t *cfg);

/* Set a key from a string (as read from NVS or the environment). Returns false for an unknown
 * key or a value too long for its field (the field is then left unchanged). */
bool rt_config_set(rt_config_t *cfg, const char *key, const char *value);

/* Pointer to a key's field (NULL for unknown keys). */
char *rt_config_field(rt_config_t *cfg, const char *key);

/* Validate one key's value; on failure writes a reason without the value into why. */
bool rt_config_check_value(const char *key, const char *value, char *why, size_t why_cap);

/* Validate everything needed to start: wifi (when need_wifi), an api key OR a relay (url + token),
 * model, voice, urls. On failure returns false with the first problem, naming the key, in why. */
bool rt_config_check(const rt_config_t *cfg, bool need_wifi, char *why, size_t why_cap);

/* RT_MODE_RELAY when relay_url and relay_token are set, else RT_MODE_DIRECT when api_key is set. */
rt_mode_t rt_config_mode(const rt_config_t *cfg);

/* "relay", "direct" or "none". */
const char *rt_mode_name(rt_mode_t mode);

/* Where the SDP offer goes: relay mode posts to relay_url as provisioned (the relay sets the
 * session; it ignores a query), direct mode to `<api_url>?model=<model>`. Returns length or -1. */
int rt_config_offer_url(const rt_config_t *cfg, char *out, size_t cap);

/* The Bearer credential of the mode: relay_token in relay mode, else api_key ("" in neither). */
const char *rt_config_bearer(const rt_config_t *cfg);

/* After signalling answered HTTP `status`: when retrying soon cannot help (relay mode, 401/403:
 * the token is revoked or unknown), returns the hold before the next try (RT_REFUSED_HOLD_MS) and a
 * one-line reason in `line` (no token); otherwise 0 and the caller's normal back-off applies. */
uint32_t rt_config_refused_hold_ms(const rt_config_t *cfg, int status, char *line, size_t cap);

/* Build `<api_url>?model=<model>` (model percent-encoded; '&' if api_url has a query already). */
int rt_calls_url(char *out, size_t cap, const char *api_url, const char *model);

/* Split an http(s) URL into parts. host and path are NUL-terminated copies; port defaults to 80
 * or 443; path includes the query and defaults to "/". */
typedef struct {
    bool tls;
    char host[128];
    unsigned port;
    char path[RT_URL_MAX + 1];
} rt_url_t;

bool rt_url_parse(const char *url, rt_url_t *out);

#ifdef __cplusplus
}
#endif
