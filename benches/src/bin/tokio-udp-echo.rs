//! `tokio-udp-echo`: the UDP echo server most Rust programmers would write with tokio, for comparison
//! with the reactor's datagram path: one `UdpSocket` on a current-thread runtime, `recv_from` then
//! `send_to` in a loop (one datagram per system call each way, as tokio's `UdpSocket` offers).
//!
//! Prints `listening on HOST:PORT (udp)` as its first stdout line, as `echo-server --udp` does for its
//! datagram socket. Runs until killed. Exit codes: 1 when it cannot start (one line on stderr says why);
//! 2 for bad command-line input.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::UdpSocket;

/// A UDP echo server on tokio, the baseline the reactor's datagram path is compared with.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to bind; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tokio-udp-echo: cannot build the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cli.addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio-udp-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let socket = UdpSocket::bind(addr).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {} (udp)", socket.local_addr()?)?;
    stdout.flush()?;
    let mut buffer = vec![0; 64 * 1024];
    loop {
        // An ICMP error from an earlier reply surfaces here; the socket is fine.
        let Ok((n, from)) = socket.recv_from(&mut buffer).await else { continue };
        // A refused reply is dropped, as UDP allows.
        let _ = socket.send_to(&buffer[..n], from).await;
    }
}
