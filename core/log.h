/* log.h - leveled, one-line-per-event logging for the whole process.
 *
 * Text format:  2026-11-27T21:00:00.123Z INFO  [pid] [req-id] message
 * JSON format:  {"ts":"...","level":"info","pid":123,"request_id":"...","msg":"..."}
 * Everything goes to stderr (unbuffered writes of whole lines, so lines from
 * several worker processes never interleave mid-line).
 */
#ifndef JR_LOG_H
#define JR_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    JR_LOG_DEBUG = 0,
    JR_LOG_INFO = 1,
    JR_LOG_WARN = 2,
    JR_LOG_ERROR = 3,
    JR_LOG_OFF = 4
} jr_log_level;

typedef enum { JR_LOG_TEXT = 0, JR_LOG_JSON = 1 } jr_log_format;

void jr_log_set_level(jr_log_level level);
jr_log_level jr_log_get_level(void);
void jr_log_set_format(jr_log_format fmt);
jr_log_format jr_log_get_format(void);
/* Parse "debug" / "info" / "warn" / "error" / "off"; returns -1 on bad input. */
int jr_log_parse_level(const char *name);

/* Log one event. request_id may be NULL. The message is not interpreted as
 * a format string by jr_log_msg (safe for user text). */
void jr_log_msg(jr_log_level level, const char *request_id, const char *msg, size_t len);
/* The same with the trace and span ids of the current span (either may be
 * NULL): text lines get "trace_id=<hex> span_id=<hex> ", JSON lines the
 * fields "trace_id" and "span_id". */
void jr_log_msg_trace(jr_log_level level, const char *request_id, const char *trace_id,
                      const char *span_id, const char *msg, size_t len);
void jr_logf(jr_log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define jr_log_enabled(lvl) ((lvl) >= jr_log_get_level())

#endif
