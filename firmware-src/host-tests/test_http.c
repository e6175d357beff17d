#include "rt_http.h"
#include "rt_test.h"

static void test_build_post(void)
{
    char out[512];
    int n = rt_http_build_post(out, sizeof(out), "api.openai.com", 443, true, "/v1/realtime/calls?model=m",
                               "sk-test", "application/sdp", "v=0\r\n");
    CHECK(n == (int)strlen(out));
    CHECK_STR(out, "POST /v1/realtime/calls?model=m HTTP/1.1\r\nHost: api.openai.com\r\n"
                   "Authorization: Bearer sk-test\r\nContent-Type: application/sdp\r\nAccept: application/sdp\r\n"
                   "Content-Length: 5\r\nConnection: close\r\n\r\nv=0\r\n");
    rt_http_build_post(out, sizeof(out), "127.0.0.1", 8080, false, "/", "k", "application/sdp", "");
    CHECK(strstr(out, "Host: 127.0.0.1:8080\r\n") != NULL);
    CHECK(rt_http_build_post(out, 60, "h", 80, false, "/", "k", "t", "body") == -1);
}

static void test_parse_head(void)
{
    rt_http_response_t r;
    const char *partial = "HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\n";
    CHECK(rt_http_parse_head(partial, strlen(partial), &r) == 0);
    const char *full = "HTTP/1.1 201 Created\r\ncontent-type: application/sdp \r\nContent-Length: 12\r\n"
                       "Location: /v1/realtime/calls/rtc_123\r\n\r\nv=0\r\nbody";
    CHECK(rt_http_parse_head(full, strlen(full), &r) == 1);
    CHECK(r.status == 201 && r.content_length == 12 && !r.chunked);
    CHECK_STR(r.content_type, "application/sdp");
    CHECK_STR(r.location, "/v1/realtime/calls/rtc_123");
    CHECK(strncmp(full + r.header_len, "v=0", 3) == 0);
    const char *chunked = "HTTP/1.0 401 Unauthorized\r\nTransfer-Encoding: Chunked\r\n\r\n";
    CHECK(rt_http_parse_head(chunked, strlen(chunked), &r) == 1);
    CHECK(r.status == 401 && r.chunked && r.content_length == -1);
    const char *bad[] = {"HTTP/2 200\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"};
    for (size_t i = 0; i < 3; i++) {
        CHECK(rt_http_parse_head(bad[i], strlen(bad[i]), &r) == -1);
    }
    const char *bare = "HTTP/1.1 204 No Content\r\n\r\n";
    CHECK(rt_http_parse_head(bare, strlen(bare), &r) == 1 && r.status == 204);
}

static void test_dechunk(void)
{
    char body[] = "4\r\nv=0\r\r\n3;ext=1\r\n\nm=\r\n0\r\n\r\n";
    long n = rt_http_dechunk(body, strlen(body));
    CHECK(n == 7);
    CHECK_STR(body, "v=0\r\nm=");
    char cut[] = "5\r\nab";
    CHECK(rt_http_dechunk(cut, strlen(cut)) == -1);
    char junk[] = "zz\r\n";
    CHECK(rt_http_dechunk(junk, strlen(junk)) == -1);
}

int main(void)
{
    RUN(test_build_post);
    RUN(test_parse_head);
    RUN(test_dechunk);
    RT_TEST_DONE();
}
