//! The configurations of `wsengine-tls`, exercised with rustls client and server sessions
//! talking in memory (no sockets): certificate selection by SNI, reloads, PEM errors,
//! and the client's verification. Certificates are made by rcgen when each test starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use wsengine_test_support::pki::{self, TestPki};
use wsengine_tls::rustls::{self, ClientConnection, ServerConnection};
use wsengine_tls::{ServerCertificates, TlsError};

/// Runs a TLS handshake between a client for `name` (trusting the test CA) and a server
/// over `certificates`, in memory: the certificate the client was shown, or the error.
fn handshake(
    pki: &TestPki,
    certificates: &Arc<ServerCertificates>,
    name: &str,
) -> Result<Vec<u8>, rustls::Error> {
    let server_config = wsengine_tls::server_config(Arc::clone(certificates)).unwrap();
    let roots = wsengine_tls::root_store(std::slice::from_ref(&pki.ca)).unwrap();
    let client_config = wsengine_tls::client_config(roots).unwrap();
    let mut client =
        ClientConnection::new(client_config, name.to_owned().try_into().unwrap()).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    for _ in 0..10 {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let mut slice = wire.as_slice();
        while !slice.is_empty() {
            server.read_tls(&mut slice).unwrap();
        }
        server.process_new_packets()?;
        let mut back = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut back).unwrap();
        }
        let mut slice = back.as_slice();
        while !slice.is_empty() {
            client.read_tls(&mut slice).unwrap();
        }
        client.process_new_packets()?;
        if !client.is_handshaking() && !server.is_handshaking() {
            assert_eq!(server.alpn_protocol(), Some(wsengine_tls::ALPN_HTTP_1_1));
            return Ok(client.peer_certificates().unwrap()[0].to_vec());
        }
    }
    panic!("the handshake did not finish");
}

fn leaf(path: &std::path::Path) -> Vec<u8> {
    wsengine_tls::load_certificates(path).unwrap()[0].to_vec()
}

#[test]
fn sni_picks_the_named_certificate_and_falls_back_to_the_default() {
    let pki = pki::make("tls-sni");
    let certificates = Arc::new(ServerCertificates::from_files(&pki.cert, &pki.key).unwrap());
    certificates
        .add_name(
            "Elsewhere.Example",
            &pki.wrong_name_cert,
            &pki.wrong_name_key,
        )
        .unwrap();
    // The name (any case) gets its own certificate, which is valid for it.
    assert_eq!(
        handshake(&pki, &certificates, "elsewhere.example").unwrap(),
        leaf(&pki.wrong_name_cert)
    );
    // Another name, and no SNI at all (an IP address), get the default.
    assert_eq!(
        handshake(&pki, &certificates, "localhost").unwrap(),
        leaf(&pki.cert)
    );
    assert_eq!(
        handshake(&pki, &certificates, "127.0.0.1").unwrap(),
        leaf(&pki.cert)
    );
}

#[test]
fn the_client_checks_the_name_and_the_issuer() {
    let pki = pki::make("tls-verify");
    // The default certificate does not name elsewhere.example.
    let certificates = Arc::new(ServerCertificates::from_files(&pki.cert, &pki.key).unwrap());
    let wrong = handshake(&pki, &certificates, "elsewhere.example").unwrap_err();
    assert!(
        wsengine_tls::describe_error(&wrong).contains("not valid for"),
        "{wrong}"
    );
    let untrusted =
        Arc::new(ServerCertificates::from_files(&pki.untrusted_cert, &pki.untrusted_key).unwrap());
    let unknown = handshake(&pki, &untrusted, "localhost").unwrap_err();
    assert!(
        wsengine_tls::describe_error(&unknown).contains("unknown issuer"),
        "{unknown}"
    );
}

#[test]
fn a_reload_is_all_or_nothing() {
    let pki = pki::make("tls-reload");
    let cert = pki.dir.join("live.pem");
    let key = pki.dir.join("live-key.pem");
    std::fs::copy(&pki.cert, &cert).unwrap();
    std::fs::copy(&pki.key, &key).unwrap();
    let certificates = Arc::new(ServerCertificates::from_files(&cert, &key).unwrap());
    // A named pair whose file disappears makes the whole reload fail.
    let named = pki.dir.join("named.pem");
    std::fs::copy(&pki.wrong_name_cert, &named).unwrap();
    certificates
        .add_name("elsewhere.example", &named, &pki.wrong_name_key)
        .unwrap();
    std::fs::copy(&pki.cert2, &cert).unwrap();
    std::fs::copy(&pki.key2, &key).unwrap();
    std::fs::remove_file(&named).unwrap();
    let error = certificates.reload().unwrap_err().to_string();
    assert!(error.contains("named.pem"), "{error}");
    assert_eq!(certificates.default_chain()[0].to_vec(), leaf(&pki.cert));
    // With every file back, the new default is in use.
    std::fs::copy(&pki.wrong_name_cert, &named).unwrap();
    certificates.reload().unwrap();
    assert_eq!(certificates.default_chain()[0].to_vec(), leaf(&pki.cert2));
    assert_eq!(
        handshake(&pki, &certificates, "localhost").unwrap(),
        leaf(&pki.cert2)
    );
}

#[test]
fn pem_problems_name_the_file() {
    let pki = pki::make("tls-pem");
    let missing = pki.dir.join("missing.pem");
    let error = ServerCertificates::from_files(&missing, &pki.key).unwrap_err();
    assert!(matches!(error, TlsError::File { .. }), "{error:?}");
    assert!(error.to_string().contains("missing.pem"), "{error}");
    // A key file given as the certificate: no certificate in it.
    let error = ServerCertificates::from_files(&pki.key, &pki.key).unwrap_err();
    assert!(error.to_string().contains("key.pem"), "{error}");
    // A certificate file given as the key.
    let error = ServerCertificates::from_files(&pki.cert, &pki.cert).unwrap_err();
    assert!(error.to_string().contains("cert.pem"), "{error}");
    // A key that belongs to another certificate.
    let error = ServerCertificates::from_files(&pki.cert, &pki.key2).unwrap_err();
    assert!(error.to_string().contains("does not match"), "{error}");
    // Garbage.
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, b"-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let error = ServerCertificates::from_files(&garbage, &pki.key).unwrap_err();
    assert!(error.to_string().contains("garbage.pem"), "{error}");
    assert!(!error.to_string().contains('\n'), "{error}");
}
