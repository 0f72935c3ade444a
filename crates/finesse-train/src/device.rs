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
            Self::Wgpu => Ok(Device::wgpu(wgpu_kind()?)),
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
    fn run_json_names_the_chosen_wgpu_adapter_and_reads_it_back() {
        assert_eq!(device_label(DeviceChoice::Flex), "flex");
        // Adapter 0 is the one cubecl would take on a machine with one adapter (lavapipe in CI).
        assert_eq!(parse_device_arg("wgpu:0"), Ok(DeviceChoice::Wgpu));
        assert_eq!(device_label(DeviceChoice::Wgpu), "wgpu:0");
        assert_eq!(
            parse_device_arg(&device_label(DeviceChoice::Wgpu)),
            Ok(DeviceChoice::Wgpu)
        );
        assert_eq!(device_label(DeviceChoice::Ndarray), "ndarray");
    }

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
        assert_eq!(parse_device_arg("wgpu:0"), Ok(DeviceChoice::Wgpu));
        assert_eq!(parse_device_arg("NDARRAY"), Ok(DeviceChoice::Ndarray));
        let err = parse_device_arg("wgpu:first").expect_err("not an index");
        assert!(err.contains("wgpu:N"), "{err}");
        let err = parse_device_arg("gpu").expect_err("unknown");
        assert!(err.contains("flex, ndarray, wgpu, wgpu:N, cuda"), "{err}");
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
    /// Its position among the adapters of its kind (what cubecl's device kinds count).
    pub kind_index: usize,
    /// The driver and its version, as the driver reports them.
    pub driver: String,
}

/// The adapters wgpu finds on this machine on the graphics API cubecl runs on (the first of
/// Vulkan, DX12, OpenGL — Metal on macOS — that has one), in cubecl's order: `--device wgpu:N`
/// takes the Nth. Empty when none (or the `wgpu` feature is not compiled in).
pub fn wgpu_adapters() -> Vec<WgpuAdapter> {
    #[cfg(feature = "wgpu")]
    {
        use burn::backend::wgpu::wgpu;
        let probe = |api: wgpu::Backend| -> Vec<wgpu::AdapterInfo> {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends: api.into(),
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            futures_lite::future::block_on(instance.enumerate_adapters(api.into()))
                .iter()
                .map(wgpu::Adapter::get_info)
                .collect()
        };
        let chain = if cfg!(target_os = "macos") {
            vec![wgpu::Backend::Metal]
        } else {
            vec![
                wgpu::Backend::Vulkan,
                wgpu::Backend::Dx12,
                wgpu::Backend::Gl,
            ]
        };
        // cubecl's choice of API: the first of the chain with a hardware adapter, else the first
        // with any (a VM may offer only lavapipe on Vulkan and the real GPU on OpenGL).
        let mut software_only = None;
        let mut chosen = None;
        for api in chain {
            let infos = probe(api);
            if infos.iter().any(|i| i.device_type != wgpu::DeviceType::Cpu) {
                chosen = Some(infos);
                break;
            }
            if software_only.is_none() && !infos.is_empty() {
                software_only = Some(infos);
            }
        }
        let Some(infos) = chosen.or(software_only) else {
            return Vec::new();
        };
        let mut per_kind: std::collections::BTreeMap<String, usize> = Default::default();
        infos
            .into_iter()
            .enumerate()
            .map(|(index, info)| {
                let kind = format!("{:?}", info.device_type);
                let counter = per_kind.entry(kind.clone()).or_default();
                let kind_index = *counter;
                *counter += 1;
                WgpuAdapter {
                    index,
                    name: info.name,
                    api: format!("{:?}", info.backend),
                    kind,
                    kind_index,
                    driver: [info.driver, info.driver_info]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" "),
                }
            })
            .collect()
    }
    #[cfg(not(feature = "wgpu"))]
    Vec::new()
}

/// The adapter `--device wgpu:N` asked for (for every wgpu device this process creates).
static WGPU_ADAPTER: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Makes wgpu devices of this process use adapter `index` of [`wgpu_adapters`]
/// (`--device wgpu:N`); checked when the device is created. The first choice stays.
pub fn select_wgpu_adapter(index: usize) {
    let _ = WGPU_ADAPTER.set(index);
}

/// How `run.json` names the device: the backend's name, and for wgpu with a chosen adapter
/// (`--device wgpu:N`) `wgpu:N`, which [`parse_device_arg`] reads back on resume.
pub fn device_label(choice: DeviceChoice) -> String {
    match (choice, WGPU_ADAPTER.get()) {
        (DeviceChoice::Wgpu, Some(index)) => format!("wgpu:{index}"),
        _ => choice.name().to_string(),
    }
}

/// The device kind of the chosen adapter, or cubecl's default (a high-power GPU first;
/// `CUBECL_WGPU_DEFAULT_DEVICE` overrides it).
#[cfg(feature = "wgpu")]
fn wgpu_kind() -> Result<burn::tensor::DeviceKind> {
    use burn::tensor::DeviceKind;
    let Some(&index) = WGPU_ADAPTER.get() else {
        return Ok(DeviceKind::DefaultDevice);
    };
    let adapters = wgpu_adapters();
    let Some(a) = adapters.get(index) else {
        let list: Vec<String> = adapters
            .iter()
            .map(|a| format!("wgpu:{} {} ({}, {})", a.index, a.name, a.api, a.kind))
            .collect();
        return Err(TrainError::Config {
            field: "device",
            problem: format!(
                "wgpu:{index}: this machine has {} wgpu adapter(s){}{} (`finesse doctor` lists them)",
                adapters.len(),
                if list.is_empty() { "" } else { ": " },
                list.join(", ")
            ),
        });
    };
    match a.kind.as_str() {
        "DiscreteGpu" => Ok(DeviceKind::DiscreteGpu(a.kind_index)),
        "IntegratedGpu" => Ok(DeviceKind::IntegratedGpu(a.kind_index)),
        "VirtualGpu" => Ok(DeviceKind::VirtualGpu(a.kind_index)),
        "Cpu" if a.kind_index == 0 => Ok(DeviceKind::Cpu),
        _ => Err(TrainError::Config {
            field: "device",
            problem: format!(
                "wgpu:{index} ({}, {}) cannot be addressed on its own: Burn names CPU adapters \
                 only as one and has no name for kind {}; use --device wgpu (the default adapter) \
                 or CUBECL_WGPU_DEFAULT_DEVICE",
                a.name, a.kind, a.kind
            ),
        }),
    }
}

/// Parses a `--device` value: a backend name, or `wgpu:N` (which also selects adapter N).
///
/// # Errors
/// An unknown backend or a malformed adapter index, as a message for clap.
pub fn parse_device_arg(text: &str) -> std::result::Result<DeviceChoice, String> {
    if let Some(n) = text.strip_prefix("wgpu:") {
        let index: usize = n.parse().map_err(|_| {
            format!(
                "`{text}`: expected wgpu:N with N an adapter index (`finesse doctor` lists them)"
            )
        })?;
        select_wgpu_adapter(index);
        return Ok(DeviceChoice::Wgpu);
    }
    DeviceChoice::parse(text)
        .ok_or_else(|| format!("`{text}`: expected one of flex, ndarray, wgpu, wgpu:N, cuda"))
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
