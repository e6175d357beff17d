/* rtflash's DTLS pieces for libpeer (include/rt_dtls.h). mbedTLS 3.6 APIs, checked in ESP-IDF v5.5
 * components/mbedtls/mbedtls/include/mbedtls: pk.h mbedtls_pk_setup, mbedtls_pk_info_from_type
 * (MBEDTLS_PK_ECKEY), mbedtls_pk_ec, mbedtls_pk_write_key_der, mbedtls_pk_parse_key (with f_rng in 3.x);
 * ecp.h mbedtls_ecp_gen_key (MBEDTLS_ECP_DP_SECP256R1); x509_crt.h mbedtls_x509write_crt_* (set_version,
 * set_md_alg, set_subject_key/issuer_key, set_subject_name/issuer_name, set_serial_raw, set_validity,
 * set_basic_constraints, der), mbedtls_x509_crt_parse_der; ssl.h mbedtls_ssl_conf_ciphersuites,
 * mbedtls_ssl_get_peer_cert; md.h mbedtls_md_info_from_type, mbedtls_md; ssl_ciphersuites.h the IDs. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "esp_log.h"
#include "mbedtls/error.h"
#include "mbedtls/md.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/ssl_ciphersuites.h"

#include "rt_dtls.h"
#include "rt_fingerprint.h"

#define CERT_DER_MAX 800
#define KEY_DER_MAX 200

static unsigned char s_cert[CERT_DER_MAX];
static size_t s_cert_len;
static unsigned char s_key[KEY_DER_MAX];
static size_t s_key_len;
static char s_local_fp[RT_FP_TEXT_MAX];
static uint32_t s_identity_ms;
static char s_failure[2 * RT_FP_TEXT_MAX + 160];
static bool s_timed_out;
static uint32_t s_waited_ms;
static volatile uint32_t s_rx_ms;

/* ECDHE-ECDSA first (our certificate is P-256); ECDHE-RSA for a DTLS server peer with an RSA
 * certificate. Suites this mbedTLS build lacks are skipped by mbedTLS itself. */
static const int CIPHERSUITES[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    0,
};

static mbedtls_md_type_t md_of(rt_fp_alg_t alg)
{
    switch (alg) {
    case RT_FP_SHA256: return MBEDTLS_MD_SHA256;
    case RT_FP_SHA384: return MBEDTLS_MD_SHA384;
    case RT_FP_SHA512: return MBEDTLS_MD_SHA512;
    default: return MBEDTLS_MD_NONE;
    }
}

/* The hashes this mbedTLS build has (sha-256 always: DTLS 1.2 needs it). */
static unsigned supported(void)
{
    unsigned mask = 0;
    const rt_fp_alg_t algs[] = {RT_FP_SHA256, RT_FP_SHA384, RT_FP_SHA512};
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        if (mbedtls_md_info_from_type(md_of(algs[i])) != NULL) {
            mask |= (unsigned)algs[i];
        }
    }
    return mask;
}

static int fingerprint(const unsigned char *der, size_t len, rt_fp_alg_t alg, char *out, size_t cap)
{
    unsigned char digest[64];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(md_of(alg));
    if (md == NULL || mbedtls_md(md, der, len, digest) != 0) {
        return -1;
    }
    rt_fp_hex(digest, rt_fp_alg_size(alg), out, cap);
    return 0;
}

/* One key and certificate for this boot, kept as DER; each call parses its own copy (libpeer frees
 * its cert and key with the peer connection). */
static int make_identity(mbedtls_ctr_drbg_context *drbg)
{
    uint32_t t0 = esp_log_timestamp();
    mbedtls_pk_context key;
    mbedtls_x509write_cert crt;
    unsigned char serial[16];
    unsigned char buf[CERT_DER_MAX];
    int ret;
    mbedtls_pk_init(&key);
    mbedtls_x509write_crt_init(&crt);
    if ((ret = mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0 ||
        (ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), mbedtls_ctr_drbg_random, drbg)) != 0 ||
        (ret = mbedtls_ctr_drbg_random(drbg, serial, sizeof(serial))) != 0) {
        goto done;
    }
    serial[0] &= 0x7F;   /* a positive INTEGER */
    serial[0] |= 0x01;
    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&crt, &key);
    mbedtls_x509write_crt_set_issuer_key(&crt, &key);
    if ((ret = mbedtls_x509write_crt_set_subject_name(&crt, "CN=rtflash")) != 0 ||
        (ret = mbedtls_x509write_crt_set_issuer_name(&crt, "CN=rtflash")) != 0 ||
        (ret = mbedtls_x509write_crt_set_serial_raw(&crt, serial, sizeof(serial))) != 0 ||
        /* no clock is needed: peers check the fingerprint, not the dates (a device may not know the time) */
        (ret = mbedtls_x509write_crt_set_validity(&crt, "20240101000000", "20491231235959")) != 0) {
        goto done;
    }
    ret = mbedtls_x509write_crt_der(&crt, buf, sizeof(buf), mbedtls_ctr_drbg_random, drbg);
    if (ret <= 0) {
        ret = ret ? ret : -1;
        goto done;
    }
    s_cert_len = (size_t)ret;
    memcpy(s_cert, buf + sizeof(buf) - s_cert_len, s_cert_len);   /* mbedTLS writes DER at the end */
    ret = mbedtls_pk_write_key_der(&key, buf, KEY_DER_MAX);
    if (ret <= 0) {
        s_cert_len = 0;
        ret = ret ? ret : -1;
        goto done;
    }
    s_key_len = (size_t)ret;
    memcpy(s_key, buf + KEY_DER_MAX - s_key_len, s_key_len);
    fingerprint(s_cert, s_cert_len, RT_FP_SHA256, s_local_fp, sizeof(s_local_fp));
    s_identity_ms = esp_log_timestamp() - t0;
    ret = 0;
done:
    mbedtls_platform_zeroize(buf, sizeof(buf));
    mbedtls_x509write_crt_free(&crt);
    mbedtls_pk_free(&key);
    return ret;
}

int rt_dtls_identity(mbedtls_x509_crt *cert, mbedtls_pk_context *pkey, mbedtls_ctr_drbg_context *drbg,
                     mbedtls_entropy_context *entropy)
{
    static const char pers[] = "rtflash dtls";
    int ret = mbedtls_ctr_drbg_seed(drbg, mbedtls_entropy_func, entropy, (const unsigned char *)pers, sizeof(pers) - 1);
    if (ret != 0) {
        return ret;
    }
    if (s_cert_len == 0 && (ret = make_identity(drbg)) != 0) {
        return ret;
    }
    if ((ret = mbedtls_x509_crt_parse_der(cert, s_cert, s_cert_len)) != 0) {
        return ret;
    }
    return mbedtls_pk_parse_key(pkey, s_key, s_key_len, NULL, 0, mbedtls_ctr_drbg_random, drbg);
}

void rt_dtls_conf(mbedtls_ssl_config *conf)
{
    mbedtls_ssl_conf_ciphersuites(conf, CIPHERSUITES);
}

void rt_dtls_remote_sdp(const char *sdp, char *remote, size_t cap)
{
    rt_fingerprint_t fp;
    char why[96];
    if (rt_fp_pick(sdp, supported(), &fp, why, sizeof(why))) {
        snprintf(remote, cap, "%s %s", rt_fp_alg_name(fp.alg), fp.value);
    } else {
        snprintf(remote, cap, "!%s", why);
    }
}

static void failed(const char *fmt, const char *a, const char *b, const char *c)
{
    snprintf(s_failure, sizeof(s_failure), fmt, a, b, c);
}

int rt_dtls_verify(const mbedtls_ssl_context *ssl, int ret, const char *remote)
{
    if (ret != 0) {
        char err[100] = "";
#if defined(MBEDTLS_ERROR_C)
        mbedtls_strerror(ret, err, sizeof(err));
#endif
        char code[16];
        snprintf(code, sizeof(code), "-0x%04x", (unsigned)(ret < 0 ? -ret : ret));
        if (s_timed_out) {
            char secs[16];
            snprintf(secs, sizeof(secs), "%u.%u", (unsigned)(s_waited_ms / 1000), (unsigned)(s_waited_ms % 1000 / 100));
            failed("DTLS handshake failed: nothing from the peer for %s s (mbedtls %s)%s", secs, code, "");
        } else {
            failed("DTLS handshake failed: mbedtls %s%s%s", code, err[0] ? ": " : "", err);
        }
        return ret;
    }
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(ssl);
    if (peer == NULL) {
        failed("DTLS refused: the peer sent no certificate%s%s%s", "", "", "");
        return -1;
    }
    if (remote[0] == '!' || remote[0] == '\0') {
        failed("DTLS refused: cannot verify the peer's certificate: %s%s%s", remote[0] ? remote + 1 : "no fingerprint",
               "", "");
        return -1;
    }
    const char *space = strchr(remote, ' ');
    rt_fp_alg_t alg = RT_FP_NONE;
    const rt_fp_alg_t algs[] = {RT_FP_SHA256, RT_FP_SHA384, RT_FP_SHA512};
    for (size_t i = 0; space && i < sizeof(algs) / sizeof(algs[0]); i++) {
        if (strncmp(remote, rt_fp_alg_name(algs[i]), (size_t)(space - remote)) == 0) {
            alg = algs[i];
        }
    }
    char actual[RT_FP_TEXT_MAX];
    if (alg == RT_FP_NONE || fingerprint(peer->raw.p, peer->raw.len, alg, actual, sizeof(actual)) != 0) {
        failed("DTLS refused: cannot hash the peer's certificate for %s%s%s", remote, "", "");
        return -1;
    }
    if (!rt_fp_equal(actual, space + 1)) {
        failed("DTLS refused: fingerprint mismatch (%s): the answer says %s, the peer's certificate is %s",
               rt_fp_alg_name(alg), space + 1, actual);
        return -1;
    }
    return 0;
}

void rt_dtls_note_timeout(uint32_t waited_ms)
{
    s_timed_out = true;
    s_waited_ms = waited_ms;
}

const char *rt_dtls_failure(void)
{
    return s_failure;
}

void rt_dtls_clear_failure(void)
{
    s_failure[0] = '\0';
    s_timed_out = false;
}

const char *rt_dtls_local_fingerprint(void)
{
    return s_local_fp;
}

uint32_t rt_dtls_identity_ms(void)
{
    return s_identity_ms;
}

void rt_peer_rx_mark(void)
{
    s_rx_ms = esp_log_timestamp();
}

uint32_t rt_peer_rx_ms(void)
{
    return s_rx_ms;
}
