//! `tokio-echo`: the echo server most Rust programmers would write with tokio, for comparison with the
//! reactor. One task per connection, `tokio::io::copy` from the socket's read half to its write half.
//!
//! Prints `listening on HOST:PORT` as its first stdout line, like `echo-server`. Runs until killed.
//! Exit codes: 0 never in practice (it serves until a signal ends it); 1 when it cannot start (one line
//! on stderr says why); 2 for bad command-line input.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// An echo server on tokio, the baseline the reactor is compared with.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Which tokio runtime.
    #[arg(long, value_enum, default_value_t = Runtime::CurrentThread)]
    runtime: Runtime,
    /// Length of the kernel's accept queue, passed to listen(2).
    #[arg(long, default_value_t = 1024)]
    backlog: u32,
}

/// The tokio runtime flavours.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Runtime {
    /// Everything on the thread that runs `main`.
    CurrentThread,
    /// A work-stealing pool, one worker per core this process may run on.
    MultiThread,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    // Up to the hard limit, so that one process can hold as many idle peers as the reactor can.
    if let Err(e) = hostinfo::raise_fd_limit() {
        eprintln!("tokio-echo: cannot raise the descriptor limit: {e}");
    }
    let runtime = match cli.runtime {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()?;
    runtime.block_on(serve(cli.addr, cli.backlog))
}

async fn serve(addr: SocketAddr, backlog: u32) -> Result<(), Box<dyn std::error::Error>> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener: TcpListener = socket.listen(backlog)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            // EMFILE, ECONNABORTED and the like end one accept, not the server; back off a little so
            // that a full descriptor table is not retried in a spin.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.split();
    // Errors (a reset peer) end this connection only.
    let _ = tokio::io::copy(&mut reader, &mut writer).await;
}
