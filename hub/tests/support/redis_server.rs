//! A real `redis-server` for the Redis engine's tests: on a free port of 127.0.0.1, no
//! persistence, killed when dropped. Missing `redis-server` fails the test (CI installs
//! the Debian package `redis-server`); it is never skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsengine_hub::engine::redis::{RedisConfig, RedisEngine};

use super::broker_process::BrokerProcess;

/// A running `redis-server`.
pub struct RedisServer {
    pub port: u16,
    process: BrokerProcess,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers `PING`.
    pub async fn start() -> Self {
        let process = BrokerProcess::new("redis-server", "the Redis engine's tests");
        let mut server = Self {
            port: process.port,
            process,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it again on the same port (after [`Self::kill`]): an empty Redis.
    pub async fn restart(&mut self) {
        let port = self.port.to_string();
        let args = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        self.process.start(&args, ping).await;
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Sends `signal` (`STOP`, `CONT`) to it: a stopped Redis keeps its connections
    /// open and answers nothing (a hung broker).
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// Engine settings for tests: a prefix of its own, short timeouts, presence entries
    /// that expire after `presence_ttl`.
    pub fn engine_config(&self, prefix: &str) -> RedisConfig {
        let mut config = RedisConfig::new(self.url());
        config.prefix = prefix.to_owned();
        config.op_timeout = Duration::from_secs(2);
        config.presence_ttl = Duration::from_millis(1500);
        config.presence_refresh = Duration::from_millis(300);
        config.reconnect_max = Duration::from_millis(300);
        config.pubsub_ping = Duration::from_millis(500);
        config
    }

    /// A connected engine with [`Self::engine_config`].
    pub async fn engine(&self, prefix: &str) -> Arc<RedisEngine> {
        Arc::new(
            RedisEngine::connect(self.engine_config(prefix))
                .await
                .expect("the Redis engine connects"),
        )
    }
}

/// True when a client connecting to 127.0.0.1:`port` gets `+PONG` for `PING`.
async fn ping(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"+PONG\r\n"
    )
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
