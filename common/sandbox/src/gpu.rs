//! What a job's container is told of GPUs: the devices it may see, and the capabilities a GPU job gets back.

use rai_common::config::GpuProfiling;

/// The `NVIDIA_VISIBLE_DEVICES` a job's container gets: its own devices, or `void` for a job with none, so neither an
/// image's `NVIDIA_VISIBLE_DEVICES=all` nor a host whose default runtime is nvidia can show it another job's GPU.
pub fn visible_devices(ids: &[String]) -> String {
    if ids.is_empty() {
        "void".to_string()
    } else {
        ids.join(",")
    }
}

/// The capabilities a job's container gets back: `SYS_ADMIN` for a GPU job where profiling is by capability.
pub fn capabilities(profiling: GpuProfiling, has_gpus: bool) -> Vec<String> {
    if profiling == GpuProfiling::Capability && has_gpus {
        vec!["SYS_ADMIN".to_string()]
    } else {
        Vec::new()
    }
}

/// What a job's "running" status says of its GPUs (the client's `✱` line shows it): `None` for a job without.
pub fn running_on(ids: &[String]) -> Option<String> {
    match ids {
        [] => None,
        [one] => Some(format!("GPU {one}")),
        many => Some(format!("GPUs {}", many.join(", "))),
    }
}
