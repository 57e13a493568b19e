//! TLS under the core (`wss://`, feature `tls`): a [`wsengine_tls::TlsSession`] per
//! connection between the socket and [`Connection`](wsengine::Connection) (its docs give
//! the pipe and the calling protocol the loop follows).
//!
//! Without the feature, [`Session`] has no value and every connection is plain TCP.

#[cfg(feature = "tls")]
pub(crate) use imp::{Session, client_session, server_session};
#[cfg(not(feature = "tls"))]
pub(crate) use stub::{Session, client_session, server_session};

#[cfg(feature = "tls")]
mod imp {
    use std::io;
    use std::sync::Arc;

    pub(crate) use wsengine_tls::TlsSession as Session;

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
        pub(crate) fn wants_write(&self) -> bool {
            match *self {}
        }
        pub(crate) fn buffered_bytes(&self) -> usize {
            match *self {}
        }
        pub(crate) fn drained(&self) -> bool {
            match *self {}
        }
        pub(crate) fn flush(
            &mut self,
            _stream: &mut TcpStream,
            _core: &mut Connection,
        ) -> io::Result<bool> {
            match *self {}
        }
        pub(crate) fn close_notify(&mut self, _stream: &mut TcpStream) {
            match *self {}
        }
    }
}
