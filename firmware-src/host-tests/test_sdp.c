#include <stdio.h>

#include "rt_sdp.h"
#include "rt_test.h"

/* The shape of an SDP answer from the Realtime API: Opus audio and an SCTP data channel. */
static const char *ANSWER =
    "v=0\r\no=- 123 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
    "m=audio 3478 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 192.0.2.1\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\n"
    "a=fingerprint:sha-256 AA:BB:CC\r\na=setup:active\r\na=candidate:1 1 udp 2130706431 192.0.2.1 3478 typ host\r\n"
    "m=application 3478 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n";

static void test_features_of_a_real_shaped_answer(void)
{
    unsigned f = rt_sdp_features(ANSWER);
    CHECK(f == (RT_SDP_HAS_AUDIO | RT_SDP_HAS_OPUS | RT_SDP_HAS_DATA | RT_SDP_HAS_ICE | RT_SDP_HAS_FINGERPRINT));
    char why[80];
    CHECK(rt_sdp_check_answer(ANSWER, why, sizeof(why)));
    CHECK_STR(why, "");
}

static void test_rejections_say_why(void)
{
    char why[80];
    CHECK(!rt_sdp_check_answer("{\"error\":{\"message\":\"x\"}}", why, sizeof(why)));
    CHECK_STR(why, "not an SDP (does not start with v=0)");
    CHECK(!rt_sdp_check_answer("", why, sizeof(why)));
    CHECK(!rt_sdp_check_answer("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n", why, sizeof(why)));
    CHECK_STR(why, "audio is not Opus 48000/2");
    {
        char longer[400];
        snprintf(longer, sizeof(longer), "v=0\r\na=x:%0300d\r\n", 7);
        CHECK(!rt_sdp_check_answer(longer, why, sizeof(why)));
        CHECK_STR(why, "a line of 304 bytes (at most 255): a=x:0000000000000000...");
    }
    CHECK(!rt_sdp_check_answer("v=0\r\nm=audio 9 X 111\r\na=rtpmap:111 opus/48000/2\r\n", why, sizeof(why)));
    CHECK_STR(why, "no m=application (data channel) section");
    CHECK(rt_sdp_features(NULL) == 0);
}

static void test_normalize_line_endings(void)
{
    char out[256];
    CHECK(rt_sdp_normalize("v=0\nm=audio 9\r\na=x", out, sizeof(out)) == (int)strlen(out));
    CHECK_STR(out, "v=0\r\nm=audio 9\r\na=x\r\n");
    rt_sdp_normalize("v=0\r\n", out, sizeof(out));
    CHECK_STR(out, "v=0\r\n");
    rt_sdp_normalize("a\r\rb\n", out, sizeof(out));   /* a stray CR ends a line too */
    CHECK_STR(out, "a\r\n\r\nb\r\n");
    char lf[512];
    size_t n = 0;
    for (const char *p = ANSWER; *p; p++) {
        if (*p != '\r') {
            lf[n++] = *p;
        }
    }
    lf[n] = '\0';
    char back[512];
    rt_sdp_normalize(lf, back, sizeof(back));
    CHECK_STR(back, ANSWER);   /* LF-only answers come back exactly as the CRLF original */
    CHECK(rt_sdp_normalize("v=0\n", out, 5) == -1);
}

int main(void)
{
    RUN(test_features_of_a_real_shaped_answer);
    RUN(test_rejections_say_why);
    RUN(test_normalize_line_endings);
    RT_TEST_DONE();
}
