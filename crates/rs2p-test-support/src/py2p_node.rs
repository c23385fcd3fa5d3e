//! A real py2p 0.5.607 node in a child process, driven through `tests/py2p/node.py`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// One py2p node. Killed on drop.
pub struct Py2pNode {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Its node id.
    pub id: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `chord` or `mesh`.
    pub kind: String,
}

impl Py2pNode {
    /// Starts a `chord` or `mesh` node (optionally on another subnet) and waits until it serves.
    pub fn start(kind: &str, subnet: Option<&str>) -> Py2pNode {
        Py2pNode::start_with(kind, subnet, "Plaintext")
    }

    /// [`Py2pNode::start`] with py2p's encryption name, `Plaintext` or `SSL`.
    pub fn start_with(kind: &str, subnet: Option<&str>, encryption: &str) -> Py2pNode {
        let python = crate::py2p_python();
        let script = crate::scripts_dir().join("node.py");
        let mut cmd = Command::new(python);
        cmd.arg(script).arg(kind).arg("--encryption").arg(encryption);
        if let Some(s) = subnet {
            cmd.arg("--subnet").arg(s);
        }
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start py2p node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = Py2pNode { child, stdin, lines, id: String::new(), port: 0, kind: kind.to_owned() };
        let ready = node.read_line(Duration::from_secs(60)).unwrap_or_else(|| panic!("py2p {kind} node did not start"));
        assert_eq!(ready["ready"], json!(true), "py2p node did not come up: {ready}");
        node.id = ready["id"].as_str().expect("id").to_owned();
        node.port = ready["port"].as_u64().expect("port") as u16;
        node
    }

    fn read_line(&mut self, timeout: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("py2p node wrote {line:?}: {e}")))
    }

    /// Sends one command and returns its answer (panics if py2p does not answer in 60 s).
    pub fn cmd(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").expect("write to py2p node");
        self.stdin.flush().expect("flush");
        self.read_line(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("py2p side failed: no answer to {command} within 60 s"))
    }

    /// `HOST:PORT` of the node.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connects it to `port` on 127.0.0.1.
    pub fn connect(&mut self, port: u16) -> Value {
        self.cmd(json!({"op": "connect", "host": "127.0.0.1", "port": port}))
    }

    /// A get through py2p: `Ok(value)` or `Err(error kind)`.
    pub fn get(&mut self, key: &str, timeout_s: f64) -> Result<String, String> {
        let v = self.cmd(json!({"op": "get", "key": key, "timeout": timeout_s}));
        if v["ok"] == json!(true) {
            Ok(v["value"].as_str().unwrap_or_default().to_owned())
        } else {
            Err(format!("{} {}", v["error"].as_str().unwrap_or("?"), v["detail"].as_str().unwrap_or("")))
        }
    }

    /// A set through py2p.
    pub fn set(&mut self, key: &str, value: &str) -> Value {
        self.cmd(json!({"op": "set", "key": key, "value": value}))
    }

    /// py2p's routing view: `{routing, outgoing, incoming, seeding, awaiting}`.
    pub fn peers(&mut self) -> Value {
        self.cmd(json!({"op": "peers"}))
    }
}

impl Drop for Py2pNode {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        let _ = self.stdin.flush();
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
