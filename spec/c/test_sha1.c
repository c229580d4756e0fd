/* test_sha1.c - core/sha1.c against the FIPS 180 / RFC 3174 vectors, the
 * padding edges (55, 56, 63, 64 bytes) and RFC 6455's handshake example. */
#include "sha1.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const unsigned char *md, char *out)
{
    for (int i = 0; i < JR_SHA1_LEN; i++) sprintf(out + 2 * i, "%02x", md[i]);
}

static void check(const void *data, size_t len, const char *want)
{
    unsigned char md[JR_SHA1_LEN];
    char got[2 * JR_SHA1_LEN + 1];
    jr_sha1(data, len, md);
    hex(md, got);
    CHECK_EQ_STR(got, want);
}

TEST(fips_vectors)
{
    check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 448 bits */
    check(two, strlen(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    size_t n = 1000000;
    char *a = malloc(n);
    memset(a, 'a', n);
    check(a, n, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(a);
}

/* The length lands in the first block's last 8 bytes up to 55 bytes of tail,
 * and needs a second block from 56 on. */
TEST(padding_edges)
{
    char m[64];
    memset(m, 'x', sizeof m);
    check(m, 55, "cef734ba81a024479e09eb5a75b6ddae62e6abf1");
    check(m, 56, "901305367c259952f4e7af8323f480d59f81335b");
    check(m, 63, "0ddc4e0cccd9a12850deb5abb0853a4425559fec");
    check(m, 64, "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163");
}

TEST(rfc6455_handshake_example)
{
    /* §1.3: key "dGhlIHNhbXBsZSBub25jZQ==" -> accept "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
     * whose bytes are these. */
    const char *in = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    check(in, strlen(in), "b37a4f2cc0624f1690f64606cf385945b2bec4ea");
}

int main(void)
{
    RUN(fips_vectors);
    RUN(padding_edges);
    RUN(rfc6455_handshake_example);
    return test_summary();
}
