/* Realtime API data-channel events: JSON builders for the events we send, and a small parser that
 * finds string values (the event `type`, an error message) in the events we receive.
 *
 * Why our own: the firmware sends two fixed-shape events and only needs the type of what comes
 * back, so a full JSON library is not needed; but user text (instructions) goes into JSON, so
 * escaping must be exact (quotes, backslashes, control characters), and the parser must not be
 * fooled by a nested "type" key (session.type) that comes before the event's own.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Append `text` as a JSON string (with quotes) to out[*len..cap); returns false if it does not fit. */
bool rt_json_put_string(char *out, size_t cap, size_t *len, const char *text);

/* {"type":"session.update","session":{"type":"realtime","model":...,"instructions":...,
 *  "audio":{"output":{"voice":...}}}} (the GA session object). `model` is the one the call was created
 * with (?model=): the API refuses a session.update that changes it. Empty model, instructions or voice
 * are left out. Returns the length, or -1 if `cap` is too small. */
int rt_event_session_update(char *out, size_t cap, const char *model, const char *instructions, const char *voice);

/* {"type":"response.create"} or, with instructions, {"type":"response.create","response":{"instructions":...}} */
int rt_event_response_create(char *out, size_t cap, const char *instructions);

/* Find the string value at `path` (keys from the top-level object down, depth 1..4) in `json`
 * (len bytes, need not be NUL-terminated); unescapes it into out (always NUL-terminated, cut at
 * cap-1). Returns true when found and it is a string. Malformed JSON returns false. */
bool rt_json_find_string(const char *json, size_t len, const char *const *path, size_t depth, char *out, size_t cap);

/* The top-level "type" of an event, e.g. "session.created". */
bool rt_event_type(const char *json, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
