//! `fjord dev --nodes 3` and `fjord cluster status`: the supervisor starts three nodes, prints
//! the bootstrap servers, reports a child that dies while the others keep serving, and stops
//! the rest on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fjord_e2e::{fjord_bin, http, reserve_ports, run_cli, wait_for};

fn cli_ok(bootstrap: &str, args: &[&str]) -> String {
    let out = run_cli(bootstrap, args, None, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "`fjord {}` failed: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the supervisor (and with it, by PR_SET_PDEATHSIG, its nodes) if the test fails.
struct Supervisor(std::process::Child);

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dev_nodes_3_serves_reports_a_dead_node_and_stops_on_sigterm() {
    let started = Instant::now();
    // Phase 1: start the supervisor and wait for its "ready" line with the bootstrap servers.
    let data = tempfile::tempdir().expect("temp dir");
    // Three consecutive ports each for Kafka, gRPC and HTTP (the supervisor counts up).
    let (kafka, rpc, http_ports) = (reserve_ports(3), reserve_ports(3), reserve_ports(3));
    let base = kafka.port();
    let mut child = Command::new(fjord_bin())
        .args(["dev", "--nodes", "3", "--kafka-addr"])
        .arg(format!("127.0.0.1:{base}"))
        .arg("--rpc-addr")
        .arg(format!("127.0.0.1:{}", rpc.port()))
        .arg("--http-addr")
        .arg(format!("127.0.0.1:{}", http_ports.port()))
        .arg("--data-dir")
        .arg(data.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fjord dev --nodes 3");
    let (lines_tx, lines) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("supervisor: {line}");
                let _ = tx.send(line);
            }
        });
    }
    let mut supervisor = Supervisor(child);
    let mut seen: Vec<String> = Vec::new();
    let mut wait_line = |what: &str, pred: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(l) = seen.iter().find(|l| pred(l)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no supervisor line {what} within 60 s; seen: {seen:#?}"),
            }
        }
    };
    let ready = wait_line("with the bootstrap servers", &|l| {
        l.contains("bootstrap servers:")
    });
    let bootstrap = format!(
        "127.0.0.1:{base},127.0.0.1:{},127.0.0.1:{}",
        base + 1,
        base + 2
    );
    assert!(ready.ends_with(&bootstrap), "{ready}");
    // Every node serves its HTTP port, counting up from --http-addr.
    for i in 0..3 {
        let addr = format!("127.0.0.1:{}", http_ports.nth(i));
        wait_for(Duration::from_secs(30), &format!("{addr}/readyz"), || {
            matches!(
                http::get(&addr, "/readyz", Duration::from_secs(5)),
                Ok((200, _))
            )
            .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    }

    // Phase 2: a topic gets 3 replicas by default; cluster status shows 3 active nodes.
    cli_ok(
        &bootstrap,
        &["topic", "create", "dev-t", "--partitions", "3"],
    );
    let described = cli_ok(&bootstrap, &["topic", "describe", "dev-t"]);
    eprintln!("{described}");
    let status = cli_ok(&bootstrap, &["cluster", "status"]);
    eprintln!("{status}");
    assert!(status.contains("3 nodes (0 fenced)"), "{status}");
    assert_eq!(status.matches("active").count(), 3, "{status}");

    // Phase 3: SIGKILL node 2: the supervisor says so; the others keep serving, and once its
    // session times out (9 s) status shows it fenced and its partitions under-replicated.
    let line = wait_line("naming node 2's pid", &|l| l.contains("node 2 (pid "));
    let pid: u32 = line
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .expect("pid in the supervisor line");
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    wait_line("reporting node 2's death", &|l| {
        l.contains("node 2 exited") && l.contains("keep running")
    });
    let one_and_three = format!("127.0.0.1:{base},127.0.0.1:{}", base + 2);
    let status = wait_for(
        Duration::from_secs(45),
        "node 2 fenced in cluster status",
        || {
            let out = run_cli(
                &one_and_three,
                &["cluster", "status"],
                None,
                Duration::from_secs(30),
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.status.success()
                && text.contains("3 nodes (1 fenced)")
                && !text.contains(": 0 under-replicated"))
            .then_some(text)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("{status}");
    let node2 = status
        .lines()
        .find(|l| l.starts_with("2 "))
        .unwrap_or_else(|| panic!("no node 2 row:\n{status}"));
    assert!(node2.contains("fenced"), "{status}");

    // Phase 4: SIGTERM the supervisor: it stops the two live nodes and exits.
    let st = Command::new("kill")
        .args(["-TERM", &supervisor.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let exit = wait_for(Duration::from_secs(60), "the supervisor to exit", || {
        supervisor.0.try_wait().ok().flatten()
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(exit.success(), "supervisor exited with {exit}");
    for port in [base, base + 2] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "node on {port} still listening after the supervisor stopped"
        );
    }
    eprintln!("done in {:?}", started.elapsed());
}
