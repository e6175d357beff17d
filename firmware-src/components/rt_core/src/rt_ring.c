/* SPSC ring: head and tail run modulo 2*cap (not modulo 2^N), so "full" and "empty" differ and a
 * device that streams for days never hits a size_t wrap with a non-power-of-two capacity. The
 * producer publishes head with release after copying; the consumer acquires it before reading. */
#include "rt_ring.h"

#include <string.h>

bool rt_ring_init(rt_ring_t *ring, void *storage, size_t cap)
{
    if (ring == NULL || storage == NULL || cap == 0 || cap > SIZE_MAX / 4) {
        return false;
    }
    ring->buf = storage;
    ring->cap = cap;
    atomic_init(&ring->head, 0);
    atomic_init(&ring->tail, 0);
    atomic_init(&ring->dropped, 0);
    return true;
}

static size_t distance(const rt_ring_t *ring, size_t head, size_t tail)
{
    return head >= tail ? head - tail : head + 2 * ring->cap - tail;
}

static size_t advance(const rt_ring_t *ring, size_t index, size_t n)
{
    index += n;
    return index >= 2 * ring->cap ? index - 2 * ring->cap : index;
}

size_t rt_ring_used(const rt_ring_t *ring)
{
    size_t head = atomic_load_explicit(&((rt_ring_t *)ring)->head, memory_order_acquire);
    size_t tail = atomic_load_explicit(&((rt_ring_t *)ring)->tail, memory_order_acquire);
    return distance(ring, head, tail);
}

size_t rt_ring_free(const rt_ring_t *ring)
{
    return ring->cap - rt_ring_used(ring);
}

static void copy_in(rt_ring_t *ring, size_t at, const uint8_t *src, size_t len)
{
    size_t pos = at % ring->cap;
    size_t first = ring->cap - pos < len ? ring->cap - pos : len;
    memcpy(ring->buf + pos, src, first);
    memcpy(ring->buf, src + first, len - first);
}

static void copy_out(const rt_ring_t *ring, size_t at, uint8_t *dst, size_t len)
{
    size_t pos = at % ring->cap;
    size_t first = ring->cap - pos < len ? ring->cap - pos : len;
    memcpy(dst, ring->buf + pos, first);
    memcpy(dst + first, ring->buf, len - first);
}

size_t rt_ring_write(rt_ring_t *ring, const void *data, size_t len)
{
    size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    size_t space = ring->cap - distance(ring, head, tail);
    size_t n = len < space ? len : space;
    if (n > 0) {
        copy_in(ring, head, data, n);
        atomic_store_explicit(&ring->head, advance(ring, head, n), memory_order_release);
    }
    if (n < len) {
        atomic_fetch_add_explicit(&ring->dropped, len - n, memory_order_relaxed);
    }
    return n;
}

bool rt_ring_write_all(rt_ring_t *ring, const void *data, size_t len)
{
    if (rt_ring_free(ring) < len) {
        atomic_fetch_add_explicit(&ring->dropped, len, memory_order_relaxed);
        return false;
    }
    return rt_ring_write(ring, data, len) == len;
}

size_t rt_ring_read(rt_ring_t *ring, void *out, size_t len)
{
    size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    size_t avail = distance(ring, head, tail);
    size_t n = len < avail ? len : avail;
    if (n > 0) {
        copy_out(ring, tail, out, n);
        atomic_store_explicit(&ring->tail, advance(ring, tail, n), memory_order_release);
    }
    return n;
}

bool rt_ring_read_all(rt_ring_t *ring, void *out, size_t len)
{
    if (rt_ring_used(ring) < len) {
        return false;
    }
    return rt_ring_read(ring, out, len) == len;
}

size_t rt_ring_dropped(const rt_ring_t *ring)
{
    return atomic_load_explicit(&((rt_ring_t *)ring)->dropped, memory_order_relaxed);
}
