//! The launcher environment and the TCP rendezvous: several ranks (threads, and processes) on
//! loopback, the failures a job meets (a missing rank, a dead rank, a port in use, ranks that
//! disagree), and hostile or broken clients (a stranger without the token, a rank that lies,
//! clients that send part of a hello or nothing), none of which may stop the real ranks.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thunder_distributed::loopback::LoopbackGroup;
use thunder_distributed::rendezvous::HELLO_TIMEOUT;
use thunder_distributed::token::TOKEN_VAR;
use thunder_distributed::{DistEnv, Error, Rendezvous, Token, TokenSource};

/// The token of the jobs in these tests.
const TOKEN: &str = "test-token-7f3a";
/// The job timeout of the tests with strangers: they must finish well within it.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

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
        token: Token::new(TOKEN).unwrap(),
        bind_addr: None,
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
            master_port: 29400,
            token: Token::none(),
            bind_addr: None,
        })
    );
    // The token: the launcher's secret, else torchrun's run id (unless its default "none"),
    // else SLURM's job id; and where rank 0 listens instead of MASTER_ADDR.
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = torchrun.to_vec();
        v.extend_from_slice(extra);
        DistEnv::from_vars(vars(&v)).unwrap().unwrap()
    };
    let e = with(&[(TOKEN_VAR, "abc"), ("TORCHELASTIC_RUN_ID", "9b2e")]);
    assert_eq!(e.token, Token::new("abc").unwrap());
    assert_eq!(
        with(&[("TORCHELASTIC_RUN_ID", "9b2e")]).token.source(),
        TokenSource::TorchElastic
    );
    assert_eq!(
        with(&[("TORCHELASTIC_RUN_ID", "none"), ("SLURM_JOB_ID", "77")])
            .token
            .source(),
        TokenSource::Slurm
    );
    assert_eq!(
        with(&[("THUNDER_RDZV_BIND", "0.0.0.0")])
            .bind_addr
            .as_deref(),
        Some("0.0.0.0")
    );
    assert!(
        DistEnv::from_vars(vars(&[&torchrun[..], &[(TOKEN_VAR, "")]].concat()))
            .unwrap_err()
            .to_string()
            .starts_with("THUNDER_RDZV_TOKEN=\"<0 bytes>\" is not valid")
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
        e.to_string().contains(&format!(
            "rank 0 (at 127.0.0.1:{port}) waited for rank 2 to connect"
        )),
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

    // A rank with another world size is told at once; rank 0 drops it and goes on waiting
    // (no hello ends its wait), then names it in its timeout.
    let port = free_port();
    let t0 = Instant::now();
    let other =
        std::thread::spawn(move || Rendezvous::connect(&env(1, 3, port), Duration::from_secs(10)));
    let e = Rendezvous::connect(&env(0, 2, port), Duration::from_secs(2)).unwrap_err();
    assert!(
        e.to_string()
            .contains("waited for rank 1 to connect; it dropped 1 connection: 127.0.0.1:")
            && e.to_string()
                .contains("(rank 1 has WORLD_SIZE=3 but rank 0 has 2; launch every rank"),
        "{e}"
    );
    let e = other.join().unwrap().unwrap_err();
    assert!(
        e.to_string()
            .contains("rank 0 refused this rank: rank 1 has WORLD_SIZE=3"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());

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
        // The launcher's secret: the children read it from the environment, as real ranks do.
        .env(TOKEN_VAR, TOKEN)
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
    rdv.set_timeout(Duration::from_millis(800)).unwrap();
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

/// A hello as the protocol defines it (rendezvous.rs): magic and version, rank, world size,
/// token length, token; all little-endian.
fn hello(rank: u32, world: u32, token: &[u8]) -> Vec<u8> {
    let mut h = b"THNDRV02".to_vec();
    h.extend(rank.to_le_bytes());
    h.extend(world.to_le_bytes());
    h.extend((token.len() as u32).to_le_bytes());
    h.extend(token);
    h
}

/// Connects to rank 0 at `port` once it listens.
fn dial(port: u16) -> TcpStream {
    let t0 = Instant::now();
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rank 0 never listened"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Everything rank 0 sent on `s` until it closed it (it must close it within a few seconds).
fn received(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        // Closing a socket with unread bytes (the rest of a stranger's request) resets it.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("rank 0 should have closed the connection: {e}"),
    }
    got
}

/// A job of `world` (at least 3) ranks, threads, whose rank 0 broadcasts an id. `meddle` runs
/// once rank 1 has joined (ranks 2.. are still missing); then the other real ranks join. Every real rank must get the id; returns how long the job took.
fn job_with_strangers(world: usize, meddle: impl FnOnce(u16)) -> Duration {
    let port = free_port();
    let t0 = Instant::now();
    let (joined, rank1_joined) = mpsc::channel();
    let mut release = Vec::new();
    let ranks: Vec<_> = (0..world)
        .map(|r| {
            let joined = joined.clone();
            let (go, wait) = mpsc::channel::<()>();
            release.push(go);
            std::thread::spawn(move || {
                if r >= 2 {
                    // Released below, after the strangers.
                    wait.recv().unwrap();
                }
                let mut rdv = Rendezvous::connect(&env(r, world, port), JOB_TIMEOUT)?;
                if r == 1 {
                    joined.send(()).unwrap();
                }
                rdv.broadcast(if r == 0 { b"the-unique-id" } else { b"" }, "the id")
            })
        })
        .collect();
    rank1_joined.recv_timeout(Duration::from_secs(10)).unwrap();
    meddle(port);
    for go in release {
        go.send(()).unwrap();
    }
    for (r, h) in ranks.into_iter().enumerate() {
        let id = h
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("rank {r}: {e}"));
        assert_eq!(id, b"the-unique-id", "rank {r}");
    }
    t0.elapsed()
}

#[test]
fn strangers_without_the_token_get_nothing_and_the_real_ranks_meet() {
    let took = job_with_strangers(3, |port| {
        let mut strangers = Vec::new();
        // Claims the missing rank 2 with a wrong token; with the old protocol's public hello
        // (which the old rank 0 accepted, answered and later sent the id to); with no token;
        // with a token length meant to make rank 0 allocate 4 GiB; and something else
        // entirely.
        for bytes in [
            hello(2, 3, b"test-token-7f3b"),
            [&b"THNDRV01"[..], &2u32.to_le_bytes(), &3u32.to_le_bytes()].concat(),
            hello(2, 3, b""),
            [&hello(2, 3, b"")[..16], &u32::MAX.to_le_bytes()].concat(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ] {
            let mut s = dial(port);
            s.write_all(&bytes).unwrap();
            strangers.push(s);
        }
        for (i, s) in strangers.into_iter().enumerate() {
            assert_eq!(received(s), b"", "stranger {i} got an answer");
        }
    });
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn a_rank_that_lies_is_refused_and_the_real_ranks_meet() {
    let took = job_with_strangers(3, |port| {
        // Processes with the token that claim rank 1 (taken), rank 0, and rank 7 of 3: each is
        // told why and dropped, and rank 0 goes on waiting for rank 2.
        for (rank, why) in [
            (
                1,
                "two processes claim rank 1; give every process its own RANK",
            ),
            (0, "a process claims rank 0 in a world of 3"),
            (7, "a process claims rank 7 in a world of 3"),
        ] {
            let mut s = dial(port);
            s.write_all(&hello(rank, 3, TOKEN.as_bytes())).unwrap();
            let got = received(s);
            assert_eq!(got[0], 1, "rank {rank}: refused");
            assert_eq!(&got[5..], why.as_bytes(), "rank {rank}");
        }
    });
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn a_client_that_sends_3_bytes_or_nothing_delays_nobody() {
    let mut kept = Vec::new();
    let took = job_with_strangers(3, |port| {
        // Both stay connected, silent, while the last real rank joins.
        let mut three = dial(port);
        three.write_all(b"THN").unwrap();
        kept.push(three);
        kept.push(dial(port));
    });
    assert!(took < Duration::from_secs(10), "{took:?}");
    for s in kept {
        assert_eq!(received(s), b"");
    }

    // While the real ranks are still missing, rank 0 drops a silent client after the hello
    // timeout, not the job's.
    let port = free_port();
    let zero = std::thread::spawn(move || {
        let mut r = Rendezvous::connect(&env(0, 2, port), JOB_TIMEOUT)?;
        r.broadcast(b"id", "the id")
    });
    let t0 = Instant::now();
    let mut three = dial(port);
    three.write_all(b"THN").unwrap();
    let silent = dial(port);
    assert_eq!(received(three), b"");
    assert_eq!(received(silent), b"");
    let dropped_after = t0.elapsed();
    assert!(
        dropped_after >= HELLO_TIMEOUT - Duration::from_millis(500)
            && dropped_after < HELLO_TIMEOUT + Duration::from_secs(3),
        "{dropped_after:?}"
    );
    let mut one = Rendezvous::connect(&env(1, 2, port), JOB_TIMEOUT).unwrap();
    assert_eq!(one.broadcast(b"", "the id").unwrap(), b"id");
    assert_eq!(zero.join().unwrap().unwrap(), b"id");
}

#[test]
fn ranks_with_different_tokens_fail_fast_and_rank_0_says_why() {
    let port = free_port();
    let zero =
        std::thread::spawn(move || Rendezvous::connect(&env(0, 2, port), Duration::from_secs(3)));
    let mut other = env(1, 2, port);
    other.token = Token::new("another job's token").unwrap();
    let t0 = Instant::now();
    let e = Rendezvous::connect(&other, JOB_TIMEOUT)
        .unwrap_err()
        .to_string();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        e.contains(
            "closed the connection without answering this rank's hello: the ranks' tokens differ"
        ),
        "{e}"
    );
    let e = zero.join().unwrap().unwrap_err().to_string();
    assert!(
        e.contains("waited for rank 1 to connect; it dropped 1 connection: 127.0.0.1:")
            && e.contains(
                "(its hello has the wrong token (this job's comes from THUNDER_RDZV_TOKEN))"
            ),
        "{e}"
    );
}

#[test]
fn rank_0_listens_only_at_master_addr() {
    let port = free_port();
    let zero = std::thread::spawn(move || {
        Rendezvous::connect(&env(0, 2, port), JOB_TIMEOUT)?.barrier("the end")
    });
    // Once rank 0 listens at 127.0.0.1, another loopback address's same port is still free
    // (a listener at 0.0.0.0 would hold it).
    let t0 = Instant::now();
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let elsewhere = std::net::TcpListener::bind(("127.0.0.2", port));
    assert!(
        elsewhere.is_ok(),
        "rank 0 holds every address: {elsewhere:?}"
    );
    Rendezvous::connect(&env(1, 2, port), JOB_TIMEOUT)
        .unwrap()
        .barrier("the end")
        .unwrap();
    zero.join().unwrap().unwrap();

    // localhost: loopback.
    let port = free_port();
    let local = move |r| {
        let mut e = env(r, 2, port);
        e.master_addr = "localhost".into();
        e
    };
    let zero = std::thread::spawn(move || Rendezvous::connect(&local(0), JOB_TIMEOUT));
    Rendezvous::connect(&local(1), JOB_TIMEOUT).unwrap();
    zero.join().unwrap().unwrap();

    // An address of another host (TEST-NET-1) cannot be listened at: the error says what to set.
    let mut far = env(0, 2, free_port());
    far.master_addr = "192.0.2.1".into();
    let e = Rendezvous::connect(&far, JOB_TIMEOUT).unwrap_err();
    assert!(matches!(e, Error::Bind { .. }), "{e}");
    assert!(e.to_string().contains("set THUNDER_RDZV_BIND"), "{e}");
    // THUNDER_RDZV_BIND overrides it (rank 0 alone here: it times out waiting, having listened).
    far.bind_addr = Some("127.0.0.1".into());
    let e = Rendezvous::connect(&far, Duration::from_millis(200)).unwrap_err();
    assert!(
        e.to_string().contains("waited for rank 1 to connect"),
        "{e}"
    );
}

#[test]
fn timeouts_out_of_range_are_errors_not_panics() {
    use thunder_distributed::timeout::from_secs_f64;
    for secs in [f64::INFINITY, f64::NAN, -1.0, 0.0, 1e30] {
        let e = from_secs_f64("--dist-timeout", secs).unwrap_err();
        assert!(matches!(e, Error::BadTimeout { .. }), "{secs}: {e}");
        assert!(
            e.to_string()
                .ends_with("give a finite number of seconds from 0.001 to 86400 (24 h)"),
            "{e}"
        );
    }
    let port = free_port();
    for t in [Duration::ZERO, Duration::from_secs(86_401), Duration::MAX] {
        for r in [0, 1] {
            let e = Rendezvous::connect(&env(r, 2, port), t).unwrap_err();
            assert!(matches!(e, Error::BadTimeout { .. }), "{e}");
        }
        assert!(matches!(
            LoopbackGroup::new(2, t),
            Err(Error::BadTimeout { .. })
        ));
    }
    let mut one = Rendezvous::connect(&env(0, 1, port), Duration::from_secs(1)).unwrap();
    assert!(one.set_timeout(Duration::MAX).is_err());
    assert!(one.set_timeout(Duration::from_secs(86_400)).is_ok());
}
