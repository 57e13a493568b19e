//! The hub's configuration file (`docs/HUB-PROTOCOL.md`, "Running it"): TOML, every key
//! optional with the doc's defaults, unknown keys refused by name; the demo configuration;
//! command-line flags over the file ([`Overrides`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::protocol::{self, DEFAULT_NAMESPACE};

/// The address `wsengine hub` listens on when neither `--listen` nor `listen` says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

/// The whole file ("Running it").
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `listen`: the address to serve on (`--listen` overrides it).
    pub listen: Option<String>,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[limits]`.
    pub limits: Limits,
    /// `[engine]`.
    pub engine: EngineConfig,
    /// `[namespaces.NAME]`, one table per namespace.
    pub namespaces: BTreeMap<String, NamespaceConfig>,
    /// `[websocket]` (an addition to the contract's file).
    pub websocket: WebSocketOptions,
    /// `[fallback]`: SSE and long polling ("Fallback transports").
    pub fallback: FallbackConfig,
}

/// `[fallback]`: the fallback transports ("Fallback transports: SSE and long polling").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    /// `sse` (default true): serve `GET /sse`.
    pub sse: bool,
    /// `long_polling` (default true): serve `GET /poll`.
    pub long_polling: bool,
    /// `session_timeout` (default 30): seconds a long-polling session lives with no poll
    /// open (an SSE session ends with its stream).
    pub session_timeout: u64,
    /// `poll_timeout` (default 25): the longest a poll waits, and how long when it does not say.
    pub poll_timeout: u64,
    /// `heartbeat` (default 15): seconds between comments on an idle SSE stream.
    pub heartbeat: u64,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            sse: true,
            long_polling: true,
            session_timeout: 30,
            poll_timeout: 25,
            heartbeat: 15,
        }
    }
}

/// `[websocket]`: how `/ws` speaks WebSocket (an addition to the contract's file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketOptions {
    /// `compression` (default false): negotiate permessage-deflate (RFC 7692) with clients
    /// that offer it (every browser does), without context takeover in either direction,
    /// so that a publication is compressed once for all its subscribers and an idle
    /// connection holds no compressor. Off by default: it costs CPU per publication and
    /// per reply, and pays only for payloads of a few hundred bytes or more.
    pub compression: bool,
}

/// `[auth]` ("Auth", "Running it").
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `jwt_secret`: HS256/384/512 tokens are checked with it.
    pub jwt_secret: Option<String>,
    /// `jwt_public_key`: a PEM file; RS256/384/512 or ES256/384 tokens are checked with it.
    pub jwt_public_key: Option<PathBuf>,
    /// `allow_anonymous` (default false): `connect` without a token is accepted.
    pub allow_anonymous: bool,
    /// `allowed_origins` (default empty: any Origin).
    pub allowed_origins: Vec<String>,
    /// `api_key`: the HTTP API's key (`Authorization: apikey KEY`).
    pub api_key: Option<String>,
}

/// `[limits]`, with the doc's defaults ("Running it", "Details that tests rely on").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Bytes queued per connection before close 4003 (default 1 MiB).
    pub outbound_cap: u64,
    /// Publishes per second per connection, burst the same (default 50).
    pub publish_rate: u32,
    /// New connections per second per server, burst the same (default 1000).
    pub connect_rate: u32,
    /// Bytes of one client message (default 65536).
    pub max_message_size: u64,
    /// Channels one connection may subscribe to (default 128).
    pub max_channels_per_client: u32,
    /// Subscribers of one channel, per node (default 100000).
    pub max_subscribers_per_channel: u32,
    /// Publications one `subscribe` reply may recover (default 1000).
    pub recovery_max: u32,
    /// Seconds from the upgrade to `connect` (default 10).
    pub connect_timeout: u64,
    /// Seconds between pings (default 25).
    pub ping_interval: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            outbound_cap: 1_048_576,
            publish_rate: 50,
            connect_rate: 1000,
            max_message_size: 65_536,
            max_channels_per_client: 128,
            max_subscribers_per_channel: 100_000,
            recovery_max: 1000,
            connect_timeout: 10,
            ping_interval: 25,
        }
    }
}

/// `[engine]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `kind` (default memory).
    pub kind: EngineKind,
    /// `url` of the broker (default empty; required for redis and nats).
    pub url: String,
}

/// `[engine] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// One node, history and presence in memory.
    #[default]
    Memory,
    /// Redis.
    Redis,
    /// NATS.
    Nats,
}

impl EngineKind {
    /// The name in the file and in `/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Nats => "nats",
        }
    }
}

/// Who may subscribe to a namespace's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscribePolicy {
    /// Anyone connected.
    #[default]
    Any,
    /// Only connections whose token's `channels` claim allows the channel.
    Token,
}

/// Who may publish to a namespace's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishPolicy {
    /// Anyone connected.
    #[default]
    Any,
    /// Only connections whose token's `channels` claim allows the channel.
    Token,
    /// Only the HTTP API.
    Api,
}

/// `[namespaces.NAME]`. A key missing from a table takes the built-in default below, not
/// the value of `[namespaces.default]` (each table stands alone).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceConfig {
    /// `subscribe` (default any).
    pub subscribe: SubscribePolicy,
    /// `publish` (default any).
    pub publish: PublishPolicy,
    /// Publications kept per channel; 0 = none (default 100).
    pub history_size: u64,
    /// Seconds a publication stays in history (default 300).
    pub history_ttl: u64,
    /// Presence and join/leave (default true).
    pub presence: bool,
}

impl NamespaceConfig {
    /// The built-in defaults.
    pub const DEFAULT: Self = Self {
        subscribe: SubscribePolicy::Any,
        publish: PublishPolicy::Any,
        history_size: 100,
        history_ttl: 300,
        presence: true,
    };
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A configuration that cannot be used; its `Display` is one line naming the file, the
/// place and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The demo configuration ("Running it", "Details that tests rely on": no file and no
    /// auth flag): anonymous access on, every namespace with the defaults.
    pub fn demo() -> Self {
        let mut config = Self::default();
        config.auth.allow_anonymous = true;
        config
    }

    /// Parses the file's text. `origin` names it in errors (a path, or `"config"`).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let place = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    format!(" line {line}:")
                })
                .unwrap_or_default();
            let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            ConfigError::new(format!("{origin}:{place} {message}"))
        })?;
        config
            .validate()
            .map_err(|e| ConfigError::new(format!("{origin}: {e}")))?;
        Ok(config)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("{shown}: cannot read: {e}")))?;
        Self::from_toml(&text, &shown)
    }

    /// Checks what serde cannot: values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (key, value) in [
            ("publish_rate", u64::from(l.publish_rate)),
            ("connect_rate", u64::from(l.connect_rate)),
            ("max_message_size", l.max_message_size),
            ("ping_interval", l.ping_interval),
            ("connect_timeout", l.connect_timeout),
            ("outbound_cap", l.outbound_cap),
        ] {
            if value == 0 {
                return Err(ConfigError::new(format!("limits.{key} must be above 0")));
            }
        }
        for (key, value) in [
            ("session_timeout", self.fallback.session_timeout),
            ("heartbeat", self.fallback.heartbeat),
        ] {
            if value == 0 {
                return Err(ConfigError::new(format!("fallback.{key} must be above 0")));
            }
        }
        if self.engine.kind != EngineKind::Memory && self.engine.url.is_empty() {
            return Err(ConfigError::new(format!(
                "engine.url is required with engine.kind = \"{}\"",
                self.engine.kind.as_str()
            )));
        }
        if self.engine.kind == EngineKind::Redis {
            crate::engine::redis::check_url(&self.engine.url).map_err(|e| {
                ConfigError::new(format!("engine.url is not a Redis URL it can use: {e}"))
            })?;
        }
        if self.engine.kind == EngineKind::Nats {
            crate::engine::nats::check_url(&self.engine.url).map_err(|e| {
                ConfigError::new(format!("engine.url is not a NATS URL it can use: {e}"))
            })?;
        }
        for name in self.namespaces.keys() {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| protocol::is_channel_byte(b) && b != b':')
            {
                return Err(ConfigError::new(format!(
                    "namespaces.{name:?}: a namespace name is 1 or more of [A-Za-z0-9_.-]"
                )));
            }
        }
        if self.auth.jwt_secret.as_deref() == Some("") {
            return Err(ConfigError::new("auth.jwt_secret is empty"));
        }
        if self.auth.api_key.as_deref() == Some("") {
            return Err(ConfigError::new("auth.api_key is empty"));
        }
        Ok(())
    }

    /// A namespace's settings: its own table, else `[namespaces.default]`, else the
    /// built-in defaults ("Running it": "every namespace not listed").
    pub fn namespace(&self, name: &str) -> &NamespaceConfig {
        self.namespaces
            .get(name)
            .or_else(|| self.namespaces.get(DEFAULT_NAMESPACE))
            .unwrap_or(&NamespaceConfig::DEFAULT)
    }

    /// The settings of `channel`'s namespace ([`protocol::namespace_of`]).
    pub fn channel_namespace(&self, channel: &str) -> &NamespaceConfig {
        self.namespace(protocol::namespace_of(channel))
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> &str {
        self.listen.as_deref().unwrap_or(DEFAULT_LISTEN)
    }

    /// Whether any way to authenticate a token is configured.
    pub fn has_jwt(&self) -> bool {
        self.auth.jwt_secret.is_some() || self.auth.jwt_public_key.is_some()
    }
}

/// What the command line says ("Running it"); each flag given replaces the file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--jwt-secret S`.
    pub jwt_secret: Option<String>,
    /// `--jwt-public-key PATH`.
    pub jwt_public_key: Option<PathBuf>,
    /// `--allow-anonymous` (only turns it on).
    pub allow_anonymous: bool,
    /// `--allowed-origin O`, repeatable: when any is given, they replace the file's list.
    pub allowed_origins: Vec<String>,
    /// `--api-key K`.
    pub api_key: Option<String>,
    /// `--redis URL` or `--nats URL`: the engine and its URL.
    pub engine: Option<EngineConfig>,
}

impl Overrides {
    /// Whether an auth flag (`--jwt-secret`, `--jwt-public-key`, `--api-key`) is given.
    pub fn has_auth_flag(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_public_key.is_some() || self.api_key.is_some()
    }
}

/// The configuration in force: the file (or none) with the flags over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The configuration.
    pub config: Config,
    /// Demo mode: no file and no auth flag ("Details that tests rely on"); the server
    /// warns on stderr that it is not for production.
    pub demo: bool,
}

/// Puts the flags over the file. With no file and no auth flag it is the demo
/// ([`Config::demo`]), whatever engine is chosen.
pub fn resolve(file: Option<Config>, flags: Overrides) -> Result<Resolved, ConfigError> {
    let demo = file.is_none() && !flags.has_auth_flag();
    let mut config = match file {
        Some(config) => config,
        None if demo => Config::demo(),
        None => Config::default(),
    };
    if flags.listen.is_some() {
        config.listen = flags.listen;
    }
    if flags.jwt_secret.is_some() {
        config.auth.jwt_secret = flags.jwt_secret;
    }
    if flags.jwt_public_key.is_some() {
        config.auth.jwt_public_key = flags.jwt_public_key;
    }
    if flags.allow_anonymous {
        config.auth.allow_anonymous = true;
    }
    if !flags.allowed_origins.is_empty() {
        config.auth.allowed_origins = flags.allowed_origins;
    }
    if flags.api_key.is_some() {
        config.auth.api_key = flags.api_key;
    }
    if let Some(engine) = flags.engine {
        config.engine = engine;
    }
    config.validate()?;
    Ok(Resolved { config, demo })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The doc's example file ("Running it"), with the placeholders filled in.
    const DOC_EXAMPLE: &str = r#"
listen = "127.0.0.1:8000"
[auth]
jwt_secret = "s3cret"         # or jwt_public_key = "path.pem"
allow_anonymous = false
allowed_origins = []          # empty: any Origin
api_key = "k"
[limits]                      # defaults shown
outbound_cap = 1048576        # bytes queued per connection before close 4003
publish_rate = 50             # publishes per second per connection (burst: the same)
connect_rate = 1000           # new connections per second per server
max_message_size = 65536      # bytes of one client message
max_channels_per_client = 128
max_subscribers_per_channel = 100000
recovery_max = 1000           # publications one subscribe reply may recover
connect_timeout = 10          # seconds from the upgrade to `connect`
ping_interval = 25            # seconds
[fallback]                    # SSE and long polling ("Fallback transports")
sse = true                    # GET /sse
long_polling = true           # GET /poll
session_timeout = 30          # seconds without a poll before a long-polling session ends
poll_timeout = 25             # the longest a poll waits (and its default)
heartbeat = 15                # seconds between SSE comments on an idle stream
[engine]
kind = "memory"               # "redis" | "nats"
url = ""
[namespaces.default]          # channels without a namespace, and every namespace not listed
subscribe = "any"             # "any" (anyone connected) | "token" (only via the token's channels claim)
publish = "any"               # "any" | "token" | "api" (HTTP API only)
history_size = 100            # publications kept per channel; 0 = none
history_ttl = 300             # seconds
presence = true               # presence and join/leave
[namespaces.chat]             # one table per namespace, same keys
"#;

    #[test]
    fn defaults_are_the_docs() {
        let doc = Config::from_toml(DOC_EXAMPLE, "doc").unwrap();
        let empty = Config::from_toml("", "empty").unwrap();
        assert_eq!(empty.limits, doc.limits);
        assert_eq!(empty.limits, Limits::default());
        assert_eq!(empty.engine, doc.engine);
        assert_eq!(empty.engine.kind, EngineKind::Memory);
        assert_eq!(empty.fallback, doc.fallback);
        assert_eq!(empty.fallback, FallbackConfig::default());
        assert_eq!(doc.namespaces["default"], NamespaceConfig::DEFAULT);
        assert_eq!(doc.namespaces["chat"], NamespaceConfig::DEFAULT);
        assert_eq!(*empty.namespace("anything"), NamespaceConfig::DEFAULT);
        assert!(!empty.auth.allow_anonymous);
        assert!(empty.auth.allowed_origins.is_empty());
        assert_eq!(empty.listen_addr(), "127.0.0.1:8000");
        assert_eq!(doc.listen_addr(), "127.0.0.1:8000");
        assert_eq!(doc.auth.jwt_secret.as_deref(), Some("s3cret"));
        assert_eq!(doc.auth.api_key.as_deref(), Some("k"));
        let l = Limits::default();
        assert_eq!(
            (
                l.outbound_cap,
                l.publish_rate,
                l.connect_rate,
                l.max_message_size,
                l.max_channels_per_client,
                l.max_subscribers_per_channel,
                l.recovery_max,
                l.connect_timeout,
                l.ping_interval
            ),
            (1_048_576, 50, 1000, 65536, 128, 100_000, 1000, 10, 25)
        );
        let n = NamespaceConfig::DEFAULT;
        assert_eq!(
            (
                n.subscribe,
                n.publish,
                n.history_size,
                n.history_ttl,
                n.presence
            ),
            (SubscribePolicy::Any, PublishPolicy::Any, 100, 300, true)
        );
    }

    #[test]
    fn values_are_read() {
        let c = Config::from_toml(
            r#"
[auth]
jwt_public_key = "/etc/hub/key.pem"
allowed_origins = ["https://a.example"]
[limits]
publish_rate = 5
[engine]
kind = "redis"
url = "redis://127.0.0.1/"
[namespaces.feed]
subscribe = "token"
publish = "api"
history_size = 0
presence = false
"#,
            "t",
        )
        .unwrap();
        assert_eq!(
            c.auth.jwt_public_key,
            Some(PathBuf::from("/etc/hub/key.pem"))
        );
        assert_eq!(c.auth.allowed_origins, ["https://a.example"]);
        assert_eq!(c.limits.publish_rate, 5);
        assert_eq!(c.limits.connect_rate, 1000);
        assert_eq!(c.engine.kind, EngineKind::Redis);
        let feed = c.namespace("feed");
        assert_eq!(feed.subscribe, SubscribePolicy::Token);
        assert_eq!(feed.publish, PublishPolicy::Api);
        assert_eq!(feed.history_size, 0);
        assert_eq!(feed.history_ttl, 300);
        assert!(!feed.presence);
        assert_eq!(c.channel_namespace("feed:x").publish, PublishPolicy::Api);
        assert_eq!(c.channel_namespace("feedx").publish, PublishPolicy::Any);
    }

    #[test]
    fn namespace_fallback() {
        let c = Config::from_toml(
            "[namespaces.default]\npresence = false\n[namespaces.chat]\nhistory_size = 5\n",
            "t",
        )
        .unwrap();
        // Listed: its own table (missing keys take the built-in defaults).
        assert_eq!(c.namespace("chat").history_size, 5);
        assert!(c.namespace("chat").presence);
        // Not listed: [namespaces.default].
        assert!(!c.namespace("news").presence);
        assert!(!c.channel_namespace("lobby").presence);
        assert!(!c.channel_namespace("news:1").presence);
        assert_eq!(c.channel_namespace("chat:1").history_size, 5);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        for (text, key) in [
            ("listn = \"x\"", "listn"),
            ("[auth]\njwt_secrett = \"x\"", "jwt_secrett"),
            ("[limits]\nping = 3", "ping"),
            ("[engine]\nhost = \"x\"", "host"),
            ("[namespaces.chat]\nhistory = 3", "history"),
            ("[metrics]\non = true", "metrics"),
        ] {
            let e = Config::from_toml(text, "hub.toml").unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")), "{e}");
            assert!(e.starts_with("hub.toml: line "), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn bad_values_are_one_line() {
        for (text, needle) in [
            ("[namespaces.chat]\nsubscribe = \"api\"", "api"),
            ("[limits]\npublish_rate = -1", "line 2"),
            ("[limits]\npublish_rate = 0", "limits.publish_rate"),
            ("[engine]\nkind = \"nats\"", "engine.url"),
            (
                "[engine]\nkind = \"redis\"\nurl = \"http://x\"",
                "engine.url is not a Redis URL",
            ),
            (
                "[engine]\nkind = \"redis\"\nurl = \"rediss://127.0.0.1/\"",
                "engine.url is not a Redis URL",
            ),
            (
                "[engine]\nkind = \"nats\"\nurl = \"http://x\"",
                "engine.url is not a NATS URL",
            ),
            (
                "[engine]\nkind = \"nats\"\nurl = \"ws://127.0.0.1:4222\"",
                "engine.url is not a NATS URL",
            ),
            ("[engine]\nkind = \"kafka\"", "kafka"),
            ("[namespaces.\"a:b\"]", "namespace name"),
            ("[auth]\njwt_secret = \"\"", "jwt_secret"),
            ("[auth\n", "line 1"),
        ] {
            let e = Config::from_toml(text, "f").unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let missing = Config::load(Path::new("/nonexistent/hub.toml")).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("/nonexistent/hub.toml: cannot read")
        );
    }

    #[test]
    fn demo_and_overrides() {
        let r = resolve(None, Overrides::default()).unwrap();
        assert!(r.demo);
        assert!(r.config.auth.allow_anonymous);
        assert_eq!(r.config.limits, Limits::default());
        // Any engine: still the demo.
        let r = resolve(
            None,
            Overrides {
                engine: Some(EngineConfig {
                    kind: EngineKind::Nats,
                    url: "nats://127.0.0.1:4222".into(),
                }),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(r.demo && r.config.auth.allow_anonymous);
        assert_eq!(r.config.engine.kind, EngineKind::Nats);
        // An auth flag: not the demo, anonymous off.
        let r = resolve(
            None,
            Overrides {
                jwt_secret: Some("s".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(!r.demo && !r.config.auth.allow_anonymous);
        // A file: not the demo; flags win over it.
        let file = Config::from_toml(
            "listen = \"0.0.0.0:1\"\n[auth]\njwt_secret = \"file\"\nallowed_origins = [\"a\"]",
            "f",
        )
        .unwrap();
        let r = resolve(
            Some(file),
            Overrides {
                listen: Some("[::1]:2".into()),
                jwt_secret: Some("flag".into()),
                allow_anonymous: true,
                allowed_origins: vec!["b".into(), "c".into()],
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(!r.demo);
        assert_eq!(r.config.listen_addr(), "[::1]:2");
        assert_eq!(r.config.auth.jwt_secret.as_deref(), Some("flag"));
        assert!(r.config.auth.allow_anonymous);
        assert_eq!(r.config.auth.allowed_origins, ["b", "c"]);
        assert!(r.config.has_jwt());
    }
}
