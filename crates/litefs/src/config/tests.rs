//! Parsing, defaults, expansion, errors and search order of litefs.yml.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Config {
    Config::from_str_with_env(text, &no_env).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> String {
    Config::from_str_with_env(text, &no_env)
        .expect_err("should fail")
        .to_string()
}

/// `text` with `fuse.dir` and `data.dir` added where it has no such
/// section, so validation gets past them to what a test is about.
fn with_dirs(text: &str) -> String {
    let mut out = String::new();
    if !text.contains("fuse:") {
        out.push_str("fuse: { dir: /mnt/t }\n");
    }
    if !text.contains("data:") {
        out.push_str("data: { dir: /var/t }\n");
    }
    out + text
}

fn invalid(text: &str) -> String {
    parse(&with_dirs(text))
        .validate()
        .expect_err("should be invalid")
        .to_string()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const MINIMAL: &str = "lease: { type: static }\n";

#[test]
fn defaults_are_litefs_defaults() {
    let c = parse("");
    assert_eq!(c, Config::default());
    assert_eq!(parse("# nothing but a comment\n"), c);
    assert!(c.exit_on_error && !c.skip_sync && !c.strict_verify);
    assert!(c.exec.is_empty());
    // LiteFS's /var/lib/litefs and /litefs are not defaults here.
    assert_eq!(c.data.dir, Path::new(""));
    assert!(c.data.compress);
    assert_eq!(c.data.retention, secs(600));
    assert_eq!(c.data.retention_monitor_interval, secs(60));
    assert_eq!(c.fuse.dir, Path::new(""));
    assert!(!c.fuse.allow_other && !c.fuse.debug);
    assert_eq!(c.http.addr, ":20202");
    assert_eq!(c.proxy.max_lag, secs(10));
    assert_eq!(c.proxy.primary_redirect_timeout, secs(5));
    assert_eq!(c.proxy.read_header_timeout, secs(10));
    assert_eq!(c.proxy.idle_timeout, secs(30));
    assert_eq!(c.lease.kind, None);
    assert!(c.lease.candidate && !c.lease.promote);
    assert_eq!(c.lease.reconnect_delay, secs(1));
    assert_eq!(c.lease.demote_delay, secs(10));
    assert_eq!(c.lease.consul.key, "litefs/primary");
    assert_eq!(c.lease.consul.ttl, secs(10));
    assert_eq!(c.lease.consul.lock_delay, secs(1));
    assert_eq!(c.lease.etcd.key, "litefs/primary");
    assert_eq!(c.lease.etcd.ttl, secs(10));
    assert_eq!(c.backup.kind, None);
    assert_eq!(c.log.format, LogFormat::Text);
    assert!(!c.log.debug && !c.log.timestamp);
    assert!(c.tracing.enabled && c.tracing.compress);
    assert_eq!((c.tracing.max_size, c.tracing.max_count), (64, 8));
}

const EVERY_FIELD: &str = r#"
exit-on-error: false
skip-sync: true
strict-verify: true
exec:
  - cmd: "node migrate.js"
    if-candidate: true
  - cmd: node start.js --port 3000
data:
  dir: /data/litefs
  compress: false
  retention: 1h
  retention-monitor-interval: 30s
fuse:
  dir: /mnt/litefs
  allow-other: true
  debug: true
http:
  addr: "127.0.0.1:30303"
  snapshot-timeout: 2m
proxy:
  addr: ":8080"
  target: "localhost:8081"
  db: "my.db"
  max-lag: 1m30s
  debug: true
  passthrough: ["/debug/*", "*.png"]
  always-forward: ["/admin/*"]
  primary-redirect-timeout: 500ms
  read-timeout: 1s
  read-header-timeout: 2s
  write-timeout: 3s
  idle-timeout: 4s
lease:
  type: consul
  hostname: myhost
  advertise-url: "http://myhost:20202"
  candidate: false
  promote: true
  reconnect-delay: 2s
  demote-delay: 20s
  databases: [a.db, b.db]
  consul:
    url: "http://consul:8500"
    key: "litefs/app"
    ttl: 15s
    lock-delay: 3s
  etcd:
    endpoints: ["http://etcd1:2379", "http://etcd2:2379"]
    key: "litefs/etcd"
    ttl: 7s
backup:
  type: litefs-cloud
  path: /backup
  url: "https://litefs.example"
  cluster: prod
  auth-token: secret
log:
  format: json
  timestamp: true
  debug: true
tracing:
  enabled: false
  path: /var/log/litefs/trace.log
  max-size: 16
  max-count: 3
  compress: false
"#;

#[test]
fn every_field_parses() {
    let c = parse(EVERY_FIELD);
    assert!(!c.exit_on_error && c.skip_sync && c.strict_verify);
    assert_eq!(
        c.exec,
        vec![
            ExecEntry {
                cmd: "node migrate.js".into(),
                if_candidate: true
            },
            ExecEntry::new("node start.js --port 3000"),
        ]
    );
    assert_eq!(
        c.data,
        DataConfig {
            dir: "/data/litefs".into(),
            compress: false,
            retention: secs(3600),
            retention_monitor_interval: secs(30),
        }
    );
    assert_eq!(
        c.fuse,
        FuseConfig {
            dir: "/mnt/litefs".into(),
            allow_other: true,
            debug: true
        }
    );
    assert_eq!(
        c.http,
        HttpConfig {
            addr: "127.0.0.1:30303".into(),
            snapshot_timeout: secs(120)
        }
    );
    assert_eq!(
        c.proxy,
        ProxyConfig {
            addr: ":8080".into(),
            target: "localhost:8081".into(),
            db: vec!["my.db".into()],
            advertise_url: String::new(),
            max_lag: secs(90),
            debug: true,
            passthrough: vec!["/debug/*".into(), "*.png".into()],
            always_forward: vec!["/admin/*".into()],
            primary_redirect_timeout: Duration::from_millis(500),
            read_timeout: secs(1),
            read_header_timeout: secs(2),
            write_timeout: secs(3),
            idle_timeout: secs(4),
        }
    );
    assert_eq!(
        c.lease,
        LeaseConfig {
            kind: Some(LeaseType::Consul),
            hostname: "myhost".into(),
            advertise_url: "http://myhost:20202".into(),
            candidate: false,
            promote: true,
            reconnect_delay: secs(2),
            demote_delay: secs(20),
            databases: vec!["a.db".into(), "b.db".into()],
            consul: ConsulConfig {
                url: "http://consul:8500".into(),
                key: "litefs/app".into(),
                ttl: secs(15),
                lock_delay: secs(3),
            },
            etcd: EtcdConfig {
                endpoints: vec!["http://etcd1:2379".into(), "http://etcd2:2379".into()],
                key: "litefs/etcd".into(),
                ttl: secs(7),
            },
        }
    );
    assert_eq!(c.backup.kind, Some(BackupType::LitefsCloud));
    assert_eq!(c.backup.path, Path::new("/backup"));
    assert_eq!(c.backup.url, "https://litefs.example");
    assert_eq!(c.backup.cluster, "prod");
    assert_eq!(c.backup.auth_token, "secret");
    assert_eq!(
        c.log,
        LogConfig {
            format: LogFormat::Json,
            timestamp: true,
            debug: true
        }
    );
    assert_eq!(
        c.tracing,
        TracingConfig {
            enabled: false,
            path: "/var/log/litefs/trace.log".into(),
            max_size: 16,
            max_count: 3,
            compress: false,
        }
    );
    // Every field parses, but a node runs one lease backend.
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("lease.consul and lease.etcd are both set"),
        "{e}"
    );
}

#[test]
fn litefs_sample_config_parses() {
    // cmd/litefs/etc/litefs.yml from LiteFS, abridged to its fields.
    let c = parse(
        r#"
fuse: { dir: "/litefs", allow-other: false, debug: false }
data: { dir: "/var/lib/litefs", retention: "10m", retention-monitor-interval: "1m" }
exec: "myapp -addr :8081"
skip-sync: false
exit-on-error: false
http: { addr: ":20202" }
proxy: { addr: ":8080", target: "localhost:8081", db: "my.db", debug: false, passthrough: ["/debug/*", "*.png"] }
lease:
  type: "consul"
  advertise-url: "http://myhost:20202"
  hostname: "myhost"
  candidate: true
  consul: { url: "http://myhost:8500", key: "litefs/primary", ttl: "10s", lock-delay: "1s" }
tracing: { path: "/var/log/lifefs/trace.log", max-size: 64, max-count: 10, compress: true }
"#,
    );
    assert_eq!(c.exec[0].argv().unwrap(), ["myapp", "-addr", ":8081"]);
    // Its trace file (tracing is on by default in LiteFS once a path is
    // set) is the one thing litefs-rs does not do: said, not ignored.
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("tracing is not supported by litefs-rs yet"),
        "{e}"
    );
}

#[test]
fn exec_forms() {
    let one = parse("exec: \"run me\"\n");
    assert_eq!(one.exec, vec![ExecEntry::new("run me")]);
    assert_eq!(parse("exec: run me\n").exec, one.exec);
    assert!(parse("exec:\n").exec.is_empty());
    assert!(parse("exec: []\n").exec.is_empty());

    let many =
        parse("exec:\n  - cmd: \"run me\"\n    if-candidate: true\n\n  - cmd: \"run me too\"\n");
    assert_eq!(
        many.exec,
        vec![
            ExecEntry {
                cmd: "run me".into(),
                if_candidate: true
            },
            ExecEntry::new("run me too"),
        ]
    );

    let err = parse_err("exec:\n  - \"bare string\"\n");
    assert!(err.contains("exec[0]") && err.contains("line 2"), "{err}");

    // An entry without a command parses but cannot run.
    let msg = invalid(&format!("{MINIMAL}exec:\n  - if-candidate: true\n"));
    assert!(
        msg.contains("exec command[0]") && msg.contains("empty command"),
        "{msg}"
    );
    let msg = invalid(&format!(
        "{MINIMAL}exec: \"npm run migrate && npm start\"\n"
    ));
    assert!(msg.contains("`&`") && msg.contains("sh -c"), "{msg}");
}

#[test]
fn exec_argv_and_from_argv() {
    let e = ExecEntry::new(r#"sqlite3 $DB "PRAGMA journal_mode = WAL;""#);
    assert_eq!(
        e.argv().unwrap(),
        ["sqlite3", "$DB", "PRAGMA journal_mode = WAL;"]
    );
    let args: Vec<String> = ["sh", "-c", "trap \"exit 42\" TERM; sleep 10 & wait"]
        .map(String::from)
        .into();
    let e = ExecEntry::from_argv(&args);
    assert_eq!(e.argv().unwrap(), args);
    assert!(!e.if_candidate);
}

#[test]
fn null_and_empty_values_keep_defaults() {
    // What `dir: ${UNSET}` expands to: LiteFS keeps its default; ours is
    // empty, which validation then refuses.
    let c =
        parse("fuse:\n  dir:\ndata:\nlease:\n  candidate: ~\n  type: \"\"\nlog:\n  format: \"\"\n");
    assert_eq!(c.fuse.dir, Path::new(""));
    assert_eq!(c.data, Config::default().data);
    assert!(c.lease.candidate);
    assert_eq!(c.lease.kind, None);
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn scalars_read_as_leniently_as_litefs() {
    let c = parse(
        "lease:\n  candidate: no\n  promote: \"true\"\n  hostname: 1234\n  consul:\n    key: 42\nfuse:\n  allow-other: on\n",
    );
    assert!(!c.lease.candidate && c.lease.promote && c.fuse.allow_other);
    assert_eq!(c.lease.hostname, "1234");
    assert_eq!(c.lease.consul.key, "42");
    assert_eq!(
        parse("data: { retention: 0 }").data.retention,
        Duration::ZERO
    );
}

#[test]
fn unknown_fields_are_named_with_their_line() {
    let err = parse_err("fuse:\n  dir: /litefs\nfuze:\n  dir: /x\n");
    assert!(err.starts_with("litefs.yml: unknown field `fuze`"), "{err}");
    assert!(err.contains("line 3 column 1"), "{err}");
    assert!(err.contains("expected one of"), "{err}");

    let e = Config::from_str_with_env("lease:\n  consul:\n    url: x\n    ttll: 10s\n", &no_env)
        .unwrap_err();
    match &e {
        ConfigError::Parse { line, .. } => assert_eq!(*line, Some(4)),
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("lease.consul") && msg.contains("`ttll`"),
        "{msg}"
    );

    // Go's `yaml:"-"` fields are not settable from the file.
    assert!(parse_err("backup: { delay: 1s }").contains("unknown field `delay`"));
}

#[test]
fn wrong_types_name_the_field() {
    let err = parse_err("lease:\n  candidate: maybe\n");
    assert!(
        err.contains("lease.candidate") && err.contains("line 2"),
        "{err}"
    );
    let err = parse_err("proxy:\n  passthrough: 5\n");
    assert!(err.contains("proxy.passthrough"), "{err}");
    let err = parse_err("data: [1]\n");
    assert!(
        err.contains("data") && err.contains("mapping of data settings"),
        "{err}"
    );
    let err = parse_err("exec: 5\n");
    assert!(
        err.contains("exec") && err.contains("command line"),
        "{err}"
    );
    let err = parse_err("lease:\n  type: zookeeper\n");
    assert!(
        err.contains("lease.type") && err.contains("'etcd'"),
        "{err}"
    );
    let err = parse_err("log: { format: xml }\n");
    assert!(
        err.contains("log.format") && err.contains("'json'"),
        "{err}"
    );
    let err = parse_err("fuse: [\n");
    assert!(err.starts_with("litefs.yml: "), "{err}");
}

#[test]
fn bad_durations_are_explained() {
    let err = parse_err("lease:\n  reconnect-delay: 10x\n");
    assert!(err.contains("lease.reconnect-delay"), "{err}");
    assert!(
        err.contains("invalid duration \"10x\"") && err.contains("unknown unit"),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");
    let err = parse_err("proxy: { max-lag: 10 }\n");
    assert!(
        err.contains("proxy.max-lag") && err.contains("missing unit"),
        "{err}"
    );
    let err = parse_err("data: { retention: \"-1m\" }\n");
    assert!(err.contains("negative"), "{err}");
}

#[test]
fn expansion_and_expressions() {
    let vars: HashMap<&str, &str> = [
        ("REGION", "sjc"),
        ("PRIMARY", "sjc"),
        ("DIR", "/litefs"),
        ("PORT", "8080"),
    ]
    .into();
    let env = |name: &str| vars.get(name).map(|v| v.to_string());
    let text = r#"
fuse: { dir: $DIR }
proxy: { addr: ":${PORT}", target: "localhost:${UNSET}" }
lease:
  candidate: ${REGION == PRIMARY}
  promote: ${REGION != "sjc"}
  hostname: ${ REGION }
skip-sync: ${REGION == 'sjc'}
strict-verify: ${UNSET != ""}
"#;
    let c = Config::from_str_with_env(text, &env).unwrap();
    assert_eq!(c.fuse.dir, Path::new("/litefs"));
    assert_eq!(c.proxy.addr, ":8080");
    assert_eq!(c.proxy.target, "localhost:");
    assert!(c.lease.candidate && !c.lease.promote && c.skip_sync && !c.strict_verify);
    assert_eq!(c.lease.hostname, "sjc");

    // Unset variable on its own: null, so the default (none) stays, and the
    // config is refused naming the field rather than mounting at /litefs.
    let c = Config::from_str_with_env("fuse:\n  dir: ${LITEFS_DIR}\n", &env).unwrap();
    assert_eq!(c.fuse.dir, Path::new(""));
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("fuse directory required (fuse.dir)"), "{msg}");

    let err = Config::from_str_with_env("a: 1\nlease:\n  candidate: ${REGION = 'x'}\n", &env)
        .unwrap_err();
    assert!(matches!(err, ConfigError::Expand { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("${REGION = 'x'}") && msg.contains("line 3"),
        "{msg}"
    );
}

#[test]
fn expansion_can_be_disabled() {
    let c = Config::from_str_raw("lease: { hostname: \"${HOST}\" }\n").unwrap();
    assert_eq!(c.lease.hostname, "${HOST}");
    // Malformed expressions are only an error when expanding.
    assert!(Config::from_str_raw("proxy: { db: \"${A = B}\" }\n").is_ok());
}

#[test]
fn validation_errors() {
    let ok = |extra: &str| format!("{MINIMAL}{extra}");
    parse(&with_dirs(MINIMAL)).validate().unwrap();
    // Neither directory has a default: each is named, with LiteFS's path
    // as the suggestion.
    let msg = invalid("fuse: {}\nlease: { type: static }");
    assert!(
        msg.contains("fuse directory required (fuse.dir)") && msg.contains("\"/litefs\""),
        "{msg}"
    );
    let msg = invalid("data: { compress: false }\nlease: { type: static }");
    assert!(
        msg.contains("data directory required (data.dir)") && msg.contains("/var/lib/litefs"),
        "{msg}"
    );

    assert!(
        invalid("fuse: { dir: \"\" }\nlease: { type: static }").contains("fuse directory required")
    );
    assert!(
        invalid("data: { dir: \"\" }\nlease: { type: static }").contains("data directory required")
    );
    assert!(
        invalid(&ok("fuse: { dir: /x }\ndata: { dir: /x }\n")).contains("cannot be the same path")
    );
    assert!(invalid("fuse: { dir: /x }\n").contains("lease type required"));
    assert!(
        invalid(&ok("data: { dir: /d, retention-monitor-interval: 0s }\n"))
            .contains("retention-monitor-interval")
    );
    assert!(invalid("lease: { type: static, databases: [a.db] }")
        .contains("cannot specify a database replication filter on candidate nodes"));
    assert!(invalid("lease: { type: static, candidate: false }")
        .contains("lease.advertise-url required"));
    let e = parse(&with_dirs("lease: { type: static, candidate: false, advertise-url: \"http://p:20202\", databases: [a.db] }"))
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lease.databases is not supported by litefs-rs yet"),
        "{e}"
    );
    // Fields whose behaviour is not built stop startup rather than do
    // nothing; at their defaults they are fine.
    for (yaml, field) in [
        ("http: { snapshot-timeout: 30s }\n", "http.snapshot-timeout"),
        ("backup: { type: file, path: /b }\n", "backup"),
        ("tracing: { enabled: true, path: /t.log }\n", "tracing"),
    ] {
        let e = invalid(&ok(yaml));
        assert!(
            e.contains(&format!("{field} is not supported by litefs-rs yet")),
            "{yaml}: {e}"
        );
    }
    parse(&with_dirs(&ok(
        "exit-on-error: false\ntracing: { enabled: false, path: /t.log }\nhttp: { snapshot-timeout: 0s }\n",
    )))
    .validate()
    .unwrap();

    assert!(invalid("lease: { type: consul }").contains("consul url required"));
    assert!(
        invalid("lease: { type: consul, consul: { url: \"consul:8500\" } }").contains("http://")
    );
    assert!(
        invalid("lease: { type: consul, consul: { url: \"http://c:8500\", key: \"\" } }")
            .contains("must specify a consul key")
    );
    assert!(
        invalid("lease: { type: consul, consul: { url: \"http://c:8500\", ttl: 0s } }")
            .contains("lease.consul.ttl")
    );
    assert!(
        invalid("lease: { type: consul, consul: { url: \"http://c:8500\", ttl: 5s } }")
            .contains("lease.consul.ttl must be between 10s and 24h")
    );
    assert!(invalid(
        "lease: { type: consul, consul: { url: \"http://c:8500\", lock-delay: 61s } }"
    )
    .contains("lease.consul.lock-delay must be at most 60s"));
    assert!(invalid(
        "lease: { type: consul, consul: { url: \"http://c:8500\" }, etcd: { endpoints: [\"http://e:2379\"] } }"
    )
    .contains("lease.consul and lease.etcd are both set"));
    assert!(
        invalid("lease: { type: etcd, consul: { url: \"http://c:8500\" } }")
            .contains("lease.consul is set but lease.type is 'etcd'")
    );
    parse(&with_dirs(
        "lease: { type: consul, consul: { url: \"http://c:8500\" } }",
    ))
    .validate()
    .unwrap();

    assert!(invalid("lease: { type: etcd }").contains("etcd endpoints required"));
    assert!(
        invalid("lease: { type: etcd, etcd: { endpoints: [\"etcd:2379\"] } }").contains("http://")
    );
    assert!(
        invalid("lease: { type: etcd, etcd: { endpoints: [\"http://e:2379\"], key: \"\" } }")
            .contains("etcd key")
    );
    parse(&with_dirs(
        "lease: { type: etcd, etcd: { endpoints: [\"http://e:2379\"] } }",
    ))
    .validate()
    .unwrap();

    assert!(invalid(&ok(
        "proxy: { target: \"localhost:3000\", addr: \":8080\" }"
    ))
    .contains("proxy database name required"));
    assert!(
        invalid(&ok("proxy: { target: \"localhost:3000\", db: x.db }"))
            .contains("proxy bind address required")
    );
    assert!(invalid(&ok("backup: { type: file }")).contains("backup path required"));

    let e = parse("fuse: { dir: /x }").validate().unwrap_err();
    assert!(matches!(e, ConfigError::Invalid { .. }));
    assert!(e.to_string().starts_with("litefs.yml: "), "{e}");
}

#[test]
fn design_md_example_with_fly_env() {
    let text = r#"
# litefs.yml
fuse:  { dir: "${LITEFS_DIR}" }
data:  { dir: "/data/litefs" }
proxy: { addr: ":${INTERNAL_PORT}", target: "localhost:${PORT}", db: "${DATABASE_FILENAME}" }
lease:
  type: "consul"
  candidate: ${FLY_REGION == PRIMARY_REGION}
  promote: true
  advertise-url: "http://${HOSTNAME}.vm.${FLY_APP_NAME}.internal:20202"
  consul: { url: "${FLY_CONSUL_URL}", key: "litefs/${FLY_APP_NAME}" }
exec:
  - cmd: "node migrate.js"
    if-candidate: true
  - cmd: "node start.js"
"#;
    let vars: HashMap<&str, &str> = [
        ("LITEFS_DIR", "/litefs"),
        ("INTERNAL_PORT", "8080"),
        ("PORT", "8081"),
        ("DATABASE_FILENAME", "sqlite.db"),
        ("FLY_REGION", "sjc"),
        ("PRIMARY_REGION", "sjc"),
        ("HOSTNAME", "abc123"),
        ("FLY_APP_NAME", "counter"),
        (
            "FLY_CONSUL_URL",
            "https://:tok@consul-iad.fly-shared.net/counter-xyz/",
        ),
    ]
    .into();
    let env = |name: &str| vars.get(name).map(|v| v.to_string());
    let c = Config::from_str_with_env(text, &env).unwrap();
    c.validate().unwrap();
    assert_eq!(c.fuse.dir, Path::new("/litefs"));
    assert_eq!(c.data.dir, Path::new("/data/litefs"));
    assert_eq!(
        (c.proxy.addr.as_str(), c.proxy.target.as_str()),
        (":8080", "localhost:8081")
    );
    assert_eq!(c.proxy.db, ["sqlite.db"]);
    assert_eq!(c.lease.kind, Some(LeaseType::Consul));
    assert!(c.lease.candidate && c.lease.promote);
    assert_eq!(
        c.lease.advertise_url,
        "http://abc123.vm.counter.internal:20202"
    );
    assert_eq!(
        c.lease.consul.url,
        "https://:tok@consul-iad.fly-shared.net/counter-xyz/"
    );
    assert_eq!(c.lease.consul.key, "litefs/counter");
    assert_eq!(c.exec.len(), 2);
    assert!(c.exec[0].if_candidate && !c.exec[1].if_candidate);
    assert_eq!(c.exec[1].argv().unwrap(), ["node", "start.js"]);

    let replica = |name: &str| {
        if name == "FLY_REGION" {
            Some("ams".to_string())
        } else {
            env(name)
        }
    };
    assert!(
        !Config::from_str_with_env(text, &replica)
            .unwrap()
            .lease
            .candidate
    );
}

#[test]
fn proxy_db_may_be_a_list_and_advertise_url_is_checked() {
    let base = "lease: { type: static }\nfuse: { dir: /mnt/t }\ndata: { dir: /var/t }\n";
    let c = parse(&format!(
        "{base}proxy: {{ addr: \":8080\", target: \"localhost:3000\", db: [a.db, b.db], \
         advertise-url: \"http://10.0.0.5:8080\" }}\n"
    ));
    assert_eq!(c.proxy.db, ["a.db", "b.db"]);
    assert_eq!(c.proxy.advertise_url, "http://10.0.0.5:8080");
    c.validate().unwrap();
    assert_eq!(parse("proxy: { db: one.db }\n").proxy.db, ["one.db"]);
    let e = parse(&format!(
        "{base}proxy: {{ addr: \":8080\", target: \"t:1\", db: x.db, advertise-url: \"10.0.0.5\" }}\n"
    ))
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("proxy.advertise-url"), "{e}");
    let e = parse(&format!(
        "{base}proxy: {{ addr: \":8080\", target: \"t:1\", db: [x.db, \"\"] }}\n"
    ))
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("empty database name"), "{e}");
}
