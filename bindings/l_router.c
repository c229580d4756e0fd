/* l_router.c - jararaca.core.router: the C router as a Lua userdata.
 *   local r = router.new()
 *   r:add("GET", "/items/{id:int}", 7)       -> true | nil, message, "invalid"
 *      (a bad template, or the same method and template shape twice)
 *   r:match("GET", "/items/42")              -> 7, { id = 42 } | nil, msg, "not_found"
 *                                               | nil, msg, "not_allowed", "GET, HEAD"
 * int parameters come back as numbers when exactly representable (|v| < 2^53),
 * otherwise as strings (LuaJIT numbers are doubles). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "l_router.h"
#include "router.h"
#include "vm.h"

static char k_router_mt;

typedef struct {
    jr_router *r;
} router_ud;

jr_router *jr_router_check(lua_State *L, int idx)
{
    router_ud *u = jr_checkudata(L, idx, &k_router_mt, "router");
    if (!u->r) luaL_error(L, "router is closed");
    return u->r;
}

static jr_router *check_router(lua_State *L) { return jr_router_check(L, 1); }

static int l_new(lua_State *L)
{
    router_ud *u = lua_newuserdata(L, sizeof *u);
    u->r = jr_router_new();
    if (!u->r) return luaL_error(L, "out of memory (router)");
    lua_pushlightuserdata(L, &k_router_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    return 1;
}

static int l_add(lua_State *L)
{
    jr_router *r = check_router(L);
    const char *method = luaL_checkstring(L, 2);
    const char *tmpl = luaL_checkstring(L, 3);
    int id = (int)luaL_checkinteger(L, 4);
    char err[256];
    if (jr_router_add(r, method, tmpl, id, err, sizeof err) != 0) return jr_push_fail(L, err, "invalid");
    lua_pushboolean(L, 1);
    return 1;
}

static void push_param(lua_State *L, const jr_router_param *p)
{
    size_t digits = p->len - (p->len && p->value[0] == '-' ? 1 : 0);
    if (p->conv == JR_CONV_INT && digits <= 15) {
        /* At most 15 digits: always exact in a double (2^53 has 16). */
        char buf[24];
        memcpy(buf, p->value, p->len);
        buf[p->len] = 0;
        lua_pushnumber(L, (lua_Number)strtoll(buf, NULL, 10));
        return;
    }
    lua_pushlstring(L, p->value, p->len);
}

void jr_router_push_params(lua_State *L, const jr_route_match *m)
{
    if (m->nparams == 0) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, (int)m->nparams);
    for (size_t i = 0; i < m->nparams; i++) {
        push_param(L, &m->params[i]);
        lua_setfield(L, -2, m->params[i].name);
    }
}

static int l_match(lua_State *L)
{
    jr_router *r = check_router(L);
    size_t mlen, plen;
    const char *method = luaL_checklstring(L, 2, &mlen);
    const char *path = luaL_checklstring(L, 3, &plen);
    jr_route_match m;
    jr_router_match(r, method, mlen, path, plen, &m);
    if (m.status == JR_ROUTE_FOUND) {
        lua_pushinteger(L, m.route_id);
        if (m.nparams == 0) return 1;
        jr_router_push_params(L, &m);
        return 2;
    }
    if (m.status == JR_ROUTE_NOT_FOUND) return jr_push_fail(L, "no route matches the path", "not_found");
    jr_push_fail(L, "the path has no route for this method", "not_allowed");
    lua_pushstring(L, m.allow);
    return 4;
}

static int l_gc(lua_State *L)
{
    router_ud *u = lua_touserdata(L, 1);
    if (u && u->r) jr_router_free(u->r);
    u->r = NULL;
    return 0;
}

int jr_open_router(lua_State *L)
{
    static const luaL_Reg methods[] = {{"add", l_add}, {"match", l_match}, {NULL, NULL}};
    jr_newmetatable(L, &k_router_mt, "router", methods, l_gc);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "new");
    return 1;
}
