//! What every host's conformance runner shares: the echo server's configuration; for
//! the network hosts (the mio event loop, the tokio adapter), the client that runs one
//! vector over a fresh TCP connection on 127.0.0.1; for the in-memory ones (the core,
//! the C ABI), the loop that feeds a vector to an echo server ([`run_in_memory`]).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use wsengine::Config;

use crate::vectors::{self, ACCEPT, Observed, REQUEST, Vector, reply_count};

/// The configuration of every host's echo server: the vectors' limits, the rest default.
#[allow(
    clippy::field_reassign_with_default,
    reason = "Config is non-exhaustive"
)]
pub fn config() -> Config {
    let mut c = Config::default();
    c.max_frame_size = vectors::MAX_FRAME_SIZE;
    c.max_message_size = vectors::MAX_MESSAGE_SIZE;
    c.max_fragments = vectors::MAX_FRAGMENTS;
    c
}

/// Longest a vector may take on a network host.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// For a vector whose server keeps the connection open: how long to wait, once the
/// expected replies are in, for anything more (there must be nothing).
pub const QUIET: Duration = Duration::from_millis(200);

/// Runs one vector against the echo server at `addr` over a fresh TCP connection:
/// the opening handshake, the input, then reads until the server closes (EOF), the
/// expected replies of a connection that stays open are in and [`QUIET`] passed, or
/// [`DEADLINE`]. The socket is closed on return.
pub fn tcp_exchange(addr: SocketAddr, vector: &Vector) -> Observed {
    let mut observed = Observed::default();
    let result = connect(addr).and_then(|mut s| exchange(&mut s, vector, &mut observed));
    if let Err(e) = result {
        observed.error = Some(e);
    }
    observed
}

/// [`tcp_exchange`] over TLS (feature `tls`): the same vector through a rustls client
/// session with `config`, verifying the server's certificate for `server_name`.
#[cfg(feature = "tls")]
pub fn tls_exchange(
    addr: SocketAddr,
    config: std::sync::Arc<wsengine_tls::rustls::ClientConfig>,
    server_name: &str,
    vector: &Vector,
) -> Observed {
    use wsengine_tls::rustls;
    let mut observed = Observed::default();
    let result = connect(addr).and_then(|tcp| {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| format!("server name: {e}"))?;
        let session = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut s = rustls::StreamOwned::new(session, tcp);
        exchange(&mut s, vector, &mut observed)
    });
    if let Err(e) = result {
        observed.error = Some(e);
    }
    observed
}

/// A TCP connection to `addr` with [`DEADLINE`] as its timeouts.
fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, DEADLINE).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(DEADLINE))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(DEADLINE))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// A byte stream the exchange runs over: TCP, or TLS over TCP.
trait Transport: Read + Write {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

#[cfg(feature = "tls")]
impl Transport
    for wsengine_tls::rustls::StreamOwned<wsengine_tls::rustls::ClientConnection, TcpStream>
{
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }
}

fn exchange(
    s: &mut impl Transport,
    vector: &Vector,
    observed: &mut Observed,
) -> Result<(), String> {
    let deadline = Instant::now() + DEADLINE;
    s.write_all(REQUEST)
        .map_err(|e| format!("writing the request: {e}"))?;
    // The head, one byte at a time so that no frame byte is taken with it.
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => return Err(format!("reading the 101: {other:?} after {head:?}")),
        }
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 101 ") || !head.contains(ACCEPT) {
        return Err(format!("unexpected response {head:?}"));
    }
    // A server that fails early still reads (and discards) until our EOF, so the whole
    // input goes through; a write error is only noted.
    if let Err(e) = s.write_all(&vector.input) {
        observed.note.push_str(&format!("writing the input: {e}; "));
    }
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let waiting_for_quiet =
            !vector.closes && reply_count(&observed.bytes) >= vector.replies.len();
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = if waiting_for_quiet { QUIET } else { left };
        if wait.is_zero() {
            observed.note.push_str("deadline passed; ");
            return Ok(());
        }
        s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => {
                observed.closed = true;
                return Ok(());
            }
            Ok(n) => observed.bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !waiting_for_quiet {
                    observed.note.push_str("deadline passed; ");
                }
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                // A reset ends the connection too, but may have destroyed what was sent.
                observed.note.push_str(&format!("read: {e}; "));
                observed.closed = true;
                return Ok(());
            }
        }
    }
}

// ---- the in-memory hosts ----

/// An echo server driven in memory by [`run_in_memory`]: each text or binary message it
/// receives goes back to the client.
pub trait EchoServer {
    /// Hands `data` to the server: how many bytes it took, or what went wrong (which
    /// ends the run).
    fn recv(&mut self, data: &[u8]) -> Result<usize, String>;
    /// Polls every event, echoing messages (a refused echo is noted in `note`); returns
    /// whether anything happened.
    fn echo_events(&mut self, note: &mut String) -> bool;
    /// Everything the server has queued for the transport, drained.
    fn transmit(&mut self) -> Vec<u8>;
    /// Whether the server asks for the transport to be closed.
    fn should_close(&self) -> bool;
}

/// Runs one vector against an in-memory echo server, opened by the caller (an `Err` is
/// what went wrong opening it): feeds the vector's input in reads of at most
/// `read_size` bytes, echoing and draining the server after each, and records what it
/// sent and whether it then asks for the transport to be closed.
pub fn run_in_memory(
    server: Result<impl EchoServer, String>,
    vector: &Vector,
    read_size: usize,
) -> Observed {
    let mut server = match server {
        Ok(server) => server,
        Err(e) => {
            return Observed {
                error: Some(e),
                ..Observed::default()
            };
        }
    };
    let mut observed = Observed::default();
    for piece in vector.input.chunks(read_size) {
        let mut data = piece;
        while !data.is_empty() {
            let taken = match server.recv(data) {
                Ok(taken) => taken,
                Err(e) => {
                    observed.error = Some(e);
                    return observed;
                }
            };
            data = &data[taken..];
            let progressed = server.echo_events(&mut observed.note);
            observed.bytes.extend(server.transmit());
            if taken == 0 && !progressed {
                observed.error = Some(format!("stuck with {} bytes left", data.len()));
                return observed;
            }
        }
    }
    server.echo_events(&mut observed.note);
    observed.bytes.extend(server.transmit());
    observed.closed = server.should_close();
    observed
}
