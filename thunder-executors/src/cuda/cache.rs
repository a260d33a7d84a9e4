//! The caches of compiled kernels: a stable hash (the disk cache's key), the disk cache's
//! folder, and process-wide results computed once per key.
//!
//! PTX is cached in memory and on disk (`THUNDER_KERNEL_CACHE`, default
//! `~/.cache/thunder-rs/kernels`), keyed by a hash of the source (which spells out the region,
//! its shapes and dtypes) and the architecture, so a second process starts warm.

use super::CudaError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// FNV-1a, stable across processes and machines (the disk cache's key).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

pub(super) fn disk_cache() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("THUNDER_KERNEL_CACHE") {
        return (!d.is_empty()).then(|| PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/thunder-rs/kernels"))
}

/// Process-wide results computed once per key: the first caller of a key runs `init`, callers
/// of the same key meanwhile (other threads) wait for it, later ones get the stored result.
pub(super) type OnceMap<K, V> = OnceLock<Mutex<HashMap<K, Arc<OnceLock<Result<V, CudaError>>>>>>;

pub(super) fn once_per_key<K: std::hash::Hash + Eq, V: Clone>(
    map: &OnceMap<K, V>,
    key: K,
    init: impl FnOnce() -> Result<V, CudaError>,
) -> Result<V, CudaError> {
    let cell = map
        .get_or_init(Default::default)
        .lock()?
        .entry(key)
        .or_default()
        .clone();
    cell.get_or_init(init).clone()
}
