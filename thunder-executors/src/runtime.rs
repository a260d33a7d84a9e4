//! What this process can run on: the libtorch it linked, CUDA and cuDNN.

use std::fmt;

use tch::{Cuda, Device, Tensor};

use crate::{Error, Result};

/// The libtorch lib folder this crate was linked against, baked in by `build.rs`; empty when
/// torch-sys reported none (a docs-only build).
const LIBTORCH_LIB_DIR: &str = env!("THUNDER_LIBTORCH_LIB_DIR");

/// What libtorch reports about this process: see [`runtime_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The libtorch lib folder at build time (the binary's run path). On another machine the
    /// libraries are found through `LD_LIBRARY_PATH` instead.
    pub libtorch_lib_dir: &'static str,
    /// libtorch has a CUDA backend and sees at least one device.
    pub cuda_available: bool,
    /// How many CUDA devices libtorch sees (after `CUDA_VISIBLE_DEVICES`).
    pub cuda_device_count: usize,
    /// cuDNN is loaded and usable.
    pub cudnn_available: bool,
}

/// Asks libtorch what this process can use.
///
/// On a GPU machine `cuda_available` is false if the binary was linked without `libtorch_cuda`
/// (see this crate's `build.rs`), so this doubles as a check of the link.
///
/// ```no_run
/// let info = thunder_executors::runtime_info();
/// println!("{info}");
/// ```
pub fn runtime_info() -> RuntimeInfo {
    RuntimeInfo {
        libtorch_lib_dir: LIBTORCH_LIB_DIR,
        cuda_available: Cuda::is_available(),
        // libtorch returns an i64 that is never negative.
        cuda_device_count: usize::try_from(Cuda::device_count()).unwrap_or(0),
        cudnn_available: Cuda::cudnn_is_available(),
    }
}

impl fmt::Display for RuntimeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lib = if self.libtorch_lib_dir.is_empty() {
            "(unknown)"
        } else {
            self.libtorch_lib_dir
        };
        writeln!(f, "libtorch lib dir:  {lib}")?;
        writeln!(f, "cuda available:    {}", self.cuda_available)?;
        writeln!(f, "cuda devices:      {}", self.cuda_device_count)?;
        write!(f, "cudnn available:   {}", self.cudnn_available)
    }
}

/// Runs a small addition on `device` and checks the result, so a broken install or driver shows up
/// as an error here rather than deep inside a run.
pub fn check_device(device: Device) -> Result<()> {
    if let Device::Cuda(index) = device {
        let count = runtime_info().cuda_device_count;
        if index >= count {
            return Err(Error::DeviceUnavailable {
                device: format!("{device:?}"),
                reason: format!("libtorch sees {count} CUDA device(s)"),
            });
        }
    }
    let a = Tensor::f_from_slice(&[1.0f32, 2.0, 3.0])?.f_to_device(device)?;
    let b = Tensor::f_from_slice(&[10.0f32, 20.0, 30.0])?.f_to_device(device)?;
    let sum = a.f_add(&b)?;
    let got = Vec::<f32>::try_from(&sum.f_to_device(Device::Cpu)?)?;
    let expected = vec![11.0f32, 22.0, 33.0];
    if got != expected {
        return Err(Error::WrongResult {
            device: format!("{device:?}"),
            op: "add",
            expected,
            got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GPU is attached when the driver made a device node (`/dev/nvidia0`, or another index when
    /// only some GPUs are passed into a container) or `nvidia-smi -L` lists one.
    fn nvidia_gpu_present() -> bool {
        let device_node = std::fs::read_dir("/dev").is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.strip_prefix("nvidia")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
        });
        device_node
            || std::process::Command::new("nvidia-smi")
                .arg("-L")
                .output()
                .is_ok_and(|out| out.status.success())
    }

    #[test]
    fn cpu_add_computes_values() {
        let a = Tensor::from_slice(&[1.5f32, -2.0, 4.0]);
        let b = Tensor::from_slice(&[0.5f32, 2.0, 6.0]);
        let sum = Vec::<f32>::try_from(&(&a + &b)).expect("a float tensor converts to Vec<f32>");
        assert_eq!(sum, [2.0, 0.0, 10.0]);
    }

    #[test]
    fn check_device_passes_on_cpu() {
        check_device(Device::Cpu).expect("libtorch adds on the CPU");
    }

    #[test]
    fn check_device_rejects_a_cuda_index_past_the_last_device() {
        let count = runtime_info().cuda_device_count;
        let err = check_device(Device::Cuda(count)).expect_err("no such device");
        assert!(matches!(err, Error::DeviceUnavailable { .. }), "{err}");
    }

    #[test]
    fn runtime_info_knows_the_libtorch_it_linked() {
        let info = runtime_info();
        assert!(
            info.libtorch_lib_dir.ends_with("lib"),
            "build.rs baked no libtorch lib folder: {info}"
        );
        assert_eq!(info.cuda_available, info.cuda_device_count > 0, "{info}");
    }

    #[test]
    fn cuda_visible_when_present() {
        let info = runtime_info();
        if nvidia_gpu_present() {
            assert!(
                info.cuda_available,
                "an NVIDIA GPU is attached but libtorch sees no CUDA device: was libtorch_cuda \
                 linked (see build.rs), is CUDA_VISIBLE_DEVICES empty?\n{info}"
            );
            check_device(Device::Cuda(0)).expect("libtorch adds on cuda:0");
        } else {
            assert!(!info.cuda_available, "no GPU here, yet: {info}");
            assert_eq!(info.cuda_device_count, 0, "{info}");
            check_device(Device::Cpu).expect("libtorch adds on the CPU");
        }
    }
}
