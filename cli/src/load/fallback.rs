//! `wsengine load --hub --transport sse|long-polling`: subscribers over the hub's
//! fallback transports (docs/HUB-PROTOCOL.md, "Fallback transports: SSE and long
//! polling"), over plain HTTP/1.1.
//!
//! Setup is blocking and sequential, outside the measurement: an SSE subscriber opens
//! `GET /sse`, reads its `session` message, sends the WebSocket path's `subscribe` as
//! `POST /api/send?session=ID` (on one keep-alive connection per node shared by every
//! setup), and reads the subscribe reply from its stream; a long-polling subscriber
//! opens with `GET /poll`, subscribes the same way and polls (`seq` 1, 2, ...) until the
//! reply comes, then writes its next poll. Its socket then joins the pub/sub engine's
//! mio poll: SSE streams are read as they come (chunked decoding, one event per
//! `data:` line), polls are answered (`Content-Length` or chunked) and the next poll is
//! written at once on the same keep-alive connection.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Which transport the subscribers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Transport {
    /// WebSocket `/ws` (the default).
    Websocket,
    /// Server-Sent Events: `GET /sse`, client messages by `POST /api/send`.
    Sse,
    /// Long polling: `GET /poll`, client messages by `POST /api/send`.
    #[value(name = "long-polling")]
    LongPolling,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Websocket => "websocket",
            Self::Sse => "sse",
            Self::LongPolling => "long-polling",
        }
    }
}

/// How long a poll may wait at the hub (its default and maximum `poll_timeout`).
pub(crate) const POLL_TIMEOUT_S: u32 = 25;
/// Blocking reads and writes of the setup.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the response being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Its status line and headers.
    Head,
    /// A chunked body: `left` bytes of the current chunk (0: a size line is next);
    /// `crlf`: the CRLF after a chunk's data is next.
    Chunked { left: usize, crlf: bool },
    /// A body of a known length: `left` bytes to go.
    Length { left: usize },
    /// The whole response was read.
    Done,
}

/// One HTTP/1.1 response read incrementally (keep-alive: the next one may follow).
#[derive(Debug)]
pub(crate) struct HttpIn {
    /// Received, not yet decoded, from `raw_at`.
    raw: Vec<u8>,
    raw_at: usize,
    body_state: Body,
    /// The response's status (0 before its head).
    pub(crate) status: u16,
    /// The decoded body, from `body_at` (SSE: events not yet taken).
    pub(crate) body: Vec<u8>,
    pub(crate) body_at: usize,
}

impl Default for HttpIn {
    fn default() -> Self {
        Self {
            raw: Vec::new(),
            raw_at: 0,
            body_state: Body::Head,
            status: 0,
            body: Vec::new(),
            body_at: 0,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl HttpIn {
    /// Takes in `data` and decodes what it can.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        self.raw.extend_from_slice(data);
        self.decode()
    }

    /// Whether the whole response was read.
    pub(crate) fn done(&self) -> bool {
        self.body_state == Body::Done
    }

    /// Starts on the next response of the connection (what was received of it stays).
    pub(crate) fn next_response(&mut self) -> Result<(), String> {
        self.body_state = Body::Head;
        self.status = 0;
        self.body.clear();
        self.body_at = 0;
        self.decode()
    }

    fn decode(&mut self) -> Result<(), String> {
        loop {
            let raw = &self.raw[self.raw_at..];
            match self.body_state {
                Body::Done => break,
                Body::Head => {
                    let Some(end) = find(raw, b"\r\n\r\n") else {
                        if raw.len() > 64 << 10 {
                            return Err("an HTTP head over 64 KiB".into());
                        }
                        break;
                    };
                    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                    self.raw_at += end + 4;
                    let mut lines = head.split("\r\n");
                    let status_line = lines.next().unwrap_or("");
                    self.status = status_line
                        .split(' ')
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))?;
                    let mut chunked = false;
                    let mut length = None;
                    for line in lines {
                        let Some((name, value)) = line.split_once(':') else {
                            continue;
                        };
                        match name.trim() {
                            "transfer-encoding" => chunked = value.contains("chunked"),
                            "content-length" => length = value.trim().parse::<usize>().ok(),
                            _ => {}
                        }
                    }
                    self.body_state = if chunked {
                        Body::Chunked {
                            left: 0,
                            crlf: false,
                        }
                    } else {
                        match length {
                            Some(0) => Body::Done,
                            Some(n) => Body::Length { left: n },
                            // Why: 204 and friends; a body to EOF is not used by the hub.
                            None => Body::Done,
                        }
                    };
                }
                Body::Length { left } => {
                    if raw.is_empty() {
                        break;
                    }
                    let n = left.min(raw.len());
                    self.body.extend_from_slice(&raw[..n]);
                    self.raw_at += n;
                    self.body_state = if n == left {
                        Body::Done
                    } else {
                        Body::Length { left: left - n }
                    };
                }
                Body::Chunked {
                    left: 0,
                    crlf: true,
                } => {
                    if raw.len() < 2 {
                        break;
                    }
                    if &raw[..2] != b"\r\n" {
                        return Err("a chunk not followed by CRLF".into());
                    }
                    self.raw_at += 2;
                    self.body_state = Body::Chunked {
                        left: 0,
                        crlf: false,
                    };
                }
                Body::Chunked { left: 0, .. } => {
                    let Some(end) = find(raw, b"\r\n") else {
                        break;
                    };
                    let line = String::from_utf8_lossy(&raw[..end]);
                    let size_text = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size_text, 16)
                        .map_err(|_| format!("a bad chunk size line: {line:?}"))?;
                    if size == 0 {
                        // The last chunk: no trailers from the hub, then CRLF.
                        let Some(end) = find(raw, b"\r\n\r\n") else {
                            break;
                        };
                        self.raw_at += end + 4;
                        self.body_state = Body::Done;
                    } else {
                        self.raw_at += end + 2;
                        self.body_state = Body::Chunked {
                            left: size,
                            crlf: false,
                        };
                    }
                }
                Body::Chunked { left, .. } => {
                    if raw.is_empty() {
                        break;
                    }
                    let n = left.min(raw.len());
                    self.body.extend_from_slice(&raw[..n]);
                    self.raw_at += n;
                    self.body_state = Body::Chunked {
                        left: left - n,
                        crlf: n == left,
                    };
                }
            }
        }
        // Compact what was decoded.
        if self.raw_at > 0 {
            if self.raw_at == self.raw.len() {
                self.raw.clear();
            } else if self.raw_at > 32 << 10 {
                self.raw.drain(..self.raw_at);
            } else {
                return Ok(());
            }
            self.raw_at = 0;
        }
        Ok(())
    }

    /// The next whole SSE event's `data` (comments and events without data skipped), or
    /// `None` until more arrives. One `data:` line per event (the hub's).
    pub(crate) fn next_sse_data(&mut self) -> Option<(usize, usize)> {
        loop {
            let rest = &self.body[self.body_at..];
            let end = find(rest, b"\n\n")?;
            let block_start = self.body_at;
            self.body_at += end + 2;
            let block = &self.body[block_start..block_start + end];
            let mut at = 0;
            for line in block.split(|&b| b == b'\n') {
                if let Some(data) = line.strip_prefix(b"data:") {
                    let skip = usize::from(data.first() == Some(&b' '));
                    let from = block_start + at + 5 + skip;
                    return Some((from, block_start + at + line.len()));
                }
                at += line.len() + 1;
            }
        }
    }

    /// Drops the SSE events already taken from the body.
    pub(crate) fn compact_body(&mut self) {
        if self.body_at == self.body.len() {
            self.body.clear();
            self.body_at = 0;
        } else if self.body_at > 32 << 10 {
            self.body.drain(..self.body_at);
            self.body_at = 0;
        }
    }
}

/// A blocking HTTP/1.1 keep-alive connection for the setup's requests.
pub(crate) struct Blocking {
    pub(crate) stream: TcpStream,
    pub(crate) input: HttpIn,
}

impl Blocking {
    pub(crate) fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, SETUP_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
        stream.set_write_timeout(Some(SETUP_TIMEOUT))?;
        Ok(Self {
            stream,
            input: HttpIn::default(),
        })
    }

    /// Reads more of the response; an error at EOF.
    pub(crate) fn read_more(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 16 << 10];
        let n = self.stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the hub closed the connection",
            ));
        }
        self.input.feed(&buf[..n]).map_err(io::Error::other)
    }

    /// Writes `request` and reads its whole response (status, body).
    pub(crate) fn request(&mut self, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        self.input.next_response().map_err(io::Error::other)?;
        self.stream.write_all(request)?;
        while !self.input.done() {
            self.read_more()?;
        }
        let body = self.input.body[self.input.body_at..].to_vec();
        Ok((self.input.status, body))
    }
}

/// `GET PATH` on a keep-alive connection.
pub(crate) fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n")
}

/// `POST /api/send?session=ID` with `body`.
pub(crate) fn post_send(host: &str, session: &str, body: &str) -> String {
    format!(
        "POST /api/send?session={session} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The next poll of a long-polling session.
pub(crate) fn poll_request(host: &str, session: &str, seq: u64) -> String {
    get(
        host,
        &format!("/poll?session={session}&seq={seq}&timeout={POLL_TIMEOUT_S}"),
    )
}
