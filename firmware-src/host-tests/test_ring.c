#include <pthread.h>
#include <stdint.h>

#include "rt_ring.h"
#include "rt_test.h"

static void test_init_rejects_bad_args(void)
{
    rt_ring_t r;
    uint8_t s[4];
    CHECK(!rt_ring_init(NULL, s, 4));
    CHECK(!rt_ring_init(&r, NULL, 4));
    CHECK(!rt_ring_init(&r, s, 0));
    CHECK(rt_ring_init(&r, s, 4));
    CHECK(rt_ring_used(&r) == 0 && rt_ring_free(&r) == 4);
}

static void test_wraps_and_keeps_order(void)
{
    rt_ring_t r;
    uint8_t s[7], out[16];
    rt_ring_init(&r, s, sizeof(s));
    uint8_t next_in = 0, next_out = 0;
    for (int round = 0; round < 1000; round++) {  /* many passes over 2*cap: index wrap-around */
        uint8_t chunk[5];
        size_t k = (size_t)(round % 5) + 1;
        for (size_t i = 0; i < k; i++) {
            chunk[i] = (uint8_t)(next_in + i);
        }
        size_t wrote = rt_ring_write(&r, chunk, k);
        next_in = (uint8_t)(next_in + wrote);
        size_t got = rt_ring_read(&r, out, (size_t)(round % 4) + 1);
        for (size_t i = 0; i < got; i++) {
            CHECK(out[i] == next_out);
            next_out++;
        }
    }
    size_t rest = rt_ring_read(&r, out, sizeof(out));
    for (size_t i = 0; i < rest; i++) {
        CHECK(out[i] == next_out++);
    }
    CHECK(next_in == next_out);
    CHECK(rt_ring_used(&r) == 0);
}

static void test_full_drops_and_counts(void)
{
    rt_ring_t r;
    uint8_t s[8], out[8];
    rt_ring_init(&r, s, sizeof(s));
    CHECK(rt_ring_write(&r, "abcdef", 6) == 6);
    CHECK(rt_ring_write(&r, "ghij", 4) == 2);   /* only 2 fit */
    CHECK(rt_ring_dropped(&r) == 2);
    CHECK(rt_ring_free(&r) == 0);
    CHECK(!rt_ring_write_all(&r, "x", 1));
    CHECK(rt_ring_dropped(&r) == 3);
    CHECK(rt_ring_read(&r, out, 8) == 8);
    CHECK(memcmp(out, "abcdefgh", 8) == 0);
}

static void test_all_or_nothing(void)
{
    rt_ring_t r;
    uint8_t s[10], out[10];
    rt_ring_init(&r, s, sizeof(s));
    CHECK(rt_ring_write_all(&r, "12345678", 8));
    CHECK(!rt_ring_write_all(&r, "abc", 3));   /* 2 free: refused whole */
    CHECK(rt_ring_used(&r) == 8);
    CHECK(!rt_ring_read_all(&r, out, 9));
    CHECK(rt_ring_read_all(&r, out, 8));
    CHECK(memcmp(out, "12345678", 8) == 0);
    CHECK(rt_ring_read(&r, out, 1) == 0);
}

#define STREAM_BYTES (4u * 1024u * 1024u)
static rt_ring_t shared;
static uint8_t shared_storage[1000];  /* not a power of two on purpose */

static void *producer(void *arg)
{
    (void)arg;
    uint32_t sent = 0;
    uint8_t chunk[97];
    while (sent < STREAM_BYTES) {
        size_t k = sizeof(chunk);
        if (STREAM_BYTES - sent < k) {
            k = STREAM_BYTES - sent;
        }
        for (size_t i = 0; i < k; i++) {
            chunk[i] = (uint8_t)((sent + i) * 31u);
        }
        size_t done = 0;
        while (done < k) {
            size_t n = rt_ring_free(&shared);
            if (n == 0) {
                continue;
            }
            done += rt_ring_write(&shared, chunk + done, k - done < n ? k - done : n);
        }
        sent += (uint32_t)k;
    }
    return NULL;
}

static void test_threads_spsc_stream(void)
{
    pthread_t t;
    rt_ring_init(&shared, shared_storage, sizeof(shared_storage));
    CHECK(pthread_create(&t, NULL, producer, NULL) == 0);
    uint32_t got = 0, bad = 0;
    uint8_t buf[61];
    while (got < STREAM_BYTES) {
        size_t n = rt_ring_read(&shared, buf, sizeof(buf));
        for (size_t i = 0; i < n; i++) {
            bad += buf[i] != (uint8_t)((got + i) * 31u);
        }
        got += (uint32_t)n;
    }
    pthread_join(t, NULL);
    CHECK(bad == 0);
    CHECK(got == STREAM_BYTES);
    CHECK(rt_ring_dropped(&shared) == 0);
}

int main(void)
{
    RUN(test_init_rejects_bad_args);
    RUN(test_wraps_and_keeps_order);
    RUN(test_full_drops_and_counts);
    RUN(test_all_or_nothing);
    RUN(test_threads_spsc_stream);
    RT_TEST_DONE();
}
