/* The platform's CSPRNG for libpeer's ICE ufrag/pwd and SDP session id (patch_random.cmake rewrites
 * libpeer's utils.c and sdp.c, in the build dir's copy, to call these). Upstream seeds rand() with
 * srand(time(NULL)): two devices booted in the same second share their ICE credentials, and the SDP
 * o= line carries a constant session id.
 * Device: esp_fill_random (components/esp_hw_support/include/esp_random.h; true random once the
 * RF subsystem or the bootloader's entropy source is on, as with Wi-Fi up before any offer).
 * Linux target: getrandom(2) (<sys/random.h>, glibc 2.25+), retried on EINTR and short reads. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sdkconfig.h"

#if CONFIG_IDF_TARGET_LINUX
#include <errno.h>
#include <sys/random.h>
#else
#include "esp_random.h"
#endif

void rt_peer_random_bytes(void *buf, size_t len);
unsigned rt_peer_random_below(unsigned n);
const char *rt_peer_session_id(void);

void rt_peer_random_bytes(void *buf, size_t len)
{
#if CONFIG_IDF_TARGET_LINUX
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t got = getrandom(p, len, 0);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* no randomness: refuse to make guessable credentials */
            fprintf(stderr, "rtflash: getrandom failed (errno %d): cannot create ICE credentials\n", errno);
            abort();
        }
        p += got;
        len -= (size_t)got;
    }
#else
    esp_fill_random(buf, len);
#endif
}

/* Uniform in [0, n) for 1 <= n <= 256: bytes at or above the largest multiple of n are drawn again
 * (upstream's rand() % n is biased). */
unsigned rt_peer_random_below(unsigned n)
{
    unsigned limit = 256u - 256u % n;
    for (;;) {
        unsigned char b;
        rt_peer_random_bytes(&b, 1);
        if (b < limit) {
            return b % n;
        }
    }
}

/* A fresh SDP session id (RFC 3264 5: numeric, < 2^63; JSEP 5.2.1: random 64-bit value with the top
 * bit clear), in decimal, built by hand: newlib-nano's printf has no %llu. One per offer. */
const char *rt_peer_session_id(void)
{
    static char text[21];
    uint64_t id = 0;
    rt_peer_random_bytes(&id, sizeof(id));
    id &= UINT64_MAX >> 1;
    if (id == 0) {
        id = 1;
    }
    char digits[21];
    int n = 0;
    while (id > 0) {
        digits[n++] = (char)('0' + (int)(id % 10));
        id /= 10;
    }
    for (int i = 0; i < n; i++) {
        text[i] = digits[n - 1 - i];
    }
    text[n] = '\0';
    return text;
}
