//! A small TCP rendezvous: rank 0 listens at `MASTER_ADDR:MASTER_PORT`, every other rank
//! connects, and the ranks exchange small messages through rank 0 (the NCCL unique id, checks
//! that every rank runs the same program).
//!
//! Every step has a deadline: a rank that never arrives, dies or hangs makes the others fail
//! with an error naming it, never wait forever.
//!
//! Rank 0 listens only at `MASTER_ADDR` (the first of its addresses that it can bind; loopback
//! for `localhost`), or at `THUNDER_RDZV_BIND`, and talks only to clients whose hello carries
//! the job's token ([`crate::token`]). The hello, in order:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | `THNDRV02` (protocol magic and version) |
//! | 4 | the client's rank, u32 little-endian |
//! | 4 | its world size, u32 little-endian |
//! | 4 | the token's length `n` (at most [`crate::token::MAX_TOKEN`]), u32 little-endian |
//! | n | the token |
//!
//! Rank 0 answers a client with the right token: a status byte (0: accepted) and a
//! length-prefixed message (why not). A client with a wrong magic, version or token, or one
//! that sends less than a hello within [`HELLO_TIMEOUT`], gets no byte: rank 0 closes the
//! connection, prints one line naming its address and why, and goes on waiting for the real
//! ranks. So does a client with the token whose rank is 0, out of range or already taken, or
//! whose world size differs (it is told why, and fails at once). Hellos are read side by side,
//! without blocking: a silent client delays nobody. No hello ends rank 0's wait before the
//! deadline; a timeout error lists the connections it dropped.

use crate::env::DistEnv;
use crate::error::{Error, Result};
use crate::token::{TokenSource, MAX_TOKEN};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The magic and protocol version that open every hello.
const MAGIC: &[u8; 8] = b"THNDRV02";
/// The part of [`MAGIC`] every version shares: a hello of another version is named as such.
const MAGIC_FAMILY: usize = 6;
/// Magic, rank, world size and token length.
const HELLO_HEADER: usize = 20;
/// How long rank 0 waits for the whole hello of a client once it has connected. Real ranks
/// send it at once; independent of the job's (long) timeout.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections whose hello rank 0 reads at once; further ones wait in the OS's queue (never
/// dropped), so a flood of silent clients costs file descriptors only up to this.
const MAX_PENDING_HELLOS: usize = 64;
/// Dropped connections printed on stderr (a port scanner would flood it otherwise).
const MAX_WARNINGS: usize = 20;
/// The largest message a rank may send (a guard against reading garbage as a length).
pub const MAX_MESSAGE: usize = 64 << 20;

/// The connections of one rank after the rendezvous.
#[derive(Debug)]
pub struct Rendezvous {
    rank: usize,
    world_size: usize,
    /// Rank 0: a connection per other rank (index = rank; None at 0). Others: one, to rank 0.
    peers: Vec<Option<TcpStream>>,
    timeout: Duration,
}

fn io(rank: usize) -> impl Fn(std::io::Error) -> Error {
    move |source| Error::Io { rank, source }
}

/// Reads exactly `buf.len()` bytes from `peer`; a timeout or a closed connection becomes an
/// error that names the peer and what was being waited for.
fn read_exact(
    s: &mut TcpStream,
    buf: &mut [u8],
    peer: usize,
    what: &str,
    t: Duration,
) -> Result<()> {
    s.read_exact(buf).map_err(|e| read_error(e, peer, what, t))
}

fn read_error(e: std::io::Error, peer: usize, what: &str, t: Duration) -> Error {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::Timeout {
            what: format!("waiting for rank {peer} ({what}); is it still running?"),
            after: t,
        },
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            Error::Peer {
                rank: peer,
                what: format!("closed its connection during {what} (did it exit or crash?)"),
            }
        }
        _ => Error::Io {
            rank: peer,
            source: e,
        },
    }
}

fn write_all(s: &mut TcpStream, bytes: &[u8], peer: usize, what: &str) -> Result<()> {
    s.write_all(bytes).map_err(|e| match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => Error::Peer {
            rank: peer,
            what: format!("closed its connection during {what} (did it exit or crash?)"),
        },
        _ => Error::Io {
            rank: peer,
            source: e,
        },
    })
}

fn read_message(s: &mut TcpStream, peer: usize, what: &str, t: Duration) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    read_exact(s, &mut len, peer, what, t)?;
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_MESSAGE {
        return Err(Error::Peer {
            rank: peer,
            what: format!("sent a message of {n} bytes during {what} (not a thunder rank?)"),
        });
    }
    let mut buf = vec![0u8; n];
    read_exact(s, &mut buf, peer, what, t)?;
    Ok(buf)
}

fn message(bytes: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(4 + bytes.len());
    m.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    m.extend_from_slice(bytes);
    m
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A client's hello, as sent.
#[derive(Debug, PartialEq, Eq)]
struct Hello {
    rank: u32,
    world: u32,
    token: Vec<u8>,
}

impl Hello {
    fn bytes(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(HELLO_HEADER + self.token.len());
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&self.rank.to_le_bytes());
        h.extend_from_slice(&self.world.to_le_bytes());
        h.extend_from_slice(&(self.token.len() as u32).to_le_bytes());
        h.extend_from_slice(&self.token);
        h
    }
}

/// What the bytes a client sent so far make.
#[derive(Debug, PartialEq, Eq)]
enum Partial {
    /// A hello needs this many bytes in all.
    Needs(usize),
    /// A whole hello (the bytes hold nothing after it: rank 0 never reads further).
    Whole(Hello),
    /// Not a hello of this protocol: why.
    Bad(String),
}

fn examine(buf: &[u8]) -> Partial {
    let family = &MAGIC[..MAGIC_FAMILY];
    let n = buf.len().min(MAGIC_FAMILY);
    if buf[..n] != family[..n] {
        return Partial::Bad("not a thunder rendezvous hello".into());
    }
    if buf.len() >= MAGIC.len() && buf[..MAGIC.len()] != MAGIC[..] {
        return Partial::Bad(format!(
            "speaks rendezvous protocol {}, this rank {} (another thunder version?)",
            String::from_utf8_lossy(&buf[..MAGIC.len()]).escape_debug(),
            String::from_utf8_lossy(MAGIC)
        ));
    }
    if buf.len() < HELLO_HEADER {
        return Partial::Needs(HELLO_HEADER);
    }
    let token_len = le_u32(&buf[16..20]) as usize;
    if token_len > MAX_TOKEN {
        return Partial::Bad(format!("sent a token of {token_len} bytes"));
    }
    if buf.len() < HELLO_HEADER + token_len {
        return Partial::Needs(HELLO_HEADER + token_len);
    }
    Partial::Whole(Hello {
        rank: le_u32(&buf[8..12]),
        world: le_u32(&buf[12..16]),
        token: buf[HELLO_HEADER..].to_vec(),
    })
}

/// A connection whose hello is still being read (without blocking).
struct Pending {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
    since: Instant,
}

enum Step {
    /// Nothing more to read now.
    Wait,
    Hello(Hello),
    Bad(String),
}

impl Pending {
    /// Reads what has arrived, never past the end of a hello.
    fn progress(&mut self) -> Step {
        loop {
            let need = match examine(&self.buf) {
                Partial::Needs(n) => n,
                Partial::Whole(h) => return Step::Hello(h),
                Partial::Bad(why) => return Step::Bad(why),
            };
            let mut chunk = [0u8; 256];
            let want = (need - self.buf.len()).min(chunk.len());
            match self.stream.read(&mut chunk[..want]) {
                Ok(0) => {
                    return Step::Bad(format!(
                        "closed the connection after {} bytes of a hello",
                        self.buf.len()
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Step::Bad(format!("broke the connection during its hello: {e}")),
            }
        }
    }
}

/// What rank 0 does with a whole hello.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// A new rank.
    Admit(usize),
    /// The right token but a claim rank 0 cannot take: the client is told why.
    Refuse(String),
    /// Not of this job: no answer at all.
    Ignore(String),
}

fn judge(h: &Hello, env: &DistEnv, taken: impl Fn(usize) -> bool) -> Verdict {
    if !env.token.matches(&h.token) {
        return Verdict::Ignore(format!(
            "its hello has the wrong token (this job's comes from {})",
            match env.token.source() {
                TokenSource::Secret => "THUNDER_RDZV_TOKEN",
                TokenSource::TorchElastic => "TORCHELASTIC_RUN_ID",
                TokenSource::Slurm => "SLURM_JOB_ID",
                TokenSource::None => "nowhere: it is empty",
            }
        ));
    }
    let (rank, world) = (h.rank as usize, h.world as usize);
    if world != env.world_size {
        return Verdict::Refuse(format!(
            "rank {rank} has WORLD_SIZE={world} but rank 0 has {}; launch every rank with the \
             same world size",
            env.world_size
        ));
    }
    if rank == 0 || rank >= world {
        return Verdict::Refuse(format!(
            "a process claims rank {rank} in a world of {world}"
        ));
    }
    if taken(rank) {
        return Verdict::Refuse(format!(
            "two processes claim rank {rank}; give every process its own RANK"
        ));
    }
    Verdict::Admit(rank)
}

/// Rank 0's answer to a client with the right token (`refusal`: why it is turned away).
fn answer(mut s: TcpStream, refusal: Option<&str>) -> std::io::Result<TcpStream> {
    s.set_nonblocking(false)?;
    s.set_nodelay(true)?;
    // A client that does not read cannot hold rank 0 (the answer is small, but still).
    s.set_write_timeout(Some(HELLO_TIMEOUT))?;
    let mut reply = vec![u8::from(refusal.is_some())];
    reply.extend(message(refusal.unwrap_or("").as_bytes()));
    s.write_all(&reply)?;
    s.set_write_timeout(None)?;
    Ok(s)
}

/// The connections rank 0 dropped: each printed (up to [`MAX_WARNINGS`]), the first few kept
/// for the timeout's message (a flood of them costs no memory).
#[derive(Default)]
struct Dropped {
    count: usize,
    first: Vec<String>,
}

impl Dropped {
    const KEPT: usize = 3;

    fn note(&mut self, addr: SocketAddr, why: &str) {
        if self.count < MAX_WARNINGS {
            eprintln!(
                "thunder-distributed: rank 0 dropped a rendezvous connection from {addr}: {why}"
            );
        } else if self.count == MAX_WARNINGS {
            eprintln!(
                "thunder-distributed: rank 0 drops more rendezvous connections (not printed)"
            );
        }
        if self.first.len() < Self::KEPT {
            self.first.push(format!("{addr} ({why})"));
        }
        self.count += 1;
    }

    fn summary(&self) -> String {
        match self.count {
            0 => String::new(),
            n => format!(
                "; it dropped {n} connection{}: {}{}",
                if n == 1 { "" } else { "s" },
                self.first.join(", "),
                if n > Self::KEPT {
                    format!(" and {} more", n - Self::KEPT)
                } else {
                    String::new()
                }
            ),
        }
    }
}

/// Rank 0's listener at `MASTER_ADDR` (or `THUNDER_RDZV_BIND`): the first of its addresses
/// that can be bound.
fn bind(env: &DistEnv) -> Result<(TcpListener, SocketAddr)> {
    let host = env.bind_addr.as_deref().unwrap_or(&env.master_addr);
    let port = env.master_port;
    let bad = |reason: String| Error::Bind {
        addr: format!("{host}:{port}"),
        reason,
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve it ({e})")))?
        .collect();
    let mut why = Vec::new();
    let mut in_use = false;
    for a in &addrs {
        match TcpListener::bind(a) {
            Ok(l) => return Ok((l, *a)),
            Err(e) => {
                in_use |= e.kind() == ErrorKind::AddrInUse;
                why.push(format!("{a}: {e}"));
            }
        }
    }
    if in_use {
        return Err(Error::Listen {
            port,
            reason: "the port is in use".into(),
        });
    }
    Err(bad(if why.is_empty() {
        "it resolves to no address".into()
    } else {
        why.join("; ")
    }))
}

impl Rendezvous {
    /// Meets the other ranks of `env`'s job; every rank must call it, each within `timeout`
    /// of the others (at most [`crate::timeout::MAX_TIMEOUT`]).
    pub fn connect(env: &DistEnv, timeout: Duration) -> Result<Rendezvous> {
        let timeout = crate::timeout::check("the rendezvous", timeout)?;
        if u32::try_from(env.world_size).is_err() {
            return Err(Error::BadVar {
                var: "WORLD_SIZE",
                value: env.world_size.to_string(),
                why: format!("at most {} ranks", u32::MAX),
            });
        }
        if env.world_size == 1 {
            return Ok(Rendezvous {
                rank: 0,
                world_size: 1,
                peers: vec![None],
                timeout,
            });
        }
        if env.rank == 0 {
            Self::listen(env, timeout)
        } else {
            Self::join(env, timeout)
        }
    }

    fn listen(env: &DistEnv, timeout: Duration) -> Result<Rendezvous> {
        let deadline = crate::timeout::deadline("the rendezvous", timeout)?;
        let (listener, at) = bind(env)?;
        if env.token.source() == TokenSource::None {
            eprintln!(
                "thunder-distributed: rank 0's rendezvous at {at} has no job token (neither \
                 THUNDER_RDZV_TOKEN, TORCHELASTIC_RUN_ID nor SLURM_JOB_ID is set): any process \
                 that reaches it can join as a missing rank; export the same random \
                 THUNDER_RDZV_TOKEN to every rank"
            );
        }
        listener.set_nonblocking(true).map_err(io(0))?;
        let mut peers: Vec<Option<TcpStream>> = (0..env.world_size).map(|_| None).collect();
        let mut arrived = 1;
        let mut pending: Vec<Pending> = Vec::new();
        let mut dropped = Dropped::default();
        while arrived < env.world_size {
            let mut busy = false;
            while pending.len() < MAX_PENDING_HELLOS {
                match listener.accept() {
                    Ok((stream, addr)) => {
                        busy = true;
                        if stream.set_nonblocking(true).is_ok() {
                            pending.push(Pending {
                                stream,
                                addr,
                                buf: Vec::new(),
                                since: Instant::now(),
                            });
                        }
                    }
                    // WouldBlock, or a connection that failed before it was accepted (or no
                    // file descriptor left): the next round tries again.
                    Err(_) => break,
                }
            }
            let mut i = 0;
            while i < pending.len() {
                let step = pending[i].progress();
                if matches!(step, Step::Wait) && pending[i].since.elapsed() < HELLO_TIMEOUT {
                    i += 1;
                    continue;
                }
                busy = true;
                let p = pending.swap_remove(i);
                let hello = match step {
                    Step::Hello(h) => h,
                    Step::Bad(why) => {
                        dropped.note(p.addr, &why);
                        continue;
                    }
                    Step::Wait => {
                        dropped.note(
                            p.addr,
                            &format!(
                                "no whole hello within {} s ({} bytes)",
                                HELLO_TIMEOUT.as_secs(),
                                p.buf.len()
                            ),
                        );
                        continue;
                    }
                };
                match judge(&hello, env, |r| peers[r].is_some()) {
                    Verdict::Admit(r) => match answer(p.stream, None) {
                        Ok(s) => {
                            peers[r] = Some(s);
                            arrived += 1;
                        }
                        Err(e) => dropped.note(p.addr, &format!("rank {r} left: {e}")),
                    },
                    Verdict::Refuse(why) => {
                        let _ = answer(p.stream, Some(&why));
                        dropped.note(p.addr, &why);
                    }
                    Verdict::Ignore(why) => dropped.note(p.addr, &why),
                }
            }
            if arrived == env.world_size {
                break;
            }
            if Instant::now() >= deadline {
                let missing: Vec<String> = (1..env.world_size)
                    .filter(|&r| peers[r].is_none())
                    .map(|r| r.to_string())
                    .collect();
                return Err(Error::Timeout {
                    what: format!(
                        "rank 0 (at {at}) waited for rank{} {} to connect{}",
                        if missing.len() == 1 { "" } else { "s" },
                        missing.join(", "),
                        dropped.summary()
                    ),
                    after: timeout,
                });
            }
            if !busy {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(Rendezvous {
            rank: 0,
            world_size: env.world_size,
            peers,
            timeout,
        })
    }

    fn join(env: &DistEnv, timeout: Duration) -> Result<Rendezvous> {
        let deadline = crate::timeout::deadline("the rendezvous", timeout)?;
        let host = format!("{}:{}", env.master_addr, env.master_port);
        let unreachable = |why: String| Error::Timeout {
            what: format!(
                "rank {} could not reach rank 0 at {host} ({why}); is rank 0 running, and are \
                 MASTER_ADDR and MASTER_PORT the same for every rank?",
                env.rank
            ),
            after: timeout,
        };
        let mut last = String::from("no attempt");
        let mut s = loop {
            if Instant::now() >= deadline {
                return Err(unreachable(last));
            }
            let addrs: Vec<SocketAddr> = match host.to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(e) => {
                    last = format!("cannot resolve the host: {e}");
                    Vec::new()
                }
            };
            let mut connected = None;
            for a in &addrs {
                let left = deadline.saturating_duration_since(Instant::now());
                match TcpStream::connect_timeout(
                    a,
                    left.clamp(Duration::from_millis(1), Duration::from_secs(1)),
                ) {
                    Ok(s) => {
                        connected = Some(s);
                        break;
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            if let Some(s) = connected {
                break s;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        s.set_nodelay(true).map_err(io(0))?;
        let hello = Hello {
            rank: env.rank as u32,
            world: env.world_size as u32,
            token: env.token.as_bytes().to_vec(),
        };
        write_all(&mut s, &hello.bytes(), 0, "the hello")?;
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(io(0))?;
        let mut status = [0u8; 1];
        let got = loop {
            match s.read(&mut status) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        match got {
            Ok(1) => {}
            // Rank 0 answers every client with the job's token; it closes on the others.
            Ok(_) => {
                return Err(Error::Peer {
                    rank: env.rank,
                    what: format!(
                        "rank 0 at {host} closed the connection without answering this rank's \
                         hello: the ranks' tokens differ (THUNDER_RDZV_TOKEN, \
                         TORCHELASTIC_RUN_ID or SLURM_JOB_ID; rank 0's log says why) or they \
                         run different thunder versions"
                    ),
                })
            }
            Err(e) => return Err(read_error(e, 0, "the hello's answer", timeout)),
        }
        let why = read_message(&mut s, 0, "the hello's answer", timeout)?;
        if status[0] != 0 {
            return Err(Error::Peer {
                rank: env.rank,
                what: format!(
                    "rank 0 refused this rank: {}",
                    String::from_utf8_lossy(&why)
                ),
            });
        }
        let mut peers: Vec<Option<TcpStream>> = (0..env.world_size).map(|_| None).collect();
        peers[0] = Some(s);
        Ok(Rendezvous {
            rank: env.rank,
            world_size: env.world_size,
            peers,
            timeout,
        })
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The deadline of each later exchange (the one `connect` had, unless changed); at most
    /// [`crate::timeout::MAX_TIMEOUT`].
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.timeout = crate::timeout::check("the rendezvous", timeout)?;
        Ok(())
    }

    /// Every rank's `payload`, in rank order, on every rank. `what` names the exchange in
    /// errors. Every rank must call it, in the same order as the others.
    pub fn all_gather(&mut self, payload: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
        if payload.len() > MAX_MESSAGE {
            return Err(Error::Peer {
                rank: self.rank,
                what: format!("{what}: a message of {} bytes is too large", payload.len()),
            });
        }
        let t = self.timeout;
        if self.world_size == 1 {
            return Ok(vec![payload.to_vec()]);
        }
        if self.rank != 0 {
            let s = self.peers[0].as_mut().ok_or_else(|| Error::Peer {
                rank: 0,
                what: "no connection (rendezvous not done)".into(),
            })?;
            s.set_read_timeout(Some(t)).map_err(io(0))?;
            write_all(s, &message(payload), 0, what)?;
            let mut count = [0u8; 4];
            read_exact(s, &mut count, 0, what, t)?;
            let n = u32::from_le_bytes(count) as usize;
            if n != self.world_size {
                return Err(Error::Peer {
                    rank: 0,
                    what: format!("answered {what} with {n} messages, not {}", self.world_size),
                });
            }
            return (0..n).map(|_| read_message(s, 0, what, t)).collect();
        }
        let mut all = vec![payload.to_vec()];
        for r in 1..self.world_size {
            let s = self.peers[r].as_mut().ok_or_else(|| Error::Peer {
                rank: r,
                what: "no connection".into(),
            })?;
            s.set_read_timeout(Some(t)).map_err(io(r))?;
            all.push(read_message(s, r, what, t)?);
        }
        let mut reply = (self.world_size as u32).to_le_bytes().to_vec();
        for m in &all {
            reply.extend(message(m));
        }
        for r in 1..self.world_size {
            if let Some(s) = self.peers[r].as_mut() {
                write_all(s, &reply, r, what)?;
            }
        }
        Ok(all)
    }

    /// Rank 0's `payload` on every rank (the others' arguments are ignored).
    pub fn broadcast(&mut self, payload: &[u8], what: &str) -> Result<Vec<u8>> {
        let mine: &[u8] = if self.rank == 0 { payload } else { &[] };
        Ok(self.all_gather(mine, what)?.swap_remove(0))
    }

    /// Returns when every rank has called it.
    pub fn barrier(&mut self, what: &str) -> Result<()> {
        self.all_gather(&[], what).map(|_| ())
    }

    /// Checks that every rank passes the same `value` (a hash of the program, a config): a
    /// mismatch is an error naming the first rank that differs from rank 0.
    pub fn check_same(&mut self, value: &[u8], what: &str) -> Result<()> {
        let all = self.all_gather(value, what)?;
        if let Some(r) = (1..all.len()).find(|&r| all[r] != all[0]) {
            return Err(Error::Peer {
                rank: r,
                what: format!(
                    "its {what} differs from rank 0's; every rank must run the same program"
                ),
            });
        }
        Ok(())
    }
}

/// Which peers' rendezvous connections have closed: a rank that died closes its socket (the
/// OS does it for a killed process). Rank 0 sees every rank; the others see rank 0.
#[derive(Debug)]
pub struct Liveness {
    peers: Vec<(usize, TcpStream)>,
}

impl Liveness {
    /// The ranks whose connection is closed, in order.
    pub fn gone(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (r, s) in &self.peers {
            if s.set_nonblocking(true).is_err() {
                continue;
            }
            let mut b = [0u8; 1];
            match s.peek(&mut b) {
                Ok(0) => out.push(*r),
                Err(e) if e.kind() != ErrorKind::WouldBlock => out.push(*r),
                _ => {}
            }
            let _ = s.set_nonblocking(false);
        }
        out
    }
}

impl Rendezvous {
    /// A probe of the peers' connections (for error messages that name a dead rank).
    pub fn liveness(&self) -> Liveness {
        Liveness {
            peers: self
                .peers
                .iter()
                .enumerate()
                .filter_map(|(r, s)| Some((r, s.as_ref()?.try_clone().ok()?)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Token;

    fn hello(rank: u32, world: u32, token: &[u8]) -> Hello {
        Hello {
            rank,
            world,
            token: token.to_vec(),
        }
    }

    #[test]
    fn a_hello_is_read_only_as_far_as_it_goes_and_strangers_are_told_apart_early() {
        let whole = hello(2, 4, b"secret").bytes();
        assert_eq!(examine(b""), Partial::Needs(HELLO_HEADER));
        assert_eq!(examine(b"THN"), Partial::Needs(HELLO_HEADER));
        assert_eq!(examine(&whole[..HELLO_HEADER]), Partial::Needs(whole.len()));
        assert_eq!(
            examine(&whole[..whole.len() - 1]),
            Partial::Needs(whole.len())
        );
        assert_eq!(examine(&whole), Partial::Whole(hello(2, 4, b"secret")));
        // A stranger is dropped at its first wrong byte, another version at its magic.
        assert!(matches!(examine(b"G"), Partial::Bad(_)));
        assert!(matches!(examine(b"THNDRV01"), Partial::Bad(w) if w.contains("protocol THNDRV01")));
        let mut huge = whole[..16].to_vec();
        huge.extend((MAX_TOKEN as u32 + 1).to_le_bytes());
        assert!(matches!(examine(&huge), Partial::Bad(w) if w.contains("token of 1025 bytes")));
    }

    #[test]
    fn only_a_new_rank_of_this_job_is_admitted() {
        let env = DistEnv {
            rank: 0,
            world_size: 3,
            local_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: 1,
            token: Token::new("secret").unwrap(),
            bind_addr: None,
        };
        let taken = |r| r == 1;
        assert_eq!(
            judge(&hello(2, 3, b"secret"), &env, taken),
            Verdict::Admit(2)
        );
        for stranger in [
            hello(2, 3, b"secreT"),
            hello(2, 3, b""),
            hello(2, 3, b"secret!"),
        ] {
            assert!(matches!(judge(&stranger, &env, taken), Verdict::Ignore(_)));
        }
        for (liar, why) in [
            (hello(1, 3, b"secret"), "two processes claim rank 1"),
            (hello(0, 3, b"secret"), "claims rank 0 in a world of 3"),
            (hello(3, 3, b"secret"), "claims rank 3 in a world of 3"),
            (
                hello(2, 4, b"secret"),
                "rank 2 has WORLD_SIZE=4 but rank 0 has 3",
            ),
        ] {
            assert!(
                matches!(judge(&liar, &env, taken), Verdict::Refuse(ref w) if w.contains(why)),
                "{liar:?}"
            );
        }
    }
}
