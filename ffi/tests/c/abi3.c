/*
 * C tests of ABI 3's wsengine_config fields: the Origin allow-list (403, copied strings,
 * invalid entries), the message timeout (WSENGINE_TIMEOUT with a Close 1008 queued) and
 * the defaults. Built and run by ffi/tests/c/run.sh (exit status 0: every check passed).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

#define SEC 1000000000ull

static const char REQUEST_HEAD[] = "GET /chat HTTP/1.1\r\n"
                                   "Host: server.example.com\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                   "Sec-WebSocket-Version: 13\r\n";

/* Feeds a handshake request with `origin` (NULL: none) to a new server handle. */
static void send_request(wsengine_conn *conn, const char *origin) {
    char request[512];
    size_t taken = 0;
    if (origin) {
        snprintf(request, sizeof request, "%sOrigin: %s\r\n\r\n", REQUEST_HEAD, origin);
    } else {
        snprintf(request, sizeof request, "%s\r\n", REQUEST_HEAD);
    }
    CHECK(wsengine_recv(conn, (const uint8_t *)request, strlen(request), &taken) ==
          WSENGINE_OK);
    CHECK(taken == strlen(request));
}

/* Copies everything queued for the transport into out (at most cap bytes). */
static size_t drain(wsengine_conn *conn, uint8_t *out, size_t cap) {
    size_t n = 0;
    for (;;) {
        wsengine_bytes tx;
        size_t k;
        CHECK(wsengine_poll_transmit(conn, &tx) == WSENGINE_OK);
        if (tx.len == 0) {
            return n;
        }
        k = tx.len < cap - n ? tx.len : cap - n;
        memcpy(out + n, tx.data, k);
        n += k;
        CHECK(wsengine_advance_transmit(conn, tx.len) == WSENGINE_OK);
    }
}

static void test_defaults(void) {
    wsengine_config c;
    CHECK(wsengine_abi_version() == WSENGINE_ABI_VERSION);
    CHECK(WSENGINE_ABI_VERSION == 3);
    CHECK(wsengine_config_init(&c, sizeof c) == WSENGINE_OK);
    CHECK(c.flush_timeout_ns == 5 * SEC);
    CHECK(c.message_timeout_ns == 30 * SEC);
    CHECK(c.deflate_max_inflated_size == 1u << 20);
    CHECK(c.deflate_max_compress_size == 1u << 20);
    CHECK(c.deflate_max_inflate_rate == 0);
    CHECK(c.allowed_origins == NULL && c.allowed_origin_count == 0);
}

/* A server whose allow-list strings are freed right after wsengine_create(). */
static wsengine_conn *server_with_origins(void) {
    const char *entries[2] = {"https://example.com", "https://*.example.org"};
    wsengine_bytes *list = malloc(2 * sizeof *list);
    char *copies[2];
    wsengine_config c;
    wsengine_conn *conn = NULL;
    size_t i;
    CHECK(list != NULL);
    for (i = 0; i < 2; i++) {
        size_t len = strlen(entries[i]);
        copies[i] = malloc(len);
        CHECK(copies[i] != NULL);
        memcpy(copies[i], entries[i], len); /* not NUL-terminated */
        list[i].data = (const uint8_t *)copies[i];
        list[i].len = len;
    }
    CHECK(wsengine_config_init(&c, sizeof c) == WSENGINE_OK);
    c.allowed_origins = list;
    c.allowed_origin_count = 2;
    CHECK(wsengine_create(WSENGINE_ROLE_SERVER, &c, NULL, 0, &conn) == WSENGINE_OK);
    /* The library copied them. */
    for (i = 0; i < 2; i++) {
        memset(copies[i], 'x', list[i].len);
        free(copies[i]);
    }
    free(list);
    return conn;
}

static void test_allowed_origins(void) {
    static const char *allowed[] = {"https://example.com", "https://a.b.example.org", NULL};
    static const char *refused[] = {"http://example.com", "https://example.org",
                                    "https://example.com.evil.com", "null"};
    uint8_t out[1024];
    wsengine_event ev;
    size_t i, n;
    for (i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        wsengine_conn *conn = server_with_origins();
        send_request(conn, allowed[i]);
        CHECK(wsengine_poll_event(conn, &ev) == WSENGINE_OK);
        CHECK(ev.kind == WSENGINE_EVENT_REQUEST);
        CHECK(wsengine_accept(conn, NULL, 0, NULL, 0) == WSENGINE_OK);
        n = drain(conn, out, sizeof out);
        CHECK(n > 13 && memcmp(out, "HTTP/1.1 101 ", 13) == 0);
        wsengine_destroy(conn);
    }
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        wsengine_conn *conn = server_with_origins();
        send_request(conn, refused[i]);
        CHECK(wsengine_poll_event(conn, &ev) == WSENGINE_HANDSHAKE_FAILED);
        CHECK(ev.kind == WSENGINE_EVENT_NONE);
        CHECK(wsengine_last_close_code(conn) == 0);
        n = drain(conn, out, sizeof out);
        CHECK(n > 13 && memcmp(out, "HTTP/1.1 403 ", 13) == 0);
        CHECK(wsengine_should_close_transport(conn) == 1);
        wsengine_destroy(conn);
    }
}

static void test_invalid_origins(void) {
    static const char *bad[] = {"example.com", "https://example.com/path", "https://", ""};
    wsengine_config c;
    wsengine_conn *conn;
    wsengine_bytes entries[2];
    size_t i;
    CHECK(wsengine_config_init(&c, sizeof c) == WSENGINE_OK);
    entries[0].data = (const uint8_t *)"https://ok.example";
    entries[0].len = strlen("https://ok.example");
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        entries[1].data = (const uint8_t *)bad[i];
        entries[1].len = strlen(bad[i]);
        c.allowed_origins = entries;
        c.allowed_origin_count = 2;
        conn = (wsengine_conn *)(void *)&c; /* must be overwritten with NULL */
        CHECK(wsengine_create(WSENGINE_ROLE_SERVER, &c, NULL, 0, &conn) ==
              WSENGINE_INVALID_ARGUMENT);
        CHECK(conn == NULL);
    }
    /* A NULL entry with a length. */
    entries[1].data = NULL;
    entries[1].len = 4;
    conn = NULL;
    CHECK(wsengine_create(WSENGINE_ROLE_SERVER, &c, NULL, 0, &conn) ==
          WSENGINE_INVALID_ARGUMENT);
    CHECK(conn == NULL);
}

static void test_message_timeout(void) {
    /* A client's text frame with FIN clear ("hel", masked with a zero key): a message
     * that starts and never ends. */
    static const uint8_t fragment[] = {0x01, 0x83, 0, 0, 0, 0, 'h', 'e', 'l'};
    /* Close 1008 with the error's text as its reason (RFC 6455 §5.5.1). */
    static const char reason[] = "data message did not complete in time";
    uint8_t close_1008[4 + sizeof reason - 1] = {0x88, 2 + sizeof reason - 1, 0x03, 0xf0};
    wsengine_config c;
    wsengine_conn *conn = NULL;
    wsengine_event ev;
    uint8_t out[1024];
    uint64_t deadline = 0;
    size_t n;
    CHECK(wsengine_config_init(&c, sizeof c) == WSENGINE_OK);
    c.keepalive_interval_ns = 0;
    c.message_timeout_ns = 2 * SEC;
    CHECK(wsengine_create(WSENGINE_ROLE_SERVER, &c, NULL, 0, &conn) == WSENGINE_OK);
    send_request(conn, NULL);
    CHECK(wsengine_poll_event(conn, &ev) == WSENGINE_OK && ev.kind == WSENGINE_EVENT_REQUEST);
    CHECK(wsengine_accept(conn, NULL, 0, NULL, 0) == WSENGINE_OK);
    drain(conn, out, sizeof out);
    CHECK(wsengine_recv(conn, fragment, sizeof fragment, NULL) == WSENGINE_OK);
    CHECK(wsengine_poll_event(conn, &ev) == WSENGINE_AGAIN);
    /* The timer starts from the latest time handed in. */
    CHECK(wsengine_handle_timeout(conn, SEC) == WSENGINE_OK);
    CHECK(wsengine_next_timeout(conn, &deadline) == WSENGINE_OK);
    CHECK(deadline == 3 * SEC);
    CHECK(wsengine_handle_timeout(conn, deadline) == WSENGINE_OK);
    CHECK(wsengine_poll_event(conn, &ev) == WSENGINE_TIMEOUT);
    CHECK(wsengine_last_close_code(conn) == 1008);
    memcpy(close_1008 + 4, reason, sizeof reason - 1);
    n = drain(conn, out, sizeof out);
    CHECK(n == sizeof close_1008 && memcmp(out, close_1008, n) == 0);
    CHECK(wsengine_should_close_transport(conn) == 1);
    wsengine_destroy(conn);
}

int main(void) {
    test_defaults();
    test_allowed_origins();
    test_invalid_origins();
    test_message_timeout();
    if (failures) {
        fprintf(stderr, "abi3: %d check(s) failed\n", failures);
        return 1;
    }
    printf("abi3: ok\n");
    return 0;
}
