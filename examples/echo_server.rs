//! An echo server on the sans-IO core and a plain blocking socket: one thread per
//! connection, no runtime. What every host does, in the fewest lines: read bytes into
//! `recv`, drain `poll_event`, write `poll_transmit` out, and call `handle_timeout` when
//! `poll_timeout` says (here: the socket's read timeout).
//!
//! ```text
//! cargo run --example echo_server -- 127.0.0.1:9001
//! cargo run --example chat_client -- ws://127.0.0.1:9001/
//! ```

#![allow(
    clippy::disallowed_types,
    reason = "an example host: it owns its sockets"
)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use wsengine::{Accept, Config, Connection, Event, Instant, State};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let listener = TcpListener::bind(&addr)?;
    println!("echo server on ws://{}/", listener.local_addr()?);
    for socket in listener.incoming() {
        let socket = socket?;
        std::thread::spawn(move || {
            if let Err(e) = serve(socket) {
                eprintln!("connection: {e}");
            }
        });
    }
    Ok(())
}

fn serve(mut socket: TcpStream) -> io::Result<()> {
    let mut ws = Connection::server(Config::default(), Instant::now());
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // Events first: each may queue an answer (the 101, an echo, a Close).
        loop {
            match ws.poll_event() {
                Ok(Some(Event::Request(_))) => {
                    // Any path, any origin; a real server checks them here.
                    let _ = ws.accept(Accept::new());
                }
                Ok(Some(Event::Text { data, .. })) => {
                    let _ = ws.send_text(data.as_str());
                }
                Ok(Some(Event::Binary { data, .. })) => {
                    let _ = ws.send_binary(&data);
                }
                // Pongs and the closing handshake are answered by the core.
                Ok(Some(_)) => {}
                Ok(None) => break,
                // A protocol error: the core queued the Close (or the HTTP error) to send.
                Err(e) => {
                    eprintln!("protocol error: {e}");
                    break;
                }
            }
        }
        // Write out everything queued.
        while ws.wants_write() {
            let n = socket.write(ws.poll_transmit())?;
            ws.advance_transmit(n);
        }
        if ws.should_close_transport() || matches!(ws.state(), State::Failed) {
            return Ok(());
        }
        // Offer what the core did not take last time before reading more.
        if !pending.is_empty() {
            let taken = ws.recv(&pending);
            pending.drain(..taken);
            continue;
        }
        // Wait for bytes, or for the core's next timer (keepalive, close timeout).
        let wait = ws
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        socket.set_read_timeout(wait.map(|d| d.max(Duration::from_millis(1))))?;
        match socket.read(&mut buf) {
            Ok(0) => ws.recv_eof(),
            Ok(n) => {
                let taken = ws.recv(&buf[..n]);
                pending.extend_from_slice(&buf[taken..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                ws.handle_timeout(Instant::now());
            }
            Err(e) => return Err(e),
        }
    }
}
