//! A plain f64 forward pass, written independently of `src/model` for the tests: it
//! shares only the GGUF reader and the row dequantizers with the engine. One token at a
//! time, full recomputation, no cleverness.
//!
//! Where the engine's matmul quantizes its activations (Q8_0 for Q4_0/Q5_0/Q8_0 weights,
//! Q8_1 for Q4_1/Q5_1, Q8_K for K-quants), the reference rounds the activation vector
//! through the same format before the product (Q8_0 as llama.cpp's x86 CPU code rounds
//! it), and gemma's gelu goes through f16 as llama.cpp's lookup table does, so both
//! compute the same function.

#![allow(dead_code)]

pub mod tiny;

use std::collections::HashMap;

use tandem::gguf::GgufFile;
use tandem::quant::GgmlType;

/// A dequantized matrix: `rows × cols`, with the type it came from.
struct Mat {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w: Vec<f64>,
}

pub struct Reference<'a> {
    file: &'a GgufFile,
    arch: String,
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    n_vocab: usize,
    eps: f64,
    rope_dims: usize,
    rope_base: f64,
    rope_scale: f64,
    window: usize,
    /// Activation rounding before products with quantized weights.
    pub quantize_activations: bool,
    /// An f16 KV cache: keys and values are rounded to f16 as they enter it, and queries
    /// to f16 for the q·k products (as llama.cpp computes them).
    pub f16_cache: bool,
    cache: HashMap<String, Mat>,
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// The activation format llama.cpp pairs with weights of type `ty`.
fn activation_type(ty: GgmlType) -> Option<GgmlType> {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => Some(Q8_0),
        Q4_1 | Q5_1 => Some(Q8_1),
        Q2K | Q3K | Q4K | Q5K | Q6K => Some(Q8K),
        _ => None,
    }
}

/// The activation rounding of llama.cpp's x86 CPU `quantize_row_q8_0` (the format the
/// weights' dot products read), dequantized back: per 32-block, `d = f16(max|x| / 127)`,
/// `q = round_ties_even(x · (127 / max|x|))`, value `q · d`.
fn round_q8_0_as_llama_cpp_x86(x: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for block in x.chunks(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let d = half::f16::from_f32(amax / 127.0).to_f32();
        out.extend(block.iter().map(|&v| (v * id).round_ties_even() * d));
    }
    out
}

/// gelu (tanh form) as llama.cpp's CPU backend evaluates it on f32 data: the input and
/// the result rounded to f16 (a lookup table), 0 at or below −10, the identity at or
/// above 10.
fn gelu_as_llama_cpp(g: f64) -> f64 {
    let g = g as f32 as f64;
    if g <= -10.0 {
        return 0.0;
    }
    if g >= 10.0 {
        return g;
    }
    let h = half::f16::from_f64(g).to_f64();
    let a =
        0.5 * h * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (h + 0.044715 * h * h * h)).tanh());
    half::f16::from_f64(a).to_f64()
}

impl<'a> Reference<'a> {
    pub fn new(file: &'a GgufFile) -> Reference<'a> {
        let md = file.metadata();
        let arch = md.str("general.architecture").unwrap().to_string();
        let k = |s: &str| format!("{arch}.{s}");
        let n_embd = md.usize(&k("embedding_length")).unwrap();
        let n_head = md.usize(&k("attention.head_count")).unwrap();
        let head_dim = md
            .opt_usize(&k("attention.key_length"))
            .unwrap()
            .unwrap_or(n_embd / n_head);
        let scale = match md.opt_str(&k("rope.scaling.type")).unwrap() {
            Some("linear") => 1.0 / md.f32(&k("rope.scaling.factor")).unwrap() as f64,
            _ => 1.0,
        };
        Reference {
            file,
            n_embd,
            n_layer: md.usize(&k("block_count")).unwrap(),
            n_head,
            n_head_kv: md
                .opt_usize(&k("attention.head_count_kv"))
                .unwrap()
                .unwrap_or(n_head),
            head_dim,
            n_vocab: file.tensor("token_embd.weight").unwrap().dims[1] as usize,
            eps: md
                .opt_f32(&k("attention.layer_norm_rms_epsilon"))
                .unwrap()
                .unwrap_or(1e-5) as f64,
            rope_dims: md
                .opt_usize(&k("rope.dimension_count"))
                .unwrap()
                .unwrap_or(head_dim),
            rope_base: md.opt_f32(&k("rope.freq_base")).unwrap().unwrap_or(10000.0) as f64,
            rope_scale: scale,
            window: md
                .opt_usize(&k("attention.sliding_window"))
                .unwrap()
                .unwrap_or(usize::MAX),
            quantize_activations: true,
            f16_cache: false,
            arch,
            cache: HashMap::new(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.file.tensor(name).is_some()
    }

    fn vec(&self, name: &str) -> Vec<f64> {
        let info = self.file.tensor(name).unwrap_or_else(|| panic!("{name}"));
        let mut v = vec![0f32; info.n_elements() as usize];
        info.ty.dequantize_row(self.file.tensor_data(info), &mut v);
        to_f64(&v)
    }

    fn mat(&mut self, name: &str) -> &Mat {
        if !self.cache.contains_key(name) {
            let info = self.file.tensor(name).unwrap_or_else(|| panic!("{name}"));
            let (cols, rows) = (info.dims[0] as usize, info.dims[1] as usize);
            let mut w = vec![0f32; cols * rows];
            let row_bytes = info.n_bytes as usize / rows;
            let data = self.file.tensor_data(info);
            for (r, dst) in w.chunks_mut(cols).enumerate() {
                info.ty
                    .dequantize_row(&data[r * row_bytes..(r + 1) * row_bytes], dst);
            }
            let m = Mat {
                ty: info.ty,
                rows,
                cols,
                w: to_f64(&w),
            };
            self.cache.insert(name.to_string(), m);
        }
        &self.cache[name]
    }

    /// W·x, with x rounded through the activation format of W's type. Large matrices
    /// (the vocabulary projection) are dequantized row by row instead of cached.
    fn matvec(&mut self, name: &str, x: &[f64]) -> Vec<f64> {
        let info = self.file.tensor(name).unwrap_or_else(|| panic!("{name}"));
        let (ty, cols, rows) = (info.ty, info.dims[0] as usize, info.dims[1] as usize);
        assert_eq!(cols, x.len(), "{name}");
        let xr: Vec<f64> = match activation_type(ty).filter(|_| self.quantize_activations) {
            Some(GgmlType::Q8_0) => {
                let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                to_f64(&round_q8_0_as_llama_cpp_x86(&xf))
            }
            Some(aty) => {
                let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let mut bytes = vec![0u8; aty.bytes_for(xf.len() as u64).unwrap() as usize];
                aty.quantize_row(&xf, &mut bytes);
                let mut back = vec![0f32; xf.len()];
                aty.dequantize_row(&bytes, &mut back);
                to_f64(&back)
            }
            None => x.iter().map(|&v| v as f32 as f64).collect(),
        };
        let dot = |w: &[f64]| w.iter().zip(&xr).map(|(a, b)| a * b).sum::<f64>();
        if rows * cols > (1 << 24) {
            let row_bytes = info.n_bytes as usize / rows;
            let data = self.file.tensor_data(info);
            let mut row = vec![0f32; cols];
            return (0..rows)
                .map(|r| {
                    ty.dequantize_row(&data[r * row_bytes..(r + 1) * row_bytes], &mut row);
                    dot(&to_f64(&row))
                })
                .collect();
        }
        let m = self.mat(name);
        (0..rows)
            .map(|r| dot(&m.w[r * cols..(r + 1) * cols]))
            .collect()
    }

    fn rms_norm(&self, x: &[f64], w: &[f64]) -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let s = 1.0 / (ms + self.eps).sqrt();
        x.iter().zip(w).map(|(v, w)| v * s * w).collect()
    }

    fn is_gemma(&self) -> bool {
        self.arch == "gemma3"
    }

    fn is_swa_block(&self, i: usize) -> bool {
        self.is_gemma() && i % 6 < 5
    }

    /// Rotates one head at `pos`.
    fn rope(&self, head: &mut [f64], pos: usize, block: usize, factors: Option<&[f64]>) {
        let d = self.rope_dims;
        let (base, scale) = if self.is_swa_block(block) {
            (10000.0, 1.0)
        } else {
            (self.rope_base, self.rope_scale)
        };
        let neox = self.arch != "llama";
        for j in 0..d / 2 {
            let freq = base.powf(-2.0 * j as f64 / d as f64) / factors.map_or(1.0, |f| f[j]);
            let angle = pos as f64 * scale * freq;
            let (i0, i1) = if neox {
                (j, j + d / 2)
            } else {
                (2 * j, 2 * j + 1)
            };
            let (a, b) = (head[i0], head[i1]);
            head[i0] = a * angle.cos() - b * angle.sin();
            head[i1] = a * angle.sin() + b * angle.cos();
        }
    }

    /// Logits at every position of `tokens` (evaluated from position 0).
    pub fn logits(&mut self, tokens: &[u32]) -> Vec<Vec<f64>> {
        let hd = self.head_dim;
        let (nh, nkv) = (self.n_head, self.n_head_kv);
        let factors = self
            .has("rope_freqs.weight")
            .then(|| self.vec("rope_freqs.weight"));
        // keys[block][pos] and values[block][pos], each n_head_kv × head_dim.
        let mut keys: Vec<Vec<Vec<f64>>> = vec![Vec::new(); self.n_layer];
        let mut values: Vec<Vec<Vec<f64>>> = vec![Vec::new(); self.n_layer];
        let mut out = Vec::new();
        for (pos, &tok) in tokens.iter().enumerate() {
            let embd = self.file.tensor("token_embd.weight").unwrap();
            let row_bytes = embd.n_bytes as usize / self.n_vocab;
            let mut row = vec![0f32; self.n_embd];
            embd.ty.dequantize_row(
                &self.file.tensor_data(embd)
                    [tok as usize * row_bytes..(tok as usize + 1) * row_bytes],
                &mut row,
            );
            let mut x = to_f64(&row);
            if self.is_gemma() {
                let s = (self.n_embd as f64).sqrt();
                x.iter_mut().for_each(|v| *v *= s);
            }
            for b in 0..self.n_layer {
                let n = |s: &str| format!("blk.{b}.{s}");
                let h = self.rms_norm(&x, &self.vec(&n("attn_norm.weight")));
                let mut q = self.matvec(&n("attn_q.weight"), &h);
                let mut k = self.matvec(&n("attn_k.weight"), &h);
                let v = self.matvec(&n("attn_v.weight"), &h);
                let mut v = v;
                if self.has(&n("attn_q.bias")) {
                    for (t, bias) in [
                        (&mut q, "attn_q.bias"),
                        (&mut k, "attn_k.bias"),
                        (&mut v, "attn_v.bias"),
                    ] {
                        let bv = self.vec(&n(bias));
                        t.iter_mut().zip(bv).for_each(|(a, b)| *a += b);
                    }
                }
                if self.has(&n("attn_q_norm.weight")) {
                    let qn = self.vec(&n("attn_q_norm.weight"));
                    let kn = self.vec(&n("attn_k_norm.weight"));
                    for head in q.chunks_mut(hd) {
                        let r = self.rms_norm(head, &qn);
                        head.copy_from_slice(&r);
                    }
                    for head in k.chunks_mut(hd) {
                        let r = self.rms_norm(head, &kn);
                        head.copy_from_slice(&r);
                    }
                }
                for head in q.chunks_mut(hd) {
                    self.rope(head, pos, b, factors.as_deref());
                }
                for head in k.chunks_mut(hd) {
                    self.rope(head, pos, b, factors.as_deref());
                }
                let scale = 1.0 / (hd as f64).sqrt();
                if self.f16_cache {
                    let round = |x: &mut f64| *x = half::f16::from_f64(*x).to_f64();
                    k.iter_mut().for_each(round);
                    v.iter_mut().for_each(round);
                }
                keys[b].push(k);
                values[b].push(v);
                let first = if self.is_swa_block(b) {
                    (pos + 1).saturating_sub(self.window)
                } else {
                    0
                };
                let mut attn = vec![0f64; nh * hd];
                if self.f16_cache {
                    q.iter_mut()
                        .for_each(|x| *x = half::f16::from_f64(*x as f32 as f64).to_f64());
                }
                for head in 0..nh {
                    let g = head / (nh / nkv);
                    let qh = &q[head * hd..(head + 1) * hd];
                    let scores: Vec<f64> = (first..=pos)
                        .map(|p| {
                            let kh = &keys[b][p][g * hd..(g + 1) * hd];
                            qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f64>() * scale
                        })
                        .collect();
                    let out = &mut attn[head * hd..(head + 1) * hd];
                    if self.f16_cache {
                        // llama.cpp's flash attention over an f16 cache: a running
                        // maximum and sum, the output accumulator rounded to f16 at
                        // every rescale and every added value.
                        let f16 = |x: f64| half::f16::from_f64(x).to_f64();
                        let (mut max, mut sum) = (f64::NEG_INFINITY, 0.0);
                        for (p, &s) in (first..=pos).zip(&scores) {
                            let vh = &values[b][p][g * hd..(g + 1) * hd];
                            let (w, rescale) = if s > max {
                                let r = (max - s).exp();
                                max = s;
                                out.iter_mut().for_each(|o| *o = f16(*o * r));
                                (1.0, r)
                            } else {
                                ((s - max).exp(), 1.0)
                            };
                            for (o, v) in out.iter_mut().zip(vh) {
                                *o = f16(*o + w * v);
                            }
                            sum = sum * rescale + w;
                        }
                        out.iter_mut().for_each(|o| *o /= sum);
                        continue;
                    }
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for (p, w) in (first..=pos).zip(e) {
                        let vh = &values[b][p][g * hd..(g + 1) * hd];
                        for (o, v) in out.iter_mut().zip(vh) {
                            *o += w / sum * v;
                        }
                    }
                }
                let mut o = self.matvec(&n("attn_output.weight"), &attn);
                if self.has(&n("post_attention_norm.weight")) {
                    o = self.rms_norm(&o, &self.vec(&n("post_attention_norm.weight")));
                }
                x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);

                let h = self.rms_norm(&x, &self.vec(&n("ffn_norm.weight")));
                let gate = self.matvec(&n("ffn_gate.weight"), &h);
                let up = self.matvec(&n("ffn_up.weight"), &h);
                let act: Vec<f64> = gate
                    .iter()
                    .zip(&up)
                    .map(|(&g, &u)| {
                        let a = if self.is_gemma() {
                            gelu_as_llama_cpp(g)
                        } else {
                            g / (1.0 + (-g).exp())
                        };
                        a * u
                    })
                    .collect();
                let mut o = self.matvec(&n("ffn_down.weight"), &act);
                if self.has(&n("post_ffw_norm.weight")) {
                    o = self.rms_norm(&o, &self.vec(&n("post_ffw_norm.weight")));
                }
                x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            }
            let h = self.rms_norm(&x, &self.vec("output_norm.weight"));
            let head = if self.has("output.weight") {
                "output.weight"
            } else {
                "token_embd.weight"
            };
            out.push(self.matvec(head, &h));
        }
        out
    }
}
