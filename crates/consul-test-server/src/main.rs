//! `consul-test-server --addr HOST:PORT [--token T]`: serves the in-memory
//! Consul API until killed. For tests and the local demo only.

use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let opts = match consul_test_server::Options::from_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("consul-test-server: {e}");
            eprintln!("usage: consul-test-server --addr HOST:PORT [--token ACL-TOKEN]");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("consul-test-server: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let listener = match tokio::net::TcpListener::bind(&opts.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("consul-test-server: listening on {}: {e}", opts.addr);
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(addr = %opts.addr, "consul test server listening");
        consul_test_server::serve(listener, opts).await;
        ExitCode::SUCCESS
    })
}
