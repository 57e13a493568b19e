//! [`TlsSession`]: a rustls session under a core [`Connection`].
//!
//! The pipe: socket -> `read_tls` (records into rustls' buffer) -> `process_new_packets`
//! (decrypted in place) -> the plaintext copied once into the core's own buffer
//! ([`Connection::recv_buf`]); and the core's transmit -> rustls' writer (encrypted into
//! its record buffer) -> `write_tls` -> socket. rustls' buffers are the only ones added:
//! reads of at most 4 KiB more than it holds (rustls' rule), decrypted bytes held until
//! the core has room, and its outgoing records limited to [`SEND_BUFFER_LIMIT`] so that
//! backpressure still reaches the core (what rustls does not take stays queued in the
//! core, where [`Connection::is_send_blocked`] sees it).

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use wsengine::{Connection, MAX_TRANSMIT_SEGMENTS};

/// rustls' outgoing buffer (TLS records not yet written) holds at most this much; the
/// core keeps the rest of its transmit queue. (rustls' own default is the same.)
pub const SEND_BUFFER_LIMIT: usize = 64 << 10;

/// One connection's TLS session, between its socket and its core.
///
/// The calling protocol, for a host with a non-blocking socket:
/// - readable: [`deliver`](Self::deliver) first (decrypted bytes left over from an
///   earlier read, for which the core had no room); when nothing was left,
///   [`receive`](Self::receive) once from the socket and [`deliver`](Self::deliver)
///   again; drain the core's events; repeat while the socket is readable or
///   [`has_plaintext`](Self::has_plaintext). Once [`at_end`](Self::at_end), call the
///   core's `recv_eof`.
/// - after anything that may have queued output (events handled, sends, timers, and
///   [`receive`](Self::receive) itself: handshake messages, alerts):
///   [`flush`](Self::flush); register write interest while
///   [`wants_write`](Self::wants_write) or the core wants to write.
/// - closing: [`close_notify`](Self::close_notify) before shutting the socket down.
pub struct TlsSession {
    tls: Box<rustls::Connection>,
    /// Decrypted bytes rustls holds that the core has not taken yet.
    plaintext: usize,
    /// The peer sent close_notify, or the socket reached its end.
    peer_closed: bool,
    /// The last [`receive`](Self::receive) read fewer bytes than rustls had room for.
    short_read: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.tls.is_handshaking())
            .field("plaintext", &self.plaintext)
            .field("peer_closed", &self.peer_closed)
            .field("short_read", &self.short_read)
            .finish_non_exhaustive()
    }
}

/// rustls' error as an I/O error (as tokio-rustls reports it: [`crate::describe_io_error`]
/// finds it inside).
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsSession {
    /// A server session for an accepted connection.
    pub fn server(config: &Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let tls = rustls::ServerConnection::new(Arc::clone(config)).map_err(tls_error)?;
        Ok(Self::new(tls.into()))
    }

    /// A client session to `host`, the URL's host: a DNS name is sent as SNI and checked
    /// against the certificate; an IP address (brackets allowed) against its IP names.
    pub fn client(config: &Arc<rustls::ClientConfig>, host: &str) -> io::Result<Self> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not a host name TLS can verify"),
            )
        })?;
        let tls = rustls::ClientConnection::new(Arc::clone(config), name).map_err(tls_error)?;
        Ok(Self::new(tls.into()))
    }

    fn new(mut tls: rustls::Connection) -> Self {
        tls.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        Self {
            tls: Box::new(tls),
            plaintext: 0,
            peer_closed: false,
            short_read: false,
        }
    }

    /// The rustls connection (negotiated protocol version, ALPN, peer certificates).
    pub fn rustls(&self) -> &rustls::Connection {
        &self.tls
    }

    /// Decrypted bytes are waiting for room in the core.
    pub fn has_plaintext(&self) -> bool {
        self.plaintext > 0
    }

    /// The peer's stream is over (close_notify or the socket's end) and the core has
    /// every byte that came before it.
    pub fn at_end(&self) -> bool {
        self.peer_closed && self.plaintext == 0
    }

    /// Copies decrypted bytes into the core's buffer, as many as it has room for:
    /// how many.
    pub fn deliver(&mut self, core: &mut Connection) -> usize {
        if self.plaintext == 0 {
            return 0;
        }
        let room = core.recv_buf();
        if room.is_empty() {
            core.commit_recv(0);
            return 0;
        }
        let n = self.tls.reader().read(room).unwrap_or(0);
        core.commit_recv(n);
        self.plaintext = self.plaintext.saturating_sub(n);
        n
    }

    /// One read of TLS records from `stream`, then decryption: what the read returned
    /// (`Ok(0)`: the socket's end). A TLS error queues rustls' alert, which is written
    /// to `stream` at once (best effort), and comes back as `InvalidData` with the
    /// `rustls::Error` inside.
    pub fn receive<S: Read + Write + ?Sized>(&mut self, stream: &mut S) -> io::Result<usize> {
        let mut reader = ReadOf {
            inner: stream,
            short: false,
        };
        let read = self.tls.read_tls(&mut reader);
        self.short_read = reader.short;
        let n = match read {
            Ok(0) => {
                self.peer_closed = true;
                0
            }
            Ok(n) => n,
            Err(e) => return Err(e),
        };
        match self.tls.process_new_packets() {
            Ok(state) => {
                self.plaintext = state.plaintext_bytes_to_read();
                if state.peer_has_closed() {
                    self.peer_closed = true;
                }
                Ok(n)
            }
            Err(e) => {
                let _ = self.tls.write_tls(&mut WriteOf(reader.inner));
                Err(tls_error(e))
            }
        }
    }

    /// The last [`receive`](Self::receive) got fewer bytes than rustls had room for
    /// (rustls reads at most 4 KiB beyond what it holds): the socket had nothing more
    /// then. A host on an edge-triggered poll (Linux's epoll) can skip the read that
    /// would only say `WouldBlock`, as a plain host does after a short read.
    pub fn drained(&self) -> bool {
        self.short_read
    }

    /// Moves what the core has queued into rustls (encrypting it), up to rustls' buffer
    /// limit.
    pub fn encrypt(&mut self, core: &mut Connection) {
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_TRANSMIT_SEGMENTS];
            let count = core.poll_transmit_vectored(&mut slices);
            if count == 0 {
                return;
            }
            let taken = self
                .tls
                .writer()
                .write_vectored(&slices[..count])
                .unwrap_or(0);
            if taken == 0 {
                return;
            }
            core.advance_transmit(taken);
        }
    }

    /// What this session holds for the memory budget of a host, an upper bound: the
    /// decrypted bytes the core has not taken, plus, while records wait for the socket,
    /// rustls' outgoing buffer at its limit ([`SEND_BUFFER_LIMIT`]; rustls does not say
    /// how full it is). Its fixed state (keys, a 4 KiB read buffer: about 8 KiB per
    /// connection in all) is not counted.
    pub fn buffered_bytes(&self) -> usize {
        let outgoing = if self.tls.wants_write() {
            SEND_BUFFER_LIMIT
        } else {
            0
        };
        self.plaintext + outgoing
    }

    /// rustls has records to write.
    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Writes what the core has queued through the session until both are empty or the
    /// socket would block: `Ok(true)` when something reached the socket.
    pub fn flush<S: Write + ?Sized>(
        &mut self,
        stream: &mut S,
        core: &mut Connection,
    ) -> io::Result<bool> {
        let mut progress = false;
        loop {
            self.encrypt(core);
            if !self.tls.wants_write() {
                return Ok(progress);
            }
            match self.tls.write_tls(&mut WriteOf(stream)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progress),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Ends the TLS stream with close_notify (RFC 8446 §6.1), so the peer can tell the
    /// end from a truncation; written at once if the socket takes it.
    pub fn close_notify<S: Write + ?Sized>(&mut self, stream: &mut S) {
        self.tls.send_close_notify();
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut WriteOf(stream)) {
                Ok(n) if n > 0 => {}
                _ => return,
            }
        }
    }
}

/// `&mut S` as a `dyn Read` for rustls, whatever `S`'s size, noting a short read.
struct ReadOf<'a, S: ?Sized> {
    inner: &'a mut S,
    short: bool,
}

impl<S: Read + ?Sized> Read for ReadOf<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.short = n > 0 && n < buf.len();
        Ok(n)
    }
}

/// `&mut S` as a `dyn Write` for rustls, whatever `S`'s size.
struct WriteOf<'a, S: ?Sized>(&'a mut S);

impl<S: Write + ?Sized> Write for WriteOf<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
