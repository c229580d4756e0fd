/* sha1.h - SHA-1 (FIPS 180-4), for the one place the WebSocket handshake
 * needs it: Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) (RFC 6455
 * §4.2.2). Not for security: SHA-1 is broken for collision resistance,
 * which the handshake does not rely on.
 *
 * Our own ~80 lines instead of OpenSSL's libcrypto: the first call into
 * libcrypto initialises the library and pages in about 1.5 MB of it per
 * process, for 20 bytes of hash per connection. */
#ifndef JR_SHA1_H
#define JR_SHA1_H

#include <stddef.h>

#define JR_SHA1_LEN 20

void jr_sha1(const void *data, size_t len, unsigned char out[JR_SHA1_LEN]);

#endif
