/* log.c - see log.h. Lines are assembled in a stack buffer and written with
 * one write(2) so concurrent workers sharing stderr never interleave. */
#define _POSIX_C_SOURCE 200809L
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static jr_log_level g_level = JR_LOG_INFO;
static jr_log_format g_format = JR_LOG_TEXT;

void jr_log_set_level(jr_log_level level) { g_level = level; }
jr_log_level jr_log_get_level(void) { return g_level; }
void jr_log_set_format(jr_log_format fmt) { g_format = fmt; }
jr_log_format jr_log_get_format(void) { return g_format; }

int jr_log_parse_level(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(name, names[i]) == 0) return i;
    if (strcasecmp(name, "warning") == 0) return JR_LOG_WARN;
    return -1;
}

static const char *level_name(jr_log_level l, int upper)
{
    static const char *lo[] = {"debug", "info", "warn", "error", "off"};
    static const char *up[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};
    if ((unsigned)l > JR_LOG_OFF) l = JR_LOG_ERROR;
    return upper ? up[l] : lo[l];
}

/* Append s (len bytes) JSON-escaped; returns new position (never past cap). */
static size_t json_escape(char *out, size_t pos, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len && pos + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { out[pos++] = '\\'; out[pos++] = (char)c; }
        else if (c == '\n') { out[pos++] = '\\'; out[pos++] = 'n'; }
        else if (c == '\r') { out[pos++] = '\\'; out[pos++] = 'r'; }
        else if (c == '\t') { out[pos++] = '\\'; out[pos++] = 't'; }
        else if (c < 0x20) {
            out[pos++] = '\\'; out[pos++] = 'u'; out[pos++] = '0'; out[pos++] = '0';
            out[pos++] = hex[c >> 4]; out[pos++] = hex[c & 15];
        } else out[pos++] = (char)c;
    }
    return pos;
}

static size_t append(char *out, size_t pos, size_t cap, const char *s, size_t len)
{
    if (pos >= cap) return pos;
    if (len > cap - pos) len = cap - pos;
    memcpy(out + pos, s, len);
    return pos + len;
}

/* Append `"name":"<value escaped>",` when value is set (JSON lines). */
static size_t json_field(char *out, size_t pos, size_t cap, const char *name, const char *value)
{
    if (!value || !*value) return pos;
    pos = append(out, pos, cap, "\"", 1);
    pos = append(out, pos, cap, name, strlen(name));
    pos = append(out, pos, cap, "\":\"", 3);
    pos = json_escape(out, pos, cap, value, strlen(value));
    return append(out, pos, cap, "\",", 2);
}

/* Append `name=<value> ` when value is set (text lines; the trace ids are
 * hex made by jararaca.tracing: no escaping needed). */
static size_t text_field(char *out, size_t pos, size_t cap, const char *name, const char *value)
{
    if (!value || !*value) return pos;
    pos = append(out, pos, cap, name, strlen(name));
    pos = append(out, pos, cap, "=", 1);
    pos = append(out, pos, cap, value, strlen(value));
    return append(out, pos, cap, " ", 1);
}

void jr_log_msg(jr_log_level level, const char *request_id, const char *msg, size_t len)
{
    jr_log_msg_trace(level, request_id, NULL, NULL, msg, len);
}

void jr_log_msg_trace(jr_log_level level, const char *request_id, const char *trace_id,
                      const char *span_id, const char *msg, size_t len)
{
    if (level < g_level || level >= JR_LOG_OFF) return;
    char line[8192];
    const size_t cap = sizeof line - 2; /* room for "}\n" */
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000));
    size_t pos = 0;
    char head[160];
    int n;
    if (g_format == JR_LOG_JSON) {
        n = snprintf(head, sizeof head, "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,", ts,
                     level_name(level, 0), (int)getpid());
        pos = append(line, pos, cap, head, (size_t)n);
        pos = json_field(line, pos, cap, "request_id", request_id);
        pos = json_field(line, pos, cap, "trace_id", trace_id);
        pos = json_field(line, pos, cap, "span_id", span_id);
        pos = append(line, pos, cap, "\"msg\":\"", 7);
        pos = json_escape(line, pos, cap, msg, len);
        pos = append(line, pos, cap, "\"", 1);
        line[pos++] = '}';
    } else {
        n = snprintf(head, sizeof head, "%s %s [%d] ", ts, level_name(level, 1), (int)getpid());
        pos = append(line, pos, cap, head, (size_t)n);
        if (request_id && *request_id) {
            pos = append(line, pos, cap, "[", 1);
            pos = append(line, pos, cap, request_id, strlen(request_id));
            pos = append(line, pos, cap, "] ", 2);
        }
        pos = text_field(line, pos, cap, "trace_id", trace_id);
        pos = text_field(line, pos, cap, "span_id", span_id);
        pos = append(line, pos, cap, msg, len);
    }
    line[pos++] = '\n';
    /* One write so lines stay whole; a short write on stderr is not retried. */
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w;
}

void jr_logf(jr_log_level level, const char *request_id, const char *fmt, ...)
{
    if (level < g_level || level >= JR_LOG_OFF) return;
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    jr_log_msg(level, request_id, buf, (size_t)n);
}
