/* Single-producer single-consumer byte ring buffer.
 *
 * Why: the I2S reader task and the Opus encoder task run at different paces; a lock-free ring
 * between them means neither ever blocks the other (a full ring drops the newest bytes and counts
 * them, an empty ring reads zero bytes). Pure C11: it builds on the host for the unit tests.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint8_t *buf;
    size_t cap;                /* bytes of storage */
    atomic_size_t head;        /* write index modulo 2*cap (producer owns) */
    atomic_size_t tail;        /* read index modulo 2*cap (consumer owns) */
    atomic_size_t dropped;     /* bytes refused because the ring was full */
} rt_ring_t;

/* Use `storage` (cap bytes, 0 < cap <= SIZE_MAX/4) as the ring. Returns false on bad arguments. */
bool rt_ring_init(rt_ring_t *ring, void *storage, size_t cap);

/* Bytes that can be read now / written now. */
size_t rt_ring_used(const rt_ring_t *ring);
size_t rt_ring_free(const rt_ring_t *ring);

/* Producer: copy up to len bytes in; returns how many fit (the rest is counted in `dropped`). */
size_t rt_ring_write(rt_ring_t *ring, const void *data, size_t len);

/* Producer: write all len bytes or nothing (for whole audio frames). */
bool rt_ring_write_all(rt_ring_t *ring, const void *data, size_t len);

/* Consumer: copy up to len bytes out; returns how many were read. */
size_t rt_ring_read(rt_ring_t *ring, void *out, size_t len);

/* Consumer: read exactly len bytes, or nothing if fewer are available. */
bool rt_ring_read_all(rt_ring_t *ring, void *out, size_t len);

/* Bytes dropped because the ring was full since init. */
size_t rt_ring_dropped(const rt_ring_t *ring);

#ifdef __cplusplus
}
#endif
