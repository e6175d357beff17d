#include "rt_config.h"
#include "rt_test.h"

static rt_config_t good(void)
{
    rt_config_t c;
    rt_config_defaults(&c);
    CHECK(rt_config_set(&c, "wifi_ssid", "HomeNet"));
    CHECK(rt_config_set(&c, "wifi_pass", "correct horse"));
    CHECK(rt_config_set(&c, "api_key", "sk-" "proj-0123456789abcdefXYZ"));
    return c;
}

static void test_keys_match_rtflash_nvs(void)
{
    /* orchestrator/rtflash/nvs.py writes exactly these keys into namespace "rtflash" */
    const char *want[] = {"wifi_ssid", "wifi_pass", "api_key", "model", "voice", "instructions", "api_url",
                          "relay_url", "relay_token", "relay_ca"};   /* nvs.py RELAY_KEYS */
    CHECK(RT_CONFIG_KEY_COUNT == 10);
    for (size_t i = 0; i < RT_CONFIG_KEY_COUNT; i++) {
        CHECK_STR(RT_CONFIG_KEYS[i].key, want[i]);
        CHECK(strlen(RT_CONFIG_KEYS[i].key) <= 15);   /* NVS key limit */
    }
    CHECK_STR(RT_NVS_NAMESPACE, "rtflash");
}

static void test_defaults_and_set(void)
{
    rt_config_t c;
    rt_config_defaults(&c);
    CHECK_STR(c.model, "gpt-realtime");
    CHECK_STR(c.voice, "alloy");
    CHECK_STR(c.api_url, "https://api.openai.com/v1/realtime/calls");
    CHECK(!rt_config_set(&c, "nope", "x"));
    char too_long[40];
    memset(too_long, 'a', 39);
    too_long[39] = '\0';
    CHECK(!rt_config_set(&c, "wifi_ssid", too_long));
    CHECK_STR(c.wifi_ssid, "");
    CHECK(rt_config_field(&c, "voice") == c.voice);
}

static void test_full_check(void)
{
    char why[160];
    rt_config_t c = good();
    CHECK(rt_config_check(&c, true, why, sizeof(why)));
    rt_config_t no_key = good();
    no_key.api_key[0] = '\0';
    CHECK(!rt_config_check(&no_key, true, why, sizeof(why)));
    CHECK(strncmp(why, "api_key is missing", 18) == 0);
    rt_config_t no_wifi = good();
    no_wifi.wifi_ssid[0] = '\0';
    CHECK(!rt_config_check(&no_wifi, true, why, sizeof(why)));
    CHECK_STR(why, "wifi_ssid is missing");
    CHECK(rt_config_check(&no_wifi, false, why, sizeof(why)));   /* the linux target needs no Wi-Fi */
}

static void test_value_rules_never_echo_secrets(void)
{
    char why[160];
    CHECK(rt_config_check_value("wifi_pass", "", why, sizeof(why)));            /* open network */
    CHECK(!rt_config_check_value("wifi_pass", "short", why, sizeof(why)));
    CHECK(strstr(why, "short") == NULL && strstr(why, "5 characters") != NULL);
    CHECK(rt_config_check_value("wifi_pass", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", why,
                                sizeof(why)));                                   /* 64-hex PSK */
    CHECK(!rt_config_check_value("wifi_pass", "bad\x01password", why, sizeof(why)));
    CHECK(!rt_config_check_value("api_key", "sk-with space 0123456789", why, sizeof(why)));
    CHECK(strstr(why, "sk-with") == NULL);
    CHECK(!rt_config_check_value("api_key", "pk-0123456789012345678901", why, sizeof(why)));
    CHECK(!rt_config_check_value("model", "gpt realtime", why, sizeof(why)));
    CHECK(rt_config_check_value("model", "gpt-realtime-2025-08-28", why, sizeof(why)));
    CHECK(!rt_config_check_value("voice", "al\"loy", why, sizeof(why)));
    CHECK(!rt_config_check_value("api_url", "ftp://x/y", why, sizeof(why)));
    CHECK(rt_config_check_value("api_url", "https://127.0.0.1:8080/v1/realtime/calls", why, sizeof(why)));
    CHECK(!rt_config_check_value("api_url", "http://127.0.0.1:8080/v1/realtime/calls", why, sizeof(why)));
    CHECK(strstr(why, "https://") != NULL);
    CHECK(!rt_config_check_value("wifi_ssid", "", why, sizeof(why)));
    CHECK(!rt_config_check_value("other", "x", why, sizeof(why)));
}

#define TOKEN "rtd_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde"
#define CA_B64 "MIIBdzCCAR2gAwIBAgIUQ2FuYXJ5Q0FDYW5hcnlDQUNhbmFyeUNBMAoGCCqGSM49BAMCMBExDzANBgNVBAMMBnJ0LWNh"

static rt_config_t relay(void)
{
    rt_config_t c = good();
    c.api_key[0] = '\0';
    CHECK(rt_config_set(&c, "relay_url", "https://relay.lan:8443/v1/realtime/calls"));
    CHECK(rt_config_set(&c, "relay_token", TOKEN));
    return c;
}

static void test_mode_choice(void)
{
    char why[160];
    rt_config_t direct = good();
    CHECK(rt_config_mode(&direct) == RT_MODE_DIRECT);
    CHECK_STR(rt_mode_name(RT_MODE_DIRECT), "direct");
    rt_config_t r = relay();
    CHECK(rt_config_mode(&r) == RT_MODE_RELAY);
    CHECK_STR(rt_mode_name(rt_config_mode(&r)), "relay");
    CHECK(rt_config_check(&r, true, why, sizeof(why)));          /* relay mode needs no key */
    CHECK_STR(rt_config_bearer(&r), TOKEN);
    rt_config_t both = relay();                                  /* both provisioned: relay wins */
    CHECK(rt_config_set(&both, "api_key", "sk-" "proj-0123456789abcdefXYZ"));
    CHECK(rt_config_mode(&both) == RT_MODE_RELAY);
    CHECK_STR(rt_config_bearer(&both), TOKEN);
    rt_config_t none;
    rt_config_defaults(&none);
    CHECK(rt_config_mode(&none) == RT_MODE_NONE);
    CHECK_STR(rt_config_bearer(&none), "");
    CHECK(!rt_config_check(&none, false, why, sizeof(why)));
    CHECK(strstr(why, "api_key is missing") != NULL && strstr(why, "relay_url + relay_token") != NULL);
    rt_config_t half = relay();                                  /* a URL without its token is no relay */
    half.relay_token[0] = '\0';
    CHECK(rt_config_mode(&half) == RT_MODE_NONE);
    CHECK(!rt_config_check(&half, true, why, sizeof(why)));
    CHECK_STR(why, "relay_url is set but relay_token is missing");
    rt_config_t half2 = relay();
    half2.relay_url[0] = '\0';
    CHECK(!rt_config_check(&half2, true, why, sizeof(why)));
    CHECK_STR(why, "relay_token is set but relay_url is missing");
    rt_config_t with_ca = relay();
    CHECK(rt_config_set(&with_ca, "relay_ca", CA_B64));
    CHECK(rt_config_check(&with_ca, true, why, sizeof(why)));
}

static void test_relay_values(void)
{
    char why[160];
    CHECK(!rt_config_check_value("relay_url", "http://relay.lan:8080/v1/realtime/calls", why, sizeof(why)));
    CHECK(strstr(why, "https://") != NULL);                      /* the token never travels in the clear */
    CHECK(!rt_config_check_value("relay_url", "relay.lan/v1", why, sizeof(why)));
    CHECK(rt_config_check_value("relay_url", "https://127.0.0.1:8443/v1/realtime/calls", why, sizeof(why)));
    CHECK(!rt_config_check_value("relay_token", "sk-" "proj-0123456789abcdefXYZ", why, sizeof(why)));
    CHECK(strstr(why, "looks like an OpenAI API key") != NULL && strstr(why, "0123456789") == NULL);
    CHECK(!rt_config_check_value("relay_token", "rtd_short", why, sizeof(why)));
    CHECK(!rt_config_check_value("relay_token", "rtd_AbCdEfGhIjKl MnOpQrStUvWxYz0123456789", why, sizeof(why)));
    CHECK(strstr(why, "MnOp") == NULL);                          /* never echoes the token */
    CHECK(rt_config_check_value("relay_token", TOKEN, why, sizeof(why)));
    CHECK(rt_config_check_value("relay_ca", CA_B64, why, sizeof(why)));
    CHECK(rt_config_check_value("relay_ca", CA_B64 "AA==", why, sizeof(why)));
    CHECK(!rt_config_check_value("relay_ca", CA_B64 "A", why, sizeof(why)));        /* not a multiple of 4 */
    CHECK(!rt_config_check_value("relay_ca", CA_B64 "A=AA", why, sizeof(why)));     /* padding inside */
    CHECK(!rt_config_check_value("relay_ca", "-----BEGIN CERTIFICATE-----", why, sizeof(why)));
    CHECK(!rt_config_check_value("relay_ca", "AAAA", why, sizeof(why)));            /* too short for a cert */
}

static void test_offer_url(void)
{
    char url[RT_URL_MAX + 96];
    rt_config_t direct = good();
    CHECK(rt_config_offer_url(&direct, url, sizeof(url)) > 0);
    CHECK_STR(url, "https://api.openai.com/v1/realtime/calls?model=gpt-realtime");
    rt_config_t r = relay();                                     /* the relay sets the session: no ?model= */
    CHECK(rt_config_set(&r, "model", "gpt-realtime-mini"));
    CHECK(rt_config_offer_url(&r, url, sizeof(url)) == (int)strlen("https://relay.lan:8443/v1/realtime/calls"));
    CHECK_STR(url, "https://relay.lan:8443/v1/realtime/calls");
    CHECK(rt_config_offer_url(&r, url, 10) == -1);
}

static void test_refused_hold(void)
{
    char line[200];
    rt_config_t r = relay();
    CHECK(rt_config_refused_hold_ms(&r, 401, line, sizeof(line)) == RT_REFUSED_HOLD_MS);
    CHECK(RT_REFUSED_HOLD_MS >= 10u * 60u * 1000u);              /* long: retrying cannot help */
    CHECK(strstr(line, "refused this device's token") != NULL && strstr(line, "rtflash relay enroll") != NULL);
    CHECK(strstr(line, "rtd_") == NULL);
    CHECK(rt_config_refused_hold_ms(&r, 403, line, sizeof(line)) == RT_REFUSED_HOLD_MS);
    CHECK(rt_config_refused_hold_ms(&r, 429, line, sizeof(line)) == 0);   /* rate limit: normal back-off */
    CHECK_STR(line, "");
    CHECK(rt_config_refused_hold_ms(&r, 502, line, sizeof(line)) == 0);
    rt_config_t direct = good();                                 /* direct mode keeps its own back-off */
    CHECK(rt_config_refused_hold_ms(&direct, 401, line, sizeof(line)) == 0);
}

static void test_calls_url(void)
{
    char url[256];
    CHECK(rt_calls_url(url, sizeof(url), RT_DEFAULT_API_URL, "gpt-realtime") > 0);
    CHECK_STR(url, "https://api.openai.com/v1/realtime/calls?model=gpt-realtime");
    rt_calls_url(url, sizeof(url), "http://127.0.0.1:9/calls?x=1", "a b/c");
    CHECK_STR(url, "http://127.0.0.1:9/calls?x=1&model=a%20b%2Fc");
    CHECK(rt_calls_url(url, 20, RT_DEFAULT_API_URL, "m") == -1);
}

static void test_url_parse(void)
{
    rt_url_t u;
    CHECK(rt_url_parse("https://api.openai.com/v1/realtime/calls?model=m", &u));
    CHECK(u.tls && u.port == 443);
    CHECK_STR(u.host, "api.openai.com");
    CHECK_STR(u.path, "/v1/realtime/calls?model=m");
    CHECK(rt_url_parse("http://127.0.0.1:8123", &u));
    CHECK(!u.tls && u.port == 8123);
    CHECK_STR(u.path, "/");
    CHECK(rt_url_parse("http://h?q=1", &u));
    CHECK_STR(u.path, "/?q=1");
    CHECK(!rt_url_parse("http://:80/", &u));
    CHECK(!rt_url_parse("http://h:0/", &u));
    CHECK(!rt_url_parse("http://h:99999/", &u));
    CHECK(!rt_url_parse("http://h/a b", &u));
    CHECK(!rt_url_parse("http://bad_host/", &u));
    CHECK(!rt_url_parse("api.openai.com/v1", &u));
}

int main(void)
{
    RUN(test_keys_match_rtflash_nvs);
    RUN(test_defaults_and_set);
    RUN(test_full_check);
    RUN(test_value_rules_never_echo_secrets);
    RUN(test_mode_choice);
    RUN(test_relay_values);
    RUN(test_offer_url);
    RUN(test_refused_hold);
    RUN(test_calls_url);
    RUN(test_url_parse);
    RT_TEST_DONE();
}
