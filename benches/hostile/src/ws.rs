//! A raw WebSocket client: hand-made handshakes and frames, as an attacker sends them;
//! over plain TCP or (the canaries of the TLS attack) through a rustls client.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// The masking key of every client frame (fixed: the server cannot tell, and a masked
/// buffer can then be built once and sent many times).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// One frame, masked unless `masked` is false (a protocol error from a client).
pub fn frame(opcode: u8, fin: bool, rsv1: bool, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 } | opcode);
    let m = if masked { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        out.push(m | n as u8);
    } else if let Ok(n16) = u16::try_from(n) {
        out.push(m | 126);
        out.extend_from_slice(&n16.to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked Close frame with a status code.
pub fn close_frame(code: u16) -> Vec<u8> {
    frame(OP_CLOSE, true, false, &code.to_be_bytes(), true)
}

/// A frame from the server.
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The status code of a Close frame (1005 when it has none).
    pub fn close_code(&self) -> u16 {
        match self.payload.as_slice() {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 1005,
        }
    }
}

/// Parses one frame from `buf`; returns it and the bytes it took.
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mut key = [0u8; 4];
    if masked {
        key.copy_from_slice(buf.get(at..at + 4)?);
        at += 4;
    }
    let len = usize::try_from(len).ok()?;
    let end = at.checked_add(len)?;
    let mut payload = buf.get(at..end)?.to_vec();
    if masked {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= key[i & 3]);
    }
    Some((Frame { opcode, payload }, end))
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Sets SO_RCVBUF (the kernel doubles it): a small one makes the server queue what it
/// sends to us in its own buffers.
pub fn set_rcvbuf(stream: &TcpStream, bytes: i32) -> io::Result<()> {
    let value: libc::c_int = bytes;
    // SAFETY: a valid descriptor, a pointer to a c_int and its size.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bytes written to `stream` that the peer's kernel has not acknowledged yet (SIOCOUTQ).
pub fn unacked(stream: &TcpStream) -> u64 {
    let mut n: libc::c_int = 0;
    // SAFETY: a valid descriptor and a pointer to a c_int, as TIOCOUTQ (SIOCOUTQ) wants.
    #[allow(unsafe_code)]
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &raw mut n) };
    if r == 0 {
        u64::try_from(n).unwrap_or(0)
    } else {
        0
    }
}

/// The upgrade request (with a permessage-deflate offer if `deflate`).
pub fn request(deflate: bool) -> String {
    let ext = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    } else {
        ""
    };
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
    )
}

/// How a drained connection ended.
pub enum End {
    /// The server closed the TCP connection (EOF).
    Eof,
    /// A socket error (e.g. reset by the server).
    Error(io::ErrorKind),
    /// Still open: nothing more arrived.
    Open,
}

/// What reading a connection to its end found.
pub struct Drained {
    pub close_code: Option<u16>,
    pub end: End,
    pub bytes: u64,
}

/// A client connection after its handshake.
pub struct Conn {
    /// The socket (under `tls` when there is one: write to it directly only without).
    pub stream: TcpStream,
    /// The TLS client session of a wss connection.
    tls: Option<Box<ClientConnection>>,
    buf: Vec<u8>,
    pos: usize,
    /// permessage-deflate was agreed.
    pub deflate: bool,
    pub rx_bytes: u64,
}

impl Conn {
    /// Connects and completes the handshake within `timeout`.
    pub fn open(addr: SocketAddr, deflate: bool, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Conn::handshake(stream, deflate, timeout)
    }

    /// Connects over TLS (`config`, the server named `name`), then completes the
    /// WebSocket handshake, all within `timeout`.
    pub fn open_tls(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> io::Result<Conn> {
        let deadline = Instant::now() + timeout;
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        let mut tls =
            Box::new(ClientConnection::new(config.clone(), name).map_err(io::Error::other)?);
        tls_handshake(&mut tls, &mut stream, deadline)?;
        let mut conn = Conn::new(stream, Some(tls));
        conn.send(request(false).as_bytes(), timeout)?;
        conn.read_response(deadline)
    }

    fn new(stream: TcpStream, tls: Option<Box<ClientConnection>>) -> Conn {
        Conn {
            stream,
            tls,
            buf: Vec::new(),
            pos: 0,
            deflate: false,
            rx_bytes: 0,
        }
    }

    /// Sends the upgrade request on `stream` and waits `timeout` for a 101.
    pub fn handshake(mut stream: TcpStream, deflate: bool, timeout: Duration) -> io::Result<Conn> {
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(request(deflate).as_bytes())?;
        Conn::finish_handshake(stream, Instant::now() + timeout)
    }

    /// Reads the handshake response (the request was sent already).
    pub fn finish_handshake(stream: TcpStream, deadline: Instant) -> io::Result<Conn> {
        Conn::new(stream, None).read_response(deadline)
    }

    fn read_response(self, deadline: Instant) -> io::Result<Conn> {
        let mut conn = self;
        let end = loop {
            if let Some(i) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if conn.buf.len() > 64 << 10 {
                return Err(io::Error::other("handshake response too long"));
            }
            if !conn.fill(deadline)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no handshake response",
                ));
            }
        };
        let head = String::from_utf8_lossy(&conn.buf[..end]).into_owned();
        conn.pos = end;
        if !head.starts_with("HTTP/1.1 101") {
            let line = head.lines().next().unwrap_or("").to_owned();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("handshake refused: {line}"),
            ));
        }
        conn.deflate = head.to_ascii_lowercase().contains("permessage-deflate");
        Ok(conn)
    }

    /// Reads once (until `deadline`); false on timeout. EOF is an error.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        self.stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let old = self.buf.len();
        self.buf.resize(old + (64 << 10), 0);
        let r = match self.tls.as_deref_mut() {
            Some(tls) => rustls::Stream::new(tls, &mut self.stream).read(&mut self.buf[old..]),
            None => self.stream.read(&mut self.buf[old..]),
        };
        let n = *r.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        match r {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.rx_bytes += n as u64;
                Ok(true)
            }
            Err(e) if timed_out(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The next frame, or None if none arrived by `deadline`.
    pub fn read_frame(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        loop {
            if let Some((frame, used)) = parse(&self.buf[self.pos..]) {
                self.pos += used;
                return Ok(Some(frame));
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Writes all of `bytes` (bounded by a write timeout).
    pub fn send(&mut self, bytes: &[u8], timeout: Duration) -> io::Result<()> {
        self.stream.set_write_timeout(Some(timeout))?;
        match self.tls.as_deref_mut() {
            Some(tls) => {
                let mut s = rustls::Stream::new(tls, &mut self.stream);
                s.write_all(bytes)?;
                s.flush()
            }
            None => self.stream.write_all(bytes),
        }
    }

    /// Reads everything the server still sends: until EOF, an error, `idle` without
    /// data or `total`. Records the server's Close code.
    pub fn drain(&mut self, total: Duration, idle: Duration) -> Drained {
        let start = Instant::now();
        let mut close_code = None;
        let before = self.rx_bytes;
        let end = loop {
            let deadline = (Instant::now() + idle).min(start + total);
            match self.read_frame(deadline) {
                Ok(Some(f)) if f.opcode == OP_CLOSE => {
                    close_code.get_or_insert(f.close_code());
                }
                Ok(Some(_)) => {}
                Ok(None) => break End::Open,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break End::Eof,
                Err(e) => break End::Error(e.kind()),
            }
        };
        Drained {
            close_code,
            end,
            bytes: self.rx_bytes - before,
        }
    }
}

/// Completes a TLS handshake on a blocking socket by `deadline`.
pub fn tls_handshake(
    tls: &mut ClientConnection,
    stream: &mut TcpStream,
    deadline: Instant,
) -> io::Result<()> {
    while tls.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake not done in time",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        stream.set_write_timeout(Some(left))?;
        tls.complete_io(stream)?;
    }
    // The client's Finished (and, in TLS 1.2, what follows) may still wait.
    while tls.wants_write() {
        tls.write_tls(stream)?;
    }
    Ok(())
}

/// Writes copies of `pattern` (whole frames) until `deadline`, `max` bytes, an error, or
/// no progress for `stall`. Returns the bytes written and the error, if one ended it.
pub fn pump(
    stream: &mut TcpStream,
    pattern: &[u8],
    deadline: Instant,
    max: u64,
    stall: Option<Duration>,
) -> (u64, Option<io::Error>) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let mut sent = 0u64;
    let mut off = 0usize;
    let mut progress = Instant::now();
    loop {
        let now = Instant::now();
        // Stop between frames, or a second late in the middle of one.
        if (off == 0 && now >= deadline) || now >= deadline + Duration::from_secs(1) {
            return (sent, None);
        }
        if stall.is_some_and(|s| now.duration_since(progress) >= s) {
            return (sent, None);
        }
        match stream.write(&pattern[off..]) {
            Ok(n) => {
                sent += n as u64;
                off += n;
                progress = Instant::now();
                if off == pattern.len() {
                    off = 0;
                    if sent >= max {
                        return (sent, None);
                    }
                }
            }
            Err(e) if timed_out(&e) => {}
            Err(e) => return (sent, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for len in [0, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for masked in [false, true] {
                let bytes = frame(OP_BINARY, true, false, &payload, masked);
                let (f, used) = parse(&bytes).expect("a whole frame");
                assert_eq!((f.opcode, used), (OP_BINARY, bytes.len()));
                assert_eq!(f.payload, payload);
                assert!(parse(&bytes[..bytes.len() - 1]).is_none() || len == 0);
            }
        }
        let c = frame(OP_CLOSE, true, false, &1008u16.to_be_bytes(), false);
        assert_eq!(parse(&c).map(|(f, _)| f.close_code()), Some(1008));
        assert_eq!(frame(OP_TEXT, false, true, b"x", true)[0], 0x41);
    }
}
