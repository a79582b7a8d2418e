//! `--target unix:PATH`: the load commands run over a Unix domain socket, and the options that only
//! make sense for TCP are refused.

mod util;

use std::path::PathBuf;
use std::time::Duration;

use reactor::{Config, ConnId, Context, EventLoop, Handle, Handler, ListenerOptions, Next};
use util::run;

/// Echoes every byte.
struct Echo;

impl Handler for Echo {
    type Message = ();

    fn on_data(&mut self, ctx: &mut Context<'_>, conn: ConnId, data: &[u8]) -> Next {
        match ctx.send(conn, data) {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        }
    }
}

/// A reactor echo server on a Unix socket in a fresh directory; stopped and cleaned up when dropped.
struct UnixEcho {
    dir: PathBuf,
    path: PathBuf,
    handle: Handle<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UnixEcho {
    fn start(name: &str) -> UnixEcho {
        let dir = std::env::temp_dir().join(format!("stress-client-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("echo.sock");
        let config = Config { raise_fd_limit: false, ..Config::default() };
        let mut event_loop = EventLoop::new(config, Echo).unwrap();
        event_loop.listen_at(&ListenerOptions::unix(&path)).unwrap();
        let handle = event_loop.handle();
        let thread = std::thread::spawn(move || event_loop.run().unwrap());
        UnixEcho { dir, path, handle, thread: Some(thread) }
    }

    fn target(&self) -> String {
        format!("unix:{}", self.path.display())
    }
}

impl Drop for UnixEcho {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(Duration::from_secs(2));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn echo_connect_and_churn_run_over_a_unix_socket() {
    let server = UnixEcho::start("load");
    let target = server.target();
    let out = run(&format!("echo --target {target} --connections 8 --size 512 --duration 0.5 --json"));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!((r["target"].as_str(), r["target_addr"].as_str()), (Some(&*target), Some(&*target)), "{r}");
    assert_eq!(r["established"], 8, "{r}");
    assert_eq!(r["verify_failures"], 0, "{r}");
    assert!(r["messages"].as_u64().unwrap() > 8, "{r}");

    let out = run(&format!("connect --target {target} --connections 20 --hold 0 --json"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()["established"], 20, "{out:?}");

    let out = run(&format!("churn --target {target} --connections 4 --duration 0.5 --json"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.json()["established"].as_u64().unwrap() >= 4, "{out:?}");

    // Child processes are given the same Unix target.
    let out = run(&format!("connect --target {target} --connections 4 --processes 2 --hold 0 --json"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()["established"], 4, "{out:?}");
}

#[test]
fn a_missing_unix_socket_is_a_connect_failure_naming_it() {
    let target = format!("unix:{}/stress-client-no-such-dir/echo.sock", std::env::temp_dir().display());
    let out = run(&format!("connect --target {target} --connections 2 --hold 0"));
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains(&target) && out.stderr.contains("ENOENT"), "{out:?}");
}

#[test]
fn tcp_only_options_with_a_unix_target_are_usage_errors() {
    for args in [
        "echo --target unix:/tmp/x.sock --source-ips 127.0.0.1",
        "connect --target unix:/tmp/x.sock --blocking",
        "backlog --target unix:/tmp/x.sock",
        "echo --target unix:",
    ] {
        let out = run(args);
        assert_eq!(out.code, Some(2), "{args}: {out:?}");
    }
}
