#include "rt_link.h"
#include "rt_test.h"

static void test_state_names_for_the_monitor(void)
{
    CHECK_STR(rt_peer_state_name(RT_PEER_NEW), "NEW");
    CHECK_STR(rt_peer_state_name(RT_PEER_CHECKING), "CHECKING");
    CHECK_STR(rt_peer_state_name(RT_PEER_ICE_CONNECTED), "ICE_CONNECTED");
    CHECK_STR(rt_peer_state_name(RT_PEER_CONNECTED), "CONNECTED");
    CHECK_STR(rt_peer_state_name(RT_PEER_FAILED), "FAILED");
    CHECK_STR(rt_peer_state_name(RT_PEER_DISCONNECTED), "DISCONNECTED");
    CHECK_STR(rt_peer_state_name(RT_PEER_CLOSED), "CLOSED");
    CHECK_STR(rt_peer_state_name((rt_peer_state_t)42), "UNKNOWN");
}

static void test_happy_path_then_drop_reconnects_not_reboots(void)
{
    rt_link_t link;
    uint32_t delay = 0;
    rt_link_init(&link, 3);
    CHECK(rt_link_on_state(&link, RT_PEER_CHECKING, &delay) == RT_LINK_NONE);
    CHECK(rt_link_on_state(&link, RT_PEER_ICE_CONNECTED, &delay) == RT_LINK_NONE);   /* ICE only: no media yet */
    CHECK(!link.media_up);
    CHECK(rt_link_on_state(&link, RT_PEER_CONNECTED, &delay) == RT_LINK_MEDIA_UP);
    CHECK(rt_link_on_state(&link, RT_PEER_CONNECTED, &delay) == RT_LINK_NONE);   /* once */
    CHECK(rt_link_on_channel_open(&link));
    CHECK(!rt_link_on_channel_open(&link));                                      /* greet once */
    CHECK(rt_link_on_state(&link, RT_PEER_DISCONNECTED, &delay) == RT_LINK_RECONNECT);
    CHECK(delay >= 500 && delay <= 1000);
    CHECK(rt_link_on_state(&link, RT_PEER_CLOSED, &delay) == RT_LINK_NONE);       /* already handling it */
    rt_link_restart(&link);
    CHECK(!link.greeted && !link.media_up && link.state == RT_PEER_NEW);
    CHECK(rt_link_on_channel_open(&link));                                       /* greet again */
    CHECK(link.connects == 1);
}

static void test_repeated_failures_back_off_then_success_resets(void)
{
    rt_link_t link;
    uint32_t delay = 0, last = 0;
    rt_link_init(&link, 9);
    for (int i = 0; i < 8; i++) {
        rt_link_restart(&link);
        CHECK(rt_link_on_state(&link, RT_PEER_CHECKING, &delay) == RT_LINK_NONE);
        CHECK(rt_link_on_state(&link, RT_PEER_FAILED, &delay) == RT_LINK_RECONNECT);
        last = delay;
    }
    CHECK(last >= 30000 && last <= 60000);
    CHECK(rt_link_on_signal_error(&link) <= 60000);
    rt_link_restart(&link);
    CHECK(rt_link_on_state(&link, RT_PEER_CONNECTED, &delay) == RT_LINK_MEDIA_UP);
    CHECK(rt_backoff_ceiling(&link.backoff) == 1000);
}

/* ICE up, then DTLS fails (a refused fingerprint, a peer that never answers DTLS): reconnect with the
 * back-off, growing, never resetting it (no media came up). */
static void test_dtls_failure_after_ice_backs_off(void)
{
    rt_link_t link;
    uint32_t delay = 0, prev = 0;
    rt_link_init(&link, 5);
    for (int i = 0; i < 5; i++) {
        rt_link_restart(&link);
        CHECK(rt_link_on_state(&link, RT_PEER_CHECKING, &delay) == RT_LINK_NONE);
        CHECK(rt_link_on_state(&link, RT_PEER_ICE_CONNECTED, &delay) == RT_LINK_NONE);
        CHECK(rt_link_on_state(&link, RT_PEER_FAILED, &delay) == RT_LINK_RECONNECT);
        CHECK(delay >= (500u << i) && delay <= (1000u << i));
        CHECK(delay > prev / 2);
        prev = delay;
    }
    CHECK(link.connects == 0);
}

int main(void)
{
    RUN(test_state_names_for_the_monitor);
    RUN(test_happy_path_then_drop_reconnects_not_reboots);
    RUN(test_repeated_failures_back_off_then_success_resets);
    RUN(test_dtls_failure_after_ice_backs_off);
    RT_TEST_DONE();
}
