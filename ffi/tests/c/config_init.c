/*
 * C tests of wsengine_config_init(): built with cc against the static library and the
 * committed header by ffi/tests/c/run.sh (exit status 0: every check passed).
 *
 * A program built against an older, smaller header must keep working with a newer
 * library: wsengine_config_init(&cfg, sizeof cfg) writes no byte past its struct, and
 * wsengine_create() takes the struct back (ABI 1's and ABI 2's structs alike).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wsengine.h"

static int failures = 0;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                            \
        }                                                                          \
    } while (0)

/* ABI 1's wsengine_config: today's struct without the trailing `deflate`. */
typedef struct config_v1 {
    size_t struct_size;
    uint64_t max_frame_size;
    uint64_t max_message_size;
    uint32_t max_fragments;
    int32_t delivery;
    size_t max_handshake_size;
    size_t max_headers;
    size_t recv_buffer_size;
    size_t max_send_buffer;
    uint64_t handshake_timeout_ns;
    uint64_t close_timeout_ns;
    uint64_t keepalive_interval_ns;
    uint64_t keepalive_timeout_ns;
    uint8_t auto_pong;
    uint8_t rng_seed_set;
    uint8_t rng_seed[32];
} config_v1;

/* The old struct with what happens to follow it in the caller's memory. */
typedef struct old_caller {
    config_v1 config;
    unsigned char after[64];
} old_caller;

/* ABI 2's wsengine_config: ABI 1's plus `deflate`, before flush_timeout_ns. */
typedef struct config_v2 {
    config_v1 v1;
    wsengine_deflate_config deflate;
} config_v2;

typedef struct old_caller_v2 {
    config_v2 config;
    unsigned char after[96];
} old_caller_v2;

static int all_bytes(const unsigned char *p, size_t n, unsigned char value) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (p[i] != value) {
            return 0;
        }
    }
    return 1;
}

static void test_whole_struct(void) {
    wsengine_config a, b;
    wsengine_conn *conn = NULL;
    memset(&a, 0xAA, sizeof a);
    CHECK(wsengine_config_init(&a, sizeof a) == WSENGINE_OK);
    CHECK(a.struct_size == sizeof a);
    CHECK(wsengine_config_default(&b) == WSENGINE_OK);
    CHECK(a.max_frame_size == b.max_frame_size && a.max_headers == b.max_headers);
    CHECK(a.handshake_timeout_ns == b.handshake_timeout_ns && a.auto_pong == 1);
    CHECK(a.deflate.enabled == 0 && a.deflate.level == b.deflate.level);
    CHECK(a.deflate.min_compress_size == b.deflate.min_compress_size);
    CHECK(wsengine_create(WSENGINE_ROLE_SERVER, &a, NULL, 0, &conn) == WSENGINE_OK);
    CHECK(conn != NULL);
    wsengine_destroy(conn);
}

static void test_older_smaller_struct(void) {
    old_caller old;
    wsengine_config now;
    wsengine_conn *conn = NULL;
    CHECK(offsetof(wsengine_config, deflate) == sizeof(config_v1));
    memset(&old, 0xAA, sizeof old);
    CHECK(wsengine_config_init((wsengine_config *)(void *)&old.config, sizeof old.config) ==
          WSENGINE_OK);
    CHECK(all_bytes(old.after, sizeof old.after, 0xAA)); /* nothing written past it */
    CHECK(old.config.struct_size == sizeof old.config);
    CHECK(wsengine_config_default(&now) == WSENGINE_OK);
    CHECK(old.config.max_message_size == now.max_message_size);
    CHECK(old.config.max_send_buffer == now.max_send_buffer);
    CHECK(old.config.auto_pong == 1 && old.config.rng_seed_set == 0);
    /* wsengine_create() takes it, and does not read the bytes that follow it (0xAA
     * there would be an invalid deflate level). */
    CHECK(wsengine_create(WSENGINE_ROLE_SERVER, (const wsengine_config *)(void *)&old.config,
                          NULL, 0, &conn) == WSENGINE_OK);
    CHECK(conn != NULL);
    wsengine_destroy(conn);
}

static void test_abi2_struct(void) {
    old_caller_v2 old;
    wsengine_config now;
    wsengine_conn *conn = NULL;
    CHECK(offsetof(wsengine_config, flush_timeout_ns) == sizeof(config_v2));
    memset(&old, 0xAA, sizeof old);
    CHECK(wsengine_config_init((wsengine_config *)(void *)&old.config, sizeof old.config) ==
          WSENGINE_OK);
    CHECK(all_bytes(old.after, sizeof old.after, 0xAA)); /* nothing written past it */
    CHECK(old.config.v1.struct_size == sizeof old.config);
    CHECK(wsengine_config_default(&now) == WSENGINE_OK);
    CHECK(old.config.v1.max_message_size == now.max_message_size);
    CHECK(old.config.deflate.level == now.deflate.level && old.config.deflate.enabled == 0);
    /* wsengine_create() takes it and does not read what follows (0xAA there would be an
     * allowed_origins pointer to nowhere). */
    CHECK(wsengine_create(WSENGINE_ROLE_SERVER, (const wsengine_config *)(void *)&old.config,
                          NULL, 0, &conn) == WSENGINE_OK);
    CHECK(conn != NULL);
    wsengine_destroy(conn);
    /* A size between ABI 2's and this header's is refused. */
    old.config.v1.struct_size = sizeof old.config + 8;
    conn = NULL;
    CHECK(wsengine_create(WSENGINE_ROLE_SERVER, (const wsengine_config *)(void *)&old.config,
                          NULL, 0, &conn) == WSENGINE_INVALID_ARGUMENT);
    CHECK(conn == NULL);
}

static void test_partial_size(void) {
    /* A union keeps the buffer aligned as wsengine_config. */
    union {
        wsengine_config c;
        unsigned char b[sizeof(wsengine_config) + 32];
    } u;
    size_t size = sizeof(wsengine_config) - 5;
    memset(u.b, 0xAA, sizeof u.b);
    CHECK(wsengine_config_init(&u.c, size) == WSENGINE_OK);
    CHECK(all_bytes(u.b + size, sizeof u.b - size, 0xAA));
    CHECK(u.c.struct_size == size);
}

static void test_refusals(void) {
    unsigned char before[sizeof(wsengine_config)];
    union {
        wsengine_config c;
        unsigned char b[sizeof(wsengine_config)];
    } u;
    CHECK(wsengine_config_init(NULL, sizeof(wsengine_config)) == WSENGINE_INVALID_ARGUMENT);
    memset(u.b, 0x5C, sizeof u.b);
    memcpy(before, u.b, sizeof before);
    CHECK(wsengine_config_init(&u.c, 0) == WSENGINE_INVALID_ARGUMENT);
    CHECK(wsengine_config_init(&u.c, sizeof(config_v1) - 1) == WSENGINE_INVALID_ARGUMENT);
    CHECK(memcmp(before, u.b, sizeof before) == 0); /* nothing written */
}

int main(void) {
    test_whole_struct();
    test_older_smaller_struct();
    test_abi2_struct();
    test_partial_size();
    test_refusals();
    if (failures) {
        fprintf(stderr, "config_init: %d check(s) failed\n", failures);
        return 1;
    }
    printf("config_init: ok\n");
    return 0;
}
