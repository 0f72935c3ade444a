//! The backends a front-end offers (`--device`, the app's device list): those compiled in through
//! this crate's cargo features `flex`, `ndarray`, `wgpu`, `cuda` (which a binary turns on), with
//! an error naming the feature when one is missing.

use crate::error::{Result, TrainError};
use burn::tensor::Device;

/// A backend a user can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
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
    ///
    /// # Errors
    /// [`TrainError::Config`] (`device`) for a backend not compiled in, naming the feature.
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
                Err(TrainError::Config {
                    field: "device",
                    problem: format!(
                        "`{0}` is not compiled into this binary (compiled: {1}); rebuild with \
                         `cargo build --release --features {0}`",
                        other.name(),
                        compiled.join(", ")
                    ),
                })
            }
        }
    }

    /// Parses a backend name (as recorded in `run.json`).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Flex, Self::Ndarray, Self::Wgpu, Self::Cuda]
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_a_backend_not_compiled_in_names_its_feature() {
        for d in [
            DeviceChoice::Flex,
            DeviceChoice::Ndarray,
            DeviceChoice::Wgpu,
            DeviceChoice::Cuda,
        ] {
            assert_eq!(DeviceChoice::parse(d.name()), Some(d));
        }
        assert_eq!(DeviceChoice::parse("tpu"), None);
        if !cfg!(feature = "cuda") {
            let err = DeviceChoice::Cuda.device().expect_err("not compiled");
            assert!(err.to_string().contains("--features cuda"), "{err}");
        }
    }
}

/// A graphics adapter wgpu can run on (`finesse doctor`, `--device wgpu:list`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WgpuAdapter {
    /// Position in the list (`--device wgpu:N`).
    pub index: usize,
    /// The adapter's name (e.g. `NVIDIA GeForce RTX 4090`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// The graphics API: Vulkan, Metal, Dx12, Gl.
    pub api: String,
    /// Discrete GPU, integrated GPU, virtual GPU, CPU or other.
    pub kind: String,
    /// The driver and its version, as the driver reports them.
    pub driver: String,
}

/// The adapters wgpu finds on this machine, on every graphics API, in the order cubecl counts
/// them. Empty when none (or the `wgpu` feature is not compiled in).
pub fn wgpu_adapters() -> Vec<WgpuAdapter> {
    #[cfg(feature = "wgpu")]
    {
        use burn::backend::wgpu::wgpu;
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::all(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters =
            futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        adapters
            .iter()
            .map(wgpu::Adapter::get_info)
            .enumerate()
            .map(|(index, info)| WgpuAdapter {
                index,
                name: info.name,
                api: format!("{:?}", info.backend),
                kind: format!("{:?}", info.device_type),
                driver: [info.driver, info.driver_info]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect()
    }
    #[cfg(not(feature = "wgpu"))]
    Vec::new()
}
