//! CUDA contexts and devices: the device's primary context (PyTorch's), its architecture and
//! its name.

use super::CudaError;
use cudarc::driver::{result as drv, sys as dsys};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The device's primary context (PyTorch's), made current on this thread.
pub fn enter_device(index: i32) -> Result<dsys::CUcontext, CudaError> {
    static CTX: OnceLock<Mutex<HashMap<i32, usize>>> = OnceLock::new();
    let map = CTX.get_or_init(Default::default);
    let mut m = map.lock()?;
    let ctx = match m.get(&index) {
        Some(&c) => c as dsys::CUcontext,
        None => {
            drv::init().map_err(CudaError::driver("cuInit"))?;
            let dev = drv::device::get(index)
                .map_err(CudaError::driver(format!("cuDeviceGet({index})")))?;
            // SAFETY: retaining the primary context of a valid device.
            let c = unsafe { drv::primary_ctx::retain(dev) }
                .map_err(CudaError::driver("cuDevicePrimaryCtxRetain"))?;
            m.insert(index, c as usize);
            c
        }
    };
    // SAFETY: a context retained above, never released.
    unsafe { drv::ctx::set_current(ctx) }.map_err(CudaError::driver("cuCtxSetCurrent"))?;
    Ok(ctx)
}

/// The architecture of device `index` for NVRTC (`compute_90`), once per device.
pub(super) fn arch_of(index: i32) -> Result<&'static str, CudaError> {
    static ARCH: OnceLock<Mutex<HashMap<i32, &'static str>>> = OnceLock::new();
    let map = ARCH.get_or_init(Default::default);
    let mut m = map.lock()?;
    if let Some(a) = m.get(&index) {
        return Ok(a);
    }
    let dev = drv::device::get(index).map_err(CudaError::driver("cuDeviceGet"))?;
    let attr = |a| unsafe { drv::device::get_attribute(dev, a) };
    let major = attr(dsys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .map_err(CudaError::Attribute)?;
    let minor = attr(dsys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        .map_err(CudaError::Attribute)?;
    let a: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
    m.insert(index, a);
    Ok(a)
}

/// The name of CUDA device `index` as the driver reports it (`NVIDIA H200`), if there is one.
pub fn device_name(index: i32) -> Option<String> {
    drv::init().ok()?;
    drv::device::get_name(drv::device::get(index).ok()?).ok()
}
