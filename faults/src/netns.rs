//! Network namespaces that a test creates for itself and always removes, even when it panics.
//!
//! Everything a namespace case sends stays inside namespaces the test made: addresses in 10.0.0.0/8 on
//! a veth pair exist only there, and loopback inside a namespace is its own. Processes run inside
//! with `ip netns exec`; the test's own sockets are made inside by a thread that joined the namespace
//! ([`Namespace::enter`]), since a socket stays in the namespace it was created in.

use std::fs::File;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why namespace cases cannot run here, or `None` when they can (root, and `ip` is installed).
pub fn namespaces_unavailable() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root: creating network namespaces needs CAP_SYS_ADMIN".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("`ip` (iproute2) is not installed; scripts/setup installs it".into()),
    }
}

/// Reports a case that cannot run here and returns true (the caller returns early), printing why;
/// under `CI` the case must run, so this fails the test instead.
#[track_caller]
pub fn skip(case: &str, why: Option<String>) -> bool {
    let Some(why) = why else { return false };
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("{case} must run in CI but cannot: {why}");
    }
    println!("SKIPPED (not passed): {case}: {why}");
    true
}

/// A network namespace named `rx-fault-<pid>-<n>-<what>`, deleted when dropped.
#[derive(Debug)]
pub struct Namespace {
    /// The name `ip netns` knows it by.
    pub name: String,
}

impl Namespace {
    /// Creates a namespace with its loopback up.
    #[track_caller]
    pub fn new(what: &str) -> Namespace {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("rx-fault-{}-{n}-{what}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let namespace = Namespace { name };
        namespace.ip(&["link", "set", "lo", "up"]);
        namespace
    }

    /// Runs `ip ARGS` inside the namespace; fails the test if it fails.
    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `tc ARGS` inside the namespace; fails the test if it fails.
    #[track_caller]
    pub fn tc(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.name, "tc"];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Sets a sysctl inside the namespace (`net.core.somaxconn`, `net.ipv4.ip_local_port_range`, ...).
    #[track_caller]
    pub fn sysctl(&self, name: &str, value: &str) {
        let setting = format!("{name}={value}");
        run("ip", &["netns", "exec", &self.name, "sysctl", "-q", "-w", &setting]);
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Moves the calling thread into the namespace: sockets it creates from now on live there. Call it
    /// from a thread of its own, which should not be used for anything else afterwards.
    #[track_caller]
    pub fn enter(&self) {
        let file = File::open(format!("/var/run/netns/{}", self.name)).expect("open the namespace");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("join the namespace");
    }

    /// Joins two namespaces with a veth pair, `veth0` in each, addressed `a_addr` and `b_addr`
    /// (CIDR, e.g. `10.77.0.1/24`), both up.
    #[track_caller]
    pub fn link(a: &Namespace, a_addr: &str, b: &Namespace, b_addr: &str) {
        run(
            "ip",
            &[
                "link", "add", "veth0", "netns", &a.name, "type", "veth", "peer", "name", "veth0", "netns",
                &b.name,
            ],
        );
        for (ns, addr) in [(a, a_addr), (b, b_addr)] {
            ns.ip(&["addr", "add", addr, "dev", "veth0"]);
            ns.ip(&["link", "set", "veth0", "up"]);
        }
    }
}

/// A LAN: a bridge in a namespace of its own (the switch), which namespaces join with a veth pair
/// each, standing in for hosts on one network. Nothing of it is in the test's own namespace; dropping
/// the switch removes the bridge and every pair (the hosts' ends go with their pairs).
#[derive(Debug)]
pub struct Lan {
    /// The namespace holding the bridge `br0`.
    pub switch: Namespace,
    ports: AtomicUsize,
}

impl Lan {
    /// A switch namespace with the bridge up and no host on it.
    #[track_caller]
    pub fn new(what: &str) -> Lan {
        let switch = Namespace::new(what);
        switch.ip(&["link", "add", "br0", "type", "bridge"]);
        switch.ip(&["link", "set", "br0", "up"]);
        Lan { switch, ports: AtomicUsize::new(0) }
    }

    /// Plugs `host` into the switch: its `eth0`, addressed `addr` (CIDR, e.g. `10.99.0.11/24`), up.
    #[track_caller]
    pub fn attach(&self, host: &Namespace, addr: &str) {
        let port = format!("port{}", self.ports.fetch_add(1, Ordering::Relaxed));
        run(
            "ip",
            &[
                "link",
                "add",
                "eth0",
                "netns",
                &host.name,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.switch.name,
            ],
        );
        self.switch.ip(&["link", "set", &port, "master", "br0"]);
        self.switch.ip(&["link", "set", &port, "up"]);
        host.ip(&["addr", "add", addr, "dev", "eth0"]);
        host.ip(&["link", "set", "eth0", "up"]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace removes its veth end (and so the pair) and everything configured in it.
        let out = Command::new("ip").args(["netns", "del", &self.name]).output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!("warning: could not delete network namespace {}", self.name);
        }
    }
}

/// Runs a command to its end, failing the test with its stderr if it fails.
#[track_caller]
fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}
