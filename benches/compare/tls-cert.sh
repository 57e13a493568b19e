# Sourced by run.sh and idle.sh (not run on its own): a throwaway CA and a localhost
# server certificate for the wss:// points, made with openssl at run time in a temporary
# directory that is removed on exit. Nothing here is committed or reused between runs.
#
# make_test_certs DIR [ec|rsa]
#   writes DIR/ca.pem (the CA, for `wsengine load --ca`), DIR/cert.pem and DIR/key.pem
#   (the server's, for every server's --tls-cert and --tls-key: the same certificate for
#   all). The server certificate names DNS:localhost and IP:127.0.0.1. Key type: ECDSA
#   P-256 (default, `ec`: what rcgen makes in the TLS tests and what most current
#   certificates are) or RSA 2048 (`rsa`); the handshake cost depends on it, the same for
#   every server.
make_test_certs() {
    local dir="$1" kind="${2:-ec}" newkey
    case $kind in
        ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
        rsa) newkey=(-newkey rsa:2048) ;;
        *)
            echo "certificate key type must be ec or rsa, not $kind" >&2
            return 2
            ;;
    esac
    command -v openssl >/dev/null || {
        echo "NOTE: openssl not found: cannot make the test certificates" >&2
        return 1
    }
    (
        cd "$dir"
        openssl req -x509 "${newkey[@]}" -nodes -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=wsengine benchmark CA (throwaway)" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req "${newkey[@]}" -nodes -keyout key.pem -out server.csr \
            -subj "/CN=localhost" 2>/dev/null
        printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out cert.pem -days 2 -extfile server.ext 2>/dev/null
        rm -f ca.key server.csr server.ext ca.srl
    )
}

# tls_summary HOST PORT CA: one line on what a server negotiates with `openssl s_client`
# offering TLS 1.3 (version, cipher suite, key exchange group, ALPN, verification), and
# whether it also completes a TLS 1.2 handshake. openssl's own offer (its suite order and
# groups) decides among what the server allows, so the line is the same for servers
# configured alike; `wsengine load` (rustls) may agree on a different suite or group, also
# the same for all.
tls_summary() {
    local host="$1" port="$2" ca="$3" out v13 v12
    out="$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername "$host" \
        -alpn http/1.1 -CAfile "$ca" -verify_return_error </dev/null 2>&1)" || true
    v13="$(printf '%s\n' "$out" | sed -n \
        -e 's/^New, \(TLSv[0-9.]*\), Cipher is \(.*\)/\1 \2/p' \
        -e 's/^Server Temp Key: \(.*\)/group \1/p' \
        -e 's/^Negotiated TLS1.3 group: \(.*\)/group \1/p' \
        -e 's/^ALPN protocol: \(.*\)/ALPN \1/p' \
        -e 's/^No ALPN negotiated/no ALPN/p' \
        -e 's/^Verify return code: \(.*\)/verify: \1/p' | paste -sd ';' | sed 's/;/; /g')"
    out="$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername "$host" -tls1_2 \
        -alpn http/1.1 -CAfile "$ca" -verify_return_error </dev/null 2>&1)" || true
    v12="$(printf '%s\n' "$out" | sed -n 's/^New, \(TLSv[0-9.]*\), Cipher is \(.*\)/\1 \2/p' | head -1)"
    echo "${v13:-no TLS 1.3 handshake}; with -tls1_2: ${v12:-no TLS 1.2 handshake}"
}
