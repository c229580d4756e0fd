/* l_db_values.h - SQLite values between Lua and core/db_*.c jobs (see
 * l_db_values.c); internal to the bindings of jararaca.core.db. */
#ifndef JR_L_DB_VALUES_H
#define JR_L_DB_VALUES_H

#include <lua.h>
#include <stddef.h>

#include "db.h"

/* The results of a finished job on L, in its kind's shape; returns how
 * many. Never raises (it runs on the main state, unprotected). */
int jr_ldb_push_results(lua_State *L, jr_db_job *j);
/* The parameters at idx (a list, or a table of names) into j: 0; -1 with a
 * message and a code for an expected failure ("range": a uint64 above
 * 2^63-1); -2 with a message for misuse ("bad parameter 2: a table", out of
 * memory), which the caller raises. */
int jr_ldb_params(lua_State *L, int idx, jr_db_job *j, char *msg, size_t msglen, const char **code);
/* Sets configure and blob_mt on the module table at the top of L. */
void jr_ldb_values_open(lua_State *L);

#endif
