/* Session tasks. libpeer API as pinned in deps.toml (sepfy/libpeer src/peer_connection.h):
 * peer_init, peer_connection_create(PeerConfiguration), peer_connection_onicecandidate,
 * peer_connection_oniceconnectionstatechange, peer_connection_ondatachannel, peer_connection_create_offer,
 * peer_connection_set_remote_description, peer_connection_loop, peer_connection_create_datachannel,
 * peer_connection_lookup_sid, peer_connection_datachannel_send_sid, peer_connection_send_audio,
 * peer_connection_close, peer_connection_destroy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"
#if !CONFIG_IDF_TARGET_LINUX
#include "esp_random.h"
#include "esp_task_wdt.h"
#define WDT_ADD() esp_task_wdt_add(NULL)
#define WDT_RESET() esp_task_wdt_reset()
#else
#define WDT_ADD() ((void)0)
#define WDT_RESET() ((void)0)
#endif
#if CONFIG_SPIRAM
#include "esp_heap_caps.h"
#endif

#include "peer.h"
#include "rt_dtls.h"
#include "rt_slog.h"

#include "rt_audio_frame.h"
#include "rt_events.h"
#include "rt_link.h"
#include "rt_opus.h"
#include "rt_session.h"
#include "rt_signal.h"

static const char *TAG = "rt_session";

/* Every line of the session goes through the log cap (rt_slog.h), libpeer's too. */
#define SLOGE(...) rt_slog(ESP_LOG_ERROR, TAG, __VA_ARGS__)
#define SLOGW(...) rt_slog(ESP_LOG_WARN, TAG, __VA_ARGS__)
#define SLOGI(...) rt_slog(ESP_LOG_INFO, TAG, __VA_ARGS__)

#define CHANNEL_LABEL "oai-events"
#define SDP_MAX 8192
#define SIGNAL_TIMEOUT_MS 15000
#define LOOP_MS 5
#define PKT_RING_BYTES 4096
#define EVENT_MAX 4608   /* session.update with the longest instructions NVS can hold */

typedef struct {
    rt_session_params_t p;
    PeerConnection *pc;
    rt_link_t link;
    rt_opus_dec_t *dec;
    rt_ring_t packets;               /* encoder task -> peer task: [u16 length][opus packet] */
    uint8_t packet_storage[PKT_RING_BYTES];
    volatile bool media_up;          /* read by the encoder task */
    bool offer_ready, offer_taken, channel_opened, lost, heard;
    uint32_t reconnect_ms;
    uint32_t hold_ms;                /* relay refused the token: wait this long, not the back-off */
    uint32_t media_since_ms;         /* when DTLS came up (the no-media watchdog counts from here or the last packet) */
    char offer[SDP_MAX];
    char answer[SDP_MAX];
    char url[RT_URL_MAX + 96];
} session_t;

static session_t *s;

/* libpeer's state values mapped explicitly (never cast): a re-pin that reorders them still logs right.
 * libpeer's CONNECTED is ICE only; its COMPLETED is DTLS done with SRTP keyed (patch_dtls.cmake). */
static rt_peer_state_t map_state(PeerConnectionState state)
{
    switch (state) {
    case PEER_CONNECTION_NEW: return RT_PEER_NEW;
    case PEER_CONNECTION_CHECKING: return RT_PEER_CHECKING;
    case PEER_CONNECTION_CONNECTED: return RT_PEER_ICE_CONNECTED;
    case PEER_CONNECTION_COMPLETED: return RT_PEER_CONNECTED;
    case PEER_CONNECTION_FAILED: return RT_PEER_FAILED;
    case PEER_CONNECTION_DISCONNECTED: return RT_PEER_DISCONNECTED;
    default: return RT_PEER_CLOSED;
    }
}

static void on_state(PeerConnectionState state, void *user)
{
    session_t *self = user;
    rt_peer_state_t mapped = map_state(state);
    uint32_t delay = 0;
    if (mapped == RT_PEER_FAILED) {   /* one line: the state and why (DTLS reason from rt_dtls, else ICE) */
        const char *why = rt_dtls_failure();
        if (self->link.state == RT_PEER_ICE_CONNECTED && why[0] == '\0') {
            why = "DTLS up but no SRTP keys";
        }
        SLOGE("peer state: FAILED: %s; closing the peer", why[0] ? why : "ICE: no candidate pair answered");
    } else {
        SLOGI("peer state: %s", rt_peer_state_name(mapped));
    }
    switch (rt_link_on_state(&self->link, mapped, &delay)) {
    case RT_LINK_MEDIA_UP:
        self->media_since_ms = esp_log_timestamp();
        self->media_up = true;
        break;
    case RT_LINK_RECONNECT:
        self->media_up = false;
        self->lost = true;
        self->reconnect_ms = delay;
        break;
    default:
        break;
    }
}

/* The local description: from create_offer's return value (newer libpeer) or the onicecandidate
 * callback (older); whichever comes first is POSTed once, from the loop, never inside a callback. */
static void take_offer(session_t *self, const char *sdp)
{
    if (self->offer_taken || sdp == NULL || sdp[0] == '\0') {
        return;
    }
    snprintf(self->offer, sizeof(self->offer), "%s", sdp);
    self->offer_taken = true;
    self->offer_ready = true;
}

static void on_offer(char *sdp, void *user)
{
    take_offer(user, sdp);
}

static void send_event(session_t *self, const char *json, int len)
{
    uint16_t sid = 0;
    if (peer_connection_lookup_sid(self->pc, CHANNEL_LABEL, &sid) != 0) {
        sid = 0;
    }
    if (peer_connection_datachannel_send_sid(self->pc, (char *)json, (size_t)len, sid) < 0) {
        SLOGW("could not queue a %d-byte event on %s", len, CHANNEL_LABEL);
    }
}

static void greet(session_t *self)
{
    static char json[EVENT_MAX];
    int len = 0;
    if (rt_config_mode(self->p.cfg) == RT_MODE_RELAY) {
        /* the relay set voice and instructions (rtflash.toml) when it created the call: keep them */
    } else if ((len = rt_event_session_update(json, sizeof(json), self->p.cfg->model, self->p.cfg->instructions,
                                                self->p.cfg->voice)) > 0) {
        send_event(self, json, len);
    } else {
        SLOGE("session.update does not fit in %d bytes; instructions not sent", EVENT_MAX);
    }
    len = rt_event_response_create(json, sizeof(json), CONFIG_RT_GREETING);
    if (len > 0) {
        send_event(self, json, len);
    }
}

static void on_channel_open(void *user)
{
    session_t *self = user;
    /* The SCTP association is up: create our channel (DCEP open), then greet once per connection. */
    if (peer_connection_create_datachannel(self->pc, DATA_CHANNEL_RELIABLE, 0, 0, (char *)CHANNEL_LABEL, (char *)"") < 0) {
        SLOGE("could not open the %s data channel", CHANNEL_LABEL);
        return;
    }
    SLOGI("datachannel open: " CHANNEL_LABEL);
    self->channel_opened = true;
    if (rt_link_on_channel_open(&self->link)) {
        greet(self);
    }
}

static void on_channel_close(void *user)
{
    (void)user;
    SLOGW("datachannel closed: " CHANNEL_LABEL);
}

static void on_message(char *msg, size_t len, void *user, uint16_t sid)
{
    (void)user;
    (void)sid;
    char type[64];
    if (!rt_event_type(msg, len, type, sizeof(type))) {
        SLOGW("event without a type (%u bytes)", (unsigned)len);
        return;
    }
    SLOGI("event: %s", type);
    if (strcmp(type, "error") == 0) {
        static const char *const path[] = {"error", "message"};
        char message[160];
        if (rt_json_find_string(msg, len, path, 2, message, sizeof(message))) {
            SLOGE("error from the API: %s", message);
        }
    }
}

static void on_audio(uint8_t *data, size_t size, void *user)
{
    session_t *self = user;
    static int16_t pcm[RT_FRAME_MAX_SAMPLES * 3];   /* up to 60 ms per packet */
    if (!self->heard) {   /* once per call: time to first audio (bench/session_bench.py reads it) */
        self->heard = true;
        SLOGI("audio: first packet from the peer (%u bytes of Opus)", (unsigned)size);
    }
    int n = rt_opus_decode(self->dec, data, size, pcm, sizeof(pcm) / sizeof(pcm[0]));
    if (n > 0) {
        rt_ring_write(self->p.spk, pcm, (size_t)n * sizeof(int16_t));
    }
}

/* At least one tick: with CONFIG_FREERTOS_HZ=100 (ESP-IDF's default) pdMS_TO_TICKS(5) is 0, and
 * vTaskDelay(0) only yields to tasks of equal priority, so a polling loop would starve lower ones
 * (the encoder task, priority 6, starved the peer task and its HTTP request). */
static TickType_t ticks(uint32_t ms)
{
    TickType_t t = pdMS_TO_TICKS(ms);
    return t > 0 ? t : 1;
}

/* Block (in watchdog-sized steps) for `ms`. */
static void sleep_ms(uint32_t ms)
{
    while (ms > 0) {
        uint32_t step = ms > 1000 ? 1000 : ms;
        vTaskDelay(ticks(step));
        WDT_RESET();
        ms -= step;
    }
}

static void drain_packets(session_t *self)
{
    uint8_t packet[RT_OPUS_MAX_PACKET];
    uint16_t len;
    while (rt_ring_read_all(&self->packets, &len, sizeof(len))) {
        if (len > sizeof(packet) || !rt_ring_read_all(&self->packets, packet, len)) {
            break;
        }
        if (self->media_up) {
            peer_connection_send_audio(self->pc, packet, len);
        }
    }
}

static bool post_offer(session_t *self)
{
    rt_signal_info_t info;
    SLOGI("sending the SDP offer (%u bytes) to %s", (unsigned)strlen(self->offer), self->url);
    rt_signal_result_t rc = rt_signal_post_offer(self->url, rt_config_bearer(self->p.cfg), self->offer, self->answer,
                                                 sizeof(self->answer), SIGNAL_TIMEOUT_MS, &info);
    WDT_RESET();
    if (rc != RT_SIGNAL_OK) {
        char refused[200];
        self->hold_ms = rt_config_refused_hold_ms(self->p.cfg, info.status, refused, sizeof(refused));
        if (self->hold_ms == 0 && rc == RT_SIGNAL_HTTP_STATUS && info.status == 401) {
            /* direct mode: a rejected API key stays rejected, retrying soon only repeats the refusal */
            self->hold_ms = RT_REFUSED_HOLD_MS;
            snprintf(refused, sizeof(refused), "%.100s; provision a valid key (`rtflash provision`) and reset; "
                     "next try in %u min", info.why, (unsigned)(RT_REFUSED_HOLD_MS / 60000u));
        }
        SLOGE("signalling failed: %s", self->hold_ms ? refused : info.why);
        return false;
    }
    SLOGI("SDP answer received (HTTP %d, %u bytes)", info.status, (unsigned)strlen(self->answer));
#if RT_LIBPEER_SDP_TYPE
    peer_connection_set_remote_description(self->pc, self->answer, SDP_TYPE_ANSWER);
#else
    peer_connection_set_remote_description(self->pc, self->answer);
#endif
    return true;
}

/* The no-media watchdog: nothing received for CONFIG_RT_MEDIA_TIMEOUT_S since DTLS came up or the
 * last packet (libpeer time-stamps each one, rt_peer_rx_mark). */
static bool media_gone(const session_t *self)
{
    uint32_t now = esp_log_timestamp();
    uint32_t rx = rt_peer_rx_ms();
    uint32_t since = (int32_t)(rx - self->media_since_ms) > 0 ? rx : self->media_since_ms;
    return now - since > (uint32_t)CONFIG_RT_MEDIA_TIMEOUT_S * 1000u;
}

/* One connection: create, offer, signal, run until lost; returns the delay before the next one. */
static uint32_t run_once(session_t *self)
{
    PeerConfiguration config = {
        .ice_servers = {{0}},
        .audio_codec = CODEC_OPUS,
        .video_codec = CODEC_NONE,
        .datachannel = DATA_CHANNEL_STRING,
        .onaudiotrack = on_audio,
        .onvideotrack = NULL,
        .on_request_keyframe = NULL,
        .user_data = self,
    };
    rt_link_restart(&self->link);
    rt_dtls_clear_failure();
    self->offer_ready = self->offer_taken = self->channel_opened = self->lost = self->heard = false;
    self->pc = peer_connection_create(&config);
    if (self->pc == NULL) {
        SLOGE("peer_connection_create failed (out of memory?)");
        return rt_link_on_signal_error(&self->link);
    }
    peer_connection_oniceconnectionstatechange(self->pc, on_state);
    peer_connection_onicecandidate(self->pc, on_offer);
    peer_connection_ondatachannel(self->pc, on_message, on_channel_open, on_channel_close);
#if RT_LIBPEER_SDP_TYPE
    take_offer(self, peer_connection_create_offer(self->pc));
#else
    peer_connection_create_offer(self->pc);
#endif
    static bool identity_told;
    if (!identity_told && rt_dtls_local_fingerprint()[0]) {
        identity_told = true;
        SLOGI("DTLS identity: ECDSA P-256, made in %u ms, kept for this boot; sha-256 %s",
              (unsigned)rt_dtls_identity_ms(), rt_dtls_local_fingerprint());
    }
    uint32_t delay = 0;
    for (;;) {
        peer_connection_loop(self->pc);
        WDT_RESET();
        if (self->offer_ready) {
            self->offer_ready = false;
            if (!post_offer(self)) {
                delay = self->hold_ms ? self->hold_ms : rt_link_on_signal_error(&self->link);
                break;
            }
        }
        drain_packets(self);
        if (self->media_up && media_gone(self)) {
            SLOGE("peer state: CLOSED: nothing from the peer for %d s (no RTP, RTCP or DTLS); closing the peer",
                  CONFIG_RT_MEDIA_TIMEOUT_S);
            if (rt_link_on_state(&self->link, RT_PEER_CLOSED, &self->reconnect_ms) == RT_LINK_RECONNECT) {
                self->lost = true;
            }
            self->media_up = false;
        }
        if (self->lost) {
            delay = self->reconnect_ms;
            break;
        }
        /* With media up, libpeer's loop waits for a packet in select() (one tick at most, it yields) and
         * handles at most one received packet per call: a tick of sleep on top halves how many it can
         * take per second, so RTP + RTCP + SCTP queue up in the socket as standing speaker latency. */
        if (!self->media_up) {
            vTaskDelay(ticks(LOOP_MS));
        }
    }
    self->media_up = false;
    peer_connection_close(self->pc);
    peer_connection_destroy(self->pc);
    self->pc = NULL;
    return delay;
}

static void peer_task(void *arg)
{
    session_t *self = arg;
    WDT_ADD();
    for (;;) {
        uint32_t delay = run_once(self);
        SLOGW("session ended; reconnecting in %u ms", (unsigned)delay);
        sleep_ms(delay);
    }
}

static void encoder_task(void *arg)
{
    session_t *self = arg;
    const size_t samples = rt_frame_samples(self->p.rate, RT_FRAME_MS);
    static int16_t pcm[RT_FRAME_MAX_SAMPLES];
    uint8_t packet[2 + RT_OPUS_MAX_PACKET];
    int err = 0;
    rt_opus_enc_t *enc = rt_opus_enc_new(self->p.rate, CONFIG_RT_OPUS_BITRATE, CONFIG_RT_OPUS_COMPLEXITY, &err);
    if (enc == NULL) {
        SLOGE("Opus encoder: %s", rt_opus_error(err));
        vTaskDelete(NULL);
        return;
    }
    WDT_ADD();
    for (;;) {
        WDT_RESET();
        if (!rt_ring_read_all(self->p.mic, pcm, samples * sizeof(int16_t))) {
            vTaskDelay(ticks(5));
            continue;
        }
        if (!self->media_up) {
            continue;   /* not connected: drop mic audio so it never piles up */
        }
        int n = rt_opus_encode(enc, pcm, samples, packet + 2, RT_OPUS_MAX_PACKET);
        if (n <= 0) {
            SLOGW("Opus encode: %s", rt_opus_error(n));
            continue;
        }
        uint16_t len = (uint16_t)n;
        memcpy(packet, &len, sizeof(len));
        rt_ring_write_all(&self->packets, packet, sizeof(len) + (size_t)n);
    }
}

static bool spawn(const char *name, TaskFunction_t fn, uint32_t stack, UBaseType_t prio, void *arg)
{
#if CONFIG_SPIRAM
    return xTaskCreatePinnedToCoreWithCaps(fn, name, stack, arg, prio, NULL, 0, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT) ==
           pdPASS;
#else
    return xTaskCreate(fn, name, stack, arg, prio, NULL) == pdPASS;
#endif
}

bool rt_session_start(const rt_session_params_t *params)
{
    if (s != NULL) {
        return true;
    }
    rt_slog_init();
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        SLOGE("out of memory for the session");
        return false;
    }
    s->p = *params;
    rt_ring_init(&s->packets, s->packet_storage, sizeof(s->packet_storage));
#if !CONFIG_IDF_TARGET_LINUX
    rt_link_init(&s->link, esp_random());
#else
    rt_link_init(&s->link, (uint32_t)xTaskGetTickCount() ^ 0x5A5A1234u);
#endif
    if (rt_config_offer_url(s->p.cfg, s->url, sizeof(s->url)) < 0) {   /* relay_url, or api_url?model= */
        SLOGE("the offer URL does not fit in %u bytes", (unsigned)sizeof(s->url));
        return false;
    }
    int err = 0;
    s->dec = rt_opus_dec_new(s->p.rate, &err);
    if (s->dec == NULL) {
        SLOGE("Opus decoder: %s", rt_opus_error(err));
        return false;
    }
    if (peer_init() != 0) {
        SLOGE("libpeer init failed");
        return false;
    }
    return spawn("rt_peer", peer_task, CONFIG_RT_PEER_TASK_STACK, 5, s) &&
           spawn("rt_opus_enc", encoder_task, CONFIG_RT_ENCODER_TASK_STACK, 6, s);
}
