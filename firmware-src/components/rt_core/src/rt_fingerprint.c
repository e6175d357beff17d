#include "rt_fingerprint.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const struct {
    rt_fp_alg_t alg;
    const char *name;
    size_t size;
} ALGS[] = {
    {RT_FP_SHA512, "sha-512", 64},   /* strongest first: the preference order of rt_fp_pick */
    {RT_FP_SHA384, "sha-384", 48},
    {RT_FP_SHA256, "sha-256", 32},
};

const char *rt_fp_alg_name(rt_fp_alg_t alg)
{
    for (size_t i = 0; i < sizeof(ALGS) / sizeof(ALGS[0]); i++) {
        if (ALGS[i].alg == alg) {
            return ALGS[i].name;
        }
    }
    return "?";
}

size_t rt_fp_alg_size(rt_fp_alg_t alg)
{
    for (size_t i = 0; i < sizeof(ALGS) / sizeof(ALGS[0]); i++) {
        if (ALGS[i].alg == alg) {
            return ALGS[i].size;
        }
    }
    return 0;
}

/* Hash names are case-insensitive (RFC 8122 hash-func is a token; browsers send lower case). */
static rt_fp_alg_t alg_of(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(ALGS) / sizeof(ALGS[0]); i++) {
        size_t n = strlen(ALGS[i].name);
        bool same = len == n;
        for (size_t k = 0; same && k < n; k++) {
            same = tolower((unsigned char)name[k]) == ALGS[i].name[k];
        }
        if (same) {
            return ALGS[i].alg;
        }
    }
    return RT_FP_NONE;
}

/* "AB:CD:..." with exactly `size` pairs; copied upper-case into out. */
static bool parse_value(const char *v, size_t len, size_t size, char *out, size_t cap)
{
    if (len != size * 3 - 1 || len + 1 > cap) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        bool colon = i % 3 == 2;
        if (colon ? v[i] != ':' : !isxdigit((unsigned char)v[i])) {
            return false;
        }
        out[i] = (char)toupper((unsigned char)v[i]);
    }
    out[len] = '\0';
    return true;
}

bool rt_fp_pick(const char *sdp, unsigned supported, rt_fingerprint_t *out, char *why, size_t why_cap)
{
    static const char PREFIX[] = "a=fingerprint:";
    int best_rank = -1;
    unsigned seen = 0, malformed = 0;
    memset(out, 0, sizeof(*out));
    for (const char *line = sdp ? sdp : ""; *line;) {
        size_t len = strcspn(line, "\r\n");
        if (len > sizeof(PREFIX) - 1 && strncmp(line, PREFIX, sizeof(PREFIX) - 1) == 0) {
            const char *name = line + sizeof(PREFIX) - 1;
            const char *end = line + len;
            const char *space = memchr(name, ' ', (size_t)(end - name));
            rt_fp_alg_t alg = space ? alg_of(name, (size_t)(space - name)) : RT_FP_NONE;
            seen++;
            for (int rank = 0; alg != RT_FP_NONE && rank < (int)(sizeof(ALGS) / sizeof(ALGS[0])); rank++) {
                if (ALGS[rank].alg != alg || !(supported & (unsigned)alg)) {
                    continue;
                }
                const char *v = space + 1;
                while (v < end && *v == ' ') {
                    v++;
                }
                size_t vlen = (size_t)(end - v);
                while (vlen > 0 && v[vlen - 1] == ' ') {
                    vlen--;
                }
                char value[RT_FP_TEXT_MAX];
                if (!parse_value(v, vlen, ALGS[rank].size, value, sizeof(value))) {
                    malformed++;
                } else if (best_rank < 0 || rank < best_rank) {   /* a stronger hash; first line of a hash wins */
                    best_rank = rank;
                    out->alg = alg;
                    memcpy(out->value, value, strlen(value) + 1);
                }
            }
        }
        line += len;
        line += strspn(line, "\r\n");
    }
    if (best_rank >= 0) {
        if (why_cap) {
            why[0] = '\0';
        }
        return true;
    }
    if (seen == 0) {
        snprintf(why, why_cap, "no a=fingerprint line");
    } else if (malformed) {
        snprintf(why, why_cap, "a=fingerprint value malformed (%u of %u lines)", malformed, seen);
    } else {
        snprintf(why, why_cap, "no a=fingerprint with a hash this firmware supports (of %u lines)", seen);
    }
    return false;
}

char *rt_fp_hex(const unsigned char *digest, size_t size, char *out, size_t cap)
{
    static const char HEX[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < size && n + 3 <= cap; i++) {
        if (i) {
            out[n++] = ':';
        }
        out[n++] = HEX[digest[i] >> 4];
        out[n++] = HEX[digest[i] & 15];
    }
    if (cap) {
        out[n < cap ? n : cap - 1] = '\0';
    }
    return out;
}

bool rt_fp_equal(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        if (toupper((unsigned char)*a) != toupper((unsigned char)*b)) {
            return false;
        }
    }
    return *a == *b;
}
