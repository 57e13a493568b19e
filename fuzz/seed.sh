#!/usr/bin/env bash
# Writes the seed corpora into fuzz/seeds/<target>/ from the test vectors: the RFC 6455
# examples (§1.2 handshake, §5.7 frames), real browser handshakes, and every rejection
# fixture of the handshake tests. Deterministic; run it again after changing the input
# layouts (fuzz/README.md) and commit the result. Needs only bash, printf, sha1sum and
# base64 (coreutils).
set -euo pipefail
cd "$(dirname "$0")"

SEEDS=seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS"/{handshake_request,handshake_response,frame_header,connection_server,connection_client,roundtrip,utf8_stream,unmask}

# ---- byte helpers (all write to stdout; NUL bytes survive because nothing is captured) ----

# hex "81 05 48" -> the bytes
hex() { local h; h=$(printf '%s' "$*" | tr -d ' \n'); printf "$(printf '%s' "$h" | sed 's/../\\x&/g')"; }
u8() { hex "$(printf '%02x' $(($1 & 255)))"; }
le16() { u8 $(($1 & 255)); u8 $(($1 >> 8)); }
le32() { le16 $(($1 & 65535)); le16 $(($1 >> 16)); }
# crlf "line" "line" ... -> lines joined with CRLF, plus the blank line
crlf() { local l; for l in "$@"; do printf '%s\r\n' "$l"; done; printf '\r\n'; }
# str "text" -> the text, as is
str() { printf '%s' "$1"; }
# accept KEY -> Sec-WebSocket-Accept for KEY (RFC 6455 §4.2.2)
accept() {
    printf '%s' "$1" "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" | sha1sum | cut -c1-40 |
        { read -r h; hex "$h"; } | base64
}

# seed TARGET NAME < bytes
seed() { cat > "$SEEDS/$1/$2"; }

# ---- handshake_request: flags u8, chunk u8, request ----
# flags: bit0 EOF, bits1-2 answer (0 accept, 2 accept+protocol, 3 reject), bit3 head 512,
# bit4 8 headers. chunk: 00 whole, 0x41 2-byte reads, 0x8f random 1..16, 0xc0 bytewise.

RFC_LINES=(
    "GET /chat HTTP/1.1"
    "Host: server.example.com"
    "Upgrade: websocket"
    "Connection: Upgrade"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
    "Origin: http://example.com"
    "Sec-WebSocket-Protocol: chat, superchat"
    "Sec-WebSocket-Version: 13"
)
CHROME_LINES=(
    "GET /chat HTTP/1.1"
    "Host: localhost:9001"
    "Connection: Upgrade"
    "Pragma: no-cache"
    "Cache-Control: no-cache"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
    "Upgrade: websocket"
    "Origin: http://localhost:8080"
    "Sec-WebSocket-Version: 13"
    "Accept-Encoding: gzip, deflate, br, zstd"
    "Accept-Language: en-US,en;q=0.9"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw=="
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
)
FIREFOX_LINES=(
    "GET /chat?room=1 HTTP/1.1"
    "Host: localhost:9001"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
    "Accept: */*"
    "Accept-Language: en-US,en;q=0.5"
    "Accept-Encoding: gzip, deflate, br"
    "Sec-WebSocket-Version: 13"
    "Origin: http://localhost:8080"
    "Sec-WebSocket-Protocol: chat"
    "Sec-WebSocket-Extensions: permessage-deflate"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
    "Connection: keep-alive, Upgrade"
    "Sec-Fetch-Dest: empty"
    "Sec-Fetch-Mode: websocket"
    "Sec-Fetch-Site: same-site"
    "Pragma: no-cache"
    "Cache-Control: no-cache"
    "Upgrade: websocket"
)
SAFARI_LINES=(
    "GET / HTTP/1.1"
    "Host: example.com"
    "Upgrade: websocket"
    "Connection: Upgrade"
    "Origin: https://example.com"
    "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA=="
    "Sec-WebSocket-Version: 13"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; server_max_window_bits=10"
    "User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)

# The RFC request with header NAME's line replaced by LINE ("" removes it).
rfc_with() {
    local name=$1 line=$2 l lines=()
    for l in "${RFC_LINES[@]}"; do
        if [[ "${l,,}" == "${name,,}:"* ]]; then
            [[ -n "$line" ]] && lines+=("$line")
        else
            lines+=("$l")
        fi
    done
    crlf "${lines[@]}"
}

MASKED_HELLO="81 85 37 fa 21 3d 7f 9f 4d 51 58"
MASKED_PING="89 85 37 fa 21 3d 7f 9f 4d 51 58"
MASKED_CLOSE="88 82 37 fa 21 3d 34 12"

{ hex 00 00; crlf "${RFC_LINES[@]}"; } | seed handshake_request rfc_1_2
{ hex 00 c0; crlf "${RFC_LINES[@]}"; } | seed handshake_request rfc_1_2_bytewise
{ hex 04 8f; crlf "${RFC_LINES[@]}"; } | seed handshake_request rfc_1_2_protocol
{ hex 06 41; crlf "${RFC_LINES[@]}"; } | seed handshake_request rfc_1_2_rejected
{ hex 01 47; crlf "${RFC_LINES[@]}"; hex "$MASKED_HELLO $MASKED_PING $MASKED_CLOSE"; } | seed handshake_request rfc_1_2_then_frames_eof
{ hex 00 00; crlf "${RFC_LINES[@]}"; hex "$MASKED_HELLO 81 05 48 65"; } | seed handshake_request rfc_1_2_then_bad_frame
{ hex 00 00; crlf "${CHROME_LINES[@]}"; } | seed handshake_request chrome
{ hex 04 8f; crlf "${FIREFOX_LINES[@]}"; } | seed handshake_request firefox
{ hex 00 83; crlf "${SAFARI_LINES[@]}"; } | seed handshake_request safari
# Rejection fixtures (tests/api/rules.rs, src/handshake/request.rs).
{ hex 00 00; crlf "${RFC_LINES[@]}" | sed '1s/^GET/POST/'; } | seed handshake_request reject_post_405
{ hex 00 00; crlf "${RFC_LINES[@]}" | sed 's#HTTP/1.1#HTTP/1.0#'; } | seed handshake_request reject_http_1_0
{ hex 00 00; rfc_with Host ""; } | seed handshake_request reject_missing_host
{ hex 00 00; rfc_with Host $'Host: a\r\nHost: b'; } | seed handshake_request reject_two_hosts
{ hex 00 00; rfc_with Upgrade ""; } | seed handshake_request reject_missing_upgrade
{ hex 00 00; rfc_with Upgrade "Upgrade: h2c"; } | seed handshake_request reject_upgrade_h2c
{ hex 00 00; rfc_with Connection ""; } | seed handshake_request reject_missing_connection
{ hex 00 00; rfc_with Connection "Connection: keep-alive"; } | seed handshake_request reject_connection_keep_alive
{ hex 00 00; rfc_with Sec-WebSocket-Key ""; } | seed handshake_request reject_missing_key
{ hex 00 00; rfc_with Sec-WebSocket-Key "Sec-WebSocket-Key: dGhlIHNhbXBsZQ=="; } | seed handshake_request reject_short_key
{ hex 00 00; rfc_with Sec-WebSocket-Key "Sec-WebSocket-Key: not base64!!!!!!!!!!!!!"; } | seed handshake_request reject_bad_key
{ hex 00 00; rfc_with Sec-WebSocket-Key $'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA=='; } | seed handshake_request reject_two_keys
{ hex 00 00; rfc_with Sec-WebSocket-Version "Sec-WebSocket-Version: 8"; } | seed handshake_request reject_version_8_426
{ hex 00 00; rfc_with Sec-WebSocket-Version ""; } | seed handshake_request reject_missing_version
{ hex 00 00; rfc_with Origin $'Origin: http://a\r\nOrigin: http://b'; } | seed handshake_request reject_two_origins
{ hex 00 00; rfc_with Sec-WebSocket-Protocol "Sec-WebSocket-Protocol: chat,,"; } | seed handshake_request reject_bad_protocol_list
{ hex 00 00; rfc_with Sec-WebSocket-Protocol "Sec-WebSocket-Extensions: permessage-deflate; ;"; } | seed handshake_request reject_bad_extensions
{ hex 10 00; rfc_with Origin "X-A: 1"$'\r\n'"X-B: 2"$'\r\n'"X-C: 3"; } | seed handshake_request reject_too_many_headers_431
{ hex 08 00; str "GET /chat HTTP/1.1"; printf '\r\nX-A: '; printf 'a%.0s' {1..600}; printf '\r\n\r\n'; } | seed handshake_request reject_head_too_large_431
{ hex 00 00; str "GET /chat HTTP/1.1"$'\r\n'"Host: x"$'\r\n'"Bad Header: 1"$'\r\n\r\n'; } | seed handshake_request reject_malformed
{ hex 00 00; hex "16 03 01 02 00 01 00 01 fc 03 03"; } | seed handshake_request reject_tls_client_hello
{ hex 01 00; r=$(crlf "${RFC_LINES[@]}"); printf '%s' "${r:0:60}"; } | seed handshake_request eof_mid_head

# ---- handshake_response: flags u8, chunk u8, response ----
# The fuzzed client's key comes from Config::rng_seed = [7; 32] (base_config in fuzz/src/lib.rs,
# from wsengine_test_support::config in test-support/src/lib.rs).
CLIENT_KEY="9pKJeIXAyyCj5M0QagsVvA=="
ACCEPT=$(accept "$CLIENT_KEY")
RES_101=(
    "HTTP/1.1 101 Switching Protocols"
    "Upgrade: websocket"
    "Connection: Upgrade"
    "Sec-WebSocket-Accept: $ACCEPT"
)
UNMASKED_HELLO="81 05 48 65 6c 6c 6f"
UNMASKED_PING="89 05 48 65 6c 6c 6f"
UNMASKED_CLOSE="88 02 03 e8"
{ hex 00 00; crlf "${RES_101[@]}"; } | seed handshake_response accept
{ hex 00 c0; crlf "${RES_101[@]}" "Sec-WebSocket-Protocol: chat"; } | seed handshake_response accept_protocol_bytewise
{ hex 00 8f; crlf "${RES_101[@]}" "Sec-WebSocket-Protocol: superchat" "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15"; } | seed handshake_response accept_protocol_extension
{ hex 01 45; crlf "${RES_101[@]}"; hex "$UNMASKED_HELLO $UNMASKED_PING 01 03 48 65 6c 80 02 6c 6f $UNMASKED_CLOSE"; } | seed handshake_response accept_then_frames_eof
{ hex 00 00; crlf "HTTP/1.1 101 Switching Protocols" "Upgrade: websocket" "Connection: Upgrade" "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; } | seed handshake_response reject_wrong_accept
{ hex 00 00; crlf "${RES_101[@]}" "Sec-WebSocket-Accept: $ACCEPT"; } | seed handshake_response reject_two_accepts
{ hex 00 00; crlf "${RES_101[@]}" | sed 's#HTTP/1.1#HTTP/1.0#'; } | seed handshake_response reject_http_1_0
{ hex 00 00; crlf "HTTP/1.1 101 Switching Protocols" "Connection: Upgrade" "Sec-WebSocket-Accept: $ACCEPT"; } | seed handshake_response reject_missing_upgrade
{ hex 00 00; crlf "HTTP/1.1 101 Switching Protocols" "Upgrade: websocket" "Sec-WebSocket-Accept: $ACCEPT"; } | seed handshake_response reject_missing_connection
{ hex 00 00; crlf "${RES_101[@]}" "Sec-WebSocket-Protocol: mqtt"; } | seed handshake_response reject_protocol_not_offered
{ hex 00 00; crlf "${RES_101[@]}" "Sec-WebSocket-Protocol: chat, superchat"; } | seed handshake_response reject_protocol_list
{ hex 00 00; crlf "${RES_101[@]}" "Sec-WebSocket-Extensions: x-webkit-deflate-frame"; } | seed handshake_response reject_extension_not_offered
{ hex 00 00; crlf "HTTP/1.1 403 Forbidden" "Content-Length: 4"; str nope; } | seed handshake_response refused_403_body
{ hex 01 c0; crlf "HTTP/1.1 403 Forbidden" "Connection: close"; str nope; } | seed handshake_response refused_403_until_eof
{ hex 00 00; crlf "HTTP/1.1 302 Found" "Location: wss://example.com/" "Content-Length: 0"; } | seed handshake_response refused_302
{ hex 00 00; crlf "HTTP/1.1 426 Upgrade Required" "Sec-WebSocket-Version: 13" "Content-Length: 5, 5"; str "hello"; } | seed handshake_response refused_426
{ hex 28 00; crlf "HTTP/1.1 400 Bad Request" "Content-Length: 100000"; printf 'x%.0s' {1..300}; } | seed handshake_response refused_big_body_small_buffer
{ hex 00 00; crlf "HTTP/1.1 204 No Content"; } | seed handshake_response refused_204
{ hex 00 00; str "HTTP/1.1 abc OK"$'\r\n\r\n'; } | seed handshake_response malformed_status
{ hex 01 00; r=$(crlf "${RES_101[@]}"); printf '%s' "${r:0:50}"; } | seed handshake_response eof_mid_head

# ---- frame_header: allowed_rsv u8, bytes ----
for f in "00 81 05" "00 81 85 37 fa 21 3d" "00 01 03" "00 80 02" "00 89 05" "00 8a 85 37 fa 21 3d" \
         "00 82 7e 01 00" "00 82 7f 00 00 00 00 00 01 00 00" "00 82 ff 00 00 00 00 00 01 00 00 01 02 03 04" \
         "70 c1 00" "40 c1 80 01 02 03 04" "00 82 7e 00 7d" "00 82 7f 00 00 00 00 00 00 ff ff" \
         "00 82 7f 80 00 00 00 00 00 00 00" "00 83 00" "00 09 00" "00 89 7e 00 7e" "00 88 7e" "00 82 7f 00 00"; do
    hex "$f" | seed frame_header "h_$(printf '%s' "$f" | tr -d ' ')"
done

# ---- utf8_stream: nsizes u8, sizes, data ----
KOSME="ce ba e1 bd b9 cf 83 ce bc ce b5"
for f in "00 $KOSME" "03 01 01 01 $KOSME" "05 00 02 03 00 01 $KOSME" \
         "00 $KOSME ed a0 80 65 64 69 74 65 64" "01 0c $KOSME f4 90 80 80 65 64 69 74 65 64" \
         "00 c0 af" "00 e0 80 af" "01 01 f4 90" "02 01 01 e2 82 ac 78" "00 e2 82" \
         "00 f0 9f 98 80 f0 9f 98" "02 02 01 ef bb bf 48 65 6c 6c 6f" "00 ff"; do
    hex "$f" | seed utf8_stream "u_$(printf '%s' "$f" | tr -d ' ' | cut -c1-40)"
done

# ---- unmask: key [4], phase u64, offset u8, cut u8, data ----
hex "37 fa 21 3d  00 00 00 00 00 00 00 00  00 00  7f 9f 4d 51 58" | seed unmask rfc_5_7_hello
hex "37 fa 21 3d  03 00 00 00 00 00 00 00  05 03  7f 9f 4d 51 58 7f 9f 4d 51 58 7f 9f 4d 51 58 7f 9f 4d 51 58" | seed unmask phase3_offset5
hex "12 34 56 78  ff ff ff ff ff ff ff ff  07 11  $(printf '%02x ' {0..70})" | seed unmask max_phase_long
hex "00 00 00 00  01 00 00 00 00 00 00 00  3f 00" | seed unmask empty

# ---- connection_server / connection_client: config (13 bytes), then ops ----
# config: flags, max_frame u16, max_message u16, max_frags u8, recv_buf u16, send_buf u16,
# ka_interval u8, ka_timeout u8, close_timeout u8. Ops: see fuzz/src/conn.rs.
cfg_default() { hex "00 0000 0000 00 0000 0000 00 00 00"; }
# small limits, streaming, keepalive on (100 ms / 50 ms), close timeout 200 ms
cfg_small() { hex "05"; le16 300; le16 600; u8 4; le16 256; le16 200; u8 9; u8 4; u8 19; }
# op_frame FLAGS OPCODE CHUNK PAYLOAD-HEX (mask key from RFC 6455 §5.7; the harness masks
# for the server and not for the client)
op_frame() { local p; p=$(printf '%s' "$4" | tr -d ' '); hex 01; u8 "$1"; u8 "$2"; hex "37 fa 21 3d"; u8 "$3"; le16 $((${#p} / 2)); hex "$p"; }
op_long() { hex 02; u8 "$1"; u8 "$2"; hex "37 fa 21 3d"; u8 "$3"; le32 "$4"; u8 "$5"; }
op_text() { hex 03; le16 ${#1}; str "$1"; }
op_binary() { local p; p=$(printf '%s' "$1" | tr -d ' '); hex 04; le16 $((${#p} / 2)); hex "$p"; }
op_fragment() { hex 05; u8 "$1"; le16 ${#2}; str "$2"; }
op_ping() { hex 06; u8 ${#1}; str "$1"; }
op_pong() { hex 07; u8 ${#1}; str "$1"; }
op_close() { hex 08; le16 "$1"; u8 ${#2}; str "$2"; } # 1: 1000, 5: 1001, ...
op_transmit() { hex 09; le16 "$1"; }
op_advance() { hex 0a; le16 "$1"; }
op_eof() { hex 0b; }
HELLO="48 65 6c 6c 6f"
for t in connection_server connection_client; do
    { cfg_default; op_frame 1 1 0 "$HELLO"; op_transmit 0; } | seed $t rfc_5_7_text
    { cfg_default; op_frame 0 1 0x40 "48 65 6c"; op_frame 1 0 0 "6c 6f"; } | seed $t rfc_5_7_fragmented
    { cfg_default; op_frame 1 9 0 "$HELLO"; op_transmit 0; op_frame 1 10 0 "$HELLO"; } | seed $t rfc_5_7_ping_pong
    { cfg_default; op_long 1 2 0 256 0x61; op_long 1 2 0x85 65536 0x62; } | seed $t rfc_5_7_binary_256_64k
    { cfg_default; op_frame 1 1 0 "ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80"; op_transmit 0; } | seed $t invalid_utf8
    { cfg_default; op_frame 1 8 0 "03 e8 62 79 65"; op_transmit 0; op_eof; } | seed $t peer_close
    { cfg_default; op_close 1 "bye"; op_frame 1 8 0 "03 e8"; op_transmit 0; } | seed $t local_close
    { cfg_default; op_text "Hello"; op_binary "01 02 03"; op_fragment 1 "Hel"; op_ping "p"; op_fragment 3 "lo"; op_pong "q"; op_transmit 7; op_transmit 0; } | seed $t sends
    { cfg_small; op_frame 0 1 0 "$HELLO"; op_frame 0 0 0 "$HELLO"; op_frame 0 0 0 "$HELLO"; op_frame 0 0 0 "$HELLO"; op_frame 1 0 0 "$HELLO"; } | seed $t too_many_fragments
    { cfg_small; op_long 1 2 0x47 400 0x61; op_transmit 0; } | seed $t frame_too_big
    { cfg_small; op_text "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"; op_text "blocked"; op_frame 1 9 0 "$HELLO"; op_frame 1 9 0 "6d 6f 72 65"; op_transmit 0; } | seed $t send_buffer_full
    { cfg_small; op_advance 100; op_advance 100; op_frame 1 10 0 ""; op_advance 100; op_advance 100; op_advance 100; } | seed $t keepalive
    { cfg_small; op_close 5 "going"; op_advance 100; op_advance 150; op_transmit 0; } | seed $t close_timeout
    # keepalive 10 ms / 10 ms, max_send_buffer 1: a peer that sends but never reads
    { hex 04 0000 0000 00 0000; le16 1; hex 00 00 00; op_binary 78; op_advance 0
      for _ in {1..16}; do op_advance 10; op_frame 1 10 0 ""; op_advance 10; done; } | seed $t keepalive_unread_peer
    { cfg_default; op_frame 1 3 0 ""; } | seed $t reserved_opcode
    { cfg_default; hex 01; u8 0x19; u8 1; hex "37 fa 21 3d"; u8 0; le16 0; } | seed $t rsv_bits
    { cfg_default; hex 01; u8 0x07; u8 1; hex "37 fa 21 3d"; u8 0; le16 5; hex "$HELLO"; } | seed $t wrong_masking
done
{ cfg_default; hex 00 00; le16 11; hex "$MASKED_HELLO"; } | seed connection_server raw_masked_hello
{ cfg_default; hex 00 c0; le16 7; hex "$UNMASKED_HELLO"; } | seed connection_client raw_unmasked_hello

# ---- roundtrip: flags u8, 4 x u16 buffers, nchunks u8 + sizes, steps ----
rt_text() { hex "$(printf '%02x' "$1")"; le16 ${#2}; str "$2"; u8 0; }
{ hex 00; le16 0; le16 0; le16 0; le16 0; u8 0; rt_text 0x00 "Hello"; rt_text 0x80 "Hi"; } | seed roundtrip hello_both_ways
{ hex 03; le16 1; le16 1; le16 64; le16 64; u8 3; hex "01 07 00";
  hex 00; le16 11; hex "$KOSME"; u8 2; le16 3; u8 3; str "pi"; le16 7; u8 0;
  hex 81; le16 300; printf 'b%.0s' {1..300}; u8 1; le16 150; u8 0;
  hex 42; u8 5; str "Hello"; } | seed roundtrip streaming_fragments_pings
{ hex 04; le16 0; le16 0; le16 0; le16 0; u8 1; hex 05;
  hex 01; le16 0; u8 0; hex 00; le16 0; u8 2; le16 0; u8 0; le16 0; u8 1; } | seed roundtrip empty_messages_server_closes

n=$(find "$SEEDS" -type f | wc -l)
total=$(du -sb "$SEEDS" | cut -f1)
echo "wrote $n seeds ($total bytes) into fuzz/$SEEDS/"
