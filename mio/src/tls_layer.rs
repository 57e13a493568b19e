//! TLS under the core (`wss://`, feature `tls`): a rustls session per connection between
//! the socket and [`Connection`].
//!
//! The pipe: socket -> `read_tls` (records into rustls' buffer) -> `process_new_packets`
//! (decrypted in place) -> the plaintext copied once into the core's own buffer
//! ([`Connection::recv_buf`]); and the core's transmit -> rustls' writer (encrypted into
//! its record buffer) -> `write_tls` -> socket. rustls' buffers are the only ones added:
//! reads of at most 4 KiB more than it holds (rustls' own rule), its outgoing buffer
//! limited to [`SEND_BUFFER_LIMIT`] so backpressure still reaches the core (what rustls
//! does not take stays queued in the core, where [`Connection::is_send_blocked`] sees
//! it).
//!
//! Without the feature, [`Session`] has no value and every connection is plain TCP.

use std::io;

use mio::net::TcpStream;
use wsengine::Connection;

/// rustls' outgoing buffer (TLS records not yet written) holds at most this much; the
/// core keeps the rest of its transmit queue. rustls' default is 64 KiB.
#[cfg(feature = "tls")]
pub(crate) const SEND_BUFFER_LIMIT: usize = 64 << 10;

#[cfg(feature = "tls")]
pub(crate) use imp::{Session, client_session, server_session};
#[cfg(not(feature = "tls"))]
pub(crate) use stub::{Session, client_session, server_session};

#[cfg(feature = "tls")]
mod imp {
    use std::io::{self, IoSlice, Read, Write};
    use std::sync::Arc;

    use mio::net::TcpStream;
    use wsengine::{Connection, MAX_TRANSMIT_SEGMENTS};
    use wsengine_tls::rustls;
    use wsengine_tls::rustls::pki_types::ServerName;

    use crate::DriverConfig;

    /// A session for an accepted connection, when the loop serves TLS
    /// ([`DriverConfig::tls_server`]).
    pub(crate) fn server_session(config: &DriverConfig) -> io::Result<Option<Session>> {
        config.tls_server.as_ref().map(Session::server).transpose()
    }

    /// A session for a `wss://` connection to `host`, with
    /// [`DriverConfig::tls_client`] (set to Mozilla's roots on first use when unset).
    pub(crate) fn client_session(config: &mut DriverConfig, host: &str) -> io::Result<Session> {
        let client = match &config.tls_client {
            Some(client) => Arc::clone(client),
            None => {
                let roots = wsengine_tls::root_store(&[])?;
                let client = wsengine_tls::client_config(roots)?;
                config.tls_client = Some(Arc::clone(&client));
                client
            }
        };
        Session::client(&client, host)
    }

    /// One connection's TLS session.
    pub(crate) struct Session {
        tls: Box<rustls::Connection>,
        /// Decrypted bytes rustls holds that the core has not taken yet.
        plaintext: usize,
        /// The peer sent close_notify, or the socket reached its end.
        peer_closed: bool,
    }

    /// rustls' error as an I/O error (as tokio-rustls reports it:
    /// `wsengine_tls::describe_io_error` finds it inside).
    fn tls_error(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    impl Session {
        fn server(config: &Arc<rustls::ServerConfig>) -> io::Result<Self> {
            let tls = rustls::ServerConnection::new(Arc::clone(config)).map_err(tls_error)?;
            Ok(Self::new(tls.into()))
        }

        /// `host` is the URL's host: a DNS name is sent as SNI and checked against the
        /// certificate; an IP address is checked against the certificate's IP names.
        fn client(config: &Arc<rustls::ClientConfig>, host: &str) -> io::Result<Self> {
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
            tls.set_buffer_limit(Some(super::SEND_BUFFER_LIMIT));
            Self {
                tls: Box::new(tls),
                plaintext: 0,
                peer_closed: false,
            }
        }

        /// Decrypted bytes are waiting for room in the core.
        pub(crate) fn has_plaintext(&self) -> bool {
            self.plaintext > 0
        }

        /// The peer's stream is over (close_notify or EOF) and the core has every byte
        /// that came before it.
        pub(crate) fn at_end(&self) -> bool {
            self.peer_closed && self.plaintext == 0
        }

        /// Copies decrypted bytes into the core's buffer, as many as it has room for.
        pub(crate) fn deliver(&mut self, core: &mut Connection) -> usize {
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

        /// One read of TLS records from the socket, then decryption. `Ok(0)` is the
        /// socket's end. A TLS error queues rustls' alert, which is written at once
        /// (best effort), and comes back as `InvalidData` with the `rustls::Error`
        /// inside.
        pub(crate) fn receive(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
            let n = match self.tls.read_tls(stream) {
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
                    let _ = self.tls.write_tls(stream);
                    Err(tls_error(e))
                }
            }
        }

        /// Moves what the core has queued into rustls (encrypting it), up to rustls'
        /// buffer limit.
        pub(crate) fn encrypt(&mut self, core: &mut Connection) {
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

        /// rustls has records to write.
        pub(crate) fn wants_write(&self) -> bool {
            self.tls.wants_write()
        }

        /// One write of TLS records to the socket.
        pub(crate) fn write_tls(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
            self.tls.write_tls(stream)
        }

        /// Ends the TLS stream (close_notify), written at once if the socket takes it.
        pub(crate) fn close_notify(&mut self, stream: &mut TcpStream) {
            self.tls.send_close_notify();
            while self.tls.wants_write() {
                match self.tls.write_tls(stream) {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
            }
        }
    }
}

#[cfg(not(feature = "tls"))]
mod stub {
    use std::io;

    use mio::net::TcpStream;
    use wsengine::Connection;

    use crate::DriverConfig;

    /// Plain TCP: this build has no TLS.
    pub(crate) fn server_session(_config: &DriverConfig) -> io::Result<Option<Session>> {
        Ok(None)
    }

    /// Refused: this build has no TLS.
    pub(crate) fn client_session(_config: &mut DriverConfig, _host: &str) -> io::Result<Session> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "wss:// needs TLS: build wsengine-mio with its `tls` feature",
        ))
    }

    /// No TLS in this build: never constructed.
    pub(crate) enum Session {}

    impl Session {
        pub(crate) fn has_plaintext(&self) -> bool {
            match *self {}
        }
        pub(crate) fn at_end(&self) -> bool {
            match *self {}
        }
        pub(crate) fn deliver(&mut self, _core: &mut Connection) -> usize {
            match *self {}
        }
        pub(crate) fn receive(&mut self, _stream: &mut TcpStream) -> io::Result<usize> {
            match *self {}
        }
        pub(crate) fn encrypt(&mut self, _core: &mut Connection) {
            match *self {}
        }
        pub(crate) fn wants_write(&self) -> bool {
            match *self {}
        }
        pub(crate) fn write_tls(&mut self, _stream: &mut TcpStream) -> io::Result<usize> {
            match *self {}
        }
        pub(crate) fn close_notify(&mut self, _stream: &mut TcpStream) {
            match *self {}
        }
    }
}

/// Writes what the core has queued through `session` until both are empty or the socket
/// would block: `Ok(true)` when something reached the socket.
pub(crate) fn flush(
    session: &mut Session,
    stream: &mut TcpStream,
    core: &mut Connection,
) -> io::Result<bool> {
    let mut progress = false;
    loop {
        session.encrypt(core);
        if !session.wants_write() {
            return Ok(progress);
        }
        match session.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => progress = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progress),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
