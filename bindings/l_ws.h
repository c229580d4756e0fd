/* l_ws.h - the WebSocket binding as seen by the backplane bindings (the
 * in-machine mesh, Redis): they attach to this process's hub. */
#ifndef JR_L_WS_H
#define JR_L_WS_H

#include "wshub.h"

/* The hub of this process, made on first use (NULL when out of memory).
 * A backplane attaches with jr_wshub_set_backplane() and hands what it
 * receives to jr_wshub_deliver(). */
jr_wshub *jr_l_ws_hub(void);

#endif
