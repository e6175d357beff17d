#include "rt_link.h"
#include "rt_test.h"

static void test_state_names_for_the_monitor(void)
{
    CHECK_STR(rt_peer_state_name(RT_PEER_NEW), "NEW");
    CHECK_STR(rt_peer_state_name(RT_PEER_CHECKING), "CHECKING");
    CHECK_STR(rt_peer_state_name(RT_PEER_CONNECTED), "CONNECTED");
    CHECK_STR(rt_peer_state_name(RT_PEER_COMPLETED), "COMPLETED");
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
    CHECK(rt_link_on_state(&link, RT_PEER_CONNECTED, &delay) == RT_LINK_NONE);
    CHECK(rt_link_on_state(&link, RT_PEER_COMPLETED, &delay) == RT_LINK_MEDIA_UP);
    CHECK(rt_link_on_state(&link, RT_PEER_COMPLETED, &delay) == RT_LINK_NONE);   /* once */
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
    CHECK(rt_link_on_state(&link, RT_PEER_COMPLETED, &delay) == RT_LINK_MEDIA_UP);
    CHECK(rt_backoff_ceiling(&link.backoff) == 1000);
}

int main(void)
{
    RUN(test_state_names_for_the_monitor);
    RUN(test_happy_path_then_drop_reconnects_not_reboots);
    RUN(test_repeated_failures_back_off_then_success_resets);
    RT_TEST_DONE();
}
