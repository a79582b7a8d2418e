//! Reactor mode: the echo handler, and the setup of the loops that run it, one per thread, before
//! `supervisor` watches them.

use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc::{self, Sender};

use log::info;

use reactor::{Config, ConnId, Context, EventLoop, Handle, Handler, ListenerOptions, Next, UdpId};

use crate::cli::Cli;
use crate::listen_addr::ListenAddr;
use crate::served::{self, Event};
use crate::supervisor::Supervisor;

/// Sends every byte back. Back-pressure keeps each connection's queue below the output cap, so a send
/// is refused only when the connection is already closing.
#[derive(Debug)]
pub struct Echo;

impl Handler for Echo {
    type Message = ();

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        match ctx.send(conn, data) {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        }
    }

    /// A datagram goes back to whoever sent it. When the kernel's buffer is full the reply is dropped;
    /// the loop counts it (`datagrams_refused` in `--stats`), so the loss is visible.
    fn on_datagram(&mut self, ctx: &mut Context<'_>, socket: UdpId, data: &[u8], from: SocketAddr) {
        let _ = ctx.send_to(socket, data, from);
    }
}

/// Runs `--threads` loops until SIGINT/SIGTERM, then shuts them down gracefully.
pub fn serve(cli: &Cli) -> Result<ExitCode, Box<dyn Error>> {
    // Signal handlers before the listening line: a script that signals as soon as it reads the line
    // must get a graceful shutdown, not the default action, and the process is fully set up by then.
    let (events, waiting) = mpsc::channel();
    crate::signals::forward_to(events.clone())?;
    let loops = open_loops(cli)?;
    let handles = start(loops, &events)?;
    Ok(Supervisor::new(handles, cli.shutdown_timeout, cli.stats).run(&waiting)?)
}

/// Creates the loops and their listeners (and the UDP socket), and prints the listening lines.
fn open_loops(cli: &Cli) -> Result<Vec<EventLoop<Echo>>, Box<dyn Error>> {
    let threads = cli.threads as usize;
    let config = Config {
        max_connections: cli.max_conns().map_or(Config::default().max_connections, |m| m.div_ceil(threads)),
        idle_timeout: cli.idle_timeout,
        raise_fd_limit: false,
        ..Config::default()
    };
    if let ListenAddr::Unix(_) = cli.addr {
        // One loop (the command line refuses more), no UDP: the listener owns the socket file, removed
        // when the loop is dropped at exit.
        let mut event_loop = EventLoop::new(config, Echo)?;
        let options = ListenerOptions::at(cli.addr.reactor()).backlog(cli.backlog).paused(cli.pause_accept);
        let (_, addr) = event_loop.listen_at(&options)?;
        served::print_listening(&addr)?;
        info!("1 event loop on {addr}, backlog {}", cli.backlog);
        return Ok(vec![event_loop]);
    }
    let reuse_port = threads > 1 || cli.worker_of.is_some();
    if reuse_port && cli.worker_of.is_none() {
        // A worker joins the group its supervisor checked; the others in it make the check fail.
        crate::port::check_unserved(cli.addr.tcp()?)?;
    }
    let mut addr = cli.addr.tcp()?;
    let mut loops = Vec::with_capacity(threads);
    for _ in 0..threads {
        let mut event_loop = EventLoop::new(config.clone(), Echo)?;
        let options =
            ListenerOptions::new(addr).backlog(cli.backlog).reuse_port(reuse_port).paused(cli.pause_accept);
        // The first listener may have been given port 0: the rest join it on the port it got.
        addr = event_loop.listen(&options)?.1;
        loops.push(event_loop);
    }
    served::print_listening(&addr)?;
    if cli.udp {
        let mut ctx = loops[0].context();
        let socket = ctx.bind_udp(addr)?;
        let udp = ctx.local_addr(socket)?;
        served::print_listening_udp(udp)?;
    }
    info!("{threads} event loop(s) on {addr}, backlog {}", cli.backlog);
    Ok(loops)
}

/// Runs each loop on a thread of its own, which reports its end on `events`; returns their handles.
pub fn start(loops: Vec<EventLoop<Echo>>, events: &Sender<Event>) -> io::Result<Vec<Handle<()>>> {
    let handles = loops.iter().map(EventLoop::handle).collect();
    for (index, mut event_loop) in loops.into_iter().enumerate() {
        let events = events.clone();
        std::thread::Builder::new().name(format!("loop-{index}")).spawn(move || {
            let result = event_loop.run();
            // Dropped before reporting, so that a Unix listener's socket file is gone before the main
            // thread, told that every loop ended, exits.
            drop(event_loop);
            let _ = events.send(Event::Ended { index, result });
        })?;
    }
    Ok(handles)
}
