//! `--plot FILE.svg`: every plotted command writes its picture, the picture is SVG, and it carries the
//! series it claims (the legend's names and the limits' labels are text elements of the SVG).

#![cfg(target_os = "linux")]

mod util;

use std::net::TcpStream;
use std::path::PathBuf;

use util::{ReactorServer, run, run_with_fd_limit};

/// A path for a test's picture, unique to this test process, removed when dropped.
struct Picture(PathBuf);

impl Picture {
    fn new(name: &str) -> Picture {
        let path = std::env::temp_dir().join(format!("stress-client-plot-{}-{name}.svg", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Picture(path)
    }

    /// The picture's texts (legend, labels, title), trimmed; fails the test unless it is an SVG
    /// document.
    #[track_caller]
    fn texts(&self) -> Vec<String> {
        let svg = std::fs::read_to_string(&self.0).unwrap_or_else(|e| panic!("{}: {e}", self.0.display()));
        let document = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML: {e}"));
        let root = document.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
        let texts = root.descendants().filter(|n| n.has_tag_name("text"));
        texts.filter_map(|n| n.text()).map(|t| t.trim().to_owned()).collect()
    }

    /// Fails the test unless every one of `names` is a text of the picture.
    #[track_caller]
    fn assert_carries(&self, names: &[&str]) {
        let texts = self.texts();
        for name in names {
            assert!(texts.iter().any(|t| t == name), "no {name:?} in the picture: {texts:?}");
        }
    }

    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn connect_draws_its_connections_and_the_port_s_sockets() {
    let server = ReactorServer::start();
    let picture = Picture::new("connect");
    let out =
        run(&format!("connect --target {} --connections 5 --hold 0.6 --plot {}", server.addr, picture.arg()));
    assert_eq!(out.code, Some(0), "{out:?}");
    picture.assert_carries(&[
        &format!("stress-client connect --target {}", server.addr),
        "open",
        "established (total)",
        "ESTABLISHED",
        "LISTEN",
        "connections",
        &format!("sockets on port {}", server.addr.port()),
    ]);
}

/// The limit that stopped the ramp is a labelled line, and the errors it caused are marks.
#[test]
fn connect_until_failure_draws_the_limit_it_met_and_the_errors_by_kind() {
    let (_listener, addr) = util::non_accepting_listener(512);
    let picture = Picture::new("until-failure");
    let out = run_with_fd_limit(
        64,
        &format!(
            "connect --target {addr} --until-failure --connections 200 --hold 0 --plot {}",
            picture.arg()
        ),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let texts = picture.texts();
    assert!(texts.iter().any(|t| t == "errors: EMFILE"), "{texts:?}");
    let limit = texts.iter().find(|t| t.starts_with("limit: this process's RLIMIT_NOFILE (64)"));
    assert!(limit.is_some(), "{texts:?}");
}

#[test]
fn churn_draws_time_wait_and_the_ephemeral_ports_it_may_run_out_of() {
    let server = ReactorServer::start();
    let picture = Picture::new("churn");
    let out = run(&format!(
        "churn --target {} --connections 4 --duration 1.2 --plot {}",
        server.addr,
        picture.arg()
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    let texts = picture.texts();
    for name in ["TIME_WAIT", "msgs/s", "established (total)"] {
        assert!(texts.iter().any(|t| t == name), "no {name}: {texts:?}");
    }
    assert!(texts.iter().any(|t| t.starts_with("ephemeral ports (")), "{texts:?}");
}

#[test]
fn echo_draws_messages_per_second() {
    let server = ReactorServer::start();
    let picture = Picture::new("echo");
    let out = run(&format!(
        "echo --target {} --connections 2 --duration 1.2 --plot {}",
        server.addr,
        picture.arg()
    ));
    assert_eq!(out.code, Some(0), "{out:?}");
    picture.assert_carries(&["msgs/s", "open", "ESTABLISHED"]);
}

/// Without `--backlog`, the listener's backlog comes from the kernel: the line is at backlog + 1.
#[test]
fn backlog_draws_the_queue_filling_to_backlog_plus_one() {
    let (_listener, addr) = util::non_accepting_listener(8);
    let picture = Picture::new("backlog");
    let out = run(&format!("backlog --target {addr} --connect-timeout 300 --json --plot {}", picture.arg()));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()["completed"], 9, "{out:?}");
    picture.assert_carries(&[
        "completed",
        "accept queue",
        "stopped: timeout",
        "backlog + 1 = 9",
        "ListenOverflows (rise)",
    ]);
}

#[test]
fn watch_draws_the_port_the_queue_and_the_server() {
    let (listener, addr) = util::non_accepting_listener(16);
    let client = TcpStream::connect(addr).unwrap();
    let (_accepted, _) = listener.accept().unwrap();
    // One more waits in the accept queue, so that the queue's line is not flat at zero.
    let _queued = TcpStream::connect(addr).unwrap();
    let picture = Picture::new("watch");
    let out =
        run(&format!("watch --port {} --interval 0.1 --duration 0.3 --plot {}", addr.port(), picture.arg()));
    assert_eq!(out.code, Some(0), "{out:?}");
    picture.assert_carries(&[
        "ESTABLISHED",
        "LISTEN",
        "accept queue",
        "backlog + 1 = 17",
        "descriptors",
        "threads",
        "RSS",
    ]);
    drop(client);
}

#[test]
fn plot_with_processes_is_refused_with_the_reason() {
    let out = run("connect --target 127.0.0.1:1 --processes 2 --plot /nonexistent/x.svg");
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--plot cannot be used with --processes"), "{out:?}");
}

/// A picture that cannot be written fails the run before it starts, not after (losing its report).
#[test]
fn an_unwritable_plot_fails_before_the_run() {
    let (_listener, addr) = util::non_accepting_listener(8);
    let out = run(&format!("backlog --target {addr} --plot /nonexistent/dir/backlog.svg"));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("cannot write the plot to /nonexistent/dir/backlog.svg"), "{out:?}");
    // Nothing was probed: no connection waits in the listener's queue.
    assert_eq!(hostinfo::tcp_states(addr.port()).unwrap().accept_queue, 0);
}
