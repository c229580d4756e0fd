/* l_mesh.c - jararaca.core.mesh: the in-machine mesh between the workers of
 * one `--workers N` master (core/mesh.h), for Lua: the metrics' scrape asks
 * every worker for its series over it (lua/jararaca/metrics/workers.lua).
 *
 *   mesh.worker()                 -> index (0..n-1), n   (0, 1 outside a master)
 *   local m, err = mesh.open(name, fn)   fn(data) runs in a new task per message
 *   m:publish(data)               -> true | nil, message, "too_big" | "nomem"
 *   m:close()
 *
 * The namespace is "jararaca-<master pid>-<name>": the WebSocket backplane
 * uses "-ws", so the two never see each other's messages. A mesh is anchored
 * in the registry until closed (its callback must find it). */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "mesh.h"
#include "prefork.h"
#include "scheduler.h"
#include "vm.h"

static char k_mesh_mt;

typedef struct {
    jr_mesh *mesh;
    int fn_ref, self_ref;
} mesh_ud;

static void on_message(const char *data, size_t len, void *ud)
{
    mesh_ud *u = ud;
    lua_State *L = jr_vm_global->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->fn_ref);
    lua_pushlstring(L, data, len);
    jr_task_start(L, 1);
}

static int l_worker(lua_State *L)
{
    lua_pushinteger(L, jr_prefork_worker_index());
    lua_pushinteger(L, jr_prefork_workers());
    return 2;
}

static int l_open(lua_State *L)
{
    size_t nlen;
    const char *name = luaL_checklstring(L, 1, &nlen);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (nlen == 0 || nlen > 32) return jr_push_fail(L, "mesh.open: the name must have 1 to 32 bytes", "invalid");
    char ns[64];
    snprintf(ns, sizeof ns, "jararaca-%d-%s", jr_prefork_master_pid(), name);
    mesh_ud *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->fn_ref = u->self_ref = LUA_NOREF;
    lua_pushlightuserdata(L, &k_mesh_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    char err[256];
    jr_mesh_callbacks cb = {on_message, u};
    u->mesh = jr_mesh_new(jr_vm_global->loop, ns, jr_prefork_worker_index(), jr_prefork_workers(), NULL, &cb, err,
                          sizeof err);
    if (!u->mesh) return jr_push_fail(L, err, "invalid");
    lua_pushvalue(L, 2);
    u->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static mesh_ud *check_open(lua_State *L)
{
    mesh_ud *u = jr_checkudata(L, 1, &k_mesh_mt, "mesh");
    if (!u->mesh) luaL_error(L, "mesh: closed");
    return u;
}

static int m_publish(lua_State *L)
{
    mesh_ud *u = check_open(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int r = jr_mesh_publish(u->mesh, data, len);
    if (r == JR_MESH_ETOOBIG) return jr_push_fail(L, "mesh: the message is too big", "too_big");
    if (r != JR_MESH_OK) return jr_push_fail(L, "mesh: out of memory", "nomem");
    lua_pushboolean(L, 1);
    return 1;
}

static void release(lua_State *L, mesh_ud *u)
{
    jr_mesh_free(u->mesh); /* no callback after this */
    u->mesh = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, u->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, u->self_ref);
    u->fn_ref = u->self_ref = LUA_NOREF;
}

static int m_close(lua_State *L)
{
    mesh_ud *u = jr_checkudata(L, 1, &k_mesh_mt, "mesh");
    if (u->mesh) release(L, u);
    return 0;
}

/* Only reached once closed (an open mesh is anchored). */
static int m_gc(lua_State *L)
{
    mesh_ud *u = lua_touserdata(L, 1);
    if (u && u->mesh) release(L, u);
    return 0;
}

int jr_open_mesh(lua_State *L)
{
    static const luaL_Reg methods[] = {{"publish", m_publish}, {"close", m_close}, {NULL, NULL}};
    jr_newmetatable(L, &k_mesh_mt, "mesh", methods, m_gc);
    static const luaL_Reg fns[] = {{"open", l_open}, {"worker", l_worker}, {NULL, NULL}};
    lua_createtable(L, 0, 2);
    luaL_register(L, NULL, fns);
    return 1;
}
