//! The report's `sockets` (the target port's TCP states as the run ended) is read once, by the process
//! that writes the final report: the child processes of `--processes` leave it to their parent, since
//! the table they would read lists every socket of the machine.

mod util;

use util::{Fault, TestServer, run};

#[test]
fn a_child_process_leaves_the_socket_table_to_its_parent() {
    let server = TestServer::start(Fault::None);
    let child =
        run(&format!("connect --target {} --connections 2 --hold 0 --child-index 0 --json", server.addr));
    assert_eq!(child.code, Some(0), "{child:?}");
    let r = child.json();
    assert!(r["sockets"].as_object().is_none_or(|s| s.is_empty()), "a child read the socket table: {r}");
}

#[test]
fn the_parent_of_several_processes_reports_the_sockets() {
    let server = TestServer::start(Fault::None);
    let out = run(&format!("connect --target {} --connections 4 --processes 2 --hold 0 --json", server.addr));
    assert_eq!(out.code, Some(0), "{out:?}");
    let r = out.json();
    assert_eq!(r["sockets"]["LISTEN"], 1, "{r}");
}
