//! JWT verification (`docs/HUB-PROTOCOL.md`, "Auth" and "Details that tests rely on":
//! "Auth").
//!
//! HS256/384/512 tokens are checked with the secret; RS256/384/512 and ES256/384 tokens with
//! the public key (one PEM file, RSA or EC); both may be configured, and the token header's
//! `alg` picks the key. `none` and any algorithm without a configured key are refused.
//! Expiry is checked with no leeway ([`LEEWAY_SECS`]): a token is expired from the second
//! `now >= exp` (RFC 7519 §4.1.4); the server also enforces `exp` while connected.

use std::fmt;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::AuthConfig;
use crate::protocol::close;

/// Seconds of clock skew allowed on `exp` and `nbf`: none.
pub const LEEWAY_SECS: u64 = 0;

/// A verified token's claims ("Auth").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// `sub`: the user; `""` when the token has none (an anonymous user with a token).
    #[serde(default)]
    pub sub: String,
    /// `exp`: unix seconds; required. The connection is closed with 4002 when it passes
    /// unless a `refresh` arrived.
    pub exp: u64,
    /// `channels`: patterns the token may subscribe and publish to beyond what the
    /// namespaces allow everyone: exact names, or a prefix with a trailing `*`
    /// ([`token_allows`]).
    #[serde(default)]
    pub channels: Vec<String>,
}

/// Whether `claims`' `channels` allow `channel`: an exact name, or a pattern ending in `*`
/// whose part before the `*` begins the channel's name (`"chat:*"` allows `chat:lobby`,
/// `"*"` allows every channel). A `*` anywhere else is an ordinary character.
pub fn token_allows(claims: &Claims, channel: &str) -> bool {
    claims
        .channels
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => channel.starts_with(prefix),
            None => pattern == channel,
        })
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// A good token whose `exp` has passed: close 4002 at `connect`.
    Expired,
    /// Anything else (bad signature, `alg` none or not configured, malformed, no `exp`,
    /// `nbf` in the future): close 4001 at `connect`, `unauthorized` in `refresh`.
    Invalid(String),
}

impl TokenError {
    /// The close code for this refusal at `connect` ("Close codes").
    pub fn close_code(&self) -> u16 {
        match self {
            Self::Expired => close::TOKEN_EXPIRED,
            Self::Invalid(_) => close::UNAUTHORIZED,
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expired => f.write_str("token expired"),
            Self::Invalid(why) => write!(f, "invalid token: {why}"),
        }
    }
}

impl std::error::Error for TokenError {}

/// A key that cannot be used; its `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// The family of the configured public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKeyKind {
    /// RSA: RS256, RS384, RS512.
    Rsa,
    /// EC: ES256 (P-256), ES384 (P-384).
    Ec,
}

/// Checks tokens with the configured keys.
#[derive(Clone)]
pub struct Verifier {
    secret: Option<DecodingKey>,
    public: Option<(PublicKeyKind, DecodingKey)>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secret", &self.secret.is_some())
            .field("public", &self.public.as_ref().map(|(kind, _)| *kind))
            .finish()
    }
}

impl Verifier {
    /// A verifier with a secret (HS*), a public key in PEM (RS*/ES*), or both; `None`
    /// when neither is given. The PEM must hold a public key (`PUBLIC KEY` or
    /// `RSA PUBLIC KEY`), not a private one.
    pub fn new(
        secret: Option<&[u8]>,
        public_key_pem: Option<&[u8]>,
    ) -> Result<Option<Self>, KeyError> {
        let secret = match secret {
            Some([]) => return Err(KeyError("the JWT secret is empty".to_owned())),
            Some(secret) => Some(
                DecodingKey::from_secret(secret)
                    .map_err(|e| KeyError(format!("the JWT secret: {e}")))?,
            ),
            None => None,
        };
        let public = match public_key_pem {
            Some(pem) => Some(public_key(pem)?),
            None => None,
        };
        if secret.is_none() && public.is_none() {
            return Ok(None);
        }
        Ok(Some(Self { secret, public }))
    }

    /// The verifier `[auth]` asks for, reading `jwt_public_key`'s file; `None` when
    /// neither `jwt_secret` nor `jwt_public_key` is set.
    pub fn from_config(auth: &AuthConfig) -> Result<Option<Self>, KeyError> {
        let pem = match &auth.jwt_public_key {
            Some(path) => Some(read_pem(path)?),
            None => None,
        };
        Self::new(
            auth.jwt_secret.as_deref().map(str::as_bytes),
            pem.as_deref(),
        )
    }

    /// The algorithms this verifier accepts.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs = Vec::new();
        if self.secret.is_some() {
            algs.extend([Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
        }
        match self.public.as_ref().map(|(kind, _)| *kind) {
            Some(PublicKeyKind::Rsa) => {
                algs.extend([Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]);
            }
            Some(PublicKeyKind::Ec) => algs.extend([Algorithm::ES256, Algorithm::ES384]),
            None => {}
        }
        algs
    }

    /// Verifies `token` at `now` (unix seconds; the caller reads the clock, so this
    /// module stays pure): signature first, then `exp` (required)
    /// and `nbf` (when present). `aud` and `iss` are not checked (no setting names them).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let invalid = |why: &str| TokenError::Invalid(why.to_owned());
        // The header's `alg` picks the key; an unknown alg (`none` among them) does not
        // parse.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(format!("header: {e}")))?;
        let alg = header.alg;
        if !self.algorithms().contains(&alg) {
            return Err(TokenError::Invalid(format!(
                "algorithm {alg:?} is not configured"
            )));
        }
        let key = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self.secret.as_ref(),
            _ => self.public.as_ref().map(|(_, key)| key),
        }
        .ok_or_else(|| invalid("no key for its algorithm"))?;
        let mut validation = Validation::new(alg);
        // Time claims are checked below, against `now`, to tell expired from invalid.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<RawClaims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => invalid("bad signature"),
                ErrorKind::Json(_) => invalid("claims: `exp` must be an integer, `sub` a string, `channels` a list of strings"),
                _ => TokenError::Invalid(e.to_string()),
            }
        })?;
        let raw = data.claims;
        let exp = raw.exp.ok_or_else(|| invalid("no `exp`"))?;
        if let Some(nbf) = raw.nbf
            && nbf > now.saturating_add(LEEWAY_SECS)
        {
            return Err(invalid("not valid yet (`nbf`)"));
        }
        if now >= exp.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Expired);
        }
        Ok(Claims {
            sub: raw.sub,
            exp,
            channels: raw.channels,
        })
    }
}

/// The claims as they come, before the time checks.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: String,
    exp: Option<u64>,
    nbf: Option<u64>,
    #[serde(default)]
    channels: Vec<String>,
}

fn read_pem(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError(format!("{}: cannot read: {e}", path.display())))
}

fn public_key(pem: &[u8]) -> Result<(PublicKeyKind, DecodingKey), KeyError> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("PRIVATE KEY-----") {
        return Err(KeyError(
            "the JWT public key file holds a private key: give the public key (PEM `PUBLIC KEY`)"
                .to_owned(),
        ));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((PublicKeyKind::Ec, key));
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((PublicKeyKind::Rsa, key));
    }
    Err(KeyError(
        "the JWT public key is neither an RSA nor an EC public key in PEM".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    const NOW: u64 = 1_800_000_000;
    const SECRET: &[u8] = b"a shared secret of enough length";

    fn hs(claims: &Value, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    }

    fn hs_verifier() -> Verifier {
        Verifier::new(Some(SECRET), None).unwrap().unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        // base64url without padding, enough for the hand-made tokens below.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    #[test]
    fn hs256_good() {
        let token = hs(
            &json!({"sub": "alice", "exp": NOW + 60, "channels": ["chat:*"]}),
            SECRET,
        );
        let claims = hs_verifier().verify(&token, NOW).unwrap();
        assert_eq!(
            claims,
            Claims {
                sub: "alice".into(),
                exp: NOW + 60,
                channels: vec!["chat:*".into()]
            }
        );
        let bare = hs(&json!({"exp": NOW + 1}), SECRET);
        let claims = hs_verifier().verify(&bare, NOW).unwrap();
        assert_eq!((claims.sub.as_str(), claims.channels.len()), ("", 0));
    }

    #[test]
    fn hs256_expired_without_leeway() {
        let token = hs(&json!({"sub": "a", "exp": NOW}), SECRET);
        assert_eq!(hs_verifier().verify(&token, NOW), Err(TokenError::Expired));
        assert_eq!(
            hs_verifier().verify(&token, NOW - 1).map(|c| c.exp),
            Ok(NOW)
        );
        assert_eq!(TokenError::Expired.close_code(), 4002);
        // Expired but badly signed: invalid, not expired.
        let forged = hs(&json!({"sub": "a", "exp": NOW - 10}), b"another secret");
        assert!(matches!(
            hs_verifier().verify(&forged, NOW),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn hs256_invalid() {
        let v = hs_verifier();
        let bad_sig = hs(&json!({"sub": "a", "exp": NOW + 60}), b"wrong secret");
        let no_exp = hs(&json!({"sub": "a"}), SECRET);
        let float_exp = hs(&json!({"sub": "a", "exp": 1.8e9}), SECRET);
        let bad_channels = hs(
            &json!({"sub": "a", "exp": NOW + 60, "channels": "chat:*"}),
            SECRET,
        );
        let not_yet = hs(
            &json!({"sub": "a", "exp": NOW + 60, "nbf": NOW + 5}),
            SECRET,
        );
        for token in [
            bad_sig.as_str(),
            &no_exp,
            &float_exp,
            &bad_channels,
            &not_yet,
            "",
            "a.b",
            "a.b.c",
        ] {
            let e = v.verify(token, NOW).unwrap_err();
            assert!(matches!(e, TokenError::Invalid(_)), "{token}: {e:?}");
            assert_eq!(e.close_code(), 4001);
        }
        assert_eq!(
            v.verify(&bad_sig, NOW).unwrap_err().to_string(),
            "invalid token: bad signature"
        );
        // A token tampered with after signing.
        let good = hs(&json!({"sub": "a", "exp": NOW + 60}), SECRET);
        let mut parts: Vec<&str> = good.split('.').collect();
        let other = b64(format!(r#"{{"sub":"root","exp":{}}}"#, NOW + 60).as_bytes());
        parts[1] = &other;
        assert!(matches!(
            v.verify(&parts.join("."), NOW),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn alg_none_is_refused() {
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64(format!(r#"{{"sub":"a","exp":{}}}"#, NOW + 60).as_bytes());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.AAAA"),
        ] {
            assert!(matches!(
                hs_verifier().verify(&token, NOW),
                Err(TokenError::Invalid(_))
            ));
        }
    }

    #[test]
    fn wrong_alg_is_refused() {
        // HS384 is accepted with the secret; an ES256 token is refused when only a secret
        // is configured, and an HS256 token when only a public key is.
        let v = hs_verifier();
        let hs384 = encode(
            &Header::new(Algorithm::HS384),
            &json!({"sub": "a", "exp": NOW + 60}),
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert!(v.verify(&hs384, NOW).is_ok());
        let (es_token, es_public) = es256(&json!({"sub": "a", "exp": NOW + 60}));
        let e = v.verify(&es_token, NOW).unwrap_err();
        assert_eq!(
            e,
            TokenError::Invalid("algorithm ES256 is not configured".into())
        );
        let only_key = Verifier::new(None, Some(es_public.as_bytes()))
            .unwrap()
            .unwrap();
        let hs_token = hs(&json!({"sub": "a", "exp": NOW + 60}), SECRET);
        assert!(matches!(
            only_key.verify(&hs_token, NOW),
            Err(TokenError::Invalid(_))
        ));
        // The key confusion attack: an HS256 token signed with the public key's PEM text.
        let confused = hs(&json!({"sub": "a", "exp": NOW + 60}), es_public.as_bytes());
        assert!(matches!(
            only_key.verify(&confused, NOW),
            Err(TokenError::Invalid(_))
        ));
        assert_eq!(Verifier::new(None, None).unwrap().map(|_| ()), None);
    }

    /// An ES256 token signed with a P-256 key made now, and that key's public PEM.
    fn es256(claims: &Value) -> (String, String) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let token = encode(&Header::new(Algorithm::ES256), claims, &signing).unwrap();
        (token, pair.public_key_pem())
    }

    #[test]
    fn es256_with_a_public_key() {
        let (token, public) = es256(&json!({"sub": "bob", "exp": NOW + 60}));
        let v = Verifier::new(None, Some(public.as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(v.algorithms(), [Algorithm::ES256, Algorithm::ES384]);
        assert_eq!(v.verify(&token, NOW).unwrap().sub, "bob");
        assert_eq!(v.verify(&token, NOW + 60), Err(TokenError::Expired));
        // Another key's signature.
        let (other, _) = es256(&json!({"sub": "bob", "exp": NOW + 60}));
        assert!(matches!(v.verify(&other, NOW), Err(TokenError::Invalid(_))));
        // Both configured: each token goes to its key.
        let both = Verifier::new(Some(SECRET), Some(public.as_bytes()))
            .unwrap()
            .unwrap();
        assert_eq!(both.verify(&token, NOW).unwrap().sub, "bob");
        let hs_token = hs(&json!({"sub": "carol", "exp": NOW + 60}), SECRET);
        assert_eq!(both.verify(&hs_token, NOW).unwrap().sub, "carol");
    }

    #[test]
    fn rs256_with_a_public_key_file() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let signing = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).unwrap();
        let token = encode(
            &Header::new(Algorithm::RS256),
            &json!({"sub": "dave", "exp": NOW + 60}),
            &signing,
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("wsengine-hub-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("public.pem");
        std::fs::write(&path, pair.public_key_pem()).unwrap();
        let auth = AuthConfig {
            jwt_public_key: Some(path.clone()),
            ..AuthConfig::default()
        };
        let v = Verifier::from_config(&auth).unwrap().unwrap();
        assert_eq!(v.verify(&token, NOW).unwrap().sub, "dave");
        // A private key where the public one belongs, a missing file, garbage: one line each.
        std::fs::write(&path, pair.serialize_pem()).unwrap();
        let e = Verifier::from_config(&auth).unwrap_err().to_string();
        assert!(e.contains("private key") && !e.contains('\n'), "{e}");
        std::fs::write(&path, "not a key").unwrap();
        assert!(Verifier::from_config(&auth).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        let e = Verifier::from_config(&auth).unwrap_err().to_string();
        assert!(e.contains("cannot read"), "{e}");
        assert!(
            Verifier::from_config(&AuthConfig::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn channels_claim_patterns() {
        let claims = Claims {
            sub: "a".into(),
            exp: NOW,
            channels: vec!["chat:*".into(), "news".into(), "feed:a*".into()],
        };
        for (channel, allowed) in [
            ("chat:lobby", true),
            ("chat:", true),
            ("chat", false),
            ("chatter:x", false),
            ("news", true),
            ("news:1", false),
            ("new", false),
            ("feed:a", true),
            ("feed:ab", true),
            ("feed:b", false),
        ] {
            assert_eq!(token_allows(&claims, channel), allowed, "{channel}");
        }
        let all = Claims {
            channels: vec!["*".into()],
            ..claims.clone()
        };
        assert!(token_allows(&all, "anything:at.all"));
        let none = Claims {
            channels: vec![],
            ..claims
        };
        assert!(!token_allows(&none, "chat:lobby"));
    }
}
