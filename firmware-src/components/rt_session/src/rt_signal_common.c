#include <stdio.h>
#include <string.h>

#include "rt_sdp.h"
#include "rt_signal.h"

/* Mask anything key-shaped (sk-...) in text that came from the server: error pages can echo a
 * partly masked key, and log lines must never carry any part of it. */
static void scrub_keys(char *text)
{
    for (char *p = strstr(text, "sk-"); p != NULL; p = strstr(p + 3, "sk-")) {
        char *end = p + 3;
        while (*end && *end != ' ' && *end != '"' && *end != ',' && *end != '.') {
            end++;
        }
        memmove(p + 6, end, strlen(end) + 1);
        memcpy(p + 3, "***", 3);
    }
}

rt_signal_result_t rt_signal_finish(int status, const char *body, char *answer, size_t answer_cap,
                                    rt_signal_info_t *info)
{
    info->status = status;
    if (status != 201 && status != 200) {
        /* The API's error body is JSON with a message; quote its start, it never echoes the key. */
        char snippet[96];
        size_t n = strcspn(body, "\r\n");
        if (n >= sizeof(snippet)) {
            n = sizeof(snippet) - 1;
        }
        memcpy(snippet, body, n);
        snippet[n] = '\0';
        if (status == 401) {
            snippet[0] = '\0';  /* the 401 body quotes the key we sent */
            n = 0;
        }
        scrub_keys(snippet);
        snprintf(info->why, sizeof(info->why), "HTTP %d%s%s%s", status,
                 status == 401 ? " (API key rejected)" : "", n ? ": " : "", snippet);
        return RT_SIGNAL_HTTP_STATUS;
    }
    char why[80];
    if (!rt_sdp_check_answer(body, why, sizeof(why))) {
        snprintf(info->why, sizeof(info->why), "HTTP %d but the answer is unusable: %s", status, why);
        return RT_SIGNAL_BAD_ANSWER;
    }
    if (rt_sdp_normalize(body, answer, answer_cap) < 0) {
        snprintf(info->why, sizeof(info->why), "SDP answer larger than %zu bytes", answer_cap);
        return RT_SIGNAL_TOO_LARGE;
    }
    info->why[0] = '\0';
    return RT_SIGNAL_OK;
}
