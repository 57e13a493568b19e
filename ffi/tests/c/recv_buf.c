/*
 * C tests of the zero-copy receive calls, wsengine_recv_buf() and wsengine_commit_recv():
 * a handshake and masked frames "read" straight into the connection's buffer, a full
 * buffer (WSENGINE_AGAIN, no room), and the misuses that are refused with
 * WSENGINE_INVALID_ARGUMENT instead of crashing. Built and run by ffi/tests/c/run.sh
 * (exit status 0: every check passed).
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

static const char REQUEST[] = "GET /chat HTTP/1.1\r\n"
                              "Host: server.example.com\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";

/* RFC 6455 section 5.7: a single-frame masked text message, "Hello". */
static const uint8_t MASKED_HELLO[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                       0x7f, 0x9f, 0x4d, 0x51, 0x58};

/* "Reads" up to `len` bytes of `data` the way a host reads a socket: into the room
 * wsengine_recv_buf offers, then wsengine_commit_recv. Returns how many it took (0: the
 * buffer is full, poll events first). */
static size_t read_into(wsengine_conn *conn, const uint8_t *data, size_t len) {
    uint8_t *room = NULL;
    size_t room_len = 0, n;
    wsengine_status st = wsengine_recv_buf(conn, &room, &room_len);
    CHECK(st == WSENGINE_OK || st == WSENGINE_AGAIN);
    CHECK(room != NULL);
    CHECK((st == WSENGINE_AGAIN) == (room_len == 0));
    n = len < room_len ? len : room_len;
    if (n > 0) {
        memcpy(room, data, n);
    }
    CHECK(wsengine_commit_recv(conn, n) == WSENGINE_OK);
    return n;
}

/* Feeds `len` bytes in reads of at most `chunk`, polling events after each, and copies
 * the payload of every TEXT/BINARY event to `out`; returns the number of data events. */
static int feed(wsengine_conn *conn, const uint8_t *data, size_t len, size_t chunk,
                uint8_t *out, size_t *out_len) {
    int messages = 0;
    while (len > 0) {
        wsengine_event ev;
        wsengine_status st;
        size_t n = read_into(conn, data, len < chunk ? len : chunk);
        data += n;
        len -= n;
        while ((st = wsengine_poll_event(conn, &ev)) == WSENGINE_OK) {
            if (ev.kind == WSENGINE_EVENT_TEXT || ev.kind == WSENGINE_EVENT_BINARY) {
                memcpy(out + *out_len, ev.data, ev.len);
                *out_len += ev.len;
                messages++;
            }
        }
        CHECK(st == WSENGINE_AGAIN);
    }
    return messages;
}

/* A server past the handshake, which it read through wsengine_recv_buf. */
static wsengine_conn *open_server(size_t recv_buffer_size) {
    wsengine_config c;
    wsengine_conn *conn = NULL;
    wsengine_event ev;
    wsengine_bytes tx;
    CHECK(wsengine_config_init(&c, sizeof c) == WSENGINE_OK);
    if (recv_buffer_size) {
        c.recv_buffer_size = recv_buffer_size;
    }
    CHECK(wsengine_create(WSENGINE_ROLE_SERVER, &c, NULL, 0, &conn) == WSENGINE_OK);
    CHECK(read_into(conn, (const uint8_t *)REQUEST, strlen(REQUEST)) == strlen(REQUEST));
    CHECK(wsengine_poll_event(conn, &ev) == WSENGINE_OK);
    CHECK(ev.kind == WSENGINE_EVENT_REQUEST);
    CHECK(ev.len == 5 && memcmp(ev.data, "/chat", 5) == 0);
    CHECK(wsengine_accept(conn, NULL, 0, NULL, 0) == WSENGINE_OK);
    CHECK(wsengine_poll_transmit(conn, &tx) == WSENGINE_OK);
    CHECK(tx.len > 13 && memcmp(tx.data, "HTTP/1.1 101 ", 13) == 0);
    CHECK(wsengine_advance_transmit(conn, tx.len) == WSENGINE_OK);
    CHECK(wsengine_get_state(conn) == WSENGINE_STATE_OPEN);
    return conn;
}

static void test_handshake_and_masked_frames(void) {
    static uint8_t frame[8 + 300];
    static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    static uint8_t got[1024];
    wsengine_conn *conn = open_server(0);
    size_t got_len = 0, i;
    wsengine_event ev;
    /* The RFC's "Hello" in one read. */
    CHECK(feed(conn, MASKED_HELLO, sizeof MASKED_HELLO, sizeof MASKED_HELLO, got, &got_len) ==
          1);
    CHECK(got_len == 5 && memcmp(got, "Hello", 5) == 0);
    /* A masked 300-byte binary frame (16-bit length) in reads of 7 bytes. */
    frame[0] = 0x82;
    frame[1] = 0x80 | 126;
    frame[2] = 300 >> 8;
    frame[3] = 300 & 0xff;
    memcpy(frame + 4, key, 4);
    for (i = 0; i < 300; i++) {
        frame[8 + i] = (uint8_t)((uint8_t)i ^ key[i % 4]);
    }
    got_len = 0;
    CHECK(feed(conn, frame, sizeof frame, 7, got, &got_len) == 1);
    CHECK(got_len == 300);
    for (i = 0; i < 300 && i < got_len; i++) {
        CHECK(got[i] == (uint8_t)i);
    }
    /* A read that found nothing (EAGAIN) commits 0. */
    CHECK(read_into(conn, NULL, 0) == 0);
    CHECK(wsengine_poll_event(conn, &ev) == WSENGINE_AGAIN);
    wsengine_destroy(conn);
}

static void test_full_buffer(void) {
    /* Small frames never polled fill a 256-byte receive buffer (plus a frame header). */
    uint8_t wire[100 * 7];
    uint8_t got[128];
    uint8_t *room = NULL;
    size_t room_len = 1, taken = 0, n, got_len = 0, i;
    wsengine_conn *conn = open_server(256);
    for (i = 0; i < 100; i++) {
        uint8_t *f = wire + 7 * i;
        f[0] = 0x82;
        f[1] = 0x81;
        f[2] = f[3] = f[4] = f[5] = 0; /* a zero mask key */
        f[6] = (uint8_t)i;
    }
    while ((n = read_into(conn, wire + taken, sizeof wire - taken)) > 0) {
        taken += n;
    }
    CHECK(taken == 256 + 14);
    CHECK(wsengine_recv_buf(conn, &room, &room_len) == WSENGINE_AGAIN);
    CHECK(room != NULL && room_len == 0);
    CHECK(wsengine_commit_recv(conn, 0) == WSENGINE_OK);
    /* Polling drains the buffer: the rest goes in. */
    CHECK(feed(conn, wire + taken, sizeof wire - taken, sizeof wire, got, &got_len) == 100);
    for (i = 0; i < 100 && i < got_len; i++) {
        CHECK(got[i] == (uint8_t)i);
    }
    wsengine_destroy(conn);
}

static void test_misuse_is_refused(void) {
    wsengine_conn *conn = open_server(0);
    uint8_t *room = NULL;
    size_t room_len = 0, got_len = 0;
    uint8_t got[16];
    wsengine_event ev;
    /* No wsengine_recv_buf before. */
    CHECK(wsengine_commit_recv(conn, 0) == WSENGINE_INVALID_ARGUMENT);
    CHECK(strstr(wsengine_last_error_message(conn), "wsengine_recv_buf") != NULL);
    /* More than offered; the refused commit uses the offer up. */
    CHECK(wsengine_recv_buf(conn, &room, &room_len) == WSENGINE_OK);
    CHECK(wsengine_commit_recv(conn, room_len + 1) == WSENGINE_INVALID_ARGUMENT);
    CHECK(strstr(wsengine_last_error_message(conn), "offered") != NULL);
    CHECK(wsengine_commit_recv(conn, 0) == WSENGINE_INVALID_ARGUMENT);
    /* Another call in between withdraws the offer; a getter does not. */
    CHECK(wsengine_recv_buf(conn, &room, &room_len) == WSENGINE_OK);
    CHECK(wsengine_poll_event(conn, &ev) == WSENGINE_AGAIN);
    CHECK(wsengine_commit_recv(conn, 1) == WSENGINE_INVALID_ARGUMENT);
    CHECK(wsengine_recv_buf(conn, &room, &room_len) == WSENGINE_OK);
    CHECK(wsengine_get_state(conn) == WSENGINE_STATE_OPEN);
    CHECK(room_len >= sizeof MASKED_HELLO);
    memcpy(room, MASKED_HELLO, sizeof MASKED_HELLO);
    CHECK(wsengine_commit_recv(conn, sizeof MASKED_HELLO) == WSENGINE_OK);
    CHECK(wsengine_poll_event(conn, &ev) == WSENGINE_OK);
    CHECK(ev.kind == WSENGINE_EVENT_TEXT && ev.len == 5 && memcmp(ev.data, "Hello", 5) == 0);
    /* NULL out-pointers. */
    CHECK(wsengine_recv_buf(conn, NULL, &room_len) == WSENGINE_INVALID_ARGUMENT);
    CHECK(wsengine_recv_buf(conn, &room, NULL) == WSENGINE_INVALID_ARGUMENT);
    CHECK(wsengine_recv_buf(NULL, &room, &room_len) == WSENGINE_INVALID_ARGUMENT);
    CHECK(wsengine_commit_recv(NULL, 0) == WSENGINE_INVALID_ARGUMENT);
    /* Still usable: nothing was poisoned. */
    CHECK(feed(conn, MASKED_HELLO, sizeof MASKED_HELLO, 3, got, &got_len) == 1);
    CHECK(got_len == 5 && memcmp(got, "Hello", 5) == 0);
    wsengine_destroy(conn);
}

int main(void) {
    test_handshake_and_masked_frames();
    test_full_buffer();
    test_misuse_is_refused();
    if (failures) {
        fprintf(stderr, "recv_buf: %d check(s) failed\n", failures);
        return 1;
    }
    printf("recv_buf: ok\n");
    return 0;
}
