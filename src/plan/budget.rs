//! How much GPU memory a plan may fill.

use crate::gpu::AdapterMemory;

/// The GPU memory a plan may use, and where the figure came from.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuBudget {
    /// Bytes the plan may allocate (after the margin).
    pub usable: u64,
    /// What was held back from the adapter's figure for the driver, the staging buffers
    /// the backend does not count, and other programs (0 for an explicit budget, which
    /// is taken as what may be used).
    pub margin: u64,
    /// Where `usable + margin` came from.
    pub source: String,
}

/// The explicit GPU memory limit and its name: the smaller of `--vram-budget` and
/// `TANDEM_GPU_MEMORY_LIMIT`, which is what the GPU runtime then enforces.
pub fn explicit_limit(
    vram_budget: Option<u64>,
    env_limit: Option<u64>,
) -> Option<(u64, &'static str)> {
    match (vram_budget, env_limit) {
        (Some(b), Some(e)) if e < b => Some((e, "TANDEM_GPU_MEMORY_LIMIT")),
        (Some(b), _) => Some((b, "--vram-budget")),
        (None, Some(e)) => Some((e, "TANDEM_GPU_MEMORY_LIMIT")),
        (None, None) => None,
    }
}

/// Held back from an adapter's reported memory: 5%, at least 256 MiB.
pub fn adapter_margin(bytes: u64) -> u64 {
    (bytes / 20).max(256 << 20)
}

impl GpuBudget {
    /// The budget from an explicit limit (`--vram-budget`, else
    /// `TANDEM_GPU_MEMORY_LIMIT`) and what the adapter reports: its free memory, else its
    /// size, less [`adapter_margin`]; the smaller of the two when both are known.
    pub fn new(
        explicit: Option<(u64, &str)>,
        adapter: Option<(&str, AdapterMemory)>,
    ) -> Option<GpuBudget> {
        let from_adapter = adapter.and_then(|(name, memory)| {
            let (bytes, what) = match (memory.free, memory.total) {
                (Some(free), _) => (free, "free memory"),
                (None, Some(total)) => (total, "memory size"),
                _ => return None,
            };
            let margin = adapter_margin(bytes).min(bytes);
            Some(GpuBudget {
                usable: bytes - margin,
                margin,
                source: format!("{name}'s reported {what}"),
            })
        });
        let explicit = explicit.map(|(bytes, what)| GpuBudget {
            usable: bytes,
            margin: 0,
            source: what.to_string(),
        });
        match (explicit, from_adapter) {
            (Some(e), Some(a)) if a.usable < e.usable => Some(a),
            (Some(e), _) => Some(e),
            (None, a) => a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_budget_is_capped_by_what_the_adapter_has() {
        let memory = AdapterMemory {
            total: Some(8 << 30),
            free: Some(6 << 30),
        };
        let b = GpuBudget::new(Some((4 << 30, "--vram-budget")), Some(("gpu", memory))).unwrap();
        assert_eq!((b.usable, b.margin), (4 << 30, 0));
        let b = GpuBudget::new(Some((7 << 30, "--vram-budget")), Some(("gpu", memory))).unwrap();
        let margin = (6u64 << 30) / 20;
        assert_eq!((b.usable, b.margin), ((6 << 30) - margin, margin));
        let total_only = AdapterMemory {
            total: Some(2 << 30),
            free: None,
        };
        let b = GpuBudget::new(None, Some(("lavapipe", total_only))).unwrap();
        assert_eq!(b.usable, (2 << 30) - (256 << 20));
        assert!(b.source.contains("memory size"));
        assert_eq!(
            GpuBudget::new(None, Some(("x", AdapterMemory::default()))),
            None
        );
        assert_eq!(GpuBudget::new(None, None), None);
    }

    #[test]
    fn the_smaller_explicit_limit_wins_as_the_runtime_enforces_it() {
        assert_eq!(explicit_limit(None, None), None);
        assert_eq!(explicit_limit(Some(6), None), Some((6, "--vram-budget")));
        assert_eq!(
            explicit_limit(None, Some(4)),
            Some((4, "TANDEM_GPU_MEMORY_LIMIT"))
        );
        assert_eq!(
            explicit_limit(Some(6), Some(4)),
            Some((4, "TANDEM_GPU_MEMORY_LIMIT"))
        );
        assert_eq!(explicit_limit(Some(3), Some(4)), Some((3, "--vram-budget")));
    }
}
