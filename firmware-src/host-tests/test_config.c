#include "rt_config.h"
#include "rt_test.h"

static rt_config_t good(void)
{
    rt_config_t c;
    rt_config_defaults(&c);
    CHECK(rt_config_set(&c, "wifi_ssid", "HomeNet"));
    CHECK(rt_config_set(&c, "wifi_pass", "correct horse"));
    CHECK(rt_config_set(&c, "api_key", "sk-proj-0123456789abcdefXYZ"));
    return c;
}

static void test_keys_match_rtflash_nvs(void)
{
    /* orchestrator/rtflash/nvs.py writes exactly these keys into namespace "rtflash" */
    const char *want[] = {"wifi_ssid", "wifi_pass", "api_key", "model", "voice", "instructions", "api_url"};
    CHECK(RT_CONFIG_KEY_COUNT == 7);
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
    CHECK_STR(why, "api_key is missing");
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
    CHECK(rt_config_check_value("api_url", "http://127.0.0.1:8080/v1/realtime/calls", why, sizeof(why)));
    CHECK(!rt_config_check_value("wifi_ssid", "", why, sizeof(why)));
    CHECK(!rt_config_check_value("other", "x", why, sizeof(why)));
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
    RUN(test_calls_url);
    RUN(test_url_parse);
    RT_TEST_DONE();
}
