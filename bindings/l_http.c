/* l_http.c - jararaca.core.http: the C HTTP server as seen from Lua.
 *
 *   http.set_handler(fn)         fn(req, method, path) runs in a new task per request
 *   local srv, err = http.listen{ host=, port=, reuseport=, max_header_size=, ... }
 *   srv:port()  srv:stats()  srv:shutdown(grace_seconds)  (parks until drained)
 *   req:respond(status, body, content_type, headers) -> true | nil, "closed" | nil, "invalid"
 *   req:header(name) req:headers() req:body() req:query_string() req:target()
 *   req:id() req:remote() req:alive() req:version_minor() req:is_upgrade()
 *   http.parse_query(qs) -> first-value table, multi-value table
 */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "scheduler.h"
#include "vm.h"

static char k_req_mt, k_srv_mt;
static int g_handler_ref = LUA_NOREF;

typedef struct {
    jr_http_req *req;
} req_ud;

typedef struct {
    jr_http_server *srv;
    int shutting_down;
    int drained;
    jr_waiter waiter; /* the task in srv:shutdown() */
} srv_ud;

/* ---- requests ---- */

static jr_http_req *check_req(lua_State *L)
{
    req_ud *u = jr_checkudata(L, 1, &k_req_mt, "http request");
    return u->req;
}

static void on_request(jr_http_req *req, void *ud)
{
    lua_State *L = ((jr_vm *)ud)->L;
    if (g_handler_ref == LUA_NOREF) {
        static const jr_http_header h = {"Content-Type", 12, "application/json", 16};
        const char *b = "{\"detail\":\"no handler\"}";
        jr_http_respond(req, 503, &h, 1, b, strlen(b));
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, g_handler_ref);
    req_ud *u = lua_newuserdata(L, sizeof *u);
    u->req = req;
    jr_http_req_retain(req);
    lua_pushlightuserdata(L, &k_req_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    size_t mlen, plen;
    const char *m = jr_http_req_method(req, &mlen);
    const char *p = jr_http_req_path(req, &plen);
    lua_pushlstring(L, m, mlen);
    lua_pushlstring(L, p, plen);
    jr_task_start(L, 3);
}

static int l_set_handler(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (g_handler_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, g_handler_ref);
    lua_pushvalue(L, 1);
    g_handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int req_header(lua_State *L)
{
    jr_http_req *req = check_req(L);
    const char *name = luaL_checkstring(L, 2);
    size_t vlen;
    const char *v = jr_http_req_header(req, name, &vlen);
    if (!v) return 0;
    lua_pushlstring(L, v, vlen);
    return 1;
}

/* All headers, names lower-cased; repeated fields joined with ", ". */
static int req_headers(lua_State *L)
{
    jr_http_req *req = check_req(L);
    size_t n = jr_http_req_header_count(req);
    lua_createtable(L, 0, (int)n);
    char lname[256];
    for (size_t i = 0; i < n; i++) {
        const char *name, *val;
        size_t nl, vl;
        jr_http_req_header_at(req, i, &name, &nl, &val, &vl);
        if (nl >= sizeof lname) nl = sizeof lname - 1;
        for (size_t k = 0; k < nl; k++) {
            char c = name[k];
            lname[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        lua_pushlstring(L, lname, nl);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, val, vl);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, val, vl);
            lua_concat(L, 3);
        }
        lua_rawset(L, -3);
    }
    return 1;
}

static int req_body(lua_State *L)
{
    size_t len;
    const char *b = jr_http_req_body(check_req(L), &len);
    lua_pushlstring(L, b ? b : "", b ? len : 0);
    return 1;
}

static int req_query_string(lua_State *L)
{
    size_t len;
    const char *q = jr_http_req_query(check_req(L), &len);
    lua_pushlstring(L, q ? q : "", q ? len : 0);
    return 1;
}

static int req_target(lua_State *L)
{
    size_t len;
    const char *t = jr_http_req_target(check_req(L), &len);
    lua_pushlstring(L, t, len);
    return 1;
}

static int req_id(lua_State *L)
{
    lua_pushstring(L, jr_http_req_id(check_req(L)));
    return 1;
}

static int req_remote(lua_State *L)
{
    jr_http_req *req = check_req(L);
    lua_pushstring(L, jr_http_req_remote_addr(req));
    lua_pushinteger(L, jr_http_req_remote_port(req));
    return 2;
}

static int req_alive(lua_State *L)
{
    lua_pushboolean(L, jr_http_req_alive(check_req(L)));
    return 1;
}

static int req_version_minor(lua_State *L)
{
    lua_pushinteger(L, jr_http_req_version_minor(check_req(L)));
    return 1;
}

static int req_is_upgrade(lua_State *L)
{
    lua_pushboolean(L, jr_http_req_is_upgrade(check_req(L)));
    return 1;
}

static int req_start_ms(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)jr_http_req_start_ms(check_req(L)));
    return 1;
}

#define MAX_RESP_HEADERS 64

/* req:respond(status, body, content_type, headers) */
static int req_respond(lua_State *L)
{
    jr_http_req *req = check_req(L);
    int status = (int)luaL_checkinteger(L, 2);
    size_t blen = 0;
    const char *body = lua_isnoneornil(L, 3) ? NULL : luaL_checklstring(L, 3, &blen);
    jr_http_header hs[MAX_RESP_HEADERS];
    size_t nh = 0;
    if (!lua_isnoneornil(L, 4)) {
        size_t ctl;
        const char *ct = luaL_checklstring(L, 4, &ctl);
        hs[nh++] = (jr_http_header){"Content-Type", 12, ct, ctl};
    }
    if (lua_istable(L, 5)) {
        lua_pushnil(L);
        while (lua_next(L, 5) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                size_t nl;
                const char *name = lua_tolstring(L, -2, &nl);
                if (lua_istable(L, -1)) {
                    /* Several values: one header line each (Set-Cookie). */
                    size_t n = lua_objlen(L, -1);
                    for (size_t i = 1; i <= n && nh < MAX_RESP_HEADERS; i++) {
                        lua_rawgeti(L, -1, (int)i);
                        size_t vl;
                        const char *v = lua_tolstring(L, -1, &vl);
                        /* The string stays alive: it is an element of the table. */
                        lua_pop(L, 1);
                        if (v) hs[nh++] = (jr_http_header){name, nl, v, vl};
                    }
                } else if (nh < MAX_RESP_HEADERS) {
                    size_t vl;
                    if (lua_type(L, -1) == LUA_TNUMBER) {
                        /* Convert in place: the key is untouched, the value
                         * becomes a string kept alive by the table. */
                        lua_pushvalue(L, -2);
                        lua_pushvalue(L, -2);
                        lua_tostring(L, -1);
                        lua_rawset(L, 5);
                    }
                    const char *v = lua_tolstring(L, -1, &vl);
                    if (v) hs[nh++] = (jr_http_header){name, nl, v, vl};
                }
            }
            lua_pop(L, 1);
        }
    }
    int rc = jr_http_respond(req, status, hs, nh, body, blen);
    if (rc == JR_HTTP_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    if (rc == JR_HTTP_EINVALID) {
        /* A handler's bad status or header value: the caller answers 500. */
        lua_pushliteral(L, "invalid");
        return 2;
    }
    lua_pushstring(L, rc == JR_HTTP_ECLOSED ? "closed" : "answered");
    return 2;
}

static int req_gc(lua_State *L)
{
    req_ud *u = lua_touserdata(L, 1);
    if (u && u->req) {
        jr_http_req_release(u->req);
        u->req = NULL;
    }
    return 0;
}

/* ---- query strings ---- */

/* parse_query(qs [, all]) -> { name = first value } [, { name = { all values } }]
 * The second table is only built when asked for: most handlers read first
 * values only, and this runs on the hot path. */
static int l_parse_query(lua_State *L)
{
    size_t len;
    const char *qs = luaL_checklstring(L, 1, &len);
    int want_all = lua_toboolean(L, 2);
    lua_settop(L, 1);
    lua_newtable(L); /* first values: index 2 */
    if (want_all) lua_newtable(L); /* all values: index 3 */
    else lua_pushnil(L);
    char stackbuf[512];
    char *buf = len < sizeof stackbuf ? stackbuf : malloc(len + 1);
    if (!buf) return luaL_error(L, "out of memory");
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && qs[j] != '&' && qs[j] != ';') j++;
        if (j > i) {
            size_t eq = i;
            while (eq < j && qs[eq] != '=') eq++;
            long kl = jr_http_url_decode(buf, qs + i, eq - i, 1);
            if (kl > 0) {
                lua_pushlstring(L, buf, (size_t)kl); /* key */
                long vl = eq < j ? jr_http_url_decode(buf, qs + eq + 1, j - eq - 1, 1) : 0;
                if (vl < 0) vl = 0; /* a malformed escape: keep the key, empty value */
                lua_pushlstring(L, buf, (size_t)vl); /* value */
                /* first[key] = value if absent */
                lua_pushvalue(L, -2);
                lua_rawget(L, 2);
                int absent = lua_isnil(L, -1);
                lua_pop(L, 1);
                if (absent) {
                    lua_pushvalue(L, -2);
                    lua_pushvalue(L, -2);
                    lua_rawset(L, 2);
                }
                if (!want_all) {
                    lua_pop(L, 2);
                    i = j + 1;
                    continue;
                }
                /* all[key][#+1] = value */
                lua_pushvalue(L, -2);
                lua_rawget(L, 3);
                if (lua_isnil(L, -1)) {
                    lua_pop(L, 1);
                    lua_createtable(L, 1, 0);
                    lua_pushvalue(L, -3);
                    lua_pushvalue(L, -2);
                    lua_rawset(L, 3);
                }
                lua_pushvalue(L, -2);
                lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
                lua_pop(L, 3);
            }
        }
        i = j + 1;
    }
    if (buf != stackbuf) free(buf);
    lua_settop(L, want_all ? 3 : 2);
    return want_all ? 2 : 1;
}

/* url_decode(s [, plus_as_space]) -> string | nil, "malformed" */
static int l_url_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char stackbuf[512];
    char *buf = len < sizeof stackbuf ? stackbuf : malloc(len + 1);
    if (!buf) return luaL_error(L, "out of memory");
    long n = jr_http_url_decode(buf, s, len, lua_toboolean(L, 2));
    if (n < 0) {
        if (buf != stackbuf) free(buf);
        lua_pushnil(L);
        lua_pushliteral(L, "malformed");
        return 2;
    }
    lua_pushlstring(L, buf, (size_t)n);
    if (buf != stackbuf) free(buf);
    return 1;
}

static int l_status_text(lua_State *L)
{
    lua_pushstring(L, jr_http_status_text((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* ---- servers ---- */

static srv_ud *check_srv(lua_State *L)
{
    srv_ud *u = jr_checkudata(L, 1, &k_srv_mt, "http server");
    if (!u->srv) luaL_error(L, "http server is closed");
    return u;
}

static size_t opt_size(lua_State *L, const char *f, size_t def)
{
    lua_getfield(L, 1, f);
    size_t v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) < 0)
            luaL_error(L, "http.listen: option %s must be a non-negative number", f);
        v = (size_t)lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static int l_listen(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    jr_http_config cfg;
    jr_http_config_defaults(&cfg);
    lua_getfield(L, 1, "host");
    if (!lua_isnil(L, -1)) cfg.host = luaL_checkstring(L, -1); /* kept alive by the table */
    lua_pop(L, 1);
    cfg.port = (int)opt_size(L, "port", (size_t)cfg.port);
    lua_getfield(L, 1, "reuseport");
    cfg.reuseport = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "access_log");
    cfg.access_log = lua_toboolean(L, -1);
    lua_pop(L, 1);
    cfg.backlog = (int)opt_size(L, "backlog", (size_t)cfg.backlog);
    cfg.max_header_size = opt_size(L, "max_header_size", cfg.max_header_size);
    cfg.max_headers = opt_size(L, "max_headers", cfg.max_headers);
    cfg.max_body_size = opt_size(L, "max_body_size", cfg.max_body_size);
    cfg.header_timeout_ms = (unsigned)opt_size(L, "header_timeout_ms", cfg.header_timeout_ms);
    cfg.body_timeout_ms = (unsigned)opt_size(L, "body_timeout_ms", cfg.body_timeout_ms);
    cfg.idle_timeout_ms = (unsigned)opt_size(L, "idle_timeout_ms", cfg.idle_timeout_ms);
    cfg.write_timeout_ms = (unsigned)opt_size(L, "write_timeout_ms", cfg.write_timeout_ms);
    cfg.max_connections = (unsigned)opt_size(L, "max_connections", cfg.max_connections);
    cfg.max_keepalive_requests = (unsigned)opt_size(L, "max_keepalive_requests", cfg.max_keepalive_requests);

    srv_ud *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    lua_pushlightuserdata(L, &k_srv_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    char err[256];
    u->srv = jr_http_server_start(jr_vm_global->loop, &cfg, on_request, jr_vm_global, err, sizeof err);
    if (!u->srv) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

static int srv_port(lua_State *L)
{
    lua_pushinteger(L, jr_http_server_port(check_srv(L)->srv));
    return 1;
}

static int srv_stats(lua_State *L)
{
    srv_ud *u = check_srv(L);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, (lua_Number)jr_http_server_connections(u->srv));
    lua_setfield(L, -2, "connections");
    lua_pushnumber(L, (lua_Number)jr_http_server_inflight(u->srv));
    lua_setfield(L, -2, "inflight");
    return 1;
}

static void on_drained(void *ud)
{
    srv_ud *u = ud;
    u->drained = 1;
    lua_State *co = jr_waiter_thread(&u->waiter);
    if (co) {
        lua_pushboolean(co, 1);
        jr_waiter_resume(&u->waiter, 1);
    }
}

/* srv:shutdown(grace_seconds) -> true once every connection is gone */
static int srv_shutdown(lua_State *L)
{
    srv_ud *u = check_srv(L);
    double grace = luaL_optnumber(L, 2, 30);
    if (u->drained) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!jr_task_current()) return luaL_error(L, "shutdown() must be called inside a task");
    if (!u->shutting_down) {
        u->shutting_down = 1;
        jr_http_server_shutdown(u->srv, (unsigned)(grace * 1000.0), on_drained, u);
    }
    if (u->drained) { /* finished synchronously: nothing to wait for */
        lua_pushboolean(L, 1);
        return 1;
    }
    return jr_waiter_park(L, &u->waiter, "server:shutdown()");
}

static int srv_gc(lua_State *L)
{
    srv_ud *u = lua_touserdata(L, 1);
    if (u && u->srv) {
        jr_http_server_free(u->srv);
        u->srv = NULL;
    }
    return 0;
}

int jr_open_http(lua_State *L)
{
    static const luaL_Reg req_methods[] = {
        {"header", req_header},   {"headers", req_headers},       {"body", req_body},
        {"query_string", req_query_string}, {"target", req_target}, {"id", req_id},
        {"remote", req_remote},   {"alive", req_alive},           {"version_minor", req_version_minor},
        {"is_upgrade", req_is_upgrade}, {"start_ms", req_start_ms}, {"respond", req_respond},
        {NULL, NULL}};
    static const luaL_Reg srv_methods[] = {
        {"port", srv_port}, {"stats", srv_stats}, {"shutdown", srv_shutdown}, {NULL, NULL}};
    jr_newmetatable(L, &k_req_mt, "http request", req_methods, req_gc);
    jr_newmetatable(L, &k_srv_mt, "http server", srv_methods, srv_gc);
    static const luaL_Reg fns[] = {{"set_handler", l_set_handler}, {"listen", l_listen},
                                   {"parse_query", l_parse_query}, {"url_decode", l_url_decode},
                                   {"status_text", l_status_text}, {NULL, NULL}};
    lua_createtable(L, 0, 8);
    luaL_register(L, NULL, fns);
    return 1;
}
