//! A tested document: its ```console blocks, read as commands and the output they promise.
//!
//! The conventions, which the document states for its readers too:
//! - a line `$ COMMAND` is run with `sh`; the lines after it (up to the next `$ ` line) are what you
//!   will see, each found in order in the output, where `[..]` stands for any text;
//! - `$ COMMAND &` starts a server in the background for the rest of the block; what it prints counts
//!   as output too (the terminal shows both). The port of its `--addr 127.0.0.1:PORT` is chosen by the
//!   harness, and every later mention of PORT, in commands and in output, means the port it got;
//! - `$ kill %N` stops the block's N-th background job (SIGTERM) and waits for it to exit;
//! - a command ending in `# exit N` must exit with N; any other must exit 0;
//! - commands live only in ```console blocks: a ```sh or ```bash block is refused, so that no command
//!   in the document escapes the test.
#![allow(dead_code)] // the parser's own tests use parts the walkthrough does not

pub mod run;

/// One ```console block.
#[derive(Debug)]
pub struct Block {
    /// The line of the document its fence opens on, for messages.
    pub line: usize,
    pub steps: Vec<Step>,
}

/// One `$ ` line and the output lines after it.
#[derive(Debug)]
pub struct Step {
    /// Its line in the document.
    pub line: usize,
    pub action: Action,
    /// The lines the output must contain, in order.
    pub expect: Vec<String>,
}

/// What a `$ ` line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Run to completion; it must exit with `exit`.
    Run { command: String, exit: i32 },
    /// Start in the background.
    Background { command: String },
    /// Stop these background jobs of the block (numbered from 1).
    Kill { jobs: Vec<usize> },
}

/// Reads the ```console blocks of `text`.
pub fn parse(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    let mut fenced = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_end();
        if let Some(info) = line.trim_start().strip_prefix("```") {
            if fenced {
                fenced = false;
                blocks.extend(current.take());
                continue;
            }
            fenced = true;
            match info.trim() {
                "console" => current = Some(Block { line: number, steps: Vec::new() }),
                "sh" | "bash" | "shell" | "zsh" => {
                    return Err(format!(
                        "line {number}: a ```{} block: commands go in ```console blocks, which are run",
                        info.trim()
                    ));
                }
                _ => {}
            }
            continue;
        }
        let Some(block) = current.as_mut() else { continue };
        if let Some(command) = line.strip_prefix("$ ") {
            block.steps.push(Step { line: number, action: action(command, number)?, expect: Vec::new() });
        } else if !line.trim().is_empty() {
            let Some(step) = block.steps.last_mut() else {
                return Err(format!("line {number}: output before any `$ ` command"));
            };
            step.expect.push(line.to_string());
        }
    }
    if fenced {
        return Err("the document ends inside a fenced block".into());
    }
    Ok(blocks)
}

fn action(command: &str, number: usize) -> Result<Action, String> {
    let command = command.trim();
    if let Some(jobs) = command.strip_prefix("kill ") {
        let jobs = jobs
            .split_whitespace()
            .map(|job| job.strip_prefix('%').and_then(|n| n.parse().ok()).filter(|n| *n > 0))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| format!("line {number}: `kill` takes background jobs, as %1 %2"))?;
        return Ok(Action::Kill { jobs });
    }
    if let Some(background) = command.strip_suffix('&') {
        return Ok(Action::Background { command: background.trim().to_string() });
    }
    let exit = match command.rsplit_once("# exit ") {
        Some((_, code)) => code
            .trim()
            .parse()
            .map_err(|_| format!("line {number}: `# exit` takes a number, not {code:?}"))?,
        None => 0,
    };
    Ok(Action::Run { command: command.to_string(), exit })
}

/// Whether `line` shows `pattern`: its pieces between `[..]` appear in `line` in order.
pub fn matches(pattern: &str, line: &str) -> bool {
    let mut rest = line;
    for piece in pattern.split("[..]") {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// `text` with every mention of a port in `ports` (a whole number, not part of a longer one) replaced
/// by the port the harness chose for it.
pub fn substitute(text: &str, ports: &[(u16, u16)]) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at].is_ascii_digit() && (at == 0 || !bytes[at - 1].is_ascii_digit()) {
            let end = (at..bytes.len()).find(|&i| !bytes[i].is_ascii_digit()).unwrap_or(bytes.len());
            let number = &text[at..end];
            let chosen = number.parse::<u16>().ok().and_then(|n| ports.iter().find(|(doc, _)| *doc == n));
            match chosen {
                Some((_, real)) => out.push_str(&real.to_string()),
                None => out.push_str(number),
            }
            at = end;
        } else {
            let c = text[at..].chars().next().expect("a character");
            out.push(c);
            at += c.len_utf8();
        }
    }
    out
}

/// The port of a `--addr 127.0.0.1:PORT` in `command`, with the command rewritten to bind port 0.
pub fn bind_request(command: &str) -> Option<(u16, String)> {
    let start = command.find("--addr ")? + "--addr ".len();
    let addr = command[start..].split_whitespace().next()?;
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.trim_end_matches(')').parse().ok().filter(|p| *p != 0)?;
    let rewritten = format!(
        "{}{host}:0{}",
        &command[..start],
        &command[start + host.len() + 1 + port.to_string().len()..]
    );
    Some((port, rewritten))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_steps_and_expectations() {
        let text = "intro\n```console\n$ a --addr 127.0.0.1:7878 &\nlistening on 127.0.0.1:7878\n\n$ b # exit 4\nx [..] y\n$ kill %1\n```\n```text\n$ not a command\n```\n";
        let blocks = parse(text).unwrap();
        assert_eq!(blocks.len(), 1);
        let steps = &blocks[0].steps;
        assert_eq!(steps[0].action, Action::Background { command: "a --addr 127.0.0.1:7878".into() });
        assert_eq!(steps[0].expect, ["listening on 127.0.0.1:7878"]);
        assert_eq!(steps[1].action, Action::Run { command: "b # exit 4".into(), exit: 4 });
        assert_eq!(steps[2].action, Action::Kill { jobs: vec![1] });
        assert!(parse("```sh\n$ cargo run\n```\n").is_err(), "a command outside the tested blocks");
    }

    #[test]
    fn patterns_ports_and_binds() {
        assert!(matches("RSS [..] KiB, 3 threads", "server: pid 9: RSS 3904 KiB, 3 threads, 12 fds"));
        assert!(!matches("RSS [..] KiB, 3 threads", "server: pid 9: RSS 3904 KiB, 203 threads"));
        let ports = [(7878, 40001)];
        assert_eq!(
            substitute("127.0.0.1:7878 --port 7878 17878 78789", &ports),
            "127.0.0.1:40001 --port 40001 17878 78789"
        );
        let (port, command) = bind_request("echo-server --addr 127.0.0.1:7880 --backlog 8").unwrap();
        assert_eq!((port, command.as_str()), (7880, "echo-server --addr 127.0.0.1:0 --backlog 8"));
    }
}
