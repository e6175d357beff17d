/* linux target only: which network interface libpeer takes its ICE host candidate from.
 *
 * libpeer (ports.c) scans getifaddrs() for the first interface whose name starts with
 * CONFIG_IFACE_PREFIX, or, with an empty prefix, the first one up, running and not loopback. On a PC
 * talking to a stand-in of the API on 127.0.0.1 that skips the only address the stand-in can reach,
 * so components/peer/CMakeLists.txt makes the prefix this function's value: $RTFLASH_ICE_IFACE
 * (e.g. "lo" -> 127.0.0.1), or "" (libpeer's default) when unset. */
#include <stdlib.h>

const char *rt_peer_iface_prefix(void);

const char *rt_peer_iface_prefix(void)
{
    const char *iface = getenv("RTFLASH_ICE_IFACE");
    return iface != NULL ? iface : "";
}
