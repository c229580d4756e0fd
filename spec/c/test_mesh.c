/* test_mesh.c - the in-machine backplane (core/mesh.c).
 *
 * Several meshes with distinct indexes share this process's loop, so real
 * abstract unix sockets carry every message; one test forks real workers
 * through jr_prefork_run. Every wait is on an event with an unref'd guard
 * timer, so a broken test fails instead of hanging. */
#include "buf.h"
#include "mesh.h"
#include "prefork.h"
#include "test.h"
#include "test_loop.h"

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* ------------------------------------------------------------ nodes */

#define MAXMSG 256

typedef struct {
    jr_mesh *m;
    int got;
    char *msgs[MAXMSG]; /* copies, NUL-terminated */
    size_t lens[MAXMSG];
    int free_on_message; /* free the mesh from inside the callback */
} node;

static void on_msg(const char *data, size_t len, void *ud)
{
    node *nd = ud;
    if (nd->got < MAXMSG) {
        nd->msgs[nd->got] = malloc(len + 1);
        memcpy(nd->msgs[nd->got], data, len);
        nd->msgs[nd->got][len] = 0;
        nd->lens[nd->got] = len;
    }
    nd->got++;
    if (nd->free_on_message) {
        jr_mesh_free(nd->m);
        nd->m = NULL;
    }
}

static char g_ns[64];

static void set_ns(const char *test)
{
    snprintf(g_ns, sizeof g_ns, "jrtest-%d-%s", (int)getpid(), test);
}

static int node_start(node *nd, int self, int n, const jr_mesh_config *cfg)
{
    char err[256] = "";
    jr_mesh_callbacks cb = {on_msg, nd};
    nd->m = jr_mesh_new(L, g_ns, self, n, cfg, &cb, err, sizeof err);
    if (!nd->m) fprintf(stderr, "  mesh %d: %s\n", self, err);
    return nd->m != NULL;
}

static void node_reset(node *nd)
{
    for (int i = 0; i < nd->got && i < MAXMSG; i++) free(nd->msgs[i]);
    memset(nd, 0, sizeof *nd);
}

static jr_mesh_counters stats(node *nd)
{
    jr_mesh_counters c;
    jr_mesh_stats(nd->m, &c);
    return c;
}

/* Free every node and run the loop until all handles are gone. */
static void teardown(node *nodes, int n)
{
    for (int i = 0; i < n; i++) {
        jr_mesh_free(nodes[i].m);
        nodes[i].m = NULL;
    }
    WAIT(!uv_loop_alive(L), 5000);
    CHECK(!uv_loop_alive(L));
    for (int i = 0; i < n; i++) node_reset(&nodes[i]);
}

static int has_msg(node *nd, const char *s)
{
    for (int i = 0; i < nd->got && i < MAXMSG; i++)
        if (strcmp(nd->msgs[i], s) == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------ tests */

TEST(three_workers_exchange_messages)
{
    set_ns("three");
    node nd[3] = {0};
    for (int i = 0; i < 3; i++) CHECK(node_start(&nd[i], i, 3, NULL));
    for (int i = 0; i < 3; i++) {
        char s[16];
        snprintf(s, sizeof s, "from %d", i);
        CHECK_EQ_INT(jr_mesh_publish(nd[i].m, s, strlen(s)), JR_MESH_OK);
    }
    WAIT(nd[0].got == 2 && nd[1].got == 2 && nd[2].got == 2, 5000);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(nd[i].got, 2);
        for (int k = 0; k < 3; k++) {
            char s[16];
            snprintf(s, sizeof s, "from %d", k);
            CHECK_EQ_INT(has_msg(&nd[i], s), k != i); /* the others', never its own */
        }
        jr_mesh_counters c = stats(&nd[i]);
        CHECK_EQ_INT(c.published, 1);
        CHECK_EQ_INT(c.sent, 2);
        CHECK_EQ_INT(c.received, 2);
        CHECK_EQ_INT(c.dropped, 0);
        CHECK_EQ_INT(c.queued_bytes, 0);
    }
    teardown(nd, 3);
}

TEST(order_is_kept_and_a_single_worker_publishes_nowhere)
{
    set_ns("order");
    node nd[2] = {0};
    for (int i = 0; i < 2; i++) CHECK(node_start(&nd[i], i, 2, NULL));
    for (int k = 0; k < 200; k++) {
        char s[16];
        snprintf(s, sizeof s, "%d", k);
        jr_mesh_publish(nd[0].m, s, strlen(s));
    }
    CHECK_EQ_INT(jr_mesh_publish(nd[0].m, "", 0), JR_MESH_OK); /* empty messages are messages */
    WAIT(nd[1].got == 201, 5000);
    CHECK_EQ_INT(nd[1].got, 201);
    int in_order = 1;
    for (int k = 0; k < 200 && k < nd[1].got; k++) in_order &= atoi(nd[1].msgs[k]) == k;
    CHECK(in_order);
    CHECK_EQ_INT(nd[1].lens[200], 0);
    teardown(nd, 2);

    set_ns("single");
    node one = {0};
    CHECK(node_start(&one, 0, 1, NULL));
    CHECK_EQ_INT(jr_mesh_publish(one.m, "x", 1), JR_MESH_OK);
    CHECK_EQ_INT(stats(&one).sent, 0);
    teardown(&one, 1);
}

TEST(big_messages_arrive_whole)
{
    set_ns("big");
    node nd[3] = {0};
    for (int i = 0; i < 3; i++) CHECK(node_start(&nd[i], i, 3, NULL));
    size_t big = 1u << 20;
    char *data[4];
    for (int k = 0; k < 4; k++) {
        data[k] = malloc(big + (size_t)k);
        for (size_t j = 0; j < big + (size_t)k; j++) data[k][j] = (char)t_rand();
        CHECK_EQ_INT(jr_mesh_publish(nd[0].m, data[k], big + (size_t)k), JR_MESH_OK);
    }
    WAIT(nd[1].got == 4 && nd[2].got == 4, 10000);
    for (int i = 1; i < 3; i++) {
        CHECK_EQ_INT(nd[i].got, 4);
        for (int k = 0; k < 4 && k < nd[i].got; k++)
            CHECK(nd[i].lens[k] == big + (size_t)k && memcmp(nd[i].msgs[k], data[k], big + (size_t)k) == 0);
    }
    for (int k = 0; k < 4; k++) free(data[k]);

    jr_mesh_config cfg;
    jr_mesh_config_defaults(&cfg);
    CHECK_EQ_INT(jr_mesh_publish(nd[0].m, NULL, cfg.max_message + 1), JR_MESH_EINVALID);
    char one = 0;
    CHECK_EQ_INT(jr_mesh_publish(nd[0].m, &one, cfg.max_message + 1), JR_MESH_ETOOBIG);
    teardown(nd, 3);
}

/* A worker the master restarts comes back under the same name and gets
 * what is published after (and, queued, while) it was away. */
TEST(a_peer_that_goes_away_and_comes_back_gets_later_messages)
{
    set_ns("restart");
    jr_mesh_config cfg;
    jr_mesh_config_defaults(&cfg);
    cfg.retry_max_ms = 50;
    node nd[2] = {0};
    for (int i = 0; i < 2; i++) CHECK(node_start(&nd[i], i, 2, &cfg));
    jr_mesh_publish(nd[0].m, "first", 5);
    WAIT(nd[1].got == 1, 5000);
    CHECK(has_msg(&nd[1], "first"));

    jr_mesh_free(nd[1].m);
    nd[1].m = NULL;
    /* Worker 0 sees its connection end. */
    WAIT(stats(&nd[0]).peers_connected == 0, 5000);
    CHECK_EQ_INT(stats(&nd[0]).peers_connected, 0);
    jr_mesh_publish(nd[0].m, "while away", 10);
    WAIT(stats(&nd[0]).connect_failures >= 1, 5000);
    CHECK(stats(&nd[0]).connect_failures >= 1);

    node_reset(&nd[1]);
    CHECK(node_start(&nd[1], 1, 2, &cfg));
    jr_mesh_publish(nd[0].m, "after", 5);
    WAIT(nd[1].got == 2, 5000);
    CHECK_EQ_INT(nd[1].got, 2);
    CHECK(nd[1].got >= 2 && strcmp(nd[1].msgs[0], "while away") == 0 && strcmp(nd[1].msgs[1], "after") == 0);
    CHECK_EQ_INT(stats(&nd[0]).connects, 2);
    teardown(nd, 2);
}

TEST(a_never_started_peer_does_not_block_the_others)
{
    set_ns("never");
    node nd[3] = {0};
    for (int i = 0; i < 2; i++) CHECK(node_start(&nd[i], i, 3, NULL)); /* no worker 2 */
    for (int k = 0; k < 10; k++) jr_mesh_publish(nd[0].m, "m", 1);
    WAIT(nd[1].got == 10, 5000);
    CHECK_EQ_INT(nd[1].got, 10);
    jr_mesh_counters c = stats(&nd[0]);
    CHECK(c.connect_failures >= 1);
    CHECK_EQ_INT(c.sent, 10);
    CHECK_EQ_INT(c.queued_bytes, 10 * 5); /* waiting for worker 2 */
    teardown(nd, 3);
}

/* Beyond the bound the oldest unsent messages go, and are counted; what is
 * kept is the newest, delivered in order once the peer appears. */
TEST(a_full_queue_drops_the_oldest_and_counts)
{
    set_ns("drop");
    jr_mesh_config cfg;
    jr_mesh_config_defaults(&cfg);
    cfg.max_queue_bytes = 1000;
    cfg.retry_max_ms = 20;
    node nd[2] = {0};
    CHECK(node_start(&nd[0], 0, 2, &cfg));
    char payload[100];
    for (int k = 0; k < 100; k++) {
        memset(payload, ' ', sizeof payload);
        snprintf(payload, sizeof payload, "%d", k);
        CHECK_EQ_INT(jr_mesh_publish(nd[0].m, payload, sizeof payload), JR_MESH_OK);
    }
    jr_mesh_counters c = stats(&nd[0]);
    CHECK_EQ_INT(c.dropped, 91);           /* 9 x 104 bytes fit in 1000 */
    CHECK_EQ_INT(c.queued_bytes, 9 * 104);
    CHECK_EQ_INT(c.published, 100);

    CHECK(node_start(&nd[1], 1, 2, &cfg));
    WAIT(nd[1].got == 9, 5000);
    CHECK_EQ_INT(nd[1].got, 9);
    int ok = 1;
    for (int k = 0; k < 9 && k < nd[1].got; k++) ok &= atoi(nd[1].msgs[k]) == 91 + k;
    CHECK(ok);
    CHECK_EQ_INT(stats(&nd[0]).queued_bytes, 0);
    teardown(nd, 2);
}

static int raw_socket(int i, int do_listen)
{
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    int k = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "%s-%d", g_ns, i);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)k);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = do_listen ? bind(fd, (struct sockaddr *)&a, alen) || listen(fd, 8) : connect(fd, (struct sockaddr *)&a, alen);
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A peer that is there but never reads: the kernel buffer fills, then the
 * queue, then the oldest are dropped; memory stays bounded. */
TEST(a_peer_that_never_reads_costs_bounded_memory)
{
    set_ns("slow");
    jr_mesh_config cfg;
    jr_mesh_config_defaults(&cfg);
    cfg.max_queue_bytes = 256 * 1024;
    node nd[1] = {0};
    CHECK(node_start(&nd[0], 0, 2, &cfg));
    int stuck = raw_socket(1, 1); /* listens as worker 1, never accepts */
    CHECK(stuck >= 0);
    char *chunk = calloc(1, 64 * 1024);
    for (int k = 0; k < 200; k++) {
        jr_mesh_publish(nd[0].m, chunk, 64 * 1024);
        uv_run(L, UV_RUN_NOWAIT); /* let writes go out as far as they can */
    }
    free(chunk);
    jr_mesh_counters c = stats(&nd[0]);
    CHECK(c.dropped > 0);
    CHECK(c.queued_bytes <= cfg.max_queue_bytes + 64 * 1024 + 4);
    CHECK_EQ_INT(c.peers_connected, 1);
    /* The stuck worker dies: the connection breaks, nothing is left hanging. */
    close(stuck);
    WAIT(stats(&nd[0]).peers_connected == 0, 5000);
    CHECK_EQ_INT(stats(&nd[0]).peers_connected, 0);
    teardown(nd, 1);
}

/* A connection that announces a message over the limit is dropped (the
 * framing cannot be trusted past it); the worker keeps serving others. */
TEST(an_oversized_frame_drops_that_connection_only)
{
    set_ns("oversize");
    jr_mesh_config cfg;
    jr_mesh_config_defaults(&cfg);
    cfg.max_message = 1000;
    node nd[2] = {0};
    for (int i = 0; i < 2; i++) CHECK(node_start(&nd[i], i, 2, &cfg));
    int fd = raw_socket(0, 0);
    CHECK(fd >= 0);
    unsigned char bad[8] = {0, 0, 0x10, 0, 'x', 'y', 'z', 'w'}; /* 4096 bytes announced */
    CHECK_EQ_INT(write(fd, bad, sizeof bad), (long)sizeof bad);
    WAIT(stats(&nd[0]).rejected == 1, 5000);
    CHECK_EQ_INT(stats(&nd[0]).rejected, 1);
    CHECK_EQ_INT(nd[0].got, 0);
    char b;
    CHECK_EQ_INT(read(fd, &b, 1), 0); /* closed by the mesh */
    close(fd);
    jr_mesh_publish(nd[1].m, "still here", 10);
    WAIT(nd[0].got == 1, 5000);
    CHECK(has_msg(&nd[0], "still here"));
    teardown(nd, 2);
}

TEST(freeing_the_mesh_from_on_message_stops_delivery)
{
    set_ns("freecb");
    node nd[2] = {0};
    for (int i = 0; i < 2; i++) CHECK(node_start(&nd[i], i, 2, NULL));
    nd[1].free_on_message = 1;
    jr_mesh_publish(nd[0].m, "a", 1);
    jr_mesh_publish(nd[0].m, "b", 1);
    WAIT(nd[1].got >= 1 && stats(&nd[0]).peers_connected == 0, 5000);
    CHECK_EQ_INT(nd[1].got, 1); /* "b" may have been read with "a", but is not delivered */
    CHECK(nd[1].m == NULL);
    teardown(nd, 2);
}

TEST(bad_arguments_and_a_taken_name)
{
    set_ns("args");
    char err[256] = "";
    jr_mesh_callbacks cb = {on_msg, NULL};
    CHECK(jr_mesh_new(L, g_ns, 2, 2, NULL, &cb, err, sizeof err) == NULL);
    CHECK(strstr(err, "bad arguments") != NULL);
    char longns[200];
    memset(longns, 'n', sizeof longns - 1);
    longns[sizeof longns - 1] = 0;
    CHECK(jr_mesh_new(L, longns, 0, 2, NULL, &cb, err, sizeof err) == NULL);
    CHECK(strstr(err, "namespace") != NULL);
    node nd[1] = {0};
    CHECK(node_start(&nd[0], 0, 2, NULL));
    CHECK(jr_mesh_new(L, g_ns, 0, 2, NULL, &cb, err, sizeof err) == NULL);
    CHECK(strstr(err, "is taken") != NULL);
    teardown(nd, 1);
}

/* ------------------------------------------------------------ real workers */

static void worker_term(int sig) { _exit(0); }

static int w_got;
static char w_seen[3];
static void worker_msg(const char *data, size_t len, void *ud)
{
    if (len == 2 && data[0] == 'w' && data[1] >= '0' && data[1] <= '2') w_seen[data[1] - '0'] = 1;
    w_got++;
    if (w_got == 2) uv_stop(ud);
}

static void worker_deadline(uv_timer_t *t) { _exit(3); }

/* In a worker forked by jr_prefork_run: find the siblings through the
 * prefork getters, say hello to them, report who said hello, then serve
 * until the master's SIGTERM. */
static void worker_main(int report_fd)
{
    signal(SIGTERM, worker_term);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char ns[64], err[256];
    snprintf(ns, sizeof ns, "jrtest-%d-fork", jr_prefork_master_pid());
    int self = jr_prefork_worker_index();
    jr_mesh_callbacks cb = {worker_msg, &loop};
    jr_mesh *m = jr_mesh_new(&loop, ns, self, jr_prefork_workers(), NULL, &cb, err, sizeof err);
    if (!m) _exit(2);
    jr_prefork_worker_ready();
    uv_timer_t deadline;
    uv_timer_init(&loop, &deadline);
    uv_timer_start(&deadline, worker_deadline, 10000, 0);
    char hello[2] = {'w', (char)('0' + self)};
    jr_mesh_publish(m, hello, 2);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_timer_stop(&deadline);
    char line[32];
    int k = snprintf(line, sizeof line, "%d:%d%d%d:%d\n", self, w_seen[0], w_seen[1], w_seen[2], jr_prefork_workers());
    if (write(report_fd, line, (size_t)k) != k) _exit(4);
    uv_run(&loop, UV_RUN_DEFAULT); /* serve the others until SIGTERM */
    _exit(0);
}

TEST(forked_workers_find_each_other)
{
    int rp[2];
    CHECK_EQ_INT(pipe(rp), 0);
    fflush(NULL);
    pid_t master = fork();
    if (master == 0) {
        close(rp[0]);
        int idx = jr_prefork_run(3, NULL);
        if (idx < 0) _exit(5);
        worker_main(rp[1]);
    }
    close(rp[1]);
    char buf[256] = "";
    size_t have = 0;
    int lines = 0;
    while (lines < 3) {
        struct pollfd pf = {rp[0], POLLIN, 0};
        if (poll(&pf, 1, 15000) <= 0) break;
        ssize_t r = read(rp[0], buf + have, sizeof buf - 1 - have);
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) lines += buf[have + (size_t)i] == '\n';
        have += (size_t)r;
        buf[have] = 0;
    }
    close(rp[0]);
    CHECK_EQ_INT(lines, 3);
    /* Each worker heard from the two others, and knew there were 3. */
    CHECK(strstr(buf, "0:011:3\n") != NULL);
    CHECK(strstr(buf, "1:101:3\n") != NULL);
    CHECK(strstr(buf, "2:110:3\n") != NULL);
    if (lines < 3) fprintf(stderr, "  reports: %s\n", buf);
    kill(master, SIGTERM);
    int status = 0;
    CHECK_EQ_INT(waitpid(master, &status, 0), master);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Outside a worker the getters say so. */
    CHECK_EQ_INT(jr_prefork_worker_index(), 0);
    CHECK_EQ_INT(jr_prefork_workers(), 1);
    CHECK_EQ_INT(jr_prefork_master_pid(), 0);
}

int main(void)
{
    test_loop_init();
    RUN(three_workers_exchange_messages);
    RUN(order_is_kept_and_a_single_worker_publishes_nowhere);
    RUN(big_messages_arrive_whole);
    RUN(a_peer_that_goes_away_and_comes_back_gets_later_messages);
    RUN(a_never_started_peer_does_not_block_the_others);
    RUN(a_full_queue_drops_the_oldest_and_counts);
    RUN(a_peer_that_never_reads_costs_bounded_memory);
    RUN(an_oversized_frame_drops_that_connection_only);
    RUN(freeing_the_mesh_from_on_message_stops_delivery);
    RUN(bad_arguments_and_a_taken_name);
    RUN(forked_workers_find_each_other);
    if (test_loop_close() != 0) return 1;
    return test_summary();
}
