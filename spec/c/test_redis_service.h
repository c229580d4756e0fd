/* test_redis_service.h - the Redis server of a C test: the run's shared one
 * (ctest's services fixture, $JR_TEST_SERVICES/redis.url) or, run by hand,
 * one this test starts through spec/services/redis.sh and stops at the end;
 * plus private servers for tests that change a server's configuration.
 *
 *   char url[128];
 *   if (test_redis_shared(url, sizeof url) != 0) return 1;
 *   ...
 *   test_redis_shared_done();
 *
 * Needs JR_SOURCE_DIR (CMake defines it for the tests that include this). */
#ifndef JR_TEST_REDIS_SERVICE_H
#define JR_TEST_REDIS_SERVICE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef JR_SOURCE_DIR
#define JR_SOURCE_DIR "."
#endif
#define REDIS_SH JR_SOURCE_DIR "/spec/services/redis.sh"

static char g_own_dir[64]; /* set when this test started the shared server itself */

static int sh(const char *cmd, const char *dir, const char *args)
{
    char line[512];
    snprintf(line, sizeof line, "'%s' %s '%s' %s", REDIS_SH, cmd, dir, args ? args : "");
    return system(line);
}

static int read_line(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *ok = fgets(out, (int)n, f);
    fclose(f);
    if (!ok) return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* A private server in a new directory: its port, or -1. */
static int private_start(char *dir, size_t n, const char *args)
{
    snprintf(dir, n, "/tmp/jr-redis-test-XXXXXX");
    if (!mkdtemp(dir) || sh("start", dir, args) != 0) return -1;
    char path[128], port[16];
    snprintf(path, sizeof path, "%s/redis.port", dir);
    return read_line(path, port, sizeof port) == 0 ? atoi(port) : -1;
}

static void private_stop(const char *dir)
{
    char line[256];
    sh("stop", dir, NULL);
    snprintf(line, sizeof line, "rm -rf '%s'", dir);
    if (system(line) != 0) fprintf(stderr, "  could not remove %s\n", dir);
}

/* The shared server's URL into url: 0, or -1 with a message on stderr. */
static int test_redis_shared(char *url, size_t n)
{
    const char *services = getenv("JR_TEST_SERVICES");
    char path[512];
    if (services && *services) {
        snprintf(path, sizeof path, "%s/redis.url", services);
    } else {
        if (private_start(g_own_dir, sizeof g_own_dir, NULL) <= 0) {
            fprintf(stderr, "cannot start a redis-server through %s\n", REDIS_SH);
            return -1;
        }
        snprintf(path, sizeof path, "%s/redis.url", g_own_dir);
    }
    if (read_line(path, url, n) != 0) {
        fprintf(stderr, "no Redis URL in %s\n", path);
        return -1;
    }
    return 0;
}

/* Stop the server test_redis_shared started (none when ctest's is used). */
static void test_redis_shared_done(void)
{
    if (g_own_dir[0]) private_stop(g_own_dir);
    g_own_dir[0] = '\0';
}

#endif
