//! A broker's process for the engine tests (`redis-server`, `nats-server`): on a free port
//! of 127.0.0.1, started again on the same port after a kill, stopped (SIGSTOP) to play a
//! hung broker, killed when dropped. A missing program fails the test with the Debian
//! package to install (CI installs it); it is never skipped.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::STEP;

/// One broker process (or none, between [`Self::kill`] and [`Self::start`]).
pub struct BrokerProcess {
    /// The program, also the Debian package that provides it.
    program: &'static str,
    /// What the engine tests need it for, in the failure message.
    needed_by: &'static str,
    pub port: u16,
    child: Option<Child>,
}

impl BrokerProcess {
    /// A process of `program` to come on a free port of 127.0.0.1 (not started yet).
    pub fn new(program: &'static str, needed_by: &'static str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self {
            program,
            needed_by,
            port,
            child: None,
        }
    }

    /// Runs `program args` and waits until `ready(port)` says it serves.
    pub async fn start<F, R>(&mut self, args: &[&str], ready: F)
    where
        F: Fn(u16) -> R,
        R: Future<Output = bool>,
    {
        let program = self.program;
        assert!(self.child.is_none(), "{program} is running");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {program} ({e}): {} needs it; install the Debian package \
                     {program} (apt-get install -y {program})",
                    self.needed_by
                )
            });
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + STEP;
        while !ready(self.port).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{program} did not answer on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to it: a stopped broker keeps its connections open
    /// and answers nothing (a hung broker).
    pub fn signal(&self, signal: &str) {
        let program = self.program;
        let pid = self.child.as_ref().expect("the broker is running").id();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid} ({program})");
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
