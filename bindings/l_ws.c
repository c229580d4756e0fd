/* l_ws.c - jararaca.core.ws: WebSocket connections (core/ws.h) and the
 * room manager's fan-out, as seen from Lua (lua/jararaca/ws/).
 *
 *   local s, msg, code = ws.adopt(req, limits [, protocol])  take over the
 *       connection of req (a jararaca.core.http request handle, an
 *       unanswered valid upgrade request); limits: max_message_size,
 *       max_send_queue (bytes), ping_interval_ms, idle_timeout_ms (absent:
 *       core's defaults); protocol: the Sec-WebSocket-Protocol of the 101.
 *       -> socket | nil, msg, "invalid" | "closed" | "nomem" | "error"
 *   s:receive([timeout])  message, "text" | "binary"
 *                         | nil, msg, "closed" | "timeout" | "cancelled"
 *                         | true (woken by something else: call again)
 *   s:unpark()            after "timeout", "cancelled" or true (see below)
 *   s:send(data, is_text) true | nil, msg, "closed" | "full" | "invalid" | "nomem"
 *   s:close(code, reason) true | nil, msg, "closed"; raises for a code or
 *                         reason that cannot be sent
 *   s:close_info()        code, reason once closed; nil while open
 *   s:queued()            unsent bytes
 *   ws.join(s, room) ws.leave(s, room) ws.add(s) ws.remove(s)
 *   ws.broadcast(data, is_text) -> local recipients | nil, msg, "invalid" (text not UTF-8)
 *   ws.send_rooms({ room, ... }, data, is_text) -> local recipients | nil, msg, "invalid"
 *       (both through the hub, core/wshub.h: one shared frame for the local
 *       recipients, one envelope to the backplane for the other instances)
 *   ws.start_backplane(spec, channel)  "none" | "local" | "redis://..." -> kind | nil, msg, "invalid"
 *   ws.backplane_stats()  { kind, up, published, received, dropped } | nil
 *   ws.shutdown()         the server stops: every connection closes with 1001
 *                         (then the backplane stops)
 *   ws.stats()            { connections, members, rooms, opened, received, sent, slow_closed }
 *   ws.room_size(room)    members in room
 *   ws.utf8_valid(s)      is s valid UTF-8 (what a text message must be)?
 *
 * One context per process, made with the first adopted connection on the
 * process's loop. A socket's inbox is here, in C: on_message appends to it
 * (or hands the message straight to a task parked in receive), and when it
 * holds INBOX_MAX messages or twice max_message_size bytes the connection
 * stops reading (jr_ws_pause) until the handler catches up: a client cannot
 * make the server buffer more than that, the TCP window pushes back.
 *
 * receive parks with jr_waiter_park_timed, so a timeout and a cancel (a
 * j.timeout around it) resume it through the scheduler; the Lua wrapper
 * then calls s:unpark() before doing anything else, so a later message is
 * never delivered into a task waiting elsewhere.
 *
 * Lifetime: the socket userdata is the connection's user pointer and is
 * anchored in the registry from adopt until on_close, so core never holds a
 * pointer to collected memory; after on_close the userdata is plain data
 * (close code, reason, undelivered messages) freed by the collector.
 */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "l_http.h"
#include "l_ws.h"
#include "log.h"
#include "scheduler.h"
#include "vm.h"
#include "ws.h"
#include "wsbackplane.h"
#include "wshub.h"

#define INBOX_MAX 64 /* messages waiting for receive before reads pause */

static char k_sock_mt;

typedef struct ws_msg {
    struct ws_msg *next;
    size_t len;
    int is_text;
    char data[];
} ws_msg;

typedef struct {
    jr_ws_conn *conn;      /* NULL once on_close ran */
    ws_msg *head, *tail;   /* the inbox */
    size_t nmsgs, nbytes, max_bytes;
    int paused;            /* reads stopped because the inbox is full */
    int closed;
    int closing;           /* the code we closed with (jr_ws_close), 0 before */
    int close_code;
    size_t rlen;
    char *reason;          /* malloc'd at close (at most 123 bytes): idle sockets carry none */
    int self_ref;          /* anchors the userdata while the connection is open */
    jr_waiter waiter;      /* the task in receive() */
} sock_ud;

/* Keep a copy of a close reason (a reason that cannot be kept is dropped:
 * it is informative only). */
static void keep_reason(sock_ud *s, const char *reason, size_t rlen)
{
    if (rlen > 123) rlen = 123;
    free(s->reason);
    s->reason = NULL;
    s->rlen = 0;
    if (!rlen || !(s->reason = malloc(rlen))) return;
    memcpy(s->reason, reason, rlen);
    s->rlen = rlen;
}

static jr_ws_ctx *g_ctx;
static int g_stopping;
static jr_wshub *g_hub;
static jr_wsbp *g_bp;

/* ---- the room manager: the hub (core/wshub.h; members: the connections) ---- */

jr_wshub *jr_l_ws_hub(void)
{
    if (!g_hub) g_hub = jr_wshub_new(NULL);
    return g_hub;
}

static jr_wshub *hub(lua_State *L)
{
    jr_wshub *h = jr_l_ws_hub();
    if (!h) luaL_error(L, "out of memory (WebSocket hub)");
    return h;
}

/* ---- callbacks from core/ws.c ---- */

static void unanchor(sock_ud *s)
{
    if (s->self_ref == LUA_NOREF) return;
    luaL_unref(jr_vm_global->L, LUA_REGISTRYINDEX, s->self_ref);
    s->self_ref = LUA_NOREF;
}

static int push_closed(lua_State *L, const sock_ud *s)
{
    lua_pushnil(L);
    lua_pushfstring(L, "the WebSocket connection is closed (code %d)", s->close_code);
    lua_pushliteral(L, "closed");
    return 3;
}

static void on_message(jr_ws_conn *conn, const char *data, size_t len, int is_text, void *ud)
{
    (void)ud;
    sock_ud *s = jr_ws_conn_user(conn);
    if (!s || s->closed) return;
    s->conn = conn;
    if (!s->head) {
        lua_State *co = jr_waiter_thread(&s->waiter);
        if (co) {
            lua_pushlstring(co, data, len);
            if (is_text) lua_pushliteral(co, "text");
            else lua_pushliteral(co, "binary");
            jr_waiter_resume(&s->waiter, 2);
            return;
        }
    }
    ws_msg *m = malloc(sizeof *m + len);
    if (!m) {
        jr_ws_close(conn, 1011, "out of memory", 13);
        return;
    }
    m->next = NULL;
    m->len = len;
    m->is_text = is_text;
    memcpy(m->data, data, len);
    if (s->tail) s->tail->next = m;
    else s->head = m;
    s->tail = m;
    s->nmsgs++;
    s->nbytes += len;
    if (!s->paused && (s->nmsgs >= INBOX_MAX || s->nbytes >= s->max_bytes)) {
        s->paused = 1;
        jr_ws_pause(conn);
    }
}

static void on_close(jr_ws_conn *conn, int code, const char *reason, size_t rlen, void *ud)
{
    (void)ud;
    sock_ud *s = jr_ws_conn_user(conn);
    if (!s) return;
    jr_ws_conn_set_user(conn, NULL);
    if (g_hub) jr_wshub_remove(g_hub, conn);
    s->closed = 1;
    s->conn = NULL;
    s->close_code = code;
    /* Our own close: core gives no reason back (we know it: s_close kept it). */
    if (!(s->closing && code == s->closing && rlen == 0)) keep_reason(s, reason, rlen);
    /* Unanchor before waking: once woken, the task may run (and drop its
     * last reference) at once; its own stack keeps s alive until then. */
    unanchor(s);
    lua_State *co = jr_waiter_thread(&s->waiter);
    if (co) jr_waiter_resume(&s->waiter, push_closed(co, s));
}

static const jr_ws_callbacks k_callbacks = {NULL, on_message, on_close, NULL};

/* ---- adopt ---- */

static int opt_number(lua_State *L, int t, const char *name, double max, double *out)
{
    lua_getfield(L, t, name);
    int set = !lua_isnil(L, -1);
    if (set) {
        double v = lua_tonumber(L, -1);
        if (!lua_isnumber(L, -1) || !(v >= 0 && v <= max))
            luaL_error(L, "ws.adopt: option %s must be a number in 0..%.0f", name, max);
        *out = v;
    }
    lua_pop(L, 1);
    return set;
}

static void read_config(lua_State *L, jr_ws_config *cfg)
{
    double v;
    const double big = 4294967295.0; /* fits every field, size_t included */
    if (opt_number(L, 2, "max_message_size", big, &v)) cfg->max_message_size = (size_t)v;
    if (opt_number(L, 2, "max_send_queue", big, &v)) cfg->max_send_queue = (size_t)v;
    if (opt_number(L, 2, "ping_interval_ms", big, &v)) cfg->ping_interval_ms = (unsigned)v;
    if (opt_number(L, 2, "idle_timeout_ms", big, &v)) cfg->idle_timeout_ms = (unsigned)v;
}

/* ws.adopt(req, limits [, protocol]) -> socket | nil, msg, code */
static int l_adopt(lua_State *L)
{
    jr_http_req *req = jr_l_http_req(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!req) return jr_push_fail(L, "the request is over (its task has ended)", "closed");
    if (g_stopping) return jr_push_fail(L, "the server is stopping", "closed");
    if (!g_ctx) {
        jr_ws_config defaults;
        jr_ws_config_defaults(&defaults);
        char err[200];
        g_ctx = jr_ws_ctx_new(jr_vm_global->loop, &defaults, &k_callbacks, err, sizeof err);
        if (!g_ctx) return jr_push_fail(L, err, "error");
    }
    jr_http_header extra[1];
    size_t nextra = 0;
    size_t pl;
    const char *p = luaL_optlstring(L, 3, NULL, &pl);
    if (p) extra[nextra++] = (jr_http_header){"Sec-WebSocket-Protocol", 22, p, pl};

    jr_ws_config cfg; /* core copies it */
    jr_ws_config_defaults(&cfg);
    read_config(L, &cfg);
    sock_ud *s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    s->self_ref = LUA_NOREF;
    /* Room for two whole messages, and never less than 64 KiB, so a burst
     * of small messages does not pause reading at once. */
    s->max_bytes = cfg.max_message_size * 2;
    if (s->max_bytes < 65536) s->max_bytes = 65536;
    lua_pushlightuserdata(L, &k_sock_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    jr_ws_conn *conn = NULL;
    int rc = jr_ws_adopt(g_ctx, req, &cfg, extra, nextra, s, &conn);
    if (rc != JR_WS_OK) {
        unanchor(s);
        switch (rc) {
        case JR_WS_EINVALID: return jr_push_fail(L, "not a valid WebSocket upgrade request", "invalid");
        case JR_WS_ECLOSED: return jr_push_fail(L, "the connection is closed", "closed");
        case JR_WS_ENOMEM: return jr_push_fail(L, "out of memory", "nomem");
        case JR_WS_ETOOBIG: return jr_push_fail(L, "too many bytes sent behind the upgrade request", "invalid");
        default: return jr_push_fail(L, "the connection could not be taken over (out of descriptors?)", "error");
        }
    }
    if (!s->closed) s->conn = conn;
    return 1;
}

/* ---- sockets ---- */

static sock_ud *check_sock(lua_State *L)
{
    return jr_checkudata(L, 1, &k_sock_mt, "WebSocket");
}

static int s_receive(lua_State *L)
{
    sock_ud *s = check_sock(L);
    double timeout = luaL_optnumber(L, 2, -1);
    ws_msg *m = s->head;
    if (m) {
        lua_pushlstring(L, m->data, m->len);
        if (m->is_text) lua_pushliteral(L, "text");
        else lua_pushliteral(L, "binary");
        s->head = m->next;
        if (!s->head) s->tail = NULL;
        s->nmsgs--;
        s->nbytes -= m->len;
        free(m);
        /* Read again once half drained: not a pause/resume per message. */
        if (s->paused && s->conn && s->nmsgs <= INBOX_MAX / 2 && s->nbytes <= s->max_bytes / 2) {
            s->paused = 0;
            jr_ws_resume(s->conn);
        }
        return 2;
    }
    if (s->closed) return push_closed(L, s);
    return jr_waiter_park_timed(L, &s->waiter, "ws:receive()", timeout);
}

/* After a timed-out, cancelled or spurious wake: forget the running task's
 * registration, and only its own (a task cancelled inside j.timeout runs
 * this after the handler may have parked in receive again). */
static int s_unpark(lua_State *L)
{
    sock_ud *s = check_sock(L);
    if (s->waiter.task == jr_task_current()) s->waiter.task = NULL;
    return 0;
}

static int s_send(lua_State *L)
{
    sock_ud *s = check_sock(L);
    size_t len;
    const char *d = luaL_checklstring(L, 2, &len);
    int is_text = lua_toboolean(L, 3);
    if (!s->conn) return push_closed(L, s);
    size_t pos;
    if (is_text && jr_json_utf8_check(d, len, &pos))
        return jr_push_fail(L, "a text message must be valid UTF-8 (send bytes as a binary message)", "invalid");
    switch (jr_ws_send(s->conn, d, len, is_text)) {
    case JR_WS_OK: lua_pushboolean(L, 1); return 1;
    case JR_WS_EFULL:
        return jr_push_fail(L, "the client does not read: its send queue is full and the connection is closing (1008)",
                            "full");
    case JR_WS_ENOMEM: return jr_push_fail(L, "out of memory", "nomem");
    case JR_WS_EINVALID: return jr_push_fail(L, "the message cannot be sent", "invalid");
    default: return jr_push_fail(L, "the WebSocket connection is closed", "closed");
    }
}

static int s_close(lua_State *L)
{
    sock_ud *s = check_sock(L);
    int code = (int)luaL_checkinteger(L, 2);
    size_t rlen = 0;
    const char *reason = luaL_optlstring(L, 3, "", &rlen);
    if (!s->conn) return push_closed(L, s);
    int rc = jr_ws_close(s->conn, code, reason, rlen);
    if (rc == JR_WS_EINVALID)
        return luaL_error(L, "close code %d or its reason cannot be sent (codes 1000-1003, 1007-1014, 3000-4999; "
                             "a reason of at most 123 bytes of UTF-8)", code);
    if (rc != JR_WS_OK) return jr_push_fail(L, "the WebSocket connection is closing", "closed");
    s->closing = code;
    keep_reason(s, reason, rlen);
    lua_pushboolean(L, 1);
    return 1;
}

static int s_close_info(lua_State *L)
{
    sock_ud *s = check_sock(L);
    if (!s->closed) return 0;
    lua_pushinteger(L, s->close_code);
    lua_pushlstring(L, s->rlen ? s->reason : "", s->rlen);
    return 2;
}

static int s_queued(lua_State *L)
{
    sock_ud *s = check_sock(L);
    lua_pushnumber(L, s->conn ? (lua_Number)jr_ws_conn_queued(s->conn) : 0);
    return 1;
}

static int s_gc(lua_State *L)
{
    sock_ud *s = lua_touserdata(L, 1);
    /* Anchored while open, so the connection is gone: only the inbox left. */
    for (ws_msg *m = s->head, *next; m; m = next) next = m->next, free(m);
    s->head = s->tail = NULL;
    free(s->reason);
    s->reason = NULL;
    return 0;
}

/* ---- rooms and fan-out ---- */

static sock_ud *check_open(lua_State *L, int idx)
{
    sock_ud *s = jr_checkudata(L, idx, &k_sock_mt, "WebSocket");
    return s->conn ? s : NULL;
}

/* ws.add(s) -> true | nil, msg, "closed": closed sockets are never members
 * (on_close already removed them, and would not again). */
static int l_add(lua_State *L)
{
    sock_ud *s = check_open(L, 1);
    if (!s) return jr_push_fail(L, "the WebSocket connection is closed", "closed");
    if (jr_wshub_add(hub(L), s->conn) < 0) return luaL_error(L, "out of memory (rooms)");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_remove(lua_State *L)
{
    sock_ud *s = jr_checkudata(L, 1, &k_sock_mt, "WebSocket");
    if (g_hub && s->conn) jr_wshub_remove(g_hub, s->conn); /* (a closed one left already) */
    lua_pushboolean(L, 1);
    return 1;
}

static int l_join(lua_State *L)
{
    sock_ud *s = check_open(L, 1);
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    if (!s) return jr_push_fail(L, "the WebSocket connection is closed", "closed");
    if (jr_wshub_join(hub(L), s->conn, room, len) < 0) return luaL_error(L, "out of memory (rooms)");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_leave(lua_State *L)
{
    sock_ud *s = jr_checkudata(L, 1, &k_sock_mt, "WebSocket");
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    if (g_hub && s->conn) jr_wshub_leave(g_hub, s->conn, room, len);
    lua_pushboolean(L, 1);
    return 1;
}

/* A message argument at idx (is_text at idx + 1): 0, or 3 with nil, msg,
 * "invalid" pushed for text that is not UTF-8 (the hub sends bytes as given). */
static int message_arg(lua_State *L, int idx, const char **d, size_t *len, int *is_text)
{
    *d = luaL_checklstring(L, idx, len);
    *is_text = lua_toboolean(L, idx + 1);
    size_t pos;
    if (*is_text && jr_json_utf8_check(*d, *len, &pos))
        return jr_push_fail(L, "a text message must be valid UTF-8 (send bytes with { binary = true })", "invalid");
    return 0;
}

/* The hub's answer: the local recipients, or raise. */
static int push_sent(lua_State *L, long n)
{
    if (n == JR_WSHUB_ENOMEM) return luaL_error(L, "out of memory (WebSocket fan-out)");
    if (n < 0) return jr_push_fail(L, "the message cannot be sent (too big for the backplane?)", "invalid");
    lua_pushnumber(L, (lua_Number)n);
    return 1;
}

/* ws.broadcast(data, is_text) -> local recipients: one frame for all of
 * them, and the backplane for the other instances. */
static int l_broadcast(lua_State *L)
{
    const char *d;
    size_t len;
    int is_text;
    if (message_arg(L, 1, &d, &len, &is_text)) return 3;
    return push_sent(L, jr_wshub_broadcast(hub(L), d, len, is_text));
}

#define MAX_ROOMS 256 /* rooms named by one send */

/* ws.send_rooms({ room, ... }, data, is_text) -> local recipients (each once). */
static int l_send_rooms(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t n = lua_objlen(L, 1);
    if (n > MAX_ROOMS) return luaL_error(L, "ws.send_rooms: at most %d rooms per send", MAX_ROOMS);
    const char *names[MAX_ROOMS];
    size_t lens[MAX_ROOMS];
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "ws.send_rooms: room %d is not a string", (int)i + 1);
        names[i] = lua_tolstring(L, -1, &lens[i]); /* alive: an element of the table */
        lua_pop(L, 1);
    }
    const char *d;
    size_t len;
    int is_text;
    if (message_arg(L, 2, &d, &len, &is_text)) return 3;
    return push_sent(L, jr_wshub_send(hub(L), names, lens, n, d, len, is_text));
}

/* ws.shutdown(): every connection closes with 1001 (their handlers see
 * "closed"); no new ones are adopted. */
static int l_shutdown(lua_State *L)
{
    (void)L;
    g_stopping = 1;
    if (g_ctx) {
        jr_ws_ctx *ctx = g_ctx;
        g_ctx = NULL;
        jr_ws_ctx_free(ctx);
    }
    if (g_bp) { /* after the connections: nothing more to send or receive */
        jr_wsbp_free(g_bp);
        g_bp = NULL;
    }
    return 0;
}

/* ws.start_backplane(spec, channel) -> kind | nil, msg, "invalid": attach
 * the hub to the other instances (core/wsbackplane.h: "none", "local",
 * "redis://..."). Once per process, after fork (each worker its own). */
static int l_start_backplane(lua_State *L)
{
    const char *spec = luaL_checkstring(L, 1);
    const char *channel = luaL_optstring(L, 2, NULL);
    if (g_bp) return luaL_error(L, "ws.start_backplane: the backplane is started already");
    char err[256];
    g_bp = jr_wsbp_start(jr_vm_global->loop, hub(L), spec, channel, err, sizeof err);
    if (!g_bp) return jr_push_fail(L, err, "invalid");
    jr_wsbp_counters c;
    jr_wsbp_stats(g_bp, &c);
    lua_pushstring(L, c.kind);
    return 1;
}

/* ws.backplane_stats() -> { kind, up, published, received, dropped } | nil */
static int l_backplane_stats(lua_State *L)
{
    if (!g_bp) return 0;
    jr_wsbp_counters c;
    jr_wsbp_stats(g_bp, &c);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, c.kind);
    lua_setfield(L, -2, "kind");
    lua_pushboolean(L, c.up);
    lua_setfield(L, -2, "up");
    lua_pushnumber(L, (lua_Number)c.published);
    lua_setfield(L, -2, "published");
    lua_pushnumber(L, (lua_Number)c.received);
    lua_setfield(L, -2, "received");
    lua_pushnumber(L, (lua_Number)c.dropped);
    lua_setfield(L, -2, "dropped");
    return 1;
}

static int l_stats(lua_State *L)
{
    jr_ws_counters c;
    jr_ws_ctx_stats(g_ctx, &c);
    const jr_rooms *rooms = g_hub ? jr_wshub_rooms(g_hub) : NULL;
    lua_createtable(L, 0, 7);
#define FIELD(name, v)                   \
    lua_pushnumber(L, (lua_Number)(v)); \
    lua_setfield(L, -2, name)
    FIELD("connections", g_ctx ? jr_ws_ctx_connections(g_ctx) : 0);
    FIELD("members", rooms ? jr_rooms_members(rooms) : 0);
    FIELD("rooms", rooms ? jr_rooms_count(rooms) : 0);
    FIELD("opened", c.opened);
    FIELD("received", c.received);
    FIELD("sent", c.sent);
    FIELD("slow_closed", c.slow_closed);
#undef FIELD
    return 1;
}

static int l_room_size(lua_State *L)
{
    size_t len;
    const char *room = luaL_checklstring(L, 1, &len);
    lua_pushnumber(L, g_hub ? (lua_Number)jr_rooms_size(jr_wshub_rooms(g_hub), room, len) : 0);
    return 1;
}

/* ws.utf8_valid(s) -> boolean */
static int l_utf8_valid(lua_State *L)
{
    size_t len, pos;
    const char *d = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, jr_json_utf8_check(d, len, &pos) == NULL);
    return 1;
}

int jr_open_ws(lua_State *L)
{
    static const luaL_Reg sock_methods[] = {
        {"receive", s_receive}, {"unpark", s_unpark},         {"send", s_send},
        {"close", s_close},     {"close_info", s_close_info}, {"queued", s_queued},
        {NULL, NULL}};
    jr_newmetatable(L, &k_sock_mt, "WebSocket", sock_methods, s_gc);
    static const luaL_Reg fns[] = {
        {"adopt", l_adopt},         {"add", l_add},         {"remove", l_remove},
        {"join", l_join},           {"leave", l_leave},     {"broadcast", l_broadcast},
        {"send_rooms", l_send_rooms}, {"shutdown", l_shutdown}, {"stats", l_stats},
        {"room_size", l_room_size}, {"utf8_valid", l_utf8_valid},
        {"start_backplane", l_start_backplane}, {"backplane_stats", l_backplane_stats}, {NULL, NULL}};
    lua_createtable(L, 0, 12);
    luaL_register(L, NULL, fns);
    return 1;
}
