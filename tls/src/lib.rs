//! TLS for the wsengine hosts (`wss://`, RFC 6455 §3 and §4.1 step 5): the rustls
//! configurations the mio and tokio hosts and the `wsengine` command share.
//!
//! rustls is a sans-IO state machine like the core: the hosts stack it under
//! [`Connection`](https://docs.rs/wsengine) (TLS records in, plaintext to the core; the
//! core's transmit to the TLS writer, records out). This crate only builds what both
//! ends need, the same way for every host:
//!
//! - [`ServerCertificates`]: the server's certificate chains and keys, read from PEM
//!   files, one default and optionally one per SNI name, re-read on demand
//!   ([`ServerCertificates::reload`], `wsengine serve` does it on SIGHUP) without
//!   touching open connections: a handshake picks the certificate current when it
//!   starts.
//! - [`server_config`]: TLS 1.3 and 1.2 only, ALPN `http/1.1` (the WebSocket opening
//!   handshake is HTTP/1.1), the aws-lc-rs provider.
//! - [`client_config`]: Mozilla's roots (webpki-roots) plus any private CA from PEM
//!   files, host-name verification, ALPN `http/1.1`.
//! - [`describe_error`]: a certificate or TLS failure in one line (unknown issuer,
//!   expired, wrong host name) for logs and the command line.
//! - [`TlsSession`]: one connection's rustls session stacked under a core
//!   [`Connection`](wsengine::Connection), for hosts that own their sockets (the mio
//!   host, the load generator): TLS records in, plaintext into the core's buffer; the
//!   core's transmit into rustls, records out.
//!
//! The crypto provider is aws-lc-rs ([`provider`]), passed to every configuration
//! explicitly rather than installed as rustls' process-wide default (an embedder's own
//! choice stays theirs): it offers the post-quantum hybrid key exchange X25519MLKEM768
//! first, as current browsers do, which ring's provider lacks.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use rustls;
pub use session::{SEND_BUFFER_LIMIT, TlsSession};

mod session;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol both ends offer: the opening handshake is an HTTP/1.1 upgrade
/// (RFC 6455 §4.1; RFC 8441 would be `h2`, which the hosts do not speak).
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// What went wrong while loading certificates or building a configuration.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or is not PEM.
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A certificate file holds no certificate.
    NoCertificate(PathBuf),
    /// The key does not suit the provider, or does not match the certificate.
    Key {
        /// The key file.
        path: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// rustls refused the configuration.
    Config(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::NoCertificate(path) => {
                write!(f, "{}: no PEM certificate in the file", path.display())
            }
            Self::Key { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::Config(e) => write!(f, "TLS configuration: {}", describe_error(e)),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
    }
}

/// The crypto provider every configuration of this crate uses: aws-lc-rs (see the
/// crate docs for why).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn file_error(path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads every certificate of a PEM file (a chain: the leaf first).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, pem_reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn pem_reason(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind".into(),
        other => format!("not valid PEM ({other:?})"),
    }
}

/// Reads a certificate chain and its private key (PKCS #8, PKCS #1 or SEC1, PEM) and
/// checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = load_certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, pem_reason(&e)))?;
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::Key {
            path: key.to_owned(),
            reason: describe_error(&e),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // A key whose public half cannot be extracted cannot be checked: accepted, as
        // rustls' own `with_single_cert` does.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(TlsError::Key {
            path: key.to_owned(),
            reason: format!(
                "does not match the certificate in {} ({})",
                cert.display(),
                describe_error(&e)
            ),
        }),
    }
}

/// A certificate chain and key, and the files they came from (to re-read them).
#[derive(Debug, Clone)]
struct CertificateFiles {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug)]
struct Loaded {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

/// The server's certificates: one default, and optionally one per SNI name (RFC 6066
/// §3), each read from a PEM chain and key; [`reload`](Self::reload) re-reads all
/// files and swaps them in at once for handshakes that start afterwards (open
/// connections keep the session they have).
///
/// A client that sends no SNI (one that connects by IP address: RFC 6066 §3 forbids IP
/// literals as names) or a name with no certificate of its own gets the default, as
/// web servers do.
#[derive(Debug)]
pub struct ServerCertificates {
    files: RwLock<(CertificateFiles, Vec<(String, CertificateFiles)>)>,
    loaded: RwLock<Arc<Loaded>>,
}

impl ServerCertificates {
    /// The default certificate chain and key, read now.
    pub fn from_files(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, TlsError> {
        let files = CertificateFiles {
            cert: cert.into(),
            key: key.into(),
        };
        let default = Arc::new(load_certified_key(&files.cert, &files.key)?);
        Ok(Self {
            files: RwLock::new((files, Vec::new())),
            loaded: RwLock::new(Arc::new(Loaded {
                default,
                by_name: HashMap::new(),
            })),
        })
    }

    /// Serves `name` (a DNS name, compared without case) with its own chain and key,
    /// read now.
    pub fn add_name(
        &self,
        name: &str,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<(), TlsError> {
        let files = CertificateFiles {
            cert: cert.into(),
            key: key.into(),
        };
        let certified = Arc::new(load_certified_key(&files.cert, &files.key)?);
        let name = name.to_ascii_lowercase();
        let mut all = self.files.write().unwrap_or_else(|e| e.into_inner());
        all.1.retain(|(n, _)| *n != name);
        all.1.push((name.clone(), files));
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        let mut by_name = loaded.by_name.clone();
        by_name.insert(name, certified);
        *loaded = Arc::new(Loaded {
            default: Arc::clone(&loaded.default),
            by_name,
        });
        Ok(())
    }

    /// Re-reads every file. All or nothing: if any file fails to load, the
    /// certificates in use stay and the error says which file.
    pub fn reload(&self) -> Result<(), TlsError> {
        let all = self.files.read().unwrap_or_else(|e| e.into_inner()).clone();
        let default = Arc::new(load_certified_key(&all.0.cert, &all.0.key)?);
        let mut by_name = HashMap::new();
        for (name, files) in &all.1 {
            by_name.insert(
                name.clone(),
                Arc::new(load_certified_key(&files.cert, &files.key)?),
            );
        }
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Loaded { default, by_name });
        Ok(())
    }

    /// The default certificate chain in use (its leaf first).
    pub fn default_chain(&self) -> Vec<CertificateDer<'static>> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .default
            .cert
            .clone()
    }
}

impl ResolvesServerCert for ServerCertificates {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = Arc::clone(&self.loaded.read().unwrap_or_else(|e| e.into_inner()));
        let named = client_hello.server_name().and_then(|name| {
            if loaded.by_name.is_empty() {
                return None;
            }
            loaded.by_name.get(&name.to_ascii_lowercase()).cloned()
        });
        Some(named.unwrap_or_else(|| Arc::clone(&loaded.default)))
    }
}

/// A server configuration over `certificates`: TLS 1.3 and 1.2, ALPN `http/1.1`, no
/// client certificates, the aws-lc-rs provider. rustls never renegotiates: a TLS 1.2
/// renegotiation request is refused with a `no_renegotiation` warning alert, and a
/// second one ends the connection.
pub fn server_config(certificates: Arc<ServerCertificates>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// The roots a client trusts: Mozilla's (webpki-roots), plus every certificate of the
/// PEM files in `extra_cas` (a private CA).
pub fn root_store(extra_cas: &[PathBuf]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_cas {
        for cert in load_certificates(path)? {
            roots
                .add(cert)
                .map_err(|e| file_error(path, describe_error(&e)))?;
        }
    }
    Ok(roots)
}

/// A client configuration: TLS 1.3 and 1.2, the server's certificate checked against
/// `roots` and the URL's host name, ALPN `http/1.1`, the aws-lc-rs provider.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration with a verifier of the caller's (tests, pinning).
pub fn client_config_with_verifier(
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// A TLS failure in one line, in the words a person fixing it needs: which certificate
/// check failed, or which alert the peer sent.
pub fn describe_error(error: &rustls::Error) -> String {
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(cert) => {
            format!("certificate rejected: {}", describe_certificate_error(cert))
        }
        E::AlertReceived(alert) => format!("the peer refused the TLS handshake (alert: {alert:?})"),
        E::NoCertificatesPresented => "the peer presented no certificate".into(),
        E::InvalidMessage(m) => format!("not TLS, or a malformed TLS message ({m:?})"),
        E::PeerIncompatible(p) => format!("no TLS version or cipher suite in common ({p:?})"),
        E::PeerMisbehaved(p) => format!("the peer broke the TLS protocol ({p:?})"),
        E::NoApplicationProtocol => {
            "no ALPN protocol in common (this server speaks http/1.1)".into()
        }
        other => other.to_string(),
    }
}

fn describe_certificate_error(error: &CertificateError) -> String {
    use CertificateError as C;
    match error {
        C::UnknownIssuer => {
            "unknown issuer (not signed by a trusted CA; pass the private CA with --ca)".into()
        }
        C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "the certificate is not valid yet".into(),
        C::NotValidForName => "the certificate is not valid for this host name".into(),
        C::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "the certificate is not valid for {expected:?} (it names {})",
            if presented.is_empty() {
                "no host".to_owned()
            } else {
                presented.join(", ")
            }
        ),
        C::Revoked => "the certificate has been revoked".into(),
        C::BadSignature => "the certificate's signature is invalid".into(),
        C::UnknownRevocationStatus => "the certificate's revocation status is unknown".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the certificate is not for TLS servers (extended key usage)".into()
        }
        other => format!("{other:?}"),
    }
}

/// The certificate failure inside an I/O error from a TLS stream (tokio-rustls and the
/// mio host wrap rustls' errors so), in one line; any other error as it displays.
pub fn describe_io_error(error: &io::Error) -> String {
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => describe_error(tls),
        None => error.to_string(),
    }
}
