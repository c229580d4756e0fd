/* l_cron.c - jararaca.core.cron: cron expressions and time zones
 * (core/cron.c, core/tz.c) for Lua.
 *   local c, msg, code = cron.parse(expr)   -- c | nil, "\"<expr>\": position N: ...", "invalid"
 *   c:next(after [, zone]) -> t             -- first fire time > after (epoch seconds; zone: a
 *                                           -- zone object or a name; default UTC)
 *                          | nil, msg, "never" (no fire within 50 years)
 *                          | nil, msg, "not_found" (zone given by an unknown name)
 *   c:has_seconds() -> bool                 -- a 6-field expression
 *   tostring(c) -> the expression as given
 *   local z, msg, code = cron.zone(name)    -- nil, msg, "not_found" | "invalid"
 *   z:name(), tostring(z) -> name; z:offset(t) -> seconds east of UTC at t
 * Zones are loaded once per name and cached for the life of the VM (a
 * scheduler asks for the same few zones on every tick). */
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "tz.h"
#include "vm.h"

static char k_cron_mt, k_zone_mt, k_zone_cache;

typedef struct {
    jr_cron c;
    size_t len;
    char expr[];
} cron_ud;

typedef struct {
    jr_tz *z;
} zone_ud;

static int l_parse(lua_State *L)
{
    size_t len;
    const char *expr = luaL_checklstring(L, 1, &len);
    if (strlen(expr) != len) return jr_push_fail(L, "cron expression contains a NUL byte", "invalid");
    jr_cron c;
    char err[512];
    if (jr_cron_parse(&c, expr, err, sizeof err) != 0) return jr_push_fail(L, err, "invalid");
    cron_ud *u = lua_newuserdata(L, sizeof *u + len + 1);
    u->c = c;
    u->len = len;
    memcpy(u->expr, expr, len + 1);
    lua_pushlightuserdata(L, &k_cron_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    return 1;
}

/* Pushes the cached zone userdata for name, loading it on first use;
 * returns 1, or pushes nil, msg, code and returns 3. */
static int push_zone(lua_State *L, const char *name)
{
    lua_pushlightuserdata(L, &k_zone_cache);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) {
        lua_remove(L, -2);
        return 1;
    }
    lua_pop(L, 1);
    jr_tz *z = NULL;
    char err[512];
    int rc = jr_tz_load(name, &z, err, sizeof err);
    if (rc == JR_TZ_NOMEM) return luaL_error(L, "out of memory (time zone)");
    if (rc != JR_TZ_OK) {
        lua_pop(L, 1);
        return jr_push_fail(L, err, rc == JR_TZ_NOT_FOUND ? "not_found" : "invalid");
    }
    zone_ud *u = lua_newuserdata(L, sizeof *u);
    u->z = z;
    lua_pushlightuserdata(L, &k_zone_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    lua_remove(L, -2);
    return 1;
}

static int l_zone(lua_State *L) { return push_zone(L, luaL_checkstring(L, 1)); }

static const jr_tz *check_zone(lua_State *L, int idx)
{
    zone_ud *u = jr_checkudata(L, idx, &k_zone_mt, "cron zone");
    return u->z;
}

/* The zone argument of c:next. Not jr_checkudata: inside a cron method its
 * fast path (the method's own metatable) would accept a cron object. */
static const jr_tz *arg_zone(lua_State *L, int idx)
{
    zone_ud *u = lua_touserdata(L, idx);
    int ok = 0;
    if (u && lua_getmetatable(L, idx)) {
        lua_pushlightuserdata(L, &k_zone_mt);
        lua_rawget(L, LUA_REGISTRYINDEX);
        ok = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!ok) luaL_typerror(L, idx, "cron zone or zone name");
    return u->z;
}

static int l_next(lua_State *L)
{
    cron_ud *u = jr_checkudata(L, 1, &k_cron_mt, "cron");
    lua_Number after = luaL_checknumber(L, 2);
    if (!isfinite(after)) return luaL_argerror(L, 2, "a finite number of seconds expected");
    const jr_tz *tz = NULL;
    if (lua_type(L, 3) == LUA_TSTRING) {
        if (push_zone(L, lua_tostring(L, 3)) != 1) return 3;
        tz = arg_zone(L, -1);
    } else if (!lua_isnoneornil(L, 3)) {
        tz = arg_zone(L, 3);
    }
    /* Fires are whole seconds: the first one after 10.5 is 11 at the
     * earliest, as after 10. */
    lua_Number fl = floor(after);
    if (fl < -62135596800.0 || fl > 253402300799.0)
        return luaL_argerror(L, 2, "time outside the years 1..9999");
    int64_t t;
    int rc = jr_cron_next(&u->c, (int64_t)fl, tz, &t);
    if (rc == JR_CRON_OK) {
        lua_pushnumber(L, (lua_Number)t);
        return 1;
    }
    if (rc == JR_CRON_RANGE) return luaL_argerror(L, 2, "time outside the years 1..9999");
    lua_pushnil(L);
    lua_pushfstring(L, "\"%s\" never fires (no fire time within %d years)", u->expr,
                    JR_CRON_HORIZON_YEARS);
    lua_pushliteral(L, "never");
    return 3;
}

static int l_has_seconds(lua_State *L)
{
    cron_ud *u = jr_checkudata(L, 1, &k_cron_mt, "cron");
    lua_pushboolean(L, u->c.has_seconds);
    return 1;
}

static int l_tostring(lua_State *L)
{
    cron_ud *u = jr_checkudata(L, 1, &k_cron_mt, "cron");
    lua_pushlstring(L, u->expr, u->len);
    return 1;
}

static int l_zone_name(lua_State *L)
{
    lua_pushstring(L, jr_tz_name(check_zone(L, 1)));
    return 1;
}

static int l_zone_offset(lua_State *L)
{
    const jr_tz *z = check_zone(L, 1);
    lua_Number t = luaL_checknumber(L, 2);
    if (!isfinite(t) || fabs(t) > 1e15) return luaL_argerror(L, 2, "a finite time expected");
    lua_pushinteger(L, jr_tz_offset(z, (int64_t)floor(t)));
    return 1;
}

static int l_zone_gc(lua_State *L)
{
    zone_ud *u = lua_touserdata(L, 1);
    if (u && u->z) jr_tz_free(u->z);
    if (u) u->z = NULL;
    return 0;
}

/* jr_newmetatable has no __tostring; add it to the registered table. */
static void set_tostring(lua_State *L, void *key, lua_CFunction f)
{
    lua_pushlightuserdata(L, key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

int jr_open_cron(lua_State *L)
{
    static const luaL_Reg cron_methods[] = {
        {"next", l_next}, {"has_seconds", l_has_seconds}, {NULL, NULL}};
    static const luaL_Reg zone_methods[] = {
        {"name", l_zone_name}, {"offset", l_zone_offset}, {NULL, NULL}};
    jr_newmetatable(L, &k_cron_mt, "cron", cron_methods, NULL);
    set_tostring(L, &k_cron_mt, l_tostring);
    jr_newmetatable(L, &k_zone_mt, "cron zone", zone_methods, l_zone_gc);
    set_tostring(L, &k_zone_mt, l_zone_name);
    lua_pushlightuserdata(L, &k_zone_cache);
    lua_newtable(L);
    lua_rawset(L, LUA_REGISTRYINDEX);
    static const luaL_Reg funcs[] = {{"parse", l_parse}, {"zone", l_zone}, {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    return 1;
}
