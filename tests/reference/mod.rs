//! A plain f64 forward pass, written independently of `src/model` for the tests: it
//! shares only the GGUF reader and the row dequantizers with the engine. One token at a
//! time, full recomputation, no cleverness.
//!
//! Where the engine's matmul quantizes its activations (Q8_0 for Q4_0/Q5_0/Q8_0 weights,
//! Q8_1 for Q4_1/Q5_1, Q8_K for K-quants), the reference rounds the activation vector
//! through the same format before the product (its own quantizer: f32 values, the
//! format's f32 arithmetic, products of the dequantized codes in f64), so both compute
//! the same function. Q8_0 rounds as llama.cpp's x86 CPU code does, and gemma's gelu
//! goes through f16 as llama.cpp's lookup table does.
//!
//! Why ties need settling: the engine's f32 activations differ from the f64 ones in the
//! last bits, so now and then one lies on the other side of a rounding midpoint and takes
//! the neighbouring code. On the tiny models one such flip moves that position's logits
//! by 1e-5..1e-3 (relative), and the small changes it makes everywhere after it (later
//! layers, later positions through the KV cache) flip further codes, until every later
//! position differs by the whole activation-quantization noise, ~1.5e-2: a perturbation
//! of 1e-7 of the activations does that, and so do the engine's own batch sizes against
//! each other. `logits_settling_ties` keeps the reference on the engine's side of those
//! midpoints.

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
    /// to f16 for the q·k products with the output accumulated in f16 (as llama.cpp
    /// computes them for batches below 64 tokens).
    pub f16_cache: bool,
    /// With `f16_cache`: attention as llama.cpp computes it for batches of 64 tokens or
    /// more (its tiled path): queries and the output accumulator in full precision.
    pub tiled_attention: bool,
    /// How near a rounding midpoint (in steps of the rounding: codes, or f16 scales) an
    /// activation must lie for its rounding to count as a tie that f32 cannot settle.
    pub tie_margin: f64,
    /// For the ties met in this token's pass, in order: take the other code.
    tie_choices: Vec<bool>,
    /// Ties met so far in this token's pass.
    n_ties: usize,
    /// The untouched pass of each position in the last run (see `logits_settling_ties`).
    first_passes: Vec<FirstPass>,
    /// The settings those passes were computed with.
    first_pass_settings: (bool, bool, bool, f64),
    /// The last quantized activation (format, input, result): q, k and v share one.
    last_quantized: Option<(GgmlType, Vec<f64>, Vec<f64>)>,
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

/// gelu (tanh form) in f64.
fn gelu_tanh(h: f64) -> f64 {
    0.5 * h * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (h + 0.044715 * h * h * h)).tanh())
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
            tiled_attention: false,
            arch,
            tie_margin: 1e-3,
            tie_choices: Vec::new(),
            n_ties: 0,
            last_quantized: None,
            first_passes: Vec::new(),
            first_pass_settings: (false, false, false, 0.0),
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
            Some(aty) => self.quantize_activation(aty, x),
            None => x.iter().map(|&v| v as f32 as f64).collect(),
        };
        let dot = |w: &[f64]| dot(w, &xr);
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

    /// `x` as the matmul sees it in activation format `aty`: the engine's activations are
    /// f32, so each value is rounded to f32 first, then quantized with the f32 arithmetic
    /// of the format's reference quantizer (llama.cpp's `quantize_row_q8_0/q8_1/q8_K`),
    /// and the codes times the scale are returned. Roundings within `tie_margin` of a
    /// midpoint are ties (see [`Self::logits_settling_ties`]).
    fn quantize_activation(&mut self, aty: GgmlType, x: &[f64]) -> Vec<f64> {
        if let Some((t, input, out)) = &self.last_quantized {
            if *t == aty && input == x {
                return out.clone();
            }
        }
        let mut out = vec![0f64; x.len()];
        if aty == GgmlType::Q8K {
            for (xb, ob) in x.chunks_exact(256).zip(out.chunks_mut(256)) {
                let xf: Vec<f32> = xb.iter().map(|&v| v as f32).collect();
                // The element of largest magnitude, with its sign, maps to −127.
                let max = xf
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                if max == 0.0 {
                    continue;
                }
                let iscale = -127.0f32 / max;
                let d = (1.0 / iscale) as f64;
                for ((o, &v), &exact) in ob.iter_mut().zip(&xf).zip(xb) {
                    let code = (iscale * v).round_ties_even() as f64;
                    let code = self.settle(code, exact * iscale as f64);
                    *o = code.min(127.0) * d;
                }
            }
        } else {
            // Q8_0 and Q8_1 (as activations they differ only in the sum the kernels use).
            for (xb, ob) in x.chunks_exact(32).zip(out.chunks_mut(32)) {
                let xf: Vec<f32> = xb.iter().map(|&v| v as f32).collect();
                let amax = xf.iter().fold(0f32, |m, v| m.max(v.abs()));
                // As llama.cpp's x86 quantize_row_q8_0: d = max|x| / 127 stored as f16,
                // codes x · (127 / max|x|) rounded half to even.
                let d = amax / 127.0;
                let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                let exact_d = xb.iter().fold(0f64, |m, v| m.max(v.abs())) / 127.0;
                let stored = self.settle_f16(d, exact_d);
                for ((o, &v), &exact) in ob.iter_mut().zip(&xf).zip(xb) {
                    let code = (v * id).round_ties_even() as f64;
                    *o = self.settle(code, exact * id as f64) * stored;
                }
            }
        }
        self.last_quantized = Some((aty, x.to_vec(), out.clone()));
        out
    }

    /// `code`, the rounding of a value whose exact (f64) scaled form is `exact`, or the
    /// code on the other side of the midpoint when this is a tie chosen to flip.
    fn settle(&mut self, code: f64, exact: f64) -> f64 {
        let below = exact.floor();
        if (exact - below - 0.5).abs() >= self.tie_margin {
            return code;
        }
        let i = self.n_ties;
        self.n_ties += 1;
        if self.tie_choices.get(i) == Some(&true) {
            if code == below {
                below + 1.0
            } else {
                below
            }
        } else {
            code
        }
    }

    /// gelu as llama.cpp's CPU backend evaluates it on f32 data: the input and the result
    /// rounded to f16 (a lookup table), 0 at or below −10, the identity at or above 10.
    /// Both roundings can be ties (the engine's f32 gate against the exact one).
    fn gelu_as_llama_cpp(&mut self, g: f64) -> f64 {
        let gf = g as f32 as f64;
        if gf <= -10.0 {
            return 0.0;
        }
        if gf >= 10.0 {
            return gf;
        }
        let h = self.settle_to_f16(g);
        let a = gelu_tanh(h);
        self.settle_to_f16(a)
    }

    /// `v` rounded through f32 to f16, settling a tie as [`Self::settle`] does.
    fn settle_to_f16(&mut self, v: f64) -> f64 {
        let f = v as f32;
        let stored = half::f16::from_f32(f).to_f64();
        if f.abs() < 6.2e-5 || !f.is_finite() {
            return stored;
        }
        let step = 2f64.powi(f.abs().log2().floor() as i32 - 10);
        self.settle(stored / step, v / step) * step
    }

    /// The f16 a block scale `d` (f32) is stored as; `exact` is the scale computed from
    /// the f64 activations, for the tie test.
    fn settle_f16(&mut self, d: f32, exact: f64) -> f64 {
        let stored = half::f16::from_f32(d).to_f64();
        if d == 0.0 || d < 6.2e-5 {
            return stored;
        }
        // f16 has 10 fraction bits: one step is 2^(exponent − 10).
        let step = 2f64.powi(d.log2().floor() as i32 - 10);
        self.settle(stored / step, exact / step) * step
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

    /// Logits at every position of `tokens` (evaluated from position 0), every rounding
    /// of the activations settled the reference's own way.
    pub fn logits(&mut self, tokens: &[u32]) -> Vec<Vec<f64>> {
        self.logits_settling_ties(tokens, None)
    }

    /// As [`Self::logits`], but where an activation lies so close to a rounding midpoint
    /// that f32 arithmetic cannot say which way it rounds (see [`Self::tie_margin`]), the
    /// reference tries both codes and keeps, position by position, the choice whose logits
    /// are nearest `engine`'s (`tokens.len() × n_vocab`). The engine's numbers choose only
    /// between such equally valid roundings; everything else is the reference's own.
    pub fn logits_settling_ties(
        &mut self,
        tokens: &[u32],
        engine: Option<&[f32]>,
    ) -> Vec<Vec<f64>> {
        let factors = self
            .has("rope_freqs.weight")
            .then(|| self.vec("rope_freqs.weight"));
        let mut kv = Kv {
            keys: vec![Vec::new(); self.n_layer],
            values: vec![Vec::new(); self.n_layer],
        };
        let mut out = Vec::new();
        // The previous call's first passes, reused while this call's history is the same
        // (same tokens, no tie settled differently so far).
        let settings = (
            self.quantize_activations,
            self.f16_cache,
            self.tiled_attention,
            self.tie_margin,
        );
        let mut previous = std::mem::take(&mut self.first_passes);
        if std::mem::replace(&mut self.first_pass_settings, settings) != settings {
            previous.clear();
        }
        let mut same_history = true;
        // First passes after a flipped tie hold only for that flip: not recorded.
        let mut recording = true;
        for (pos, &tok) in tokens.iter().enumerate() {
            let (mut best, n_ties) =
                match previous.get(pos).filter(|p| same_history && p.token == tok) {
                    Some(p) => {
                        kv.push(p.kv.clone());
                        (p.logits.clone(), p.n_ties)
                    }
                    None => {
                        same_history = false;
                        self.tie_choices.clear();
                        self.n_ties = 0;
                        let logits = self.step(pos, tok, &mut kv, factors.as_deref());
                        (logits, self.n_ties)
                    }
                };
            if recording {
                self.first_passes.push(FirstPass {
                    token: tok,
                    logits: best.clone(),
                    kv: kv.last(),
                    n_ties,
                });
            }
            let n = self.n_vocab;
            let Some(row) = engine.map(|e| &e[pos * n..(pos + 1) * n]) else {
                out.push(best);
                continue;
            };
            let mut best_err = row_error(row, &best);
            if n_ties == 0 || best_err < AGREEMENT {
                out.push(best);
                continue;
            }
            let mut best_kv = kv.last();
            // Best first: flip whichever tie brings the logits nearest the engine's, then
            // look for a second and a third, until they agree to f32 precision.
            let mut choices = vec![false; n_ties];
            for _ in 0..3 {
                let mut round_best = None;
                for i in (0..n_ties).filter(|&i| !choices[i]) {
                    let mut trial = choices.clone();
                    trial[i] = true;
                    kv.truncate(pos);
                    self.tie_choices = trial;
                    self.n_ties = 0;
                    let logits = self.step(pos, tok, &mut kv, factors.as_deref());
                    let err = row_error(row, &logits);
                    if err < best_err {
                        best_err = err;
                        round_best = Some(i);
                        (best, best_kv) = (logits, kv.last());
                    }
                }
                match round_best {
                    Some(i) => choices[i] = true,
                    None => break,
                }
                if best_err < AGREEMENT {
                    break;
                }
            }
            if choices.contains(&true) {
                // Later first passes now depend on this choice.
                same_history = false;
                recording = false;
            }
            kv.truncate(pos);
            kv.push(best_kv);
            out.push(best);
        }
        out
    }

    /// One token at `pos`: appends its keys and values to `kv`, returns its logits.
    fn step(&mut self, pos: usize, tok: u32, kv: &mut Kv, factors: Option<&[f64]>) -> Vec<f64> {
        let hd = self.head_dim;
        let (nh, nkv) = (self.n_head, self.n_head_kv);
        let (keys, values) = (&mut kv.keys, &mut kv.values);
        self.last_quantized = None;
        let embd = self.file.tensor("token_embd.weight").unwrap();
        let row_bytes = embd.n_bytes as usize / self.n_vocab;
        let mut row = vec![0f32; self.n_embd];
        embd.ty.dequantize_row(
            &self.file.tensor_data(embd)[tok as usize * row_bytes..(tok as usize + 1) * row_bytes],
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
                self.rope(head, pos, b, factors);
            }
            for head in k.chunks_mut(hd) {
                self.rope(head, pos, b, factors);
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
            let one_at_a_time = self.f16_cache && !self.tiled_attention;
            if one_at_a_time {
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
                if one_at_a_time {
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
                        self.gelu_as_llama_cpp(g)
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
        self.matvec(head, &h)
    }
}

/// Logits this near the engine's (by [`row_error`]) agree to f32 precision: no tie
/// went the other way (a flipped code moves them by 1e-5 or more).
const AGREEMENT: f64 = 2e-6;

/// Keys and values of every block and position: `keys[block][pos]`, each
/// `n_head_kv × head_dim`.
struct Kv {
    keys: Vec<Vec<Vec<f64>>>,
    values: Vec<Vec<Vec<f64>>>,
}

/// A position's pass with no tie flipped: valid again while everything before it is.
struct FirstPass {
    token: u32,
    logits: Vec<f64>,
    kv: KvEntry,
    n_ties: usize,
}

/// One position's keys and values, per block.
type KvEntry = Vec<(Vec<f64>, Vec<f64>)>;

impl Kv {
    fn last(&self) -> KvEntry {
        let last = |v: &Vec<Vec<f64>>| v.last().unwrap().clone();
        self.keys
            .iter()
            .zip(&self.values)
            .map(|(k, v)| (last(k), last(v)))
            .collect()
    }

    fn push(&mut self, entry: KvEntry) {
        for ((k, v), (ek, ev)) in self.keys.iter_mut().zip(&mut self.values).zip(entry) {
            k.push(ek);
            v.push(ev);
        }
    }

    fn truncate(&mut self, n: usize) {
        self.keys.iter_mut().for_each(|k| k.truncate(n));
        self.values.iter_mut().for_each(|v| v.truncate(n));
    }
}

/// Σ a·b in f64, with four partial sums so the compiler can vectorize it (the vocabulary
/// projection dominates the reference's time).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a4.zip(b4) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The error measure of the tests: the largest |engine − reference| over the row, divided
/// by the largest |reference| of the row.
pub fn row_error(engine: &[f32], reference: &[f64]) -> f64 {
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = engine
        .iter()
        .zip(reference)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
    diff / scale
}
