//! Real `redis-server` processes for the tests: started on free ports, stopped
//! on drop, and tied to this test process so none outlives a killed run.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    aof: bool,
    extra: Vec<String>,
    /// What `redis-cli` needs besides the port (`--tls` and its files).
    cli_extra: Vec<String>,
    /// A sentinel's configuration file (it must be the first argument, and
    /// the sentinel rewrites it).
    sentinel_conf: Option<std::path::PathBuf>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis_binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_string())
}

impl RedisServer {
    /// A fresh server; `aof` turns on append-only persistence in its own directory.
    pub fn start(aof: bool) -> RedisServer {
        Self::start_with(aof, &[])
    }

    pub fn start_with(aof: bool, extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
            aof,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            cli_extra: Vec::new(),
            sentinel_conf: None,
        };
        server.spawn();
        server
    }

    /// A server that speaks only TLS on its port (`--port 0 --tls-port P`):
    /// `server_args` are its `--tls-*` options, `cli_args` what `redis-cli`
    /// needs to reach it (`--tls --cacert … --cert … --key …`).
    pub fn start_tls(server_args: &[String], cli_args: &[String]) -> RedisServer {
        let port = free_port();
        let mut extra: Vec<String> = vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
        ];
        extra.extend(server_args.iter().cloned());
        let mut server = RedisServer {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
            aof: false,
            extra,
            cli_extra: cli_args.to_vec(),
            sentinel_conf: None,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The `--requirepass` it was started with, for `redis-cli`.
    fn password(&self) -> Option<&str> {
        let at = self.extra.iter().position(|a| a == "--requirepass")?;
        self.extra.get(at + 1).map(String::as_str)
    }

    /// `redis-cli` for this server, authenticated when it wants a password.
    fn redis_cli(&self) -> Command {
        let mut cli = Command::new("redis-cli");
        cli.args(["-p", &self.port.to_string()]);
        cli.args(&self.cli_extra);
        if let Some(password) = self.password() {
            cli.env("REDISCLI_AUTH", password);
        }
        cli
    }

    /// A Redis Sentinel on a free port watching the master `name` at
    /// 127.0.0.1:`master_port` with `quorum`, deciding it down after `down_after`.
    #[allow(dead_code)]
    pub fn start_sentinel(
        name: &str,
        master_port: u16,
        quorum: u32,
        down_after: Duration,
    ) -> RedisServer {
        Self::start_sentinel_with(name, master_port, quorum, down_after, "", None, &[])
    }

    /// As [`RedisServer::start_sentinel`], with `extra_conf` appended to its
    /// configuration file (after the `monitor` line; `{port}` in it becomes
    /// the sentinel's port), `password`, the sentinel's own `requirepass`, and
    /// `cli_args`, what [`RedisServer::cli`] needs besides (`--tls …`).
    #[allow(dead_code)]
    pub fn start_sentinel_with(
        name: &str,
        master_port: u16,
        quorum: u32,
        down_after: Duration,
        extra_conf: &str,
        password: Option<&str>,
        cli_args: &[String],
    ) -> RedisServer {
        let port = free_port();
        let extra_conf = extra_conf.replace("{port}", &port.to_string());
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("sentinel.conf");
        let ms = down_after.as_millis();
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n\
                 sentinel down-after-milliseconds {name} {ms}\n\
                 sentinel failover-timeout {name} 10000\n\
                 sentinel parallel-syncs {name} 1\n{extra_conf}",
                dir = dir.path().display()
            ),
        )
        .unwrap();
        let mut server = RedisServer {
            port,
            child: None,
            dir,
            aof: false,
            // A sentinel is started from its file; `extra` only tells
            // `redis-cli` the password.
            extra: password
                .map(|p| vec!["--requirepass".to_string(), p.to_string()])
                .unwrap_or_default(),
            cli_extra: cli_args.to_vec(),
            sentinel_conf: Some(conf),
        };
        server.spawn();
        server
    }

    /// Stops the server by the PID of its watchdog (SIGTERM: the watchdog kills
    /// the server with SIGKILL and exits); for sentinels, which keep no data.
    #[allow(dead_code)]
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            wait_for_port(self.port, false);
        }
    }

    fn spawn(&mut self) {
        if let Some(conf) = &self.sentinel_conf {
            // Debian's redis-sentinel, or the same program as redis-server --sentinel.
            let has_sentinel = Command::new("sh")
                .args(["-c", "command -v redis-sentinel"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let command = if has_sentinel {
                format!("redis-sentinel '{}'", conf.display())
            } else {
                format!("{} '{}' --sentinel", redis_binary(), conf.display())
            };
            self.spawn_command(&command);
            return;
        }
        let mut args: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.path().display().to_string(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            if self.aof { "yes" } else { "no" }.into(),
            "--appendfsync".into(),
            "always".into(),
            "--maxmemory-policy".into(),
            "noeviction".into(),
        ];
        args.extend(self.extra.iter().cloned());
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        self.spawn_command(&format!("{} {}", redis_binary(), quoted.join(" ")));
    }

    fn spawn_command(&mut self, command: &str) {
        // A watchdog shell kills the server when this test process goes away.
        let script = format!(
            "{command} >/dev/null 2>&1 & srv=$!; trap 'kill -9 $srv 2>/dev/null; exit 0' TERM INT; \
             while kill -0 {} 2>/dev/null && kill -0 $srv 2>/dev/null; do sleep 0.5; done; kill -9 $srv 2>/dev/null",
            std::process::id()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        wait_for_port(self.port, true);
    }

    /// Stops the server (the data directory stays for a restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self
                .redis_cli()
                .args(["shutdown", "nosave"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            wait_for_port(self.port, false);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Kills the server with SIGKILL (no shutdown, no final write), as a crash
    /// would; `start_again` brings it back on the same port and data directory.
    /// (The chaos run uses these; the API tests restart gracefully.)
    #[allow(dead_code)]
    pub fn crash(&mut self) {
        let info = self.cli(&["info", "server"]);
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .map(|p| p.trim().to_string())
            .expect("redis INFO names its process_id");
        let _ = Command::new("kill").args(["-9", &pid]).status();
        wait_for_port(self.port, false);
        if let Some(mut watchdog) = self.child.take() {
            // The watchdog notices the server is gone and exits by itself.
            let _ = watchdog.wait();
        }
    }

    #[allow(dead_code)]
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.redis_cli().args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.sentinel_conf.is_some() {
            self.terminate();
        } else {
            self.stop();
        }
    }
}

pub fn wait_for_port(port: u16, up: bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if open == up {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "port {port} did not become {}",
        if up { "open" } else { "closed" }
    );
}

/// One server shared by the tests that do not stop or restart Redis; `REDIS_URL`
/// points them at an existing server instead. Tests use unique keys, so they
/// never see each other's records.
pub fn shared_url() -> String {
    static SHARED: OnceLock<(String, Option<RedisServer>)> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let server = RedisServer::start(false);
                (server.url(), Some(server))
            }
        })
        .0
        .clone()
}

/// A port `p` with `p + 10000` free too (the cluster bus port).
fn free_cluster_port() -> u16 {
    for _ in 0..1000 {
        let p = free_port();
        if p > 30000 {
            // Ask for a lower one: the bus port must stay below 65536.
            let candidate = 20000 + (p % 9000);
            if TcpListener::bind(("127.0.0.1", candidate)).is_ok()
                && TcpListener::bind(("127.0.0.1", candidate + 10000)).is_ok()
            {
                return candidate;
            }
        } else if TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair for a cluster node");
}

/// A real three-master Redis Cluster on this machine.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        Self::start_with(3, 0)
    }

    /// `masters` masters with `replicas` replicas each (the first `masters`
    /// nodes start as masters); replicas and failover need at least 3 masters.
    pub fn start_with(masters: usize, replicas: usize) -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let port = free_cluster_port();
            let mut node = RedisServer {
                port,
                child: None,
                dir: tempfile::tempdir().unwrap(),
                aof: false,
                cli_extra: Vec::new(),
                sentinel_conf: None,
                extra: vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    "nodes.conf".into(),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                ],
            };
            node.spawn();
            nodes.push(node);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success(), "redis-cli --cluster create failed");
        let start = Instant::now();
        while !nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "cluster did not become ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if replicas > 0 {
            let want = masters * replicas;
            while nodes
                .iter()
                .filter(|n| {
                    n.cli(&["info", "replication"])
                        .contains("master_link_status:up")
                })
                .count()
                < want
            {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "cluster replicas did not sync"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        RedisCluster { nodes }
    }

    /// `CLUSTER FAILOVER` on a replica (a coordinated switch: the replica
    /// catches up with its master first); returns how long until the replica
    /// is a master and every node says `cluster_state:ok`.
    #[allow(dead_code)]
    pub fn fail_over_a_master(&mut self) -> Duration {
        let replica = self
            .nodes
            .iter()
            .position(|n| n.cli(&["role"]).starts_with("slave"))
            .expect("a replica");
        let started = Instant::now();
        let reply = self.nodes[replica].cli(&["cluster", "failover"]);
        assert_eq!(reply, "OK", "CLUSTER FAILOVER: {reply}");
        while !self.nodes[replica].cli(&["role"]).starts_with("master")
            || !self
                .nodes
                .iter()
                .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "CLUSTER FAILOVER did not complete"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }

    /// Kills a master with SIGKILL, waits until its replica has taken its
    /// slots (the cluster is `ok` again), then starts the killed node again (it
    /// rejoins as a replica). Returns how long the slots had no master.
    #[allow(dead_code)]
    pub fn kill_a_master(&mut self) -> Duration {
        let victim = self
            .nodes
            .iter()
            .position(|n| n.cli(&["role"]).starts_with("master"))
            .expect("a master");
        let started = Instant::now();
        self.nodes[victim].crash();
        let others: Vec<&RedisServer> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .map(|(_, n)| n)
            .collect();
        // The survivors first see the node fail, then the cluster ok again.
        while !others
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
            || others
                .iter()
                .filter(|n| n.cli(&["role"]).starts_with("master"))
                .count()
                < 3
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no replica took over the killed master's slots"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let outage = started.elapsed();
        self.nodes[victim].start_again();
        outage
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

/// One cluster shared by the suite's cluster variants (`REDIS_CLUSTER_URL`
/// points them at an existing cluster instead).
pub fn shared_cluster_url() -> String {
    static SHARED: OnceLock<(String, Option<RedisCluster>)> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("REDIS_CLUSTER_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let cluster = RedisCluster::start();
                (cluster.url(), Some(cluster))
            }
        })
        .0
        .clone()
}
