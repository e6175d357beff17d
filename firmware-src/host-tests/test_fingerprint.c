#include <stdio.h>

#include "rt_fingerprint.h"
#include "rt_test.h"

static char *pairs(char *out, size_t n, unsigned char start)
{
    unsigned char d[64];
    for (size_t i = 0; i < n; i++) {
        d[i] = (unsigned char)(start + i);
    }
    return rt_fp_hex(d, n, out, RT_FP_TEXT_MAX);
}

/* aiortc's answer: three fingerprints at the media level (sha-256, sha-384, sha-512, lower-case hex). */
static void test_every_line_read_strongest_supported_wins(void)
{
    char s256[RT_FP_TEXT_MAX], s384[RT_FP_TEXT_MAX], s512[RT_FP_TEXT_MAX], sdp[1200];
    pairs(s256, 32, 0x10);
    pairs(s384, 48, 0x20);
    pairs(s512, 64, 0x80);
    CHECK(strlen(s512) == 191 && strlen(s256) == 95);
    snprintf(sdp, sizeof(sdp), "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:sha-256 %s\r\n"
             "a=fingerprint:sha-384 %s\r\na=fingerprint:sha-512 %s\r\na=setup:active\r\n", s256, s384, s512);
    for (char *p = sdp; *p; p++) {   /* aiortc writes upper case; lower case must read the same */
        if (*p >= 'A' && *p <= 'F') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    rt_fingerprint_t fp;
    char why[96];
    CHECK(rt_fp_pick(sdp, RT_FP_SHA256 | RT_FP_SHA384 | RT_FP_SHA512, &fp, why, sizeof(why)));
    CHECK(fp.alg == RT_FP_SHA512);
    CHECK_STR(fp.value, s512);   /* the whole 191-character value, upper case: nothing cut */
    CHECK(rt_fp_pick(sdp, RT_FP_SHA256 | RT_FP_SHA384, &fp, why, sizeof(why)));
    CHECK(fp.alg == RT_FP_SHA384);
    CHECK_STR(fp.value, s384);
    CHECK(rt_fp_pick(sdp, RT_FP_SHA256, &fp, why, sizeof(why)));
    CHECK(fp.alg == RT_FP_SHA256);
    CHECK_STR(fp.value, s256);
    CHECK_STR(rt_fp_alg_name(fp.alg), "sha-256");
}

static void test_session_level_and_only_384_512(void)
{
    char s384[RT_FP_TEXT_MAX], s512[RT_FP_TEXT_MAX], sdp[1200];
    pairs(s384, 48, 1);
    pairs(s512, 64, 2);
    snprintf(sdp, sizeof(sdp), "v=0\r\na=fingerprint:SHA-384 %s\r\nm=audio 9 X 111\r\n"
             "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-512 %s\r\n", s384, s512);
    rt_fingerprint_t fp;
    char why[96];
    CHECK(rt_fp_pick(sdp, RT_FP_SHA256 | RT_FP_SHA384, &fp, why, sizeof(why)));
    CHECK(fp.alg == RT_FP_SHA384 && rt_fp_equal(fp.value, s384));
    CHECK(!rt_fp_pick(sdp, RT_FP_SHA256, &fp, why, sizeof(why)));
    CHECK_STR(why, "no a=fingerprint with a hash this firmware supports (of 2 lines)");
}

static void test_malformed_unknown_and_missing(void)
{
    rt_fingerprint_t fp;
    char why[96];
    CHECK(!rt_fp_pick("v=0\r\nm=audio 9 X 111\r\n", RT_FP_SHA256, &fp, why, sizeof(why)));
    CHECK_STR(why, "no a=fingerprint line");
    CHECK(!rt_fp_pick("v=0\r\na=fingerprint:sha-256 AA:BB:CC\r\n", RT_FP_SHA256, &fp, why, sizeof(why)));
    CHECK_STR(why, "a=fingerprint value malformed (1 of 1 lines)");
    CHECK(!rt_fp_pick("v=0\r\na=fingerprint:md5 AA:BB\r\n", RT_FP_SHA256 | RT_FP_SHA512, &fp, why, sizeof(why)));
    CHECK_STR(why, "no a=fingerprint with a hash this firmware supports (of 1 lines)");
    CHECK(!rt_fp_pick(NULL, RT_FP_SHA256, &fp, why, sizeof(why)));
    /* a malformed strong line does not hide a good weaker one */
    char s256[RT_FP_TEXT_MAX], sdp[600];
    pairs(s256, 32, 0xF0);
    snprintf(sdp, sizeof(sdp), "v=0\n\na=fingerprint:sha-512 ZZ:00\na=fingerprint:sha-256  %s \n", s256);
    CHECK(rt_fp_pick(sdp, RT_FP_SHA256 | RT_FP_SHA512, &fp, why, sizeof(why)));
    CHECK(fp.alg == RT_FP_SHA256 && rt_fp_equal(fp.value, s256));
}

static void test_hex_and_equal(void)
{
    unsigned char d[3] = {0x00, 0xab, 0xff};
    char out[16];
    CHECK_STR(rt_fp_hex(d, 3, out, sizeof(out)), "00:AB:FF");
    CHECK(rt_fp_equal("00:ab:FF", "00:AB:ff"));
    CHECK(!rt_fp_equal("00:AB:FF", "00:AB:FE"));
    CHECK(!rt_fp_equal("00:AB", "00:AB:FF"));
    CHECK(rt_fp_alg_size(RT_FP_SHA384) == 48 && rt_fp_alg_size(RT_FP_NONE) == 0);
}

int main(void)
{
    RUN(test_every_line_read_strongest_supported_wins);
    RUN(test_session_level_and_only_384_512);
    RUN(test_malformed_unknown_and_missing);
    RUN(test_hex_and_equal);
    RT_TEST_DONE();
}
