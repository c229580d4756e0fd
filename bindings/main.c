/* main.c - the jararaca executable: create the loop and the VM, then run
 * jararaca.cli.main(argv) as the first task; everything else (commands,
 * options, loading the app) lives in Lua. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "scheduler.h"
#include "vm.h"

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit (RLIMIT_FSIZE) or a full disk must fail the write
     * (SQLite then fails the transaction, and the request gets a 5xx), not
     * kill the process with SIGXFSZ's default action. */
    signal(SIGXFSZ, SIG_IGN);
    static jr_vm vm;
    vm.loop = uv_default_loop();
    lua_State *L = jr_vm_open(&vm);
    if (!L) {
        fprintf(stderr, "jararaca: cannot create the Lua state (out of memory)\n");
        return 1;
    }
    jr_sched_init(L, vm.loop);

    lua_pushcfunction(L, jr_traceback);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "jararaca.cli");
    if (lua_pcall(L, 1, 1, -3) != 0) {
        fprintf(stderr, "jararaca: cannot load the framework: %s\n", lua_tostring(L, -1));
        return 1;
    }
    lua_getfield(L, -1, "run");
    if (!lua_isfunction(L, -1)) {
        fprintf(stderr, "jararaca: jararaca.cli has no run()\n");
        return 1;
    }
    lua_createtable(L, argc, 0);
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    jr_task_start(L, 1);
    uv_run(vm.loop, UV_RUN_DEFAULT);
    if (!vm.exit_requested) {
        jr_logf(JR_LOG_ERROR, NULL, "nothing left to wait for, but the program did not finish (a task waits forever)");
        return 1;
    }
    fflush(stdout);
    return vm.exit_code;
}
