# rtflash patch (issue 20), included by components/peer/CMakeLists.txt after the copy is made: libpeer's
# ICE ufrag/pwd and SDP session id from the platform's CSPRNG (rt_peer_random.c: esp_fill_random on
# the device, getrandom on linux) instead of srand(time(NULL)) + rand() and a constant o= id. Only the
# copy in this component's build dir is changed; each edit has its "no longer matches" guard.
# In: copy (the build dir's libpeer sources), srcs (list to compile). Out: srcs + rt_peer_random.c.

function(rt_peer_patch file old new what)
    file(READ "${file}" text)
    string(FIND "${text}" "${old}" at)
    if(at EQUAL -1)
        get_filename_component(name "${file}" NAME)
        message(FATAL_ERROR "libpeer's ${name} no longer matches ${what}: "
                            "update components/peer/patch_random.cmake for the pinned libpeer")
    endif()
    string(REPLACE "${old}" "${new}" text "${text}")
    file(WRITE "${file}" "${text}")
endfunction()

set(rt_proto "unsigned rt_peer_random_below(unsigned n);  /* rtflash: rt_peer_random.c */\n")
rt_peer_patch("${copy}/utils.c" "  srand(time(NULL));\n" ""
              "`srand(time(NULL));` in utils_random_string")
rt_peer_patch("${copy}/utils.c" "    s[i] = alphanum[rand() % (sizeof(alphanum) - 1)];\n"
              "    s[i] = alphanum[rt_peer_random_below(sizeof(alphanum) - 1)];  /* rtflash: CSPRNG */\n"
              "`s[i] = alphanum[rand() % (sizeof(alphanum) - 1)];`")
rt_peer_patch("${copy}/utils.c" "void utils_random_string(char* s, const int len) {\n"
              "${rt_proto}void utils_random_string(char* s, const int len) {\n"
              "`void utils_random_string(char* s, const int len) {`")
rt_peer_patch("${copy}/sdp.c"
              "  sdp_append(sdp, \"o=- 1495799811084970 1495799811084970 IN IP4 0.0.0.0\");\n"
              "  const char *rt_sid = rt_peer_session_id();  /* rtflash: random per offer */\n  sdp_append(sdp, \"o=- %s %s IN IP4 0.0.0.0\", rt_sid, rt_sid);\n"
              "the constant `o=- 1495799811084970 ...` line in sdp_create")
rt_peer_patch("${copy}/sdp.c" "#include \"sdp.h\"\n"
              "#include \"sdp.h\"\nconst char *rt_peer_session_id(void);  /* rtflash: rt_peer_random.c */\n"
              "`#include \"sdp.h\"`")
list(APPEND srcs "${CMAKE_CURRENT_LIST_DIR}/rt_peer_random.c")
