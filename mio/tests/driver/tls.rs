//! `wss://` through the mio driver (feature `tls`): rustls under the core in both roles,
//! with certificates made by rcgen when each test starts (`wsengine_test_support::pki`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsengine::ClientRequest;
use wsengine_mio::tls::{self, ServerCertificates, rustls};
use wsengine_mio::{DriverConfig, EventLoop};
use wsengine_test_support::pki::{self, TestPki};

use super::{EchoClient, RunningServer, raw_connect, run_client};

/// A server configuration serving `cert`/`key`.
fn server_config(cert: &std::path::Path, key: &std::path::Path) -> DriverConfig {
    let certificates = Arc::new(ServerCertificates::from_files(cert, key).unwrap());
    let mut config = DriverConfig::default();
    config.tls_server = Some(tls::server_config(certificates).unwrap());
    config
}

/// A client configuration trusting the test CA (and Mozilla's roots).
fn client_config(pki: &TestPki) -> DriverConfig {
    let roots = tls::root_store(std::slice::from_ref(&pki.ca)).unwrap();
    let mut config = DriverConfig::default();
    config.tls_client = Some(tls::client_config(roots).unwrap());
    config
}

fn wss_url(server: &RunningServer, host: &str, path: &str) -> String {
    format!("wss://{host}:{}{path}", server.addr.port())
}

/// Runs an echo client over wss to `url`; returns what came back and how it closed.
fn echo_over_wss(config: DriverConfig, url: &str, messages: &[String]) -> EchoClient {
    let mut event_loop = EventLoop::new(config, EchoClient::new(messages.to_vec())).unwrap();
    event_loop
        .connect(ClientRequest::new(url).unwrap())
        .unwrap();
    run_client(event_loop, Duration::from_secs(10))
}

#[test]
fn echo_over_wss_in_both_roles_by_name_and_by_address() {
    let pki = pki::make("mio-echo");
    let mut server = RunningServer::start(server_config(&pki.cert, &pki.key));
    // Large messages too: records of 16 KiB, plaintext that does not fit the core's
    // first receive buffer, rustls' send buffer limit.
    let messages: Vec<String> = (0..12)
        .map(|i| format!("message {i} {}", "é".repeat(i * i * 1000)))
        .collect();
    // By name (SNI sent, the name verified), then by address (no SNI: RFC 6066 §3
    // allows no IP literal there; the certificate's IP name is verified).
    for host in ["localhost", "127.0.0.1"] {
        let client = echo_over_wss(
            client_config(&pki),
            &wss_url(&server, host, "/echo"),
            &messages,
        );
        let got: Vec<String> = client.received.into_iter().map(|(_, m)| m).collect();
        assert_eq!(got, messages, "{host}");
        assert_eq!(
            client.closes,
            vec!["Closed { code: CloseCode(1000), clean: true }".to_owned()],
            "{host}"
        );
    }
    server.stop();
    let log = server.log.lock().unwrap();
    assert_eq!(log.opened, 2);
    assert_eq!(
        log.closed,
        vec!["Closed { code: CloseCode(1000), clean: true }".to_owned(); 2]
    );
}

/// Connects a client with the test CA trusted to a server presenting `cert`: the
/// description of why the connection ended.
fn refusal(pki: &TestPki, cert: &std::path::Path, key: &std::path::Path) -> String {
    let mut server = RunningServer::start(server_config(cert, key));
    let client = echo_over_wss(
        client_config(pki),
        &wss_url(&server, "localhost", "/"),
        &["never echoed".to_owned()],
    );
    assert!(client.received.is_empty());
    assert_eq!(client.closes.len(), 1, "{:?}", client.closes);
    server.stop();
    client.closes[0].clone()
}

#[test]
fn the_client_refuses_unknown_issuers_expired_certificates_and_wrong_names() {
    let pki = pki::make("mio-refusals");
    let unknown = refusal(&pki, &pki.untrusted_cert, &pki.untrusted_key);
    assert!(unknown.contains("UnknownIssuer"), "{unknown}");
    let expired = refusal(&pki, &pki.expired_cert, &pki.expired_key);
    assert!(expired.contains("Expired"), "{expired}");
    let wrong = refusal(&pki, &pki.wrong_name_cert, &pki.wrong_name_key);
    assert!(wrong.contains("NotValidForName"), "{wrong}");
}

#[test]
fn certificate_errors_read_as_one_line() {
    use rustls::CertificateError as C;
    let line = |e: C| tls::describe_error(&rustls::Error::InvalidCertificate(e));
    assert!(line(C::UnknownIssuer).contains("unknown issuer"));
    assert!(line(C::Expired).contains("expired"));
    assert!(line(C::NotValidForName).contains("not valid for this host name"));
    for e in [
        C::UnknownIssuer,
        C::Expired,
        C::NotValidForName,
        C::BadSignature,
    ] {
        assert!(!line(e).contains('\n'));
    }
}

/// A TLS client over a blocking socket, verifying `localhost` against the test CA.
fn tls_stream(
    pki: &TestPki,
    addr: std::net::SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let roots = tls::root_store(std::slice::from_ref(&pki.ca)).unwrap();
    let config = tls::client_config(roots).unwrap();
    let session = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    rustls::StreamOwned::new(session, raw_connect(addr))
}

/// The server's certificate as the client saw it.
fn presented(stream: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> Vec<u8> {
    // Drive the handshake to its end.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream.conn.peer_certificates().unwrap()[0].to_vec()
}

fn first_cert_der(path: &std::path::Path) -> Vec<u8> {
    tls::load_certificates(path).unwrap()[0].to_vec()
}

/// One text message echoed over an open wss connection (a raw, unmasked-by-hand frame
/// exchange through the TLS stream).
fn echo_through(stream: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) {
    stream.write_all(super::REQUEST).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    stream
        .write_all(&super::client_frame(wsengine_test_support::TEXT, b"hi"))
        .unwrap();
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\x81\x02hi");
}

#[test]
fn a_reload_serves_the_new_certificate_to_new_connections_and_keeps_open_ones() {
    let pki = pki::make("mio-reload");
    // The server reads its files from here: copies, replaced in place for the reload.
    let cert = pki.dir.join("live-cert.pem");
    let key = pki.dir.join("live-key.pem");
    std::fs::copy(&pki.cert, &cert).unwrap();
    std::fs::copy(&pki.key, &key).unwrap();
    let certificates = Arc::new(ServerCertificates::from_files(&cert, &key).unwrap());
    let mut config = DriverConfig::default();
    config.tls_server = Some(tls::server_config(Arc::clone(&certificates)).unwrap());
    let mut server = RunningServer::start(config);

    let mut before = tls_stream(&pki, server.addr);
    assert_eq!(presented(&mut before), first_cert_der(&pki.cert));
    echo_through(&mut before);

    // A failed reload (a key that does not match) changes nothing.
    std::fs::copy(&pki.cert2, &cert).unwrap();
    let refused = certificates.reload().unwrap_err().to_string();
    assert!(refused.contains("does not match"), "{refused}");
    let mut still = tls_stream(&pki, server.addr);
    assert_eq!(presented(&mut still), first_cert_der(&pki.cert));

    std::fs::copy(&pki.key2, &key).unwrap();
    certificates.reload().unwrap();
    let mut after = tls_stream(&pki, server.addr);
    assert_eq!(presented(&mut after), first_cert_der(&pki.cert2));
    echo_through(&mut after);
    // The connection opened before the reload still works.
    before
        .write_all(&super::client_frame(wsengine_test_support::TEXT, b"hi"))
        .unwrap();
    let mut reply = [0u8; 4];
    before.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\x81\x02hi");
    drop((before, still, after));
    server.stop();
}

/// Whether the server ends `s` (EOF or reset) within `limit`, discarding what it sends
/// (a TLS alert).
fn ended_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
        if started.elapsed() > limit {
            return false;
        }
    }
}

#[test]
fn bad_input_on_the_tls_port_ends_that_connection_only() {
    let pki = pki::make("mio-bad-input");
    let mut config = server_config(&pki.cert, &pki.key);
    config.connection.handshake_timeout = Some(Duration::from_millis(500));
    let mut server = RunningServer::start(config);
    // A healthy wss connection, open throughout.
    let mut healthy = tls_stream(&pki, server.addr);
    echo_through(&mut healthy);

    // Plain HTTP: rustls answers with an alert and the connection ends at once.
    let mut plain = raw_connect(server.addr);
    plain.write_all(super::REQUEST).unwrap();
    assert!(
        ended_within(&mut plain, Duration::from_secs(2)),
        "plain HTTP"
    );
    // Random bytes.
    let mut random = raw_connect(server.addr);
    let noise: Vec<u8> = (0..512u32)
        .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect();
    random.write_all(&noise).unwrap();
    assert!(
        ended_within(&mut random, Duration::from_secs(2)),
        "random bytes"
    );
    // Half a ClientHello, then silence: dropped at the handshake timeout.
    let mut hello = Vec::new();
    {
        let roots = tls::root_store(std::slice::from_ref(&pki.ca)).unwrap();
        let mut session = rustls::ClientConnection::new(
            tls::client_config(roots).unwrap(),
            "localhost".try_into().unwrap(),
        )
        .unwrap();
        session.write_tls(&mut hello).unwrap();
    }
    let mut half = raw_connect(server.addr);
    half.write_all(&hello[..hello.len() / 2]).unwrap();
    let started = Instant::now();
    assert!(
        ended_within(&mut half, Duration::from_secs(4)),
        "half a ClientHello"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    // The TLS handshake completed, then silence: the WebSocket handshake timeout.
    let mut silent = tls_stream(&pki, server.addr);
    presented(&mut silent);
    let started = Instant::now();
    let mut byte = [0u8];
    silent
        .sock
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    let end = silent.read(&mut byte);
    assert!(matches!(end, Ok(0)), "{end:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The healthy connection never noticed.
    healthy
        .write_all(&super::client_frame(wsengine_test_support::TEXT, b"hi"))
        .unwrap();
    let mut reply = [0u8; 4];
    healthy.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\x81\x02hi");
    drop(healthy);
    server.stop();
    let log = server.log.lock().unwrap();
    // Two handshake timeouts (half a ClientHello, silence after the TLS handshake),
    // two TLS errors (plain HTTP, noise), one clean close (healthy: 1006 at shutdown is
    // not expected since it was dropped before).
    let timeouts = log
        .closed
        .iter()
        .filter(|c| c.contains("Timeout(Handshake)"))
        .count();
    let tls_errors = log
        .closed
        .iter()
        .filter(|c| c.contains("InvalidMessage") || c.contains("InvalidData"))
        .count();
    assert_eq!(timeouts, 2, "{:?}", log.closed);
    assert_eq!(tls_errors, 2, "{:?}", log.closed);
}

#[test]
fn conformance_vectors_over_tls() {
    use wsengine_test_support::conformance::tls_exchange;
    use wsengine_test_support::vectors::{run_all, vectors};
    let pki = pki::make("mio-conformance");
    let mut config = server_config(&pki.cert, &pki.key);
    config.connection = wsengine_test_support::conformance::config();
    let mut server = RunningServer::start(config);
    let roots = tls::root_store(std::slice::from_ref(&pki.ca)).unwrap();
    let client = tls::client_config(roots).unwrap();
    run_all("mio driver over TLS", &vectors(), |v| {
        tls_exchange(server.addr, Arc::clone(&client), "localhost", v)
    });
    server.stop();
}

#[test]
fn a_tls_client_that_never_reads_cannot_grow_the_server_send_buffer() {
    let pki = pki::make("mio-non-reader");
    let mut config = server_config(&pki.cert, &pki.key);
    config.connection.max_send_buffer = 256 << 10;
    let mut server = RunningServer::start(config);
    let mut stream = tls_stream(&pki, server.addr);
    echo_through(&mut stream);
    // Echo requests through TLS, never reading the echoes: once the socket buffers on
    // both sides, rustls' outgoing buffer and the core's send buffer are full, the server
    // pauses reading and our writes stop going through.
    stream.sock.set_nonblocking(true).unwrap();
    let frame = super::client_frame(wsengine_test_support::BINARY, &[0xAB; 16 << 10]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut written = 0usize;
    let mut stalled_since: Option<Instant> = None;
    while Instant::now() < deadline {
        if !stream.conn.wants_write() {
            // rustls takes plaintext up to its own buffer limit; keep frames whole.
            let at = written % frame.len();
            written += stream.conn.writer().write(&frame[at..]).unwrap();
        }
        match stream.conn.write_tls(&mut stream.sock) {
            Ok(_) => stalled_since = None,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(
        stalled_since.is_some(),
        "the server kept reading {written} bytes without limit"
    );
    assert!(written < 256 << 20, "wrote {written} bytes");
    {
        let log = server.log.lock().unwrap();
        assert!(
            log.blocked >= 1,
            "the handler was told the connection is blocked"
        );
        // The core's limit is a high-water mark: one message may cross it. (rustls holds
        // at most its own 64 KiB of records on top.)
        assert!(
            log.max_transmit <= (256 << 10) + (16 << 10) + 14,
            "send buffer reached {}",
            log.max_transmit
        );
    }
    drop(stream);
    server.stop();
}
