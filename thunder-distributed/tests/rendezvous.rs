//! The launcher environment and the TCP rendezvous: several ranks (threads, and processes) on
//! loopback, and the failures a job meets (a missing rank, a dead rank, a port in use, ranks
//! that disagree).

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};
use thunder_distributed::{DistEnv, Error, Rendezvous};

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env(rank: usize, world: usize, port: u16) -> DistEnv {
    DistEnv {
        rank,
        world_size: world,
        local_rank: rank,
        master_addr: "127.0.0.1".into(),
        master_port: port,
    }
}

#[test]
fn torchrun_and_slurm_variables_are_read_and_bad_ones_say_what_to_change() {
    assert_eq!(DistEnv::from_vars(vars(&[])).unwrap(), None);
    let torchrun = [
        ("RANK", "3"),
        ("WORLD_SIZE", "8"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "node0"),
        ("MASTER_PORT", "29400"),
    ];
    assert_eq!(
        DistEnv::from_vars(vars(&torchrun)).unwrap(),
        Some(DistEnv {
            rank: 3,
            world_size: 8,
            local_rank: 1,
            master_addr: "node0".into(),
            master_port: 29400
        })
    );
    // Under torchrun's agent (which serves its own store at MASTER_PORT) the next port, unless
    // THUNDER_MASTER_PORT says otherwise.
    let port_of = |extra: &[(&'static str, &'static str)]| {
        let mut v = torchrun.to_vec();
        v.extend_from_slice(extra);
        DistEnv::from_vars(vars(&v)).unwrap().unwrap().master_port
    };
    assert_eq!(port_of(&[("TORCHELASTIC_USE_AGENT_STORE", "True")]), 29401);
    assert_eq!(
        port_of(&[
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("THUNDER_MASTER_PORT", "31000")
        ]),
        31000
    );
    assert_eq!(port_of(&[("THUNDER_MASTER_PORT", "31000")]), 31000);
    let slurm = [
        ("SLURM_PROCID", "5"),
        ("SLURM_NTASKS", "16"),
        ("SLURM_LOCALID", "5"),
        ("SLURM_LAUNCH_NODE_IPADDR", "10.0.0.7"),
    ];
    let e = DistEnv::from_vars(vars(&slurm)).unwrap().unwrap();
    assert_eq!((e.rank, e.world_size, e.local_rank), (5, 16, 5));
    assert_eq!((e.master_addr.as_str(), e.master_port), ("10.0.0.7", 29500));

    let err = |pairs: &[(&str, &str)]| DistEnv::from_vars(vars(pairs)).unwrap_err().to_string();
    let mut t = torchrun.to_vec();
    t.retain(|(k, _)| *k != "MASTER_PORT");
    assert_eq!(
        err(&t),
        "MASTER_PORT is not set: set it to a free port on rank 0's host (torchrun sets it)"
    );
    let mut t = torchrun.to_vec();
    t[0] = ("RANK", "8");
    assert_eq!(
        err(&t),
        "RANK=\"8\" is not valid: ranks of a world of 8 are 0..7"
    );
    let mut t = torchrun.to_vec();
    t[4] = ("MASTER_PORT", "http");
    assert!(err(&t).starts_with("MASTER_PORT=\"http\" is not valid: it must be a port number"));
    assert!(err(&[("RANK", "0")]).starts_with("WORLD_SIZE is not set: launch with torchrun"));
    for e in [err(&t), err(&[("RANK", "0")])] {
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

#[test]
fn four_ranks_on_loopback_exchange_messages() {
    let port = free_port();
    let handles: Vec<_> = (0..4)
        .map(|r| {
            std::thread::spawn(move || {
                let mut rdv = Rendezvous::connect(&env(r, 4, port), Duration::from_secs(20))?;
                let all = rdv.all_gather(format!("rank {r}").as_bytes(), "names")?;
                let id = rdv.broadcast(if r == 0 { b"unique-id" } else { b"ignored" }, "the id")?;
                rdv.check_same(b"program hash", "program hash")?;
                rdv.barrier("the end")?;
                Ok::<_, Error>((all, id))
            })
        })
        .collect();
    for h in handles {
        let (all, id) = h.join().unwrap().unwrap();
        let names: Vec<String> = all
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(names, ["rank 0", "rank 1", "rank 2", "rank 3"]);
        assert_eq!(id, b"unique-id");
    }
}

#[test]
fn a_missing_rank_ends_the_rendezvous_in_time_with_its_number() {
    let port = free_port();
    let t0 = Instant::now();
    let one =
        std::thread::spawn(move || Rendezvous::connect(&env(1, 3, port), Duration::from_secs(30)));
    let e = Rendezvous::connect(&env(0, 3, port), Duration::from_millis(1500)).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(
        e.to_string().contains("rank 0 (port")
            && e.to_string().contains("waited for rank 2 to connect"),
        "{e}"
    );
    drop(one);
    // A rank whose rank 0 never comes.
    let e = Rendezvous::connect(&env(2, 3, free_port()), Duration::from_millis(500)).unwrap_err();
    assert!(
        e.to_string()
            .contains("rank 2 could not reach rank 0 at 127.0.0.1:"),
        "{e}"
    );
}

#[test]
fn a_port_in_use_and_ranks_that_disagree_are_one_line_errors() {
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let e = Rendezvous::connect(&env(0, 2, port), Duration::from_secs(1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "rank 0 cannot listen on port {port}: the port is in use; set THUNDER_MASTER_PORT \
             (default MASTER_PORT, under torchrun MASTER_PORT + 1) to a free port"
        )
    );
    drop(busy);

    let port = free_port();
    let other =
        std::thread::spawn(move || Rendezvous::connect(&env(1, 3, port), Duration::from_secs(10)));
    let e = Rendezvous::connect(&env(0, 2, port), Duration::from_secs(10)).unwrap_err();
    assert!(
        e.to_string()
            .contains("rank 1 has WORLD_SIZE=3 but rank 0 has 2"),
        "{e}"
    );
    let e = other.join().unwrap().unwrap_err();
    assert!(
        e.to_string()
            .contains("rank 0 refused this rank: rank 1 has WORLD_SIZE=3"),
        "{e}"
    );

    let port = free_port();
    let other = std::thread::spawn(move || {
        let mut r = Rendezvous::connect(&env(1, 2, port), Duration::from_secs(10))?;
        r.check_same(b"trace B", "trace hash")
    });
    let mut r = Rendezvous::connect(&env(0, 2, port), Duration::from_secs(10)).unwrap();
    let e = r
        .check_same(b"trace A", "trace hash")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rank 1: its trace hash differs from rank 0's"),
        "{e}"
    );
    assert!(other.join().unwrap().is_err());
}

/// The body of a child process of `ranks_in_separate_processes...` (does nothing in a normal
/// test run).
#[test]
fn child_rank() {
    let Ok(mode) = std::env::var("THUNDER_RDV_CHILD") else {
        return;
    };
    let e = DistEnv::from_env().unwrap().expect("launcher variables");
    let mut rdv = Rendezvous::connect(&e, Duration::from_secs(20)).unwrap();
    if mode == "die" {
        // Exits without taking part in the exchange, as a crashed rank would.
        std::process::exit(3);
    }
    if mode == "hang" {
        // Stays alive without taking part, as a deadlocked rank would.
        std::thread::sleep(Duration::from_secs(60));
    }
    let all = rdv.all_gather(&[e.rank as u8], "ranks").unwrap();
    assert_eq!(
        all,
        (0..e.world_size as u8).map(|r| vec![r]).collect::<Vec<_>>()
    );
}

fn spawn_child(rank: usize, world: usize, port: u16, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_rank", "--nocapture", "--test-threads=1"])
        .env("THUNDER_RDV_CHILD", mode)
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn ranks_in_separate_processes_meet_and_a_dead_one_is_named() {
    let port = free_port();
    let kids: Vec<_> = (1..3).map(|r| spawn_child(r, 3, port, "ok")).collect();
    let mut rdv = Rendezvous::connect(&env(0, 3, port), Duration::from_secs(20)).unwrap();
    let all = rdv.all_gather(&[0], "ranks").unwrap();
    assert_eq!(all, [vec![0], vec![1], vec![2]]);
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }

    let port = free_port();
    let mut kid = spawn_child(1, 2, port, "die");
    let mut rdv = Rendezvous::connect(&env(0, 2, port), Duration::from_secs(20)).unwrap();
    let t0 = Instant::now();
    let e = rdv.all_gather(&[0], "the loss").unwrap_err().to_string();
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert_eq!(kid.wait().unwrap().code(), Some(3));
    assert!(
        e.contains("rank 1: closed its connection during the loss (did it exit or crash?)"),
        "{e}"
    );
}

#[test]
fn a_hung_rank_makes_the_others_fail_after_the_timeout() {
    let port = free_port();
    let mut kid = spawn_child(1, 2, port, "hang");
    let mut rdv = Rendezvous::connect(&env(0, 2, port), Duration::from_secs(20)).unwrap();
    rdv.set_timeout(Duration::from_millis(800));
    let t0 = Instant::now();
    let e = rdv
        .all_gather(&[0], "the gradients")
        .unwrap_err()
        .to_string();
    let waited = t0.elapsed();
    kid.kill().unwrap();
    let _ = kid.wait();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert_eq!(
        e,
        "rendezvous timed out after 0.8s: waiting for rank 1 (the gradients); is it still running?"
    );
}
