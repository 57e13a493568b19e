//! Certificates for the TLS tests (feature `tls`), made with rcgen when a test starts:
//! no key or certificate is committed. One private CA signs a `localhost` /
//! `127.0.0.1` server certificate; beside it, the kinds a client must refuse (an
//! expired one, one for another name, one from a CA it does not trust).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// A directory of PEM files for one test: removed on drop.
#[derive(Debug)]
pub struct TestPki {
    /// The directory.
    pub dir: PathBuf,
    /// The CA every good certificate is signed by (trust this).
    pub ca: PathBuf,
    /// A certificate for `localhost` and `127.0.0.1`, signed by [`ca`](Self::ca).
    pub cert: PathBuf,
    /// Its key (PKCS #8).
    pub key: PathBuf,
    /// Another valid `localhost` / `127.0.0.1` certificate from the same CA, with its own
    /// key (for reloads).
    pub cert2: PathBuf,
    /// Its key.
    pub key2: PathBuf,
    /// For `localhost` / `127.0.0.1` from the same CA, but expired (2020-2021).
    pub expired_cert: PathBuf,
    /// Its key.
    pub expired_key: PathBuf,
    /// Valid, from the same CA, but for `elsewhere.example` only.
    pub wrong_name_cert: PathBuf,
    /// Its key.
    pub wrong_name_key: PathBuf,
    /// For `localhost` / `127.0.0.1`, signed by a CA no client trusts.
    pub untrusted_cert: PathBuf,
    /// Its key.
    pub untrusted_key: PathBuf,
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("CA certificate");
    (Issuer::new(params, key), cert.pem())
}

fn leaf(issuer: &Issuer<'_, KeyPair>, names: &[&str], expired: bool) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, "wsengine test server");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, issuer).expect("leaf certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("writing a test PEM file");
    path
}

/// Makes the CA and certificates in a fresh directory under the system's temporary
/// directory (named after `tag`, the process and a counter).
pub fn make(tag: &str) -> TestPki {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wsengine-pki-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("creating the PEM directory");
    let (issuer, ca_pem) = ca("wsengine test CA");
    let (other_issuer, _) = ca("untrusted test CA");
    let here = ["localhost", "127.0.0.1"];
    let (cert, key) = leaf(&issuer, &here, false);
    let (cert2, key2) = leaf(&issuer, &here, false);
    let (expired_cert, expired_key) = leaf(&issuer, &here, true);
    let (wrong_cert, wrong_key) = leaf(&issuer, &["elsewhere.example"], false);
    let (untrusted_cert, untrusted_key) = leaf(&other_issuer, &here, false);
    TestPki {
        ca: write(&dir, "ca.pem", &ca_pem),
        cert: write(&dir, "cert.pem", &cert),
        key: write(&dir, "key.pem", &key),
        cert2: write(&dir, "cert2.pem", &cert2),
        key2: write(&dir, "key2.pem", &key2),
        expired_cert: write(&dir, "expired.pem", &expired_cert),
        expired_key: write(&dir, "expired-key.pem", &expired_key),
        wrong_name_cert: write(&dir, "wrong-name.pem", &wrong_cert),
        wrong_name_key: write(&dir, "wrong-name-key.pem", &wrong_key),
        untrusted_cert: write(&dir, "untrusted.pem", &untrusted_cert),
        untrusted_key: write(&dir, "untrusted-key.pem", &untrusted_key),
        dir,
    }
}
