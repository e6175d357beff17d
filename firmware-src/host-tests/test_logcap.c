#include "rt_logcap.h"
#include "rt_test.h"

/* A failure loop logging every millisecond for 60 s: at most burst + 5 a second get out. */
static void test_a_log_loop_is_capped(void)
{
    rt_logcap_t cap;
    rt_logcap_init(&cap, 5, 20);
    unsigned printed = 0, per_second[60] = {0};
    for (uint32_t t = 0; t < 60000; t++) {
        if (rt_logcap_take(&cap, 1000000u + t, NULL)) {
            printed++;
            per_second[t / 1000]++;
        }
    }
    CHECK(printed <= 20 + 5 * 60);
    CHECK(printed >= 5 * 60);
    CHECK(per_second[0] <= 25);
    for (int s = 1; s < 60; s++) {
        CHECK(per_second[s] <= 6);   /* 5 a second; a token's fraction may round into a neighbour second */
    }
}

static void test_dropped_lines_are_counted_on_the_next(void)
{
    rt_logcap_t cap;
    uint32_t dropped = 99;
    rt_logcap_init(&cap, 5, 2);
    CHECK(rt_logcap_take(&cap, 0, &dropped) && dropped == 0);
    CHECK(rt_logcap_take(&cap, 0, &dropped) && dropped == 0);
    CHECK(!rt_logcap_take(&cap, 1, &dropped));
    CHECK(!rt_logcap_take(&cap, 2, &dropped));
    CHECK(!rt_logcap_take(&cap, 3, &dropped));
    CHECK(rt_logcap_take(&cap, 200, &dropped) && dropped == 3);   /* one token back after 200 ms */
    CHECK(!rt_logcap_take(&cap, 201, &dropped));
    /* quiet for an hour: the bucket refills to its burst, no more */
    CHECK(rt_logcap_take(&cap, 3600000u, &dropped) && dropped == 1);
    CHECK(rt_logcap_take(&cap, 3600000u, &dropped) && dropped == 0);
    CHECK(!rt_logcap_take(&cap, 3600000u, &dropped));
}

static void test_clock_wrap(void)
{
    rt_logcap_t cap;
    rt_logcap_init(&cap, 5, 1);
    CHECK(rt_logcap_take(&cap, 0xFFFFFF00u, NULL));
    CHECK(!rt_logcap_take(&cap, 0xFFFFFF10u, NULL));
    CHECK(rt_logcap_take(&cap, 0x00000100u, NULL));   /* 512 ms later, across the wrap */
}

int main(void)
{
    RUN(test_a_log_loop_is_capped);
    RUN(test_dropped_lines_are_counted_on_the_next);
    RUN(test_clock_wrap);
    RT_TEST_DONE();
}
