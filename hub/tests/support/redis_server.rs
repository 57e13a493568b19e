//! A real `redis-server` for the Redis engine's tests: on a free port of 127.0.0.1, no
//! persistence, killed when dropped. Missing `redis-server` fails the test (CI installs
//! the Debian package `redis-server`); it is never skipped.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsengine_hub::engine::redis::{RedisConfig, RedisEngine};

use super::STEP;

/// A running `redis-server`.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers `PING`.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it again on the same port (after [`Self::kill`]): an empty Redis.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is running");
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): the Redis engine's tests need it; \
                     install the Debian package redis-server (apt-get install -y redis-server)"
                )
            });
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if self.ping().await {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ping(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
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

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to it: a stopped Redis keeps its connections
    /// open and answers nothing (a hung broker).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid}");
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
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
