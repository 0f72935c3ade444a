//! `--device`: the backends compiled into this binary, from `finesse-train`'s shared vocabulary
//! (the binary's cargo features `flex`, `ndarray`, `wgpu`, `cuda` turn on `finesse-train`'s),
//! plus `wgpu:N` (adapter N of `finesse doctor`'s list) and `wgpu:list`.

pub use finesse_train::device::DeviceChoice;
use finesse_train::device::wgpu_adapters;

/// clap's parser of `--device`.
pub fn parse(text: &str) -> Result<DeviceChoice, String> {
    finesse_train::device::parse_device_arg(text)
}

/// `--device wgpu:list` (or `--device=wgpu:list`) anywhere on the command line: print the
/// adapters and say so, so `main` exits before parsing the rest.
pub fn list_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let asked = args.iter().enumerate().any(|(i, a)| {
        a == "--device=wgpu:list"
            || (a == "--device" && args.get(i + 1).is_some_and(|v| v == "wgpu:list"))
    });
    if asked {
        print_adapters();
    }
    asked
}

/// The wgpu adapters as a table (also `finesse doctor`'s).
pub fn print_adapters() {
    if !DeviceChoice::compiled().contains(&DeviceChoice::Wgpu) {
        println!("wgpu: not compiled in (build with --features wgpu)");
        return;
    }
    let adapters = wgpu_adapters();
    if adapters.is_empty() {
        println!(
            "wgpu adapters: none found (install a Vulkan, Metal or DX12 driver; without a GPU, \
             Mesa's lavapipe: mesa-vulkan-drivers)"
        );
        return;
    }
    println!("wgpu adapters (--device wgpu:N; plain --device wgpu takes a high-power GPU first):");
    for a in &adapters {
        println!(
            "  wgpu:{:<2} {:<40} {:<7} {:<14} {}",
            a.index, a.name, a.api, a.kind, a.driver
        );
    }
}
