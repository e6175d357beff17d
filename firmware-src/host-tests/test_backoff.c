#include "rt_backoff.h"
#include "rt_test.h"

static void test_ceiling_doubles_then_caps(void)
{
    rt_backoff_t b;
    rt_backoff_init(&b, 500, 8000, 1);
    uint32_t want[] = {500, 1000, 2000, 4000, 8000, 8000, 8000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        CHECK(rt_backoff_ceiling(&b) == want[i]);
        uint32_t d = rt_backoff_next(&b);
        CHECK(d >= want[i] / 2 && d <= want[i]);
    }
}

static void test_reset_and_many_attempts(void)
{
    rt_backoff_t b;
    rt_backoff_init(&b, 1000, 60000, 42);
    for (int i = 0; i < 100; i++) {      /* no overflow after many failures */
        uint32_t d = rt_backoff_next(&b);
        CHECK(d <= 60000);
    }
    CHECK(rt_backoff_ceiling(&b) == 60000);
    rt_backoff_reset(&b);
    CHECK(rt_backoff_ceiling(&b) == 1000);
}

static void test_jitter_is_deterministic_and_spread(void)
{
    rt_backoff_t a, b, c;
    rt_backoff_init(&a, 1000, 1000, 7);
    rt_backoff_init(&b, 1000, 1000, 7);
    rt_backoff_init(&c, 1000, 1000, 8);
    uint32_t min = UINT32_MAX, max = 0, same = 0, differ = 0;
    for (int i = 0; i < 200; i++) {
        uint32_t x = rt_backoff_next(&a), y = rt_backoff_next(&b), z = rt_backoff_next(&c);
        same += x == y;
        differ += x != z;
        min = x < min ? x : min;
        max = x > max ? x : max;
    }
    CHECK(same == 200);
    CHECK(differ > 150);
    CHECK(min >= 500 && max <= 1000 && max - min > 300);
}

static void test_degenerate_settings(void)
{
    rt_backoff_t b;
    rt_backoff_init(&b, 0, 0, 0);
    CHECK(b.base_ms == 1 && b.max_ms == 1);
    CHECK(rt_backoff_next(&b) <= 1);
}

int main(void)
{
    RUN(test_ceiling_doubles_then_caps);
    RUN(test_reset_and_many_attempts);
    RUN(test_jitter_is_deterministic_and_spread);
    RUN(test_degenerate_settings);
    RT_TEST_DONE();
}
