#include "rt_events.h"

#include <stdint.h>
#include <string.h>

static bool put_raw(char *out, size_t cap, size_t *len, const char *text, size_t n)
{
    if (*len + n >= cap) {
        return false;
    }
    memcpy(out + *len, text, n);
    *len += n;
    out[*len] = '\0';
    return true;
}

static bool put(char *out, size_t cap, size_t *len, const char *text)
{
    return put_raw(out, cap, len, text, strlen(text));
}

bool rt_json_put_string(char *out, size_t cap, size_t *len, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    if (!put(out, cap, len, "\"")) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char esc[7];
        size_t n = 0;
        switch (*p) {
        case '"': esc[n++] = '\\'; esc[n++] = '"'; break;
        case '\\': esc[n++] = '\\'; esc[n++] = '\\'; break;
        case '\n': esc[n++] = '\\'; esc[n++] = 'n'; break;
        case '\r': esc[n++] = '\\'; esc[n++] = 'r'; break;
        case '\t': esc[n++] = '\\'; esc[n++] = 't'; break;
        case '\b': esc[n++] = '\\'; esc[n++] = 'b'; break;
        case '\f': esc[n++] = '\\'; esc[n++] = 'f'; break;
        default:
            if (*p < 0x20) {
                esc[n++] = '\\'; esc[n++] = 'u'; esc[n++] = '0'; esc[n++] = '0';
                esc[n++] = hex[*p >> 4]; esc[n++] = hex[*p & 0xF];
            } else {
                esc[n++] = (char)*p;  /* UTF-8 bytes pass through unchanged */
            }
        }
        if (!put_raw(out, cap, len, esc, n)) {
            return false;
        }
    }
    return put(out, cap, len, "\"");
}

int rt_event_session_update(char *out, size_t cap, const char *model, const char *instructions, const char *voice)
{
    size_t len = 0;
    if (cap == 0) {
        return -1;
    }
    out[0] = '\0';
    bool ok = put(out, cap, &len, "{\"type\":\"session.update\",\"session\":{\"type\":\"realtime\"");
    if (ok && model && *model) {
        ok = put(out, cap, &len, ",\"model\":") && rt_json_put_string(out, cap, &len, model);
    }
    if (ok && instructions && *instructions) {
        ok = put(out, cap, &len, ",\"instructions\":") && rt_json_put_string(out, cap, &len, instructions);
    }
    if (ok && voice && *voice) {
        ok = put(out, cap, &len, ",\"audio\":{\"output\":{\"voice\":") && rt_json_put_string(out, cap, &len, voice) &&
             put(out, cap, &len, "}}");
    }
    ok = ok && put(out, cap, &len, "}}");
    return ok ? (int)len : -1;
}

int rt_event_response_create(char *out, size_t cap, const char *instructions)
{
    size_t len = 0;
    if (cap == 0) {
        return -1;
    }
    out[0] = '\0';
    bool ok = put(out, cap, &len, "{\"type\":\"response.create\"");
    if (ok && instructions && *instructions) {
        ok = put(out, cap, &len, ",\"response\":{\"instructions\":") && rt_json_put_string(out, cap, &len, instructions) &&
             put(out, cap, &len, "}");
    }
    ok = ok && put(out, cap, &len, "}");
    return ok ? (int)len : -1;
}

/* ---- parser: a bounded scanner over one JSON value at a time ---- */

typedef struct {
    const char *p;
    const char *end;
} scan_t;

static void skip_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        s->p++;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *out, size_t cap, size_t n, uint32_t cp)
{
    char tmp[4];
    size_t k;
    if (cp < 0x80) {
        tmp[0] = (char)cp; k = 1;
    } else if (cp < 0x800) {
        tmp[0] = (char)(0xC0 | (cp >> 6)); tmp[1] = (char)(0x80 | (cp & 0x3F)); k = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (char)(0xE0 | (cp >> 12)); tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[2] = (char)(0x80 | (cp & 0x3F)); k = 3;
    } else {
        tmp[0] = (char)(0xF0 | (cp >> 18)); tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[3] = (char)(0x80 | (cp & 0x3F)); k = 4;
    }
    for (size_t i = 0; i < k && out && n + 1 < cap; i++) {
        out[n++] = tmp[i];
    }
    return n;
}

static bool read_hex4(scan_t *s, uint32_t *v)
{
    if (s->end - s->p < 4) {
        return false;
    }
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s->p[i]);
        if (h < 0) {
            return false;
        }
        *v = (*v << 4) | (uint32_t)h;
    }
    s->p += 4;
    return true;
}

/* At an opening quote: parse a string, unescaping into out (may be NULL). */
static bool scan_string(scan_t *s, char *out, size_t cap)
{
    size_t n = 0;
    if (s->p >= s->end || *s->p != '"') {
        return false;
    }
    s->p++;
    while (s->p < s->end) {
        char c = *s->p++;
        if (c == '"') {
            if (out && cap) {
                out[n] = '\0';
            }
            return true;
        }
        if ((unsigned char)c < 0x20) {
            return false;
        }
        if (c != '\\') {
            if (out && n + 1 < cap) {
                out[n++] = c;
            }
            continue;
        }
        if (s->p >= s->end) {
            return false;
        }
        char e = *s->p++;
        uint32_t cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!read_hex4(s, &cp)) {
                return false;
            }
            if (cp >= 0xD800 && cp < 0xDC00 && s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u') {
                scan_t save = *s;
                uint32_t lo;
                s->p += 2;
                if (read_hex4(s, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    *s = save;
                }
            }
            break;
        default:
            return false;
        }
        n = put_utf8(out, cap, n, cp);
    }
    return false;
}

static bool skip_value(scan_t *s, int depth);

static bool skip_container(scan_t *s, char close, int depth)
{
    bool object = close == '}';
    s->p++;  /* opening bracket */
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return true;
    }
    while (s->p < s->end) {
        skip_ws(s);
        if (object) {
            if (!scan_string(s, NULL, 0)) {
                return false;
            }
            skip_ws(s);
            if (s->p >= s->end || *s->p++ != ':') {
                return false;
            }
        }
        if (!skip_value(s, depth + 1)) {
            return false;
        }
        skip_ws(s);
        if (s->p >= s->end) {
            return false;
        }
        char c = *s->p++;
        if (c == close) {
            return true;
        }
        if (c != ',') {
            return false;
        }
    }
    return false;
}

static bool skip_value(scan_t *s, int depth)
{
    if (depth > 32) {
        return false;
    }
    skip_ws(s);
    if (s->p >= s->end) {
        return false;
    }
    switch (*s->p) {
    case '"':
        return scan_string(s, NULL, 0);
    case '{':
        return skip_container(s, '}', depth);
    case '[':
        return skip_container(s, ']', depth);
    default: {
        const char *start = s->p;
        while (s->p < s->end && strchr(",}] \t\r\n", *s->p) == NULL) {
            s->p++;
        }
        return s->p > start;
    }
    }
}

/* Scan the object at s->p for `key`; on success s->p is at the key's value. */
static bool find_key(scan_t *s, const char *key)
{
    char name[64];
    skip_ws(s);
    if (s->p >= s->end || *s->p != '{') {
        return false;
    }
    s->p++;
    while (s->p < s->end) {
        skip_ws(s);
        if (s->p < s->end && *s->p == '}') {
            return false;
        }
        if (!scan_string(s, name, sizeof(name))) {
            return false;
        }
        skip_ws(s);
        if (s->p >= s->end || *s->p++ != ':') {
            return false;
        }
        skip_ws(s);
        if (strcmp(name, key) == 0) {
            return true;
        }
        if (!skip_value(s, 1)) {
            return false;
        }
        skip_ws(s);
        if (s->p >= s->end) {
            return false;
        }
        char c = *s->p++;
        if (c == '}') {
            return false;
        }
        if (c != ',') {
            return false;
        }
    }
    return false;
}

bool rt_json_find_string(const char *json, size_t len, const char *const *path, size_t depth, char *out, size_t cap)
{
    if (json == NULL || path == NULL || depth == 0 || depth > 4 || out == NULL || cap == 0) {
        return false;
    }
    out[0] = '\0';
    scan_t s = {json, json + len};
    for (size_t i = 0; i < depth; i++) {
        if (!find_key(&s, path[i])) {
            return false;
        }
    }
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '"') {
        return false;
    }
    return scan_string(&s, out, cap);
}

bool rt_event_type(const char *json, size_t len, char *out, size_t cap)
{
    static const char *const path[] = {"type"};
    return rt_json_find_string(json, len, path, 1, out, cap);
}
