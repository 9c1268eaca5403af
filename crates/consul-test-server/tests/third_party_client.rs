//! The test server as a third-party Consul client sees it: PyPI's
//! py-consul drives sessions, locks, cas, blocking queries and TTL expiry
//! against the binary (see py_consul_check.py). ./scripts/test installs
//! py-consul when it is missing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn py_consul_sees_consul_semantics() {
    let probe = Command::new("python3")
        .args(["-c", "import consul"])
        .output()
        .expect("python3 is needed for this test");
    assert!(
        probe.status.success(),
        "py-consul is missing: pip install py-consul (./scripts/test installs it)\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_consul-test-server"))
            .args(["--addr", &addr])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "server never listened on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py_consul_check.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&addr)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "py-consul check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
