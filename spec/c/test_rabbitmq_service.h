/* test_rabbitmq_service.h - the RabbitMQ node of a C test: the run's shared
 * one (ctest's rabbitmq fixture, $JR_TEST_SERVICES/rabbitmq.url) or, run by
 * hand, one this test starts through spec/services/rabbitmq.sh (6-10 s) and
 * stops at the end.
 *
 *   char url[128];
 *   if (test_rabbitmq_shared(url, sizeof url) != 0) return 1;
 *   test_rabbitmq_ctl("list_queues");          rabbitmqctl against it
 *   test_rabbitmq_close_connection(port, "why");  the broker closes the connection
 *                                              whose client port is port
 *   test_rabbitmq_shared_done();
 *
 * Needs JR_SOURCE_DIR (CMake defines it for the tests that include this). */
#ifndef JR_TEST_RABBITMQ_SERVICE_H
#define JR_TEST_RABBITMQ_SERVICE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef JR_SOURCE_DIR
#define JR_SOURCE_DIR "."
#endif
#define RABBITMQ_SH JR_SOURCE_DIR "/spec/services/rabbitmq.sh"

static char g_rmq_dir[256];  /* the node's directory */
static int g_rmq_own;        /* this test started it */

/* rabbitmq.sh CMD DIR [args]: its exit status. */
static int rabbitmq_sh(const char *cmd, const char *args)
{
    char line[1024];
    snprintf(line, sizeof line, "'%s' %s '%s' %s", RABBITMQ_SH, cmd, g_rmq_dir, args ? args : "");
    return system(line);
}

/* rabbitmqctl ARGS against the node (output discarded): 0 on success. */
static int test_rabbitmq_ctl(const char *args)
{
    char line[2048];
    snprintf(line, sizeof line, "'%s' ctl '%s' %s >/dev/null", RABBITMQ_SH, g_rmq_dir, args);
    return system(line);
}

/* Make the broker close one connection (connection.close with reason),
 * found by the client's port: only the test's own, never another test's on
 * the shared node. 0 on success. */
static int test_rabbitmq_close_connection(int client_port, const char *reason)
{
    char cmd[1024], pid[128] = "";
    snprintf(cmd, sizeof cmd, "'%s' ctl '%s' list_connections pid peer_port | awk -v p=%d '$2 == p { print $1 }'",
             RABBITMQ_SH, g_rmq_dir, client_port);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    if (!fgets(pid, sizeof pid, f)) pid[0] = '\0';
    pclose(f);
    pid[strcspn(pid, "\r\n")] = '\0';
    if (!pid[0]) {
        fprintf(stderr, "  no connection from port %d\n", client_port);
        return -1;
    }
    snprintf(cmd, sizeof cmd, "close_connection '%s' '%s'", pid, reason);
    return test_rabbitmq_ctl(cmd);
}

/* The node's URL into url: 0, or -1 with a message on stderr. */
static int test_rabbitmq_shared(char *url, size_t n)
{
    const char *services = getenv("JR_TEST_SERVICES");
    if (services && *services) {
        snprintf(g_rmq_dir, sizeof g_rmq_dir, "%s", services);
    } else {
        snprintf(g_rmq_dir, sizeof g_rmq_dir, "/tmp/jr-rabbitmq-test-XXXXXX");
        if (!mkdtemp(g_rmq_dir) || rabbitmq_sh("start", NULL) != 0) {
            fprintf(stderr, "cannot start a RabbitMQ node through %s\n", RABBITMQ_SH);
            return -1;
        }
        g_rmq_own = 1;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/rabbitmq.url", g_rmq_dir);
    FILE *f = fopen(path, "r");
    int ok = f && fgets(url, (int)n, f);
    if (f) fclose(f);
    if (!ok) {
        fprintf(stderr, "no RabbitMQ URL in %s\n", path);
        return -1;
    }
    url[strcspn(url, "\r\n")] = '\0';
    return 0;
}

/* Stop the node test_rabbitmq_shared started (none when ctest's is used). */
static void test_rabbitmq_shared_done(void)
{
    if (!g_rmq_own) return;
    g_rmq_own = 0;
    rabbitmq_sh("stop", NULL);
    char line[300];
    snprintf(line, sizeof line, "rm -rf '%s'", g_rmq_dir);
    if (system(line) != 0) fprintf(stderr, "  could not remove %s\n", g_rmq_dir);
}

#endif
