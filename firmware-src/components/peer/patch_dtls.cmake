# rtflash's DTLS patches to libpeer (issue 19), included from this component's CMakeLists.txt after
# the copy of libpeer's sources is made in ${copy}; they edit only that copy. Each edit is an exact
# string that must be found once, or the configure stops with "no longer matches": a re-pin of
# libpeer that moved the code gets a clear error, never a silently unpatched build.
# What they wire in is ours, in rt_dtls.c / rt_slog.c (include/rt_dtls.h says why):
# - dtls_srtp.c: this boot's ECDSA P-256 identity (rt_dtls_identity) instead of a fresh RSA key per
#   call; our cipher suite order (rt_dtls_conf); the peer's certificate checked against the answer's
#   fingerprint of the strongest supported hash (rt_dtls_verify), the failure kept for the session
#   (one line there) instead of libpeer's LOGE lines;
# - dtls_srtp.h: fingerprint fields large enough for sha-512 (191 characters; libpeer's 160 cut it);
# - peer_connection.c: every a=fingerprint line of the answer read (rt_dtls_remote_sdp), not the last
#   one; a failed handshake (or one whose SRTP keys are not set) moves to FAILED instead of retrying
#   in the CONNECTED state every loop (2,497 lines in 25 s); a DTLS read waits at most
#   RT_DTLS_READ_TIMEOUT_MS for the peer; each received packet is time-stamped (rt_peer_rx_mark) for
#   the session's no-media watchdog;
# - config.h: libpeer's log goes through rt_slog (LOG_REDIRECT), under the session's log cap;
#   CONFIG_KEEPALIVE_TIMEOUT 0 (a compile definition, below): libpeer's "no binding request for 10 s"
#   close assumes a peer that sends consent checks (the Realtime API does not); the session's
#   no-media watchdog (any packet from the peer) covers a peer that went away.

function(rt_patch file old new)
    file(READ "${copy}/${file}" text)
    string(FIND "${text}" "${old}" at)
    if(at EQUAL -1)
        string(REPLACE "\n" "\\n" shown "${old}")
        message(FATAL_ERROR "libpeer's ${file} no longer matches `${shown}`: "
                            "update components/peer/patch_dtls.cmake for the pinned libpeer")
    endif()
    string(LENGTH "${old}" len)
    math(EXPR after "${at} + ${len}")
    string(SUBSTRING "${text}" ${after} -1 rest)
    string(FIND "${rest}" "${old}" again)
    if(NOT again EQUAL -1)
        message(FATAL_ERROR "libpeer's ${file} has `${old}` more than once: update components/peer/patch_dtls.cmake")
    endif()
    string(REPLACE "${old}" "${new}" text "${text}")
    file(WRITE "${copy}/${file}" "${text}")
endfunction()

# dtls_srtp.h
rt_patch(dtls_srtp.h "#define DTLS_SRTP_FINGERPRINT_LENGTH 160\n"
         "#define DTLS_SRTP_FINGERPRINT_LENGTH 208  /* rtflash: \"sha-512 \" + 191 (patch_dtls.cmake) */\n")

# dtls_srtp.c
rt_patch(dtls_srtp.c "#include \"utils.h\"\n" "#include \"utils.h\"\n#include \"rt_dtls.h\"  /* rtflash */\n")
rt_patch(dtls_srtp.c "  dtls_srtp_selfsign_cert(dtls_srtp);\n"
         "  rt_dtls_identity(&dtls_srtp->cert, &dtls_srtp->pkey, &dtls_srtp->ctr_drbg, &dtls_srtp->entropy);  /* rtflash */\n")
rt_patch(dtls_srtp.c "  dtls_srtp_x509_digest(&dtls_srtp->cert, dtls_srtp->local_fingerprint);\n"
         "  rt_dtls_conf(&dtls_srtp->conf);  /* rtflash: cipher suites, after mbedtls_ssl_config_defaults */\n  dtls_srtp_x509_digest(&dtls_srtp->cert, dtls_srtp->local_fingerprint);\n")
rt_patch(dtls_srtp.c "      LOGE(\"failed! mbedtls_ssl_handshake returned -0x%.4x\", (unsigned int)-ret);\n"
         "      /* rtflash: the failure is reported once, by the session (rt_dtls_verify) */\n")
rt_patch(dtls_srtp.c "    LOGE(\"failed! mbedtls_ssl_handshake returned -0x%.4x\\n\\n\", (unsigned int)-ret);\n"
         "    /* rtflash: the failure is reported once, by the session (rt_dtls_verify) */\n")
file(READ "${copy}/dtls_srtp.c" dtls_text)
string(FIND "${dtls_text}" "  const mbedtls_x509_crt* remote_crt;\n" verify_from)
set(verify_end "    LOGE(\"no remote fingerprint\");\n    return -1;\n  }\n")
string(FIND "${dtls_text}" "${verify_end}" verify_to)
if(verify_from EQUAL -1 OR verify_to EQUAL -1 OR verify_to LESS verify_from)
    message(FATAL_ERROR "libpeer's dtls_srtp.c no longer matches its peer-certificate check "
                        "(`const mbedtls_x509_crt* remote_crt;` ... `LOGE(\"no remote fingerprint\")`): "
                        "update components/peer/patch_dtls.cmake for the pinned libpeer")
endif()
string(LENGTH "${verify_end}" verify_end_len)
math(EXPR verify_len "${verify_to} + ${verify_end_len} - ${verify_from}")
string(SUBSTRING "${dtls_text}" ${verify_from} ${verify_len} verify_old)
rt_patch(dtls_srtp.c "${verify_old}"
         "  /* rtflash: the peer's certificate against the answer's strongest supported fingerprint */\n  if (rt_dtls_verify(&dtls_srtp->ssl, ret, dtls_srtp->remote_fingerprint) != 0) {\n    return ret != 0 ? ret : -1;\n  }\n")

# peer_connection.c
rt_patch(peer_connection.c "#include \"sdp.h\"\n" "#include \"sdp.h\"\n#include \"rt_dtls.h\"  /* rtflash */\n")
rt_patch(peer_connection.c
         "  while (recv_max < CONFIG_TLS_READ_TIMEOUT && pc->state == PEER_CONNECTION_CONNECTED) {\n"
         "  uint32_t rt_t0 = ports_get_epoch_time();  /* rtflash: a DTLS read waits RT_DTLS_READ_TIMEOUT_MS at most */\n  while (recv_max < CONFIG_TLS_READ_TIMEOUT && pc->state == PEER_CONNECTION_CONNECTED) {\n    if (ports_get_epoch_time() - rt_t0 > RT_DTLS_READ_TIMEOUT_MS) {\n      break;\n    }\n")
rt_patch(peer_connection.c
         "    recv_max++;\n  }\n  return ret;\n}\n"
         "    recv_max++;\n  }\n  if (ret <= 0 && pc->state == PEER_CONNECTION_CONNECTED) {\n    rt_dtls_note_timeout(ports_get_epoch_time() - rt_t0);  /* rtflash */\n  }\n  return ret;\n}\n")
rt_patch(peer_connection.c
         "      if (dtls_srtp_handshake(&pc->dtls_srtp, NULL) == 0) {\n"
         "      if (dtls_srtp_handshake(&pc->dtls_srtp, NULL) != 0 || pc->dtls_srtp.state != DTLS_SRTP_STATE_CONNECTED) {\n        STATE_CHANGED(pc, PEER_CONNECTION_FAILED);  /* rtflash: never retry in CONNECTED */\n      } else {\n")
rt_patch(peer_connection.c
         "        LOGD(\"agent_recv %d\", pc->agent_ret);\n"
         "        LOGD(\"agent_recv %d\", pc->agent_ret);\n        rt_peer_rx_mark();  /* rtflash */\n")
rt_patch(peer_connection.c
         "    if (strstr(buf, \"a=fingerprint\")) {\n      strncpy(pc->dtls_srtp.remote_fingerprint, buf + 22, DTLS_SRTP_FINGERPRINT_LENGTH);\n    }\n"
         "")
rt_patch(peer_connection.c "  if (is_update) {\n    return;\n  }\n"
         "  /* rtflash: every a=fingerprint line, session or media level */\n  rt_dtls_remote_sdp(sdp_text, pc->dtls_srtp.remote_fingerprint, sizeof(pc->dtls_srtp.remote_fingerprint));\n\n  if (is_update) {\n    return;\n  }\n")

# config.h
rt_patch(config.h "#define LOG_REDIRECT 0\n" "#define LOG_REDIRECT 1  /* rtflash: peer_log in rt_slog.c, under the session's log cap */\n")
file(READ "${copy}/config.h" cfg_text)
string(FIND "${cfg_text}" "#ifndef CONFIG_KEEPALIVE_TIMEOUT\n" at)
if(at EQUAL -1)
    message(FATAL_ERROR "libpeer's config.h no longer matches `#ifndef CONFIG_KEEPALIVE_TIMEOUT`: "
                        "update components/peer/patch_dtls.cmake for the pinned libpeer")
endif()

list(APPEND srcs "${CMAKE_CURRENT_LIST_DIR}/rt_dtls.c" "${CMAKE_CURRENT_LIST_DIR}/rt_slog.c")
list(APPEND defs_private CONFIG_KEEPALIVE_TIMEOUT=0)
