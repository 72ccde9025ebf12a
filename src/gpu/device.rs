//! Finding a GPU adapter and opening a device on it with the adapter's real limits.
//!
//! wgpu's default limits cap a storage binding at 128 MiB and a buffer at 256 MiB, far
//! below what most GPUs allow, so the device is requested with the adapter's own limits.
//! SHADER_F16 and SUBGROUP are requested when present unless the caller turns them off
//! (so the fallback kernels can be tested on hardware that has both).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};

/// The error message when no adapter can be found at all.
pub const NO_ADAPTER_MESSAGE: &str = "no GPU adapter found (Vulkan/Metal/DX12); install a driver, \
     e.g. mesa-vulkan-drivers, or use --gpu-layers 0";

/// How to pick and open a device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuOptions {
    /// Index into [`list_adapters`]; `None` picks the best adapter.
    pub device_index: Option<usize>,
    /// Do not request SHADER_F16 even when the adapter has it.
    pub disable_f16: bool,
    /// Do not request SUBGROUP even when the adapter has it.
    pub disable_subgroup: bool,
    /// Refuse allocations past this many bytes, as if the GPU had only that much memory
    /// (a VRAM budget; also how tests reach the out-of-memory path on any adapter).
    pub memory_limit: Option<u64>,
}

impl GpuOptions {
    /// Options with the feature switches read from `TANDEM_GPU_NO_F16=1` and
    /// `TANDEM_GPU_NO_SUBGROUP=1`, and a memory limit from `TANDEM_GPU_MEMORY_LIMIT`
    /// (bytes, or with a K/M/G suffix, e.g. `512M`).
    pub fn from_env(device_index: Option<usize>) -> anyhow::Result<GpuOptions> {
        let memory_limit = match std::env::var("TANDEM_GPU_MEMORY_LIMIT") {
            Ok(v) if !v.trim().is_empty() => Some(parse_size(&v).with_context(|| {
                format!("TANDEM_GPU_MEMORY_LIMIT={v}: expected bytes, e.g. 4G or 512M")
            })?),
            _ => None,
        };
        Ok(GpuOptions {
            device_index,
            disable_f16: env_flag("TANDEM_GPU_NO_F16"),
            disable_subgroup: env_flag("TANDEM_GPU_NO_SUBGROUP"),
            memory_limit,
        })
    }
}

/// `123`, `64K`, `512M`, `4G` (binary multiples; a trailing `B`/`iB` is allowed).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let (digits, shift) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(1u64 << shift)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The optional shader capabilities a device was opened with; kernels are assembled
/// for exactly these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ShaderFeatures {
    /// shader-f16 is on: `enable f16;` and hardware half conversion (`unpack2x16float`);
    /// without it halves are converted by bit arithmetic.
    pub f16: bool,
    /// Subgroup builtins and `subgroupAdd` are available.
    pub subgroup: bool,
}

impl ShaderFeatures {
    /// All four combinations, for validation tests.
    pub const ALL: [ShaderFeatures; 4] = [
        ShaderFeatures {
            f16: false,
            subgroup: false,
        },
        ShaderFeatures {
            f16: true,
            subgroup: false,
        },
        ShaderFeatures {
            f16: false,
            subgroup: true,
        },
        ShaderFeatures {
            f16: true,
            subgroup: true,
        },
    ];
}

/// What `tandem devices` prints about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    /// Whether this is the adapter used when no `--gpu-device` is given.
    pub is_default: bool,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub has_f16: bool,
    pub has_subgroup: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// Memory sizes, where the driver reports them.
    pub memory: super::AdapterMemory,
}

impl AdapterSummary {
    /// A software rasterizer (lavapipe, WARP): it runs on the CPU cores the CPU path uses.
    pub fn is_software(&self) -> bool {
        self.device_type == device_type_name(wgpu::DeviceType::Cpu)
    }
}

fn new_instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    wgpu::Instance::new(desc)
}

fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(
        instance.enumerate_adapters(
            wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
        ),
    )
}

fn summarize(index: usize, adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    AdapterSummary {
        index,
        is_default: false,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: device_type_name(info.device_type).to_string(),
        driver: info.driver,
        driver_info: info.driver_info,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        has_f16: features.contains(wgpu::Features::SHADER_F16),
        has_subgroup: features.contains(wgpu::Features::SUBGROUP),
        subgroup_min_size: info.subgroup_min_size,
        subgroup_max_size: info.subgroup_max_size,
        memory: super::memory::adapter_memory(adapter),
    }
}

fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu (software)",
        wgpu::DeviceType::Other => "other",
    }
}

/// Lower is preferred: discrete > integrated > software > anything else.
fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::Cpu => 2,
        wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 3,
    }
}

/// The adapter picked when none is named: the first of the most preferred type.
fn preferred_index(types: &[wgpu::DeviceType]) -> Option<usize> {
    (0..types.len()).min_by_key(|&i| (preference(types[i]), i))
}

/// The adapter of `adapters` (from [`list_adapters`]) that `--gpu-layers auto` and
/// `tandem plan` plan for: the one `index` names, else the best adapter unless it is a
/// software one (slower than the CPU path it runs on); `None` when there is none such.
pub fn planning_adapter(
    adapters: &[AdapterSummary],
    index: Option<usize>,
) -> anyhow::Result<Option<AdapterSummary>> {
    Ok(match index {
        Some(i) => Some(adapters.get(i).cloned().with_context(|| {
            format!(
                "--gpu-device {i} does not exist: {} adapter(s) found (see `tandem devices`)",
                adapters.len()
            )
        })?),
        None => adapters
            .iter()
            .find(|a| a.is_default && !a.is_software())
            .cloned(),
    })
}

/// Every adapter wgpu finds on the native backends, in the order `--gpu-device` counts.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let instance = new_instance();
    let adapters = enumerate(&instance);
    let types: Vec<wgpu::DeviceType> = adapters.iter().map(|a| a.get_info().device_type).collect();
    let default = preferred_index(&types);
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| AdapterSummary {
            is_default: Some(i) == default,
            ..summarize(i, a)
        })
        .collect()
}

/// An open device and queue, with the limits and shader features it was opened with.
pub struct GpuDevice {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    pub features: ShaderFeatures,
    /// The device can write GPU timestamps (kernel profiling).
    pub timestamps: bool,
    lost: Arc<AtomicBool>,
    /// wgpu errors not returned by any call (validation failures), oldest first.
    errors: Arc<Mutex<Vec<String>>>,
}

impl GpuDevice {
    /// Opens the chosen (or best) adapter.
    pub fn new(options: &GpuOptions) -> anyhow::Result<GpuDevice> {
        let instance = new_instance();
        let adapters = enumerate(&instance);
        if adapters.is_empty() {
            bail!(NO_ADAPTER_MESSAGE);
        }
        let index = match options.device_index {
            Some(i) if i < adapters.len() => i,
            Some(i) => bail!(
                "--gpu-device {i} does not exist: {} adapter(s) found (see `tandem devices`)",
                adapters.len()
            ),
            None => {
                let types: Vec<wgpu::DeviceType> =
                    adapters.iter().map(|a| a.get_info().device_type).collect();
                preferred_index(&types).expect("adapters is not empty")
            }
        };
        let adapter = &adapters[index];
        let summary = AdapterSummary {
            is_default: options.device_index.is_none(),
            ..summarize(index, adapter)
        };

        let mut required_features = wgpu::Features::empty();
        let available = adapter.features();
        // Halves are converted in hardware only with shader-f16 and the f16-in-f32
        // instructions (llvmpipe ties the latter to the former); else by bit arithmetic.
        let use_f16 = !options.disable_f16
            && available.contains(wgpu::Features::SHADER_F16)
            && adapter
                .get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::SHADER_F16_IN_F32);
        let use_subgroup =
            !options.disable_subgroup && available.contains(wgpu::Features::SUBGROUP);
        if use_f16 {
            required_features |= wgpu::Features::SHADER_F16;
        }
        if use_subgroup {
            required_features |= wgpu::Features::SUBGROUP;
        }
        // Only `tandem bench --gpu-profile` writes timestamps; asking costs nothing.
        let timestamps = available.contains(wgpu::Features::TIMESTAMP_QUERY);
        if timestamps {
            required_features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("tandem"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .with_context(|| format!("opening GPU device {index} ({})", summary.name))?;

        let lost = Arc::new(AtomicBool::new(false));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            lost_flag.store(true, Ordering::SeqCst);
            tracing::error!("GPU device lost ({reason:?}): {message}");
        });
        let errors = Arc::new(Mutex::new(Vec::new()));
        let error_log = errors.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            tracing::error!("GPU error: {error}");
            if let Ok(mut log) = error_log.lock() {
                log.push(error.to_string());
            }
        }));
        Ok(GpuDevice {
            device,
            queue,
            adapter: summary,
            limits,
            features: ShaderFeatures {
                f16: use_f16,
                subgroup: use_subgroup,
            },
            timestamps,
            lost,
            errors,
        })
    }

    /// Fails once the device has been lost, so callers stop instead of waiting forever,
    /// and reports (once) any wgpu error raised since the last check.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            bail!("the GPU device was lost (driver reset or removed)");
        }
        let pending: Vec<String> = match self.errors.lock() {
            Ok(mut log) => std::mem::take(&mut *log),
            Err(_) => Vec::new(),
        };
        if !pending.is_empty() {
            bail!("GPU error: {}", pending.join("; "));
        }
        Ok(())
    }

    /// Waits for all submitted work; an error (not a hang) if the device is lost.
    pub fn wait_idle(&self) -> anyhow::Result<()> {
        self.check_alive()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow::anyhow!("waiting for the GPU: {e}"))?;
        self.check_alive()
    }

    /// The largest byte size one storage binding (and so one weight chunk) may have.
    /// Capped at 2 GiB so byte offsets fit the u32 arithmetic of the kernels.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
            .min(1 << 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("4GiB"), Some(4 << 30));
        assert_eq!(parse_size(" 2 G "), Some(2 << 30));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn discrete_beats_integrated_beats_software() {
        use wgpu::DeviceType::*;
        let mut types = [Other, Cpu, IntegratedGpu, VirtualGpu, DiscreteGpu];
        types.sort_by_key(|t| preference(*t));
        assert_eq!(&types[..3], &[DiscreteGpu, IntegratedGpu, Cpu]);
        assert_eq!(
            preferred_index(&[Cpu, IntegratedGpu, DiscreteGpu, DiscreteGpu]),
            Some(2)
        );
        assert_eq!(preferred_index(&[Other, Cpu]), Some(1));
        assert_eq!(preferred_index(&[]), None);
    }
}
