//! `--device`: the backends compiled into this binary, from `finesse-train`'s shared vocabulary
//! (the binary's cargo features `flex`, `ndarray`, `wgpu`, `cuda` turn on `finesse-train`'s).

pub use finesse_train::device::DeviceChoice;
