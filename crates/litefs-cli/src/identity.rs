//! Who this node is, to other nodes and to its own app: its name (`/info`'s
//! `hostname`, `LITEFS_HOSTNAME` for the exec commands) and its own
//! advertise URL (`/info`'s `advertiseURL`).
//!
//! With the static lease `lease.hostname` and `lease.advertise-url`
//! describe the primary on every node (as in LiteFS), so a replica cannot
//! take its identity from them: it uses the OS hostname and its own HTTP
//! address. Several nodes on one machine share the OS hostname; a replica
//! whose OS hostname is the primary's name would then believe itself
//! primary (litefs-js compares `.primary` with the hostname), so it adds
//! its HTTP port to the name.

use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub hostname: String,
    pub advertise_url: String,
}

/// What the identity is derived from.
pub struct Inputs<'a> {
    pub is_primary: bool,
    /// `lease.hostname` and `lease.advertise-url` (the primary's).
    pub lease_hostname: &'a str,
    pub lease_advertise_url: &'a str,
    /// The address the HTTP server is bound to.
    pub listen: SocketAddr,
    pub os_hostname: &'a str,
    /// `LITEFS_HOSTNAME` in litefs's own environment: set, it names the node.
    pub env_hostname: Option<&'a str>,
}

pub fn resolve(i: &Inputs) -> Identity {
    let env = i.env_hostname.filter(|h| !h.is_empty());
    let hostname = match env {
        Some(h) => h.to_string(),
        None if i.is_primary && !i.lease_hostname.is_empty() => i.lease_hostname.to_string(),
        None if !i.is_primary && i.os_hostname == i.lease_hostname => {
            format!("{}-{}", i.os_hostname, i.listen.port())
        }
        None => i.os_hostname.to_string(),
    };
    let advertise_url = if i.is_primary && !i.lease_advertise_url.is_empty() {
        i.lease_advertise_url.to_string()
    } else {
        // A wildcard bind says nothing about how others reach this node; the
        // OS hostname is LiteFS's default there.
        let host = if i.listen.ip().is_unspecified() {
            i.os_hostname.to_string()
        } else {
            match i.listen {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            }
        };
        format!("http://{host}:{}", i.listen.port())
    };
    Identity {
        hostname,
        advertise_url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(is_primary: bool, listen: &str) -> Inputs<'static> {
        Inputs {
            is_primary,
            lease_hostname: "node-a",
            lease_advertise_url: "http://node-a:20202",
            listen: listen.parse().unwrap(),
            os_hostname: "box",
            env_hostname: None,
        }
    }

    #[test]
    fn the_primary_is_what_the_lease_says() {
        let id = resolve(&inputs(true, "0.0.0.0:20202"));
        assert_eq!(id.hostname, "node-a");
        assert_eq!(id.advertise_url, "http://node-a:20202");
        let id = resolve(&Inputs {
            lease_hostname: "",
            lease_advertise_url: "",
            ..inputs(true, "0.0.0.0:20202")
        });
        assert_eq!(id.hostname, "box");
        assert_eq!(id.advertise_url, "http://box:20202");
    }

    #[test]
    fn a_replica_advertises_itself_not_the_primary() {
        let id = resolve(&inputs(false, "127.0.0.2:20203"));
        assert_eq!(id.hostname, "box");
        assert_eq!(id.advertise_url, "http://127.0.0.2:20203");
        let id = resolve(&inputs(false, "0.0.0.0:20203"));
        assert_eq!(id.advertise_url, "http://box:20203");
        let id = resolve(&inputs(false, "[::1]:20203"));
        assert_eq!(id.advertise_url, "http://[::1]:20203");
    }

    #[test]
    fn a_replica_on_the_primarys_machine_gets_a_name_of_its_own() {
        let id = resolve(&Inputs {
            os_hostname: "node-a",
            ..inputs(false, "127.0.0.1:20203")
        });
        assert_eq!(id.hostname, "node-a-20203");
        assert_eq!(id.advertise_url, "http://127.0.0.1:20203");
    }

    #[test]
    fn litefs_hostname_in_the_environment_names_the_node() {
        for primary in [true, false] {
            let id = resolve(&Inputs {
                env_hostname: Some("n7"),
                ..inputs(primary, "127.0.0.1:1")
            });
            assert_eq!(id.hostname, "n7");
        }
        let id = resolve(&Inputs {
            env_hostname: Some(""),
            ..inputs(false, "127.0.0.1:1")
        });
        assert_eq!(id.hostname, "box");
    }
}
