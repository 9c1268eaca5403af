//! The in-repo Consul test server (crates/consul-test-server) on its own
//! runtime, for as long as the value lives.

pub struct ConsulServer {
    pub addr: String,
    rt: Option<tokio::runtime::Runtime>,
}

impl ConsulServer {
    pub fn start() -> ConsulServer {
        ConsulServer::start_at("127.0.0.1:0")
    }

    /// A fresh (empty) server on `addr` (a restarted server: the same
    /// address, its state gone).
    pub fn start_at(addr: &str) -> ConsulServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let opts = consul_test_server::Options {
            addr: addr.clone(),
            token: None,
        };
        rt.spawn(consul_test_server::serve(listener, opts));
        ConsulServer { addr, rt: Some(rt) }
    }

    /// A key's raw value, None when absent.
    pub fn get(&self, key: &str) -> Option<String> {
        let base = format!("http://{}", self.addr);
        let (status, body) = super::litefs_go::http_get(&base, &format!("/v1/kv/{key}?raw"));
        (status == 200).then_some(body)
    }
}

impl Drop for ConsulServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
