//! A real `nats-server` for the NATS engine's tests: on a free port of 127.0.0.1 (NATS
//! core only: no JetStream), killed when dropped. Missing `nats-server` fails the test
//! (CI installs the Debian package `nats-server`); it is never skipped.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use wsengine_hub::engine::nats::{NatsConfig, NatsEngine};

use super::STEP;

/// A running `nats-server`.
pub struct NatsServer {
    pub port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts one on a free port and waits until it greets a client (`INFO`).
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`Self::kill`]).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "nats-server is running");
        let port = self.port.to_string();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run nats-server ({e}): the NATS engine's tests need it; \
                     install the Debian package nats-server (apt-get install -y nats-server)"
                )
            });
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if self.greets().await {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server did not answer on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn greets(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 5];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut buf)).await,
            Ok(Ok(_)) if &buf == b"INFO "
        )
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to it: a stopped NATS keeps its connections open
    /// and answers nothing (a hung broker).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("nats-server is running").id();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Engine settings for tests: a prefix of its own, short timeouts.
    pub fn engine_config(&self, prefix: &str) -> NatsConfig {
        let mut config = NatsConfig::new(self.url());
        config.prefix = prefix.to_owned();
        config.op_timeout = Duration::from_secs(2);
        config.ping_interval = Duration::from_millis(500);
        config.reconnect_max = Duration::from_millis(300);
        config
    }

    /// A connected engine with [`Self::engine_config`].
    pub async fn engine(&self, prefix: &str) -> Arc<NatsEngine> {
        Arc::new(
            NatsEngine::connect(self.engine_config(prefix))
                .await
                .expect("the NATS engine connects"),
        )
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
