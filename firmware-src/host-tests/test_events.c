#include "rt_events.h"
#include "rt_test.h"

static void test_session_update_shape(void)
{
    char out[512];
    int n = rt_event_session_update(out, sizeof(out), "gpt-realtime", "Be brief.", "alloy");
    CHECK(n == (int)strlen(out));
    CHECK_STR(out, "{\"type\":\"session.update\",\"session\":{\"type\":\"realtime\",\"model\":\"gpt-realtime\","
                   "\"instructions\":\"Be brief.\",\"audio\":{\"output\":{\"voice\":\"alloy\"}}}}");
    rt_event_session_update(out, sizeof(out), "", "", "");
    CHECK_STR(out, "{\"type\":\"session.update\",\"session\":{\"type\":\"realtime\"}}");
}

static void test_escaping(void)
{
    char out[512];
    rt_event_session_update(out, sizeof(out), NULL, "Say \"hi\"\\ then\nstop\t\x01 caf\xc3\xa9", NULL);
    CHECK_STR(out, "{\"type\":\"session.update\",\"session\":{\"type\":\"realtime\",\"instructions\":"
                   "\"Say \\\"hi\\\"\\\\ then\\nstop\\t\\u0001 caf\xc3\xa9\"}}");
    /* what we escape, our parser reads back exactly */
    char back[128];
    const char *path[] = {"session", "instructions"};
    CHECK(rt_json_find_string(out, strlen(out), path, 2, back, sizeof(back)));
    CHECK_STR(back, "Say \"hi\"\\ then\nstop\t\x01 caf\xc3\xa9");
}

static void test_response_create(void)
{
    char out[128];
    CHECK(rt_event_response_create(out, sizeof(out), NULL) > 0);
    CHECK_STR(out, "{\"type\":\"response.create\"}");
    rt_event_response_create(out, sizeof(out), "Greet the user.");
    CHECK_STR(out, "{\"type\":\"response.create\",\"response\":{\"instructions\":\"Greet the user.\"}}");
}

static void test_too_small_buffer(void)
{
    char out[40];
    CHECK(rt_event_session_update(out, sizeof(out), "gpt-realtime", "a long set of instructions that cannot fit", "alloy") == -1);
    CHECK(rt_event_response_create(out, 10, NULL) == -1);
    CHECK(rt_event_response_create(out, 0, NULL) == -1);
}

static void test_type_parser(void)
{
    char type[64];
    const char *ev = "{\"event_id\":\"e1\",\"session\":{\"type\":\"realtime\",\"tools\":[{\"type\":\"x\"}]},"
                     "\"type\":\"session.updated\"}";
    CHECK(rt_event_type(ev, strlen(ev), type, sizeof(type)));
    CHECK_STR(type, "session.updated");   /* not the nested session.type */
    const char *spaced = " {\n \"type\" : \"response.done\" , \"n\": [1, 2.5e3, true, null]}";
    CHECK(rt_event_type(spaced, strlen(spaced), type, sizeof(type)));
    CHECK_STR(type, "response.done");
    const char *escaped = "{\"type\":\"a\\u00e9\\ud83d\\ude00\\/b\"}";
    CHECK(rt_event_type(escaped, strlen(escaped), type, sizeof(type)));
    CHECK_STR(type, "a\xc3\xa9\xf0\x9f\x98\x80/b");
}

static void test_parser_rejects(void)
{
    char type[8];
    const char *bad[] = {"", "[]", "{\"type\":1}", "{\"type\":\"unterminated", "{\"a\":}", "{\"kind\":\"x\"}",
                         "{\"a\":\"\\q\",\"type\":\"x\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!rt_event_type(bad[i], strlen(bad[i]), type, sizeof(type)));
    }
    /* a value longer than the buffer is cut, NUL-terminated */
    const char *longer = "{\"type\":\"conversation.item.created\"}";
    CHECK(rt_event_type(longer, strlen(longer), type, sizeof(type)));
    CHECK_STR(type, "convers");
    /* not NUL-terminated input: the length bounds the scan */
    const char cut[] = {'{', '"', 't', 'y', 'p', 'e', '"', ':', '"', 'x', '"', '}', 'Z'};
    CHECK(rt_event_type(cut, 12, type, sizeof(type)));
    CHECK(!rt_event_type(cut, 10, type, sizeof(type)));
}

static void test_error_message(void)
{
    const char *ev = "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Bad voice\"}}";
    const char *path[] = {"error", "message"};
    char msg[64];
    CHECK(rt_json_find_string(ev, strlen(ev), path, 2, msg, sizeof(msg)));
    CHECK_STR(msg, "Bad voice");
    const char *missing[] = {"error", "code"};
    CHECK(!rt_json_find_string(ev, strlen(ev), missing, 2, msg, sizeof(msg)));
}

int main(void)
{
    RUN(test_session_update_shape);
    RUN(test_escaping);
    RUN(test_response_create);
    RUN(test_too_small_buffer);
    RUN(test_type_parser);
    RUN(test_parser_rejects);
    RUN(test_error_message);
    RT_TEST_DONE();
}
