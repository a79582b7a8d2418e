//! `--addr unix:PATH`: the reactor serves a Unix domain socket, replaces a stale socket file, refuses
//! one a server answers on, and removes its own on exit.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

/// A fresh directory for this test's socket, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("echo-server-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the server if the test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server on `unix:path` and returns it with its first stdout line.
fn start(path: &std::path::Path) -> (Server, String) {
    let addr = format!("unix:{}", path.display());
    let mut child =
        util::command(&["--addr", &addr]).stdout(Stdio::piped()).stdin(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).expect("a listening line within 20 s");
    (server, line)
}

fn echo_once(path: &std::path::Path, data: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(data).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    back
}

fn wait_exit(server: &mut Server) -> std::process::ExitStatus {
    let mut status = None;
    testkit::wait_for(Duration::from_secs(15), || {
        status = server.0.try_wait().unwrap();
        status.is_some()
    });
    status.expect("the server exits within 15 s")
}

#[test]
fn serves_a_unix_socket_and_removes_it_on_exit() {
    let dir = Dir::new("serve");
    let path = dir.0.join("echo.sock");
    let (mut server, line) = start(&path);
    assert_eq!(line.trim(), format!("listening on unix:{}", path.display()));
    let data = testkit::payload(1, 200_000);
    assert!(echo_once(&path, &data) == data, "the echo differs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.0.id() as i32), Signal::SIGTERM).unwrap();
    assert!(wait_exit(&mut server).success());
    assert!(!path.exists(), "the socket file outlived the server");
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = Dir::new("stale");
    let path = dir.0.join("echo.sock");
    drop(UnixListener::bind(&path).unwrap());
    let (_server, line) = start(&path);
    assert!(line.starts_with("listening on unix:"), "{line}");
    assert_eq!(echo_once(&path, b"again"), b"again");
}

#[test]
fn a_socket_in_use_is_refused_naming_it() {
    let dir = Dir::new("in-use");
    let path = dir.0.join("echo.sock");
    let _live = UnixListener::bind(&path).unwrap();
    let addr = format!("unix:{}", path.display());
    let (status, stderr) = util::run_within(&["--addr", &addr], Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&addr) && stderr.contains("address in use"), "{stderr}");
    assert!(path.exists(), "the live server's socket file was removed");
}

#[test]
fn unix_addresses_refuse_what_one_loop_cannot_do() {
    for extra in [&["--threads", "2"][..], &["--workers", "2"], &["--udp"], &["--mode", "blocking"], &[]] {
        let mut args = vec!["--addr", "unix:"];
        if !extra.is_empty() {
            args[1] = "unix:/nonexistent-dir/echo.sock";
            args.extend_from_slice(extra);
        }
        let (status, stderr) = util::run_within(&args, Duration::from_secs(15));
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
    }
}
