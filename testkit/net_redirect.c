/* LD_PRELOAD resolver and socket override for one test process: the upstream SDK's linux ELF compiles in
 * https://api.openai.com/...; this sends it to the 127.0.0.1 Realtime stand-in instead, and blocks and
 * logs every attempt to reach any address that is not loopback, so a test can assert none was made.
 *
 *   RTFLASH_REDIRECT_HOSTS  space-separated host names getaddrinfo() resolves as 127.0.0.1
 *   RTFLASH_REDIRECT_PORT   connect() to 127.0.0.1:443 goes to 127.0.0.1:<this port> (the stand-in)
 *   RTFLASH_NET_LOG         file each event is appended to: "resolve NAME", "redirect PORT", "blocked ..."
 *
 * Built by the test with the host cc (tests/test_external_upstream.py); never part of rtflash. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void note(const char *what, const char *detail) {
    const char *path = getenv("RTFLASH_NET_LOG");
    if (!path) return;
    char line[512];
    int n = snprintf(line, sizeof line, "%s %s\n", what, detail ? detail : "");
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0) return;
    if (n > 0) (void)!write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    close(fd);
}

static void describe(const struct sockaddr *sa, char *out, size_t size) {
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, size, "family=%d %s:%d", sa->sa_family, host, port);
}

/* 1: stays on this machine (loopback, or not an IP socket at all). */
static int local(const struct sockaddr *sa) {
    if (!sa) return 1;
    if (sa->sa_family == AF_INET) return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return sa->sa_family != AF_PACKET;
}

static int listed(const char *name) {
    const char *hosts = getenv("RTFLASH_REDIRECT_HOSTS");
    size_t len = strlen(name);
    for (const char *p = hosts; p && *p;) {
        while (*p == ' ') p++;
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0) return 1;
        p += n;
    }
    return 0;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
    if (node && listed(node)) {
        note("resolve", node);
        node = "127.0.0.1";
    } else if (node && strcmp(node, "localhost") != 0 && strncmp(node, "127.", 4) != 0 && strcmp(node, "::1") != 0) {
        note("blocked resolve", node); /* a DNS query would leave the machine */
        return EAI_NONAME;
    }
    return real(node, service, hints, res);
}

int connect(int fd, const struct sockaddr *sa, socklen_t len) {
    int (*real)(int, const struct sockaddr *, socklen_t) =
        (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    char text[128];
    if (sa && sa->sa_family == AF_INET && local(sa) && ntohs(((const struct sockaddr_in *)sa)->sin_port) == 443 &&
        getenv("RTFLASH_REDIRECT_PORT")) {
        struct sockaddr_in to = *(const struct sockaddr_in *)sa;
        to.sin_port = htons((unsigned short)atoi(getenv("RTFLASH_REDIRECT_PORT")));
        note("redirect", getenv("RTFLASH_REDIRECT_PORT"));
        return real(fd, (const struct sockaddr *)&to, sizeof to);
    }
    if (!local(sa)) {
        describe(sa, text, sizeof text);
        note("blocked connect", text);
        errno = ENETUNREACH;
        return -1;
    }
    return real(fd, sa, len);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa, socklen_t len) {
    ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t) =
        (ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "sendto");
    char text[128];
    if (sa && !local(sa)) {
        describe(sa, text, sizeof text);
        note("blocked sendto", text);
        errno = ENETUNREACH;
        return -1;
    }
    return real(fd, buf, n, flags, sa, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    ssize_t (*real)(int, const struct msghdr *, int) = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
    char text[128];
    if (msg && msg->msg_name && !local((const struct sockaddr *)msg->msg_name)) {
        describe((const struct sockaddr *)msg->msg_name, text, sizeof text);
        note("blocked sendmsg", text);
        errno = ENETUNREACH;
        return -1;
    }
    return real(fd, msg, flags);
}
