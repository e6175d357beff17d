/* rtflash's DTLS for libpeer: what components/peer/patch_dtls.cmake wires into libpeer's
 * dtls_srtp.c and peer_connection.c (copied into the build dir; the fetched tree is never touched).
 *
 * - identity: one ECDSA P-256 key and self-signed certificate per boot (not per call), from the
 *   platform CSPRNG (mbedTLS entropy: the hardware RNG on the device, the OS on linux); what browsers
 *   and stock aiortc negotiate (ECDHE-ECDSA), and no seconds of RSA key generation before each call.
 * - cipher suites: ECDHE-ECDSA-AES128-GCM-SHA256 first; ECDHE-RSA ones kept for a DTLS server peer
 *   that signs with RSA (we are the DTLS client then; our certificate is still ECDSA).
 * - fingerprints: every a=fingerprint line of the answer is read; the strongest hash mbedTLS here
 *   supports (sha-512 > sha-384 > sha-256) is the one the peer's certificate must match.
 * - failures: why the last handshake failed, one line, for the session to log (libpeer logs nothing
 *   about it any more, and leaves the CONNECTED state instead of retrying in a loop).
 * - the time a packet last came from the peer (the session's no-media watchdog).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/pk.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How long one DTLS read may wait for the peer (the handshake's flights) before giving up. */
#define RT_DTLS_READ_TIMEOUT_MS 5000

/* Seed `drbg` from `entropy` and load this boot's identity into cert + pkey (made on first use). */
int rt_dtls_identity(mbedtls_x509_crt *cert, mbedtls_pk_context *pkey, mbedtls_ctr_drbg_context *drbg,
                     mbedtls_entropy_context *entropy);

/* After mbedtls_ssl_config_defaults: our cipher suite order. */
void rt_dtls_conf(mbedtls_ssl_config *conf);

/* From the remote SDP: the fingerprint to verify against, as "<hash> <value>" (or "!<why>"). */
void rt_dtls_remote_sdp(const char *sdp, char *remote, size_t cap);

/* After the handshake (`ret` its result): the peer's certificate checked against `remote`.
 * 0 when the peer is verified; otherwise non-zero, the reason kept for rt_dtls_failure(). */
int rt_dtls_verify(const mbedtls_ssl_context *ssl, int ret, const char *remote);

/* A DTLS read gave up after waiting `waited_ms` for the peer (at most RT_DTLS_READ_TIMEOUT_MS, or
 * libpeer's CONFIG_TLS_READ_TIMEOUT polls if sooner; called from the patched receive loop). */
void rt_dtls_note_timeout(uint32_t waited_ms);

/* Why the last DTLS handshake failed ("" when it did not); rt_dtls_clear_failure() before a call. */
const char *rt_dtls_failure(void);
void rt_dtls_clear_failure(void);

/* The identity's sha-256 fingerprint and how long it took to make ("" / 0 before the first call). */
const char *rt_dtls_local_fingerprint(void);
uint32_t rt_dtls_identity_ms(void);

/* A packet came from the peer (any: RTP, RTCP, DTLS/SCTP); the time of the last, in ms since boot. */
void rt_peer_rx_mark(void);
uint32_t rt_peer_rx_ms(void);

#ifdef __cplusplus
}
#endif
