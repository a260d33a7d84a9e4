//! How much memory a device has room for, asked before a run makes its tensors, and the error
//! that refuses a run needing more (`llama::estimate` and `ops` say what a run needs).
//!
//! - CUDA: the driver's free bytes (`cuMemGetInfo`), plus what libtorch's caching allocator holds
//!   without using it (reserved minus allocated), which it hands out again.
//! - The host: `MemAvailable` plus `SwapFree` from `/proc/meminfo`, within the room that the
//!   process's cgroups (v1 or v2: its own group and every group above it) leave: the limit minus
//!   the usage, page cache not counted as used (the kernel reclaims it first). Swap a cgroup
//!   would let the run use is not counted.

use std::path::{Path, PathBuf};
use thunder_ir::Device;

/// The free memory of a device, and where the number comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Bytes.
    pub bytes: u64,
    /// Where it was read (`MemAvailable + SwapFree`, `cgroup memory.max`, `cuMemGetInfo`).
    pub source: String,
}

/// The free memory could not be read (the run goes on unchecked).
#[derive(Debug, thiserror::Error)]
#[error("cannot tell how much memory {device} has free: {reason}")]
pub struct ProbeError {
    /// The device asked about.
    pub device: String,
    /// Why.
    pub reason: String,
}

/// A run that cannot fit: what it needs at least, what the device has, and what to lower.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "not enough memory on {device}: {what} needs at least {} ({breakdown}), and {} is free \
     ({}); {advice}",
    bytes(*.need),
    bytes(.room.bytes as f64),
    .room.source
)]
pub struct NotEnoughMemory {
    /// The device (`cpu`, `cuda:0`).
    pub device: String,
    /// The run (model, sizes, mode).
    pub what: String,
    /// Bytes it needs at least.
    pub need: f64,
    /// Its parts (`parameters 12.6 GiB, ...`).
    pub breakdown: String,
    /// What the device has.
    pub room: Room,
    /// Which flags to lower, to what.
    pub advice: String,
}

/// `bytes` for people: `12.6 GiB`, `310.0 MiB`, `12 KiB`.
pub fn bytes(b: f64) -> String {
    const KIB: f64 = 1024.0;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.0} KiB", b / KIB)
    }
}

/// The largest `x` in `1..below` for which `fits(x)` (which holds up to some point, then not).
pub fn largest(below: usize, fits: impl Fn(usize) -> bool) -> Option<usize> {
    if below <= 1 || !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1, below - 1);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// The free memory of `device` now.
pub fn room(device: Device) -> Result<Room, ProbeError> {
    match device {
        Device::Cpu => host_room(),
        Device::Cuda(i) => cuda_room(i),
    }
}

/// Free memory on CUDA device `index` (it must exist).
pub fn cuda_room(index: u32) -> Result<Room, ProbeError> {
    let err = |reason: String| ProbeError {
        device: format!("cuda:{index}"),
        reason,
    };
    let dev = i32::try_from(index).map_err(|_| err("no such device".into()))?;
    // The driver counts per context: libtorch's (the primary context) made current here.
    thunder_executors::cuda::enter_device(dev).map_err(|e| err(e.to_string()))?;
    let (free, _total) =
        cudarc::driver::result::mem_get_info().map_err(|e| err(format!("cuMemGetInfo: {e:?}")))?;
    // Held by libtorch's caching allocator but not in a tensor: it is reused before the driver
    // is asked for more.
    let cached = thunder_executors::shim::cuda_memory_stats(index as usize)
        .map(|s| u64::try_from(s.reserved.saturating_sub(s.allocated)).unwrap_or(0))
        .unwrap_or(0);
    Ok(Room {
        bytes: (free as u64).saturating_add(cached),
        source: if cached > 0 {
            format!(
                "cuMemGetInfo, plus {} cached by libtorch's allocator",
                bytes(cached as f64)
            )
        } else {
            "cuMemGetInfo".into()
        },
    })
}

/// Free memory of the host, within this process's cgroup limits.
pub fn host_room() -> Result<Room, ProbeError> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").map_err(|e| ProbeError {
        device: "the host".into(),
        reason: format!("reading /proc/meminfo: {e}"),
    })?;
    let free = meminfo_room(&meminfo).ok_or_else(|| ProbeError {
        device: "the host".into(),
        reason: "/proc/meminfo has no MemAvailable".into(),
    })?;
    let mut room = Room {
        bytes: free,
        source: "MemAvailable + SwapFree in /proc/meminfo".into(),
    };
    let groups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for (dir, version) in cgroup_dirs(&groups) {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        if let Some(b) = cgroup_room(version, read).filter(|&b| b < room.bytes) {
            room = Room {
                bytes: b,
                source: format!(
                    "the limit of cgroup {} minus its usage",
                    dir.join(version.limit_file()).display()
                ),
            };
        }
    }
    Ok(room)
}

/// `MemAvailable + SwapFree` of `/proc/meminfo`'s text, in bytes.
pub fn meminfo_room(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb.saturating_mul(1024))
    };
    let avail = field("MemAvailable:")?;
    Some(avail.saturating_add(field("SwapFree:").unwrap_or(0)))
}

/// The cgroup interface of a memory controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// `memory.limit_in_bytes`, `memory.usage_in_bytes`, `total_cache` in `memory.stat`.
    V1,
    /// `memory.max`, `memory.current`, `file` in `memory.stat`.
    V2,
}

impl CgroupVersion {
    fn limit_file(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        }
    }
}

/// The room a cgroup leaves (its limit minus its usage, page cache not counted as used), from
/// its files as `read` gives them; `None` when it has no limit or its files cannot be read.
pub fn cgroup_room(version: CgroupVersion, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let (usage_file, cache_key) = match version {
        CgroupVersion::V1 => ("memory.usage_in_bytes", "total_cache"),
        CgroupVersion::V2 => ("memory.current", "file"),
    };
    // v2's "max" does not parse: no limit.
    let limit: u64 = read(version.limit_file())?.trim().parse().ok()?;
    // v1 writes "no limit" as the largest page-aligned i64.
    if limit >= 1 << 62 {
        return None;
    }
    let usage: u64 = read(usage_file)?.trim().parse().ok()?;
    let cache = read("memory.stat")
        .and_then(|s| {
            s.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == cache_key).then(|| v.trim().parse::<u64>().ok())?
            })
        })
        .unwrap_or(0);
    Some(limit.saturating_sub(usage.saturating_sub(cache)))
}

/// The memory cgroup folders that limit this process (its own group and those above it), from
/// `/proc/self/cgroup`'s text.
fn cgroup_dirs(proc_self_cgroup: &str) -> Vec<(PathBuf, CgroupVersion)> {
    let mut out = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (mounts, version): (&[&str], _) = if controllers.is_empty() {
            (
                &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"],
                CgroupVersion::V2,
            )
        } else if controllers.split(',').any(|c| c == "memory") {
            (&["/sys/fs/cgroup/memory"], CgroupVersion::V1)
        } else {
            continue;
        };
        for mount in mounts {
            let root = Path::new(mount);
            let own = root.join(path.trim_start_matches('/'));
            // In a container the path may name the host's hierarchy; its root is then ours.
            let start = if own.is_dir() {
                own
            } else {
                root.to_path_buf()
            };
            for dir in start.ancestors().take_while(|d| d.starts_with(root)) {
                if dir.join(version.limit_file()).is_file() {
                    out.push((dir.to_path_buf(), version));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_room_is_mem_available_plus_free_swap() {
        let m = "MemTotal:       24683772 kB\nMemFree:  100 kB\nMemAvailable:   23744948 kB\n\
                 SwapTotal: 0 kB\nSwapFree:       1000 kB\n";
        assert_eq!(meminfo_room(m), Some((23744948 + 1000) * 1024));
        assert_eq!(meminfo_room("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn a_cgroup_leaves_its_limit_minus_what_is_not_page_cache() {
        let files = |limit: &'static str| {
            move |name: &str| -> Option<String> {
                Some(
                    match name {
                        "memory.max" | "memory.limit_in_bytes" => limit,
                        "memory.current" | "memory.usage_in_bytes" => "6000",
                        "memory.stat" => "anon 1000\nfile 2500\ntotal_cache 500\n",
                        _ => return None,
                    }
                    .to_string(),
                )
            }
        };
        assert_eq!(cgroup_room(CgroupVersion::V2, files("10000\n")), Some(6500));
        assert_eq!(cgroup_room(CgroupVersion::V1, files("10000\n")), Some(4500));
        assert_eq!(cgroup_room(CgroupVersion::V2, files("max\n")), None);
        assert_eq!(
            cgroup_room(CgroupVersion::V1, files("9223372036854771712\n")),
            None
        );
        // Usage above the limit leaves nothing, not a wrapped count.
        assert_eq!(cgroup_room(CgroupVersion::V2, files("10\n")), Some(0));
    }

    #[test]
    fn this_host_has_some_room() {
        if let Ok(r) = host_room() {
            assert!(r.bytes > 0, "{r:?}");
        }
    }

    #[test]
    fn sizes_print_in_the_unit_that_fits() {
        assert_eq!(bytes(24.0 * (1u64 << 30) as f64), "24.0 GiB");
        assert_eq!(bytes(310.0 * (1u64 << 20) as f64), "310.0 MiB");
        assert_eq!(bytes(12.0 * 1024.0), "12 KiB");
    }

    #[test]
    fn largest_finds_the_last_value_that_fits() {
        assert_eq!(largest(100, |x| x <= 37), Some(37));
        assert_eq!(largest(100, |x| x <= 500), Some(99));
        assert_eq!(largest(100, |_| false), None);
        assert_eq!(largest(1, |_| true), None);
        assert_eq!(largest(usize::MAX, |x| x <= 1 << 40), Some(1 << 40));
    }
}
