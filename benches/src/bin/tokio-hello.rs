//! `tokio-hello`: the HTTP/1.1 "hello" responder a Rust programmer would write by hand on tokio, as a
//! peer for `reactor/examples/http.rs` under the same `wrk` load. Keep-alive and pipelining: every
//! request head (up to the blank line) gets `200 OK` with `Hello, world!`; a head over 8 KiB closes the
//! connection. It parses no more than that, like the example's hot path with a plain GET.
//!
//! Prints `listening on HOST:PORT` as its first stdout line. Exit codes: 1 when it cannot start, 2 for
//! bad command-line input; otherwise it serves until killed.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n";
const MAX_HEAD: usize = 8 * 1024;

/// An HTTP hello responder on tokio's current-thread runtime.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let served = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(serve(cli.listen)));
    match served {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("tokio-hello: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tokio-hello: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// Answers every complete request head in what arrived, then reads more; a reset ends only this peer.
async fn answer(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut pending = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut replies = Vec::new();
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        while let Some(end) = pending[consumed..].windows(4).position(|w| w == b"\r\n\r\n") {
            consumed += end + 4;
            replies.extend_from_slice(RESPONSE);
        }
        pending.drain(..consumed);
        if pending.len() > MAX_HEAD {
            return;
        }
        if !replies.is_empty() {
            if stream.write_all(&replies).await.is_err() {
                return;
            }
            replies.clear();
        }
    }
}
