#include "rt_sdp.h"

#include <stdio.h>
#include <string.h>

static bool line_has_prefix(const char *line, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && strncmp(line, prefix, n) == 0;
}

static bool contains(const char *line, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (strncmp(line + i, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

unsigned rt_sdp_features(const char *sdp)
{
    unsigned features = 0;
    bool ufrag = false, pwd = false;
    if (sdp == NULL || strncmp(sdp, "v=0", 3) != 0) {
        return 0;
    }
    for (const char *line = sdp; *line;) {
        size_t len = strcspn(line, "\r\n");
        if (line_has_prefix(line, len, "m=audio ")) {
            features |= RT_SDP_HAS_AUDIO;
        } else if (line_has_prefix(line, len, "m=application ")) {
            features |= RT_SDP_HAS_DATA;
        } else if (line_has_prefix(line, len, "a=rtpmap:") && contains(line, len, " opus/48000/2")) {
            features |= RT_SDP_HAS_OPUS;
        } else if (line_has_prefix(line, len, "a=ice-ufrag:")) {
            ufrag = true;
        } else if (line_has_prefix(line, len, "a=ice-pwd:")) {
            pwd = true;
        } else if (line_has_prefix(line, len, "a=fingerprint:")) {
            features |= RT_SDP_HAS_FINGERPRINT;
        }
        line += len;
        line += strspn(line, "\r\n");
    }
    if (ufrag && pwd) {
        features |= RT_SDP_HAS_ICE;
    }
    return features;
}

bool rt_sdp_check_answer(const char *sdp, char *why, size_t why_cap)
{
    static const struct {
        unsigned bit;
        const char *missing;
    } need[] = {
        {RT_SDP_HAS_AUDIO, "no m=audio section"},
        {RT_SDP_HAS_OPUS, "audio is not Opus 48000/2"},
        {RT_SDP_HAS_DATA, "no m=application (data channel) section"},
        {RT_SDP_HAS_ICE, "no ICE credentials (a=ice-ufrag/a=ice-pwd)"},
        {RT_SDP_HAS_FINGERPRINT, "no DTLS fingerprint"},
    };
    unsigned features = rt_sdp_features(sdp);
    if (features == 0 && (sdp == NULL || strncmp(sdp, "v=0", 3) != 0)) {
        snprintf(why, why_cap, "not an SDP (does not start with v=0)");
        return false;
    }
    for (const char *line = sdp; *line;) {   /* libpeer copies each line into a 256-byte buffer */
        size_t len = strcspn(line, "\r\n");
        if (len > RT_SDP_LINE_MAX) {
            snprintf(why, why_cap, "a line of %u bytes (at most %d): %.20s...", (unsigned)len, RT_SDP_LINE_MAX, line);
            return false;
        }
        line += len;
        line += strspn(line, "\r\n");
    }
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        if (!(features & need[i].bit)) {
            snprintf(why, why_cap, "%s", need[i].missing);
            return false;
        }
    }
    if (why_cap) {
        why[0] = '\0';
    }
    return true;
}

int rt_sdp_normalize(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = in;
    while (*p) {
        size_t len = strcspn(p, "\r\n");
        if (n + len + 2 >= cap) {
            return -1;
        }
        memcpy(out + n, p, len);
        n += len;
        p += len;
        if (*p == '\r' && p[1] == '\n') {
            p += 2;
        } else if (*p) {
            p += 1;
        }
        if (len > 0 || *p) {
            out[n++] = '\r';
            out[n++] = '\n';
        }
    }
    if (n == 0 || out[n - 1] != '\n') {
        if (n + 2 >= cap) {
            return -1;
        }
        out[n++] = '\r';
        out[n++] = '\n';
    }
    out[n] = '\0';
    return (int)n;
}
