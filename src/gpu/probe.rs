//! Short timed kernels that tell the planner how fast a device is: memory bandwidth
//! (a buffer copy), f32 throughput (chains of fused multiply-adds) and the cost of one
//! small dispatch. Each grows its work until one run takes long enough to time, and
//! keeps the best of a few runs.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::device::GpuDevice;

pub const PROBE_SOURCE: &str = include_str!("../../shaders/probe.wgsl");

/// What the probes measured.
#[derive(Clone, Copy, Debug)]
pub struct DeviceSpeed {
    /// Bytes read plus bytes written per second by the copy.
    pub copy_bytes_per_sec: f64,
    /// f32 floating-point operations per second (an FMA counts two).
    pub flops: f64,
    /// Seconds one small dispatch takes in a pass of many (each writing the buffer the
    /// next reads, as the kernels of a forward pass do).
    pub dispatch_seconds: f64,
}

/// A run long enough to time against the submit and wait overheads.
const MIN_RUN: Duration = Duration::from_millis(25);
const RUNS: usize = 3;
const WORKGROUP: u32 = 256;
/// FMAs of one invocation of `fma_chains` (4 chains of vec4 over 512 steps).
const FMAS_PER_INVOCATION: f64 = 4.0 * 4.0 * 512.0;

struct Probe<'a> {
    device: &'a GpuDevice,
    layout: wgpu::BindGroupLayout,
    module: wgpu::ShaderModule,
}

impl<'a> Probe<'a> {
    fn new(device: &'a GpuDevice) -> Probe<'a> {
        let d = &device.device;
        let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("probe"),
            source: wgpu::ShaderSource::Wgsl(PROBE_SOURCE.into()),
        });
        let entry = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("probe"),
            entries: &[entry(0, true), entry(1, false)],
        });
        Probe {
            device,
            layout,
            module,
        }
    }

    fn pipeline(&self, entry: &str) -> wgpu::ComputePipeline {
        let d = &self.device.device;
        let layout = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("probe"),
            bind_group_layouts: &[Some(&self.layout)],
            immediate_size: 0,
        });
        d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&layout),
            module: &self.module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        })
    }

    fn buffer(&self, bytes: u64) -> wgpu::Buffer {
        self.device.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("probe"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    }

    /// Wall time of `repeats` dispatches of `groups` workgroups, submitted at once.
    fn time(
        &self,
        pipeline: &wgpu::ComputePipeline,
        bind: &wgpu::BindGroup,
        groups: u32,
        repeats: u32,
    ) -> anyhow::Result<Duration> {
        let d = &self.device.device;
        let mut encoder = d.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind, &[]);
            for _ in 0..repeats {
                pass.dispatch_workgroups(groups, 1, 1);
            }
        }
        let start = Instant::now();
        self.device.queue.submit([encoder.finish()]);
        self.device.wait_idle()?;
        Ok(start.elapsed())
    }
}

/// Runs both probes on an open device (about a second on a software adapter, a few
/// milliseconds on a GPU).
pub fn measure(device: &GpuDevice) -> anyhow::Result<DeviceSpeed> {
    let probe = Probe::new(device);
    let max_groups = device
        .limits
        .max_compute_workgroups_per_dimension
        .min(1 << 16);
    let bytes = device.max_binding_bytes().min(256 << 20) & !15;
    let (src, dst) = (probe.buffer(bytes), probe.buffer(bytes));
    let bind = device.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("probe"),
        layout: &probe.layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: src.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: dst.as_entire_binding(),
            },
        ],
    });

    let copy = probe.pipeline("copy");
    let copy_groups = max_groups.min((bytes / 16).div_ceil(u64::from(WORKGROUP)) as u32);
    probe.time(&copy, &bind, copy_groups, 1)?; // first touch of the buffers
    let mut repeats = 1;
    let mut best_copy = 0f64;
    for _ in 0..RUNS + 8 {
        let t = probe.time(&copy, &bind, copy_groups, repeats)?;
        if t < MIN_RUN && repeats < 1 << 12 {
            repeats *= 2;
            continue;
        }
        best_copy = best_copy.max(2.0 * bytes as f64 * f64::from(repeats) / t.as_secs_f64());
    }

    let fma = probe.pipeline("fma_chains");
    let mut groups = 16u32;
    let mut best_flops = 0f64;
    for _ in 0..RUNS + 16 {
        let t = probe.time(&fma, &bind, groups, 1)?;
        if t < MIN_RUN && groups < max_groups {
            groups = (groups * 2).min(max_groups);
            continue;
        }
        let fmas = f64::from(groups) * f64::from(WORKGROUP) * FMAS_PER_INVOCATION;
        best_flops = best_flops.max(2.0 * fmas / t.as_secs_f64());
    }
    // One workgroup per dispatch: what is left is the dispatch and its barrier.
    let mut dispatches = 16u32;
    let mut best_dispatch = f64::INFINITY;
    for _ in 0..RUNS + 12 {
        let t = probe.time(&fma, &bind, 1, dispatches)?;
        if t < MIN_RUN && dispatches < 1 << 14 {
            dispatches *= 2;
            continue;
        }
        best_dispatch = best_dispatch.min(t.as_secs_f64() / f64::from(dispatches));
    }
    device.check_alive().context("the speed probe failed")?;
    Ok(DeviceSpeed {
        copy_bytes_per_sec: best_copy,
        flops: best_flops,
        dispatch_seconds: best_dispatch,
    })
}
