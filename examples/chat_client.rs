//! A line-based client on the sans-IO core and a plain blocking socket: each line of
//! stdin goes out as a text message, each message received is printed. A reader thread
//! owns the socket's read half; this thread owns the connection and writes.
//!
//! ```text
//! cargo run --example echo_server -- 127.0.0.1:9001
//! cargo run --example chat_client -- ws://127.0.0.1:9001/
//! ```
//!
//! It is a client for any server: the mio host's chat room, say.
//!
//! ```text
//! cargo run -p wsengine-mio --example chat_server
//! cargo run --example chat_client -- 'ws://127.0.0.1:9002/chat?name=ann'
//! ```

#![allow(
    clippy::disallowed_types,
    reason = "an example host: it owns its sockets"
)]

use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use wsengine::{ClientRequest, CloseCode, Config, Connection, Event, Instant, State};

/// What the connection's thread waits for.
enum Input {
    Bytes(Vec<u8>),
    Eof,
    Line(String),
    StdinDone,
}

fn main() -> io::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".to_owned());
    let request = ClientRequest::new(&url).map_err(|e| io::Error::other(e.to_string()))?;
    let host = format!("{}:{}", request.host(), request.port());
    let mut socket = TcpStream::connect(&host)?;
    let mut ws = Connection::client(request, Config::default(), Instant::now())
        .map_err(|e| io::Error::other(e.to_string()))?;

    let (tx, rx) = mpsc::channel();
    let mut reader = socket.try_clone()?;
    let from_socket = tx.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if from_socket.send(Input::Bytes(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = from_socket.send(Input::Eof);
    });
    let mut open = false;
    // Lines typed before the handshake's answer, and whether stdin ended meanwhile.
    let mut lines = Vec::new();
    let mut stdin_done = false;
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Input::Line(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(Input::StdinDone);
    });

    loop {
        drain_events(&mut ws, &mut open, &mut lines, stdin_done)?;
        while ws.wants_write() {
            let n = socket.write(ws.poll_transmit())?;
            ws.advance_transmit(n);
        }
        if ws.should_close_transport() || matches!(ws.state(), State::Failed) {
            return Ok(());
        }
        let wait = ws.poll_timeout().map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Input::Bytes(bytes)) => {
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let taken = ws.recv(rest);
                    rest = &rest[taken..];
                    // The core took what fits; drain its events, then offer the rest.
                    drain_events(&mut ws, &mut open, &mut lines, stdin_done)?;
                }
            }
            Ok(Input::Eof) => ws.recv_eof(),
            Ok(Input::Line(line)) if open => {
                let _ = ws.send_text(&line);
            }
            Ok(Input::Line(line)) => lines.push(line),
            Ok(Input::StdinDone) if open => {
                let _ = ws.close(CloseCode(1000), "bye");
            }
            Ok(Input::StdinDone) => stdin_done = true,
            Err(mpsc::RecvTimeoutError::Timeout) => ws.handle_timeout(Instant::now()),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// Handles every event ready: prints messages, and on the handshake's answer sends the
/// lines typed before it (and closes when stdin has ended already).
fn drain_events(
    ws: &mut Connection,
    open: &mut bool,
    lines: &mut Vec<String>,
    stdin_done: bool,
) -> io::Result<()> {
    while let Some(event) = ws
        .poll_event()
        .map_err(|e| io::Error::other(e.to_string()))?
    {
        match event {
            Event::Accepted(_) => {
                *open = true;
                for line in lines.drain(..) {
                    let _ = ws.send_text(&line);
                }
                if stdin_done {
                    let _ = ws.close(CloseCode(1000), "bye");
                }
            }
            Event::Text { data, .. } => println!("{}", data.as_str()),
            Event::Binary { data, .. } => println!("<{} bytes>", data.len()),
            Event::Closed { code, .. } => println!("closed ({})", code.0),
            _ => {}
        }
    }
    Ok(())
}
