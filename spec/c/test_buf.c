/* test_buf.c - the growable byte buffer (core/buf.c). */
#include "buf.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Under ASan a huge request must come back as NULL (like glibc's malloc)
 * instead of aborting: the failure path is what these tests exercise. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

TEST(starts_empty)
{
    jr_buf b;
    jr_buf_init(&b);
    CHECK(b.data == NULL);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(b.cap, 0);
    CHECK_EQ_INT(b.failed, 0);
    jr_buf s = JR_BUF_INIT;
    CHECK(s.data == NULL && s.len == 0 && s.cap == 0 && s.failed == 0);
    /* appending nothing (even from NULL) allocates nothing */
    CHECK_EQ_INT(jr_buf_append(&b, NULL, 0), 0);
    CHECK(b.data == NULL);
    jr_buf_free(&b); /* freeing an empty buffer is harmless */
    CHECK(b.data == NULL);
}

TEST(append_and_grow)
{
    jr_buf b = JR_BUF_INIT;
    CHECK_EQ_INT(jr_buf_append(&b, "abc", 3), 0);
    CHECK_EQ_INT(jr_buf_append_char(&b, '-'), 0);
    CHECK_EQ_MEM(b.data, b.len, "abc-");
    CHECK_EQ_INT(b.cap, 256); /* first allocation */
    /* grow well past the first allocation; earlier bytes survive every move */
    for (int i = 0; i < 10000; i++) CHECK_EQ_INT(jr_buf_append_char(&b, (char)('a' + i % 26)), 0);
    CHECK_EQ_INT(b.len, 10004);
    CHECK(b.cap >= b.len);
    CHECK_EQ_INT(b.cap, 16384); /* doubling: 256 * 2^6 */
    CHECK(memcmp(b.data, "abc-abcdef", 10) == 0);
    CHECK_EQ_INT(b.data[10003], 'a' + 9999 % 26);
    CHECK_EQ_INT(b.failed, 0);
    jr_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

TEST(reserve_makes_room_without_using_it)
{
    jr_buf b = JR_BUF_INIT;
    CHECK_EQ_INT(jr_buf_reserve(&b, 1000), 0);
    CHECK_EQ_INT(b.len, 0);
    CHECK(b.cap >= 1000);
    char *before = b.data;
    /* filling the reserved room does not move the data */
    for (int i = 0; i < 1000; i++) jr_buf_append_char(&b, 'x');
    CHECK(b.data == before);
    CHECK_EQ_INT(b.len, 1000);
    /* a reservation larger than one doubling takes what is needed at once */
    CHECK_EQ_INT(jr_buf_reserve(&b, 100000), 0);
    CHECK(b.cap - b.len >= 100000);
    jr_buf_free(&b);
}

TEST(reset_keeps_memory_recycle_drops_big)
{
    jr_buf b = JR_BUF_INIT;
    jr_buf_append(&b, "hello", 5);
    char *mem = b.data;
    size_t cap = b.cap;
    jr_buf_reset(&b);
    CHECK_EQ_INT(b.len, 0);
    CHECK(b.data == mem);
    CHECK_EQ_INT(b.cap, cap);
    /* recycle under the limit: like reset */
    jr_buf_append(&b, "x", 1);
    jr_buf_recycle(&b, 4096);
    CHECK_EQ_INT(b.len, 0);
    CHECK(b.data == mem);
    /* recycle over the limit: the memory goes */
    jr_buf_reserve(&b, 10000);
    jr_buf_append(&b, "y", 1);
    jr_buf_recycle(&b, 4096);
    CHECK(b.data == NULL);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(b.cap, 0);
    /* and the buffer works again */
    CHECK_EQ_INT(jr_buf_append(&b, "z", 1), 0);
    CHECK_EQ_MEM(b.data, b.len, "z");
    jr_buf_free(&b);
}

/* A reservation of n more bytes fails on "keep": the failure is reported
 * and sticky, the contents stay, and reset makes the buffer usable again. */
static void check_refused(size_t n)
{
    jr_buf b = JR_BUF_INIT;
    jr_buf_append(&b, "keep", 4);
    char *mem = b.data;
    CHECK_EQ_INT(jr_buf_reserve(&b, n), -1);
    CHECK_EQ_INT(b.failed, 1);
    CHECK(b.data == mem); /* the old block is kept, not leaked or moved */
    CHECK_EQ_MEM(b.data, b.len, "keep");
    /* sticky: a later growth fails too, so a writer can check once at the end */
    CHECK_EQ_INT(jr_buf_reserve(&b, b.cap - b.len + 1), -1);
    CHECK_EQ_INT(jr_buf_append(&b, NULL, SIZE_MAX), -1);
    CHECK_EQ_INT(b.len, 4);
    jr_buf_reset(&b);
    CHECK_EQ_INT(b.failed, 0);
    CHECK_EQ_INT(jr_buf_reserve(&b, 1000), 0);
    CHECK_EQ_INT(jr_buf_append(&b, "ok", 2), 0);
    CHECK_EQ_MEM(b.data, b.len, "ok");
    jr_buf_free(&b);
}

/* len + n would wrap around: refused before any allocation */
TEST(shrink_gives_back_unused_capacity)
{
    jr_buf b = JR_BUF_INIT;
    CHECK_EQ_INT(jr_buf_append(&b, "abc", 3), 0);
    CHECK(b.cap > 3);
    jr_buf_shrink(&b);
    CHECK_EQ_INT(b.cap, 3);
    CHECK_EQ_MEM(b.data, b.len, "abc");
    CHECK_EQ_INT(jr_buf_append(&b, "d", 1), 0); /* grows again */
    CHECK_EQ_MEM(b.data, b.len, "abcd");
    jr_buf_reset(&b);
    jr_buf_shrink(&b); /* empty: freed */
    CHECK(b.data == NULL);
    CHECK_EQ_INT(b.cap, 0);
    jr_buf_free(&b);
}

TEST(overflow_is_refused) { check_refused(SIZE_MAX - 1); }

/* no allocator hands out half the address space: realloc returns NULL */
TEST(failed_allocation_is_reported)
{
    check_refused(SIZE_MAX / 2);
    /* same on a buffer that never had memory */
    jr_buf b = JR_BUF_INIT;
    CHECK_EQ_INT(jr_buf_reserve(&b, SIZE_MAX / 2), -1);
    CHECK(b.data == NULL);
    CHECK_EQ_INT(b.failed, 1);
    jr_buf_free(&b);
    CHECK_EQ_INT(b.failed, 0);
}

int main(void)
{
    RUN(starts_empty);
    RUN(append_and_grow);
    RUN(reserve_makes_room_without_using_it);
    RUN(reset_keeps_memory_recycle_drops_big);
    RUN(shrink_gives_back_unused_capacity);
    RUN(overflow_is_refused);
    RUN(failed_allocation_is_reported);
    return test_summary();
}
