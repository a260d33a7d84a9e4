//! Conversions between thunder-ir's dtypes/devices and tch's.

use thunder_ir::{DType, Device};

/// The tch kind of a thunder dtype.
pub fn kind(d: DType) -> tch::Kind {
    match d {
        DType::F64 => tch::Kind::Double,
        DType::F32 => tch::Kind::Float,
        DType::F16 => tch::Kind::Half,
        DType::BF16 => tch::Kind::BFloat16,
        DType::I64 => tch::Kind::Int64,
        DType::I32 => tch::Kind::Int,
        DType::I16 => tch::Kind::Int16,
        DType::I8 => tch::Kind::Int8,
        DType::U8 => tch::Kind::Uint8,
        DType::Bool => tch::Kind::Bool,
        DType::C64 => tch::Kind::ComplexFloat,
        DType::C128 => tch::Kind::ComplexDouble,
        DType::F8E4M3FN => tch::Kind::Float8e4m3fn,
        DType::F8E5M2 => tch::Kind::Float8e5m2,
    }
}

/// The thunder dtype of a tch kind; `None` for kinds thunder does not model (quantized, complex32).
pub fn dtype(k: tch::Kind) -> Option<DType> {
    DType::ALL.into_iter().find(|&d| kind(d) == k)
}

/// The tch device of a thunder device.
pub fn device(d: Device) -> tch::Device {
    match d {
        Device::Cpu => tch::Device::Cpu,
        Device::Cuda(i) => tch::Device::Cuda(i as usize),
    }
}

/// The thunder device of a tch device; `None` for devices thunder does not model (mps, vulkan).
pub fn from_tch_device(d: tch::Device) -> Option<Device> {
    match d {
        tch::Device::Cpu => Some(Device::Cpu),
        tch::Device::Cuda(i) => u32::try_from(i).ok().map(Device::Cuda),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_round_trip() {
        for d in DType::ALL {
            assert_eq!(dtype(kind(d)), Some(d));
        }
        assert_eq!(dtype(tch::Kind::QInt8), None);
        assert_eq!(
            from_tch_device(device(Device::Cuda(3))),
            Some(Device::Cuda(3))
        );
    }
}
