//! Prints what libtorch sees in this process and checks every device with a small addition.
//!
//! Run it on a GPU machine to prove the link: `cuda available: true` only appears when the binary was
//! linked with libtorch_cuda (see `thunder-executors/build.rs`). Exits with 1 when a check fails.

use std::process::ExitCode;

use tch::Device;
use thunder_executors::{check_device, runtime_info};

fn main() -> ExitCode {
    let info = runtime_info();
    println!("{info}");
    let devices = std::iter::once(Device::Cpu).chain((0..info.cuda_device_count).map(Device::Cuda));
    let mut failed = false;
    for device in devices {
        match check_device(device) {
            Ok(()) => println!("check {device:?}: ok"),
            Err(err) => {
                println!("check {device:?}: FAILED: {err}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
