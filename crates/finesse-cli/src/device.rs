//! `--device`: picks among the backends compiled into this binary (cargo features `flex`,
//! `ndarray`, `wgpu`, `cuda`), with an error naming the feature when one is missing.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// A backend a user can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// Burn's flex CPU backend (fastest on CPU).
    Flex,
    /// The ndarray CPU backend.
    Ndarray,
    /// WebGPU through wgpu (Vulkan, Metal, DX12, OpenGL).
    Wgpu,
    /// NVIDIA CUDA.
    Cuda,
}

impl DeviceChoice {
    /// The backends compiled in, in order of preference.
    pub fn compiled() -> Vec<Self> {
        let mut v = Vec::new();
        if cfg!(feature = "flex") {
            v.push(Self::Flex);
        }
        if cfg!(feature = "ndarray") {
            v.push(Self::Ndarray);
        }
        if cfg!(feature = "cuda") {
            v.push(Self::Cuda);
        }
        if cfg!(feature = "wgpu") {
            v.push(Self::Wgpu);
        }
        v
    }

    /// The first compiled backend (flex in a default build).
    pub fn default_choice() -> Self {
        Self::compiled().first().copied().unwrap_or(Self::Flex)
    }

    /// Lower-case name, as on the command line and in the cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// Creates the device, or explains which feature to build with.
    pub fn device(self) -> Result<Device> {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Self::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(feature = "cuda")]
            Self::Cuda => Ok(Device::cuda(0)),
            #[allow(unreachable_patterns)]
            other => {
                let compiled: Vec<&str> = Self::compiled().iter().map(|d| d.name()).collect();
                bail!(
                    "device `{0}` is not compiled into this binary (compiled: {1}); rebuild with \
                     `cargo build --release --features {0}`",
                    other.name(),
                    compiled.join(", ")
                )
            }
        }
    }
}
