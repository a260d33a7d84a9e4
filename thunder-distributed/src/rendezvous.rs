//! A small TCP rendezvous: rank 0 listens at `MASTER_ADDR:MASTER_PORT`, every other rank
//! connects, and the ranks exchange small messages through rank 0 (the NCCL unique id, checks
//! that every rank runs the same program).
//!
//! Every step has a deadline: a rank that never arrives, dies or hangs makes the others fail
//! with an error naming it, never wait forever.

use crate::env::DistEnv;
use crate::error::{Error, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"THNDRV01";
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
    s.read_exact(buf).map_err(|e| match e.kind() {
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
    })
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

impl Rendezvous {
    /// Meets the other ranks of `env`'s job; every rank must call it, each within `timeout`
    /// of the others.
    pub fn connect(env: &DistEnv, timeout: Duration) -> Result<Rendezvous> {
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
        let port = env.master_port;
        let listener = TcpListener::bind(("0.0.0.0", port)).map_err(|e| Error::Listen {
            port,
            reason: if e.kind() == ErrorKind::AddrInUse {
                "the port is in use".into()
            } else {
                e.to_string()
            },
        })?;
        listener.set_nonblocking(true).map_err(io(0))?;
        let deadline = Instant::now() + timeout;
        let mut peers: Vec<Option<TcpStream>> = (0..env.world_size).map(|_| None).collect();
        let mut arrived = 1;
        while arrived < env.world_size {
            let (mut s, _) = match listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        let missing: Vec<String> = (1..env.world_size)
                            .filter(|&r| peers[r].is_none())
                            .map(|r| r.to_string())
                            .collect();
                        return Err(Error::Timeout {
                            what: format!(
                                "rank 0 (port {port}) waited for rank{} {} to connect",
                                if missing.len() == 1 { "" } else { "s" },
                                missing.join(", ")
                            ),
                            after: timeout,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(e) => return Err(io(0)(e)),
            };
            s.set_nonblocking(false).map_err(io(0))?;
            s.set_nodelay(true).map_err(io(0))?;
            let left = deadline.saturating_duration_since(Instant::now());
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(io(0))?;
            let mut hello = [0u8; 16];
            if read_exact(&mut s, &mut hello, usize::MAX, "its hello", timeout).is_err()
                || &hello[..8] != MAGIC
            {
                // Not one of ours (a port scanner, another job on the same port): ignore it.
                continue;
            }
            let rank = u32::from_le_bytes([hello[8], hello[9], hello[10], hello[11]]) as usize;
            let world = u32::from_le_bytes([hello[12], hello[13], hello[14], hello[15]]) as usize;
            let problem = if world != env.world_size {
                Some(format!(
                    "rank {rank} has WORLD_SIZE={world} but rank 0 has {}; launch every rank with \
                     the same world size",
                    env.world_size
                ))
            } else if rank == 0 || rank >= world {
                Some(format!(
                    "a process claims rank {rank} in a world of {world}"
                ))
            } else if peers[rank].is_some() {
                Some(format!(
                    "two processes claim rank {rank}; give every process its own RANK"
                ))
            } else {
                None
            };
            let mut reply = vec![u8::from(problem.is_some())];
            reply.extend(message(problem.as_deref().unwrap_or("").as_bytes()));
            let _ = s.write_all(&reply);
            if let Some(p) = problem {
                return Err(Error::Peer { rank, what: p });
            }
            peers[rank] = Some(s);
            arrived += 1;
        }
        Ok(Rendezvous {
            rank: 0,
            world_size: env.world_size,
            peers,
            timeout,
        })
    }

    fn join(env: &DistEnv, timeout: Duration) -> Result<Rendezvous> {
        let deadline = Instant::now() + timeout;
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
        let mut hello = Vec::with_capacity(16);
        hello.extend_from_slice(MAGIC);
        hello.extend_from_slice(&(env.rank as u32).to_le_bytes());
        hello.extend_from_slice(&(env.world_size as u32).to_le_bytes());
        write_all(&mut s, &hello, 0, "the hello")?;
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(io(0))?;
        let mut status = [0u8; 1];
        read_exact(&mut s, &mut status, 0, "the hello's answer", timeout)?;
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

    /// The deadline of each later exchange (the one `connect` had, unless changed).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
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
