//! A real `nats-server` for the NATS engine's tests: on a free port of 127.0.0.1 (NATS
//! core only: no JetStream), killed when dropped. Missing `nats-server` fails the test
//! (CI installs the Debian package `nats-server`); it is never skipped.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use wsengine_hub::engine::nats::{NatsConfig, NatsEngine};

use super::broker_process::BrokerProcess;

/// A running `nats-server`.
pub struct NatsServer {
    pub port: u16,
    process: BrokerProcess,
}

impl NatsServer {
    /// Starts one on a free port and waits until it greets a client (`INFO`).
    pub async fn start() -> Self {
        let process = BrokerProcess::new("nats-server", "the NATS engine's tests");
        let mut server = Self {
            port: process.port,
            process,
        };
        server.restart().await;
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`Self::kill`]).
    pub async fn restart(&mut self) {
        let port = self.port.to_string();
        self.process
            .start(&["-a", "127.0.0.1", "-p", &port], greets)
            .await;
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Sends `signal` (`STOP`, `CONT`) to it: a stopped NATS keeps its connections open
    /// and answers nothing (a hung broker).
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
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

/// True when a client connecting to 127.0.0.1:`port` is greeted with `INFO`.
async fn greets(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut buf = [0u8; 5];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"INFO "
    )
}
