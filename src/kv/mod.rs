//! A 3-bit KV cache for one attention layer, and decode attention over it.
//!
//! K and V arrive post-RoPE in f32, `n_kv_heads × head_dim` per token. K is divided by
//! per-channel factors fixed at the first append (q is multiplied by them), so that outlier
//! channels do not widen every row's range. Each head vector is
//! rotated by a fixed orthonormal sign-flipped Hadamard matrix and quantized on its own to
//! 3-bit codes (8 codes in 3 bytes) with an fp16 minimum and step; the first `n_sink` tokens
//! get 8-bit codes. Attention rotates q the same way, quantizes it to int8 per head, takes
//! the integer dot products with the codes (exact), scales them, applies a numerically stable
//! softmax, sums V straight from its codes, and rotates the result back; per KV head, the
//! exponentials, their sums and the int8 V weights are made a block of 64 positions at a time,
//! while the block is in L1. The exact maths is `docs/FORMATS.md` §8.
//!
//! ```
//! use bitnet_kernels::kv::KvCache;
//! let (heads, d) = (2, 64);
//! let mut cache = KvCache::new(heads, d, 16, 1)?;
//! let k: Vec<f32> = (0..3 * heads * d).map(|i| (i as f32 * 0.1).sin()).collect();
//! let v: Vec<f32> = (0..3 * heads * d).map(|i| (i as f32 * 0.2).cos()).collect();
//! cache.append(&k, &v, 3)?; // three tokens (prefill)
//! let q = vec![0.5f32; 8 * d]; // 8 query heads: 4 per KV head
//! let mut out = vec![0.0f32; 8 * d];
//! cache.attend(&q, 8, &mut out)?;
//! assert_eq!(cache.len(), 3);
//! # Ok::<(), bitnet_kernels::Error>(())
//! ```

use std::ops::Range;

use crate::error::{check_len, Error, Result};
use crate::kernels::{self, KernelSet, KvKernels};
use ahead::{Ahead, Plan};

/// Defines `fn $name(args) -> R` whose body is compiled three times, for AVX-512F, for AVX2
/// and for the x86-64 baseline, the widest the CPU has chosen at run time, so that its element
/// loops run 16 or 8 lanes wide rather than 4. Same arithmetic, bit for bit: Rust never fuses
/// a multiply and an add on its own (`mul_add` is one fused operation everywhere: an FMA
/// instruction in the two wide versions, which require FMA, a libm call in the baseline), and
/// the loops fix their own summation order.
macro_rules! wide_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[inline(always)]
            fn plain($($a: $t),*) $(-> $r)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,fma")]
                fn avx512($($a: $t),*) $(-> $r)? {
                    plain($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($a: $t),*) $(-> $r)? {
                    plain($($a),*)
                }
                let fma = std::arch::is_x86_feature_detected!("fma");
                if fma && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F and FMA.
                    return unsafe { avx512($($a),*) };
                }
                if fma && std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { avx2($($a),*) };
                }
            }
            plain($($a),*)
        }
    };
}

mod ahead;
pub(crate) mod quant;
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod rot512;
mod roundtrip;
pub(crate) mod scalar;
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod weights512;

use quant::{f16_to_f32, quantize_row, Blocks3, Rotation};
pub(crate) use quant::{KBLOCK, VBLOCK};
#[cfg(all(target_arch = "x86_64", not(miri)))]
use rot512::Rot512;
pub use roundtrip::roundtrip;

/// Where there is no AVX-512 rotation (other targets, Miri): never made, so the callers need
/// no `cfg` of their own.
#[cfg(not(all(target_arch = "x86_64", not(miri))))]
#[derive(Clone, Copy)]
enum Rot512 {}

#[cfg(not(all(target_arch = "x86_64", not(miri))))]
impl Rot512 {
    fn new(_: usize) -> Option<Self> {
        None
    }

    fn q_row(self, _: &[f32], _: Option<&[f32]>, _: &[f32], _: &mut [i16]) -> Option<(f32, i32)> {
        match self {}
    }

    fn out_row(self, _: &[f32], _: f32, _: f32, _: &[f32], _: &mut [f32]) {
        match self {}
    }
}

/// Bytes every code buffer keeps readable after its last block (K and V): the SIMD kernels
/// load whole vectors that may reach past a block's last chunk.
pub(crate) const ROW_SLACK: usize = 16;

/// Tokens a block of the weighted V sum: the weights of each block are quantized to int8 with
/// one f32 factor (`docs/FORMATS.md` §8). The C kernels' `BITNET_KV_WBLOCK` (kernels.h).
pub(crate) const WBLOCK: usize = 64;

/// The largest `head_dim`: the int32 dot products of int8 q with 8-bit sink codes stay exact
/// (`128 · 255 · 65536 < 2^31`).
pub const MAX_HEAD_DIM: usize = 65536;

/// The KV cache of one attention layer: 3-bit codes (8-bit for the first `n_sink` tokens),
/// append-only up to a fixed capacity.
///
/// Any number of threads may read a cache at once (`attend`, `scores`, ... take `&self`);
/// appending needs `&mut self`. The reading calls keep their working buffers per thread between
/// calls (up to 8 MiB a thread; they grow with the heads and the positions of a call), so that
/// repeated calls allocate nothing.
#[derive(Clone, Debug)]
pub struct KvCache {
    n_kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    n_sink: usize,
    len: usize,
    /// 3-byte groups per head row: `ceil(head_dim / 8)`.
    groups: usize,
    rot: Rotation,
    /// Per KV head and channel, the factor K is divided by before rotation (q is multiplied by
    /// it): `n_kv_heads × head_dim`, set by the first append ([`channel_scales`]), empty before.
    kscale: Vec<f32>,
    /// 3-bit K codes per head in blocks of [`KBLOCK`] positions (`docs/FORMATS.md` §8:
    /// position `t - n_sink` in block `(t - n_sink) / 16`, slot `(t - n_sink) % 16`),
    /// `48 * groups` bytes each, the last block's unfilled slots code 0, then [`ROW_SLACK`]
    /// zeros. Token-major within a block, so the dot kernels keep one token per int32 lane.
    k3: Vec<Vec<u8>>,
    /// 3-bit V codes per head in blocks of [`VBLOCK`] positions (`docs/FORMATS.md` §8:
    /// position `t - n_sink` in block `(t - n_sink) / 4`, slot `(t - n_sink) % 4`),
    /// [`Blocks3::v`]'s bytes each, the last block's unfilled slots code 0, then [`ROW_SLACK`]
    /// zeros. The four positions interleaved per channel, so the V kernels need no shuffle to
    /// put one channel's four codes in an int32 lane.
    v3: Vec<Vec<u8>>,
    /// fp16 `(min, step)` of each 3-bit row, `[head][token - n_sink]`.
    ks3: Vec<Vec<[u16; 2]>>,
    vs3: Vec<Vec<[u16; 2]>>,
    /// 8-bit rows of the sink tokens, `[token][head]`, `head_dim` bytes each.
    k8: Vec<u8>,
    v8: Vec<u8>,
    ks8: Vec<[u16; 2]>,
    vs8: Vec<[u16; 2]>,
}

/// q rotated and quantized, per query head: int16 values padded to `qs`, their sum and scale.
#[derive(Default)]
struct QuantQ {
    q: Vec<i16>,
    qs: usize,
    sum: Vec<i32>,
    /// `a / 127 / sqrt(head_dim)`: turns an integer score into `q·k / sqrt(head_dim)`.
    factor: Vec<f32>,
}

fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

fn first_non_finite(x: &[f32], what: &'static str) -> Result<()> {
    if all_finite(x) {
        return Ok(());
    }
    match x.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite { what, index }),
        None => Ok(()),
    }
}

impl KvCache {
    /// An empty cache for `n_kv_heads` heads of `head_dim` values (1 to [`MAX_HEAD_DIM`]),
    /// holding up to `capacity` tokens, the first `n_sink` of them at 8 bits.
    pub fn new(n_kv_heads: usize, head_dim: usize, capacity: usize, n_sink: usize) -> Result<Self> {
        if n_kv_heads == 0 || head_dim == 0 || capacity == 0 {
            return Err(Error::InvalidShape(format!(
                "n_kv_heads = {n_kv_heads}, head_dim = {head_dim}, capacity = {capacity}: each must be at least 1"
            )));
        }
        if head_dim > MAX_HEAD_DIM {
            return Err(Error::InvalidShape(format!(
                "head_dim = {head_dim} is above the maximum {MAX_HEAD_DIM}"
            )));
        }
        let groups = head_dim.div_ceil(8);
        // The largest buffer a full cache needs must be addressable (K and V: whole blocks;
        // a V position takes at most 6 · ceil(groups / 2) bytes).
        round_up(capacity.min(usize::MAX - KBLOCK), KBLOCK)
            .checked_mul(n_kv_heads)
            .and_then(|r| r.checked_mul(head_dim.max(Blocks3::v(groups).bytes / VBLOCK)))
            .filter(|&b| b <= isize::MAX as usize / 2)
            .ok_or_else(|| {
                Error::InvalidShape(format!(
                    "capacity = {capacity} tokens of {n_kv_heads} x {head_dim} is too large"
                ))
            })?;
        Ok(KvCache {
            n_kv_heads,
            head_dim,
            capacity,
            n_sink,
            len: 0,
            groups,
            rot: Rotation::new(head_dim),
            kscale: Vec::new(),
            k3: vec![vec![0; ROW_SLACK]; n_kv_heads],
            v3: vec![vec![0; ROW_SLACK]; n_kv_heads],
            ks3: vec![Vec::new(); n_kv_heads],
            vs3: vec![Vec::new(); n_kv_heads],
            k8: Vec::new(),
            v8: Vec::new(),
            ks8: Vec::new(),
            vs8: Vec::new(),
        })
    }

    /// Tokens appended so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most tokens the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// KV heads.
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }

    /// Values per head vector.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Tokens stored at 8 bits (the first ones appended).
    pub fn n_sink(&self) -> usize {
        self.n_sink
    }

    /// Bytes the appended tokens occupy: codes and fp16 scales of K and V (per token and head
    /// `2 · (3 · ceil(head_dim / 8) + 4)` bytes, `2 · (head_dim + 4)` for a sink token; the
    /// 3-bit codes counted as allocated: K in whole blocks of 16 positions, V in whole blocks
    /// of 4 positions with the channels padded to a multiple of 16), plus the f32 channel
    /// factors of K (`4 · n_kv_heads · head_dim` once anything is appended).
    pub fn bytes(&self) -> usize {
        let rows3: usize = self.ks3.iter().map(Vec::len).sum();
        let (k, v) = (self.blocks3(false), self.blocks3(true));
        let codes3: usize = (self.ks3.iter().map(|r| k.bytes_of(r.len())))
            .chain(self.vs3.iter().map(|r| v.bytes_of(r.len())))
            .sum();
        let rows8 = self.ks8.len();
        rows3 * 8 + codes3 + 2 * rows8 * (self.head_dim + 4) + 4 * self.kscale.len()
    }

    fn row_len(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// The block layout of the 3-bit K (`is_v` false) or V codes.
    fn blocks3(&self, is_v: bool) -> Blocks3 {
        if is_v {
            Blocks3::v(self.groups)
        } else {
            Blocks3::k(self.groups)
        }
    }

    /// Appends `n_tokens` tokens: `k` and `v` each hold `n_tokens × n_kv_heads × head_dim`
    /// f32 (token-major, then head). On any error nothing is appended: a NaN or infinity
    /// (`NonFinite`), a rotated value outside the fp16 range (`InvalidData`), wrong lengths,
    /// or more tokens than the capacity leaves (`InvalidShape`).
    pub fn append(&mut self, k: &[f32], v: &[f32], n_tokens: usize) -> Result<()> {
        let need = n_tokens
            .checked_mul(self.row_len())
            .ok_or_else(|| Error::InvalidShape(format!("n_tokens = {n_tokens} overflows")))?;
        check_len("k", need, k.len())?;
        check_len("v", need, v.len())?;
        if n_tokens > self.capacity - self.len {
            return Err(Error::InvalidShape(format!(
                "appending {n_tokens} tokens to {} exceeds the capacity {}",
                self.len, self.capacity
            )));
        }
        first_non_finite(k, "k")?;
        first_non_finite(v, "v")?;
        // Quantize everything first, so that a failure leaves the cache unchanged.
        let (d, g) = (self.head_dim, self.groups);
        let kscale = if self.kscale.is_empty() && n_tokens > 0 {
            channel_scales(k, self.n_kv_heads, d)
        } else {
            self.kscale.clone()
        };
        let mut new = Staged::new(self.n_kv_heads);
        let mut y = vec![0.0f32; d];
        let mut codes = vec![0u8; 8 * g];
        for t in 0..n_tokens {
            let sink = self.len + t < self.n_sink;
            for h in 0..self.n_kv_heads {
                for (src, is_v) in [(k, false), (v, true)] {
                    let off = (t * self.n_kv_heads + h) * d;
                    y.copy_from_slice(&src[off..off + d]);
                    let ks = (!is_v).then(|| &kscale[h * d..(h + 1) * d]);
                    self.rot.rotate_in(&mut y, ks);
                    if sink {
                        let (bytes, sc) = if is_v {
                            (&mut new.v8, &mut new.vs8)
                        } else {
                            (&mut new.k8, &mut new.ks8)
                        };
                        let start = bytes.len();
                        bytes.resize(start + d, 0);
                        sc.push(pair(quantize_row(&y, 255, &mut bytes[start..])?));
                    } else {
                        codes.fill(0);
                        let sc = quantize_row(&y, 7, &mut codes[..d])?;
                        // K and V are packed into their blocks at commit (which cannot fail).
                        let (c3, s3) = if is_v {
                            (&mut new.v3[h], &mut new.vs3[h])
                        } else {
                            (&mut new.k3[h], &mut new.ks3[h])
                        };
                        c3.extend_from_slice(&codes);
                        s3.push(pair(sc));
                    }
                }
            }
        }
        self.kscale = kscale;
        self.commit(new, n_tokens);
        Ok(())
    }

    fn commit(&mut self, s: Staged, n_tokens: usize) {
        // Each new position's codes into its slot, the blocks grown (zeroed) as needed.
        let row = 8 * self.groups;
        let (k, v) = (self.blocks3(false), self.blocks3(true));
        for (bufs, adds, olds, lay) in [
            (&mut self.k3, s.k3, &self.ks3, k),
            (&mut self.v3, s.v3, &self.vs3, v),
        ] {
            for ((buf, add), old) in bufs.iter_mut().zip(adds).zip(olds) {
                let n3 = old.len();
                buf.resize(lay.bytes_of(n3 + add.len() / row) + ROW_SLACK, 0);
                for (i, codes) in (n3..).zip(add.chunks_exact(row)) {
                    lay.pack(codes, i % lay.per, &mut buf[lay.block(i)]);
                }
            }
        }
        for (scs, adds) in [(&mut self.ks3, s.ks3), (&mut self.vs3, s.vs3)] {
            scs.iter_mut()
                .zip(adds)
                .for_each(|(sc, add)| sc.extend(add));
        }
        self.k8.extend(s.k8);
        self.v8.extend(s.v8);
        self.ks8.extend(s.ks8);
        self.vs8.extend(s.vs8);
        self.len += n_tokens;
    }

    fn check_pos(&self, pos: usize) -> Result<()> {
        if pos >= self.len {
            return Err(Error::InvalidShape(format!(
                "position {pos} is not in the cache ({} tokens appended)",
                self.len
            )));
        }
        Ok(())
    }

    /// Dequantizes token `pos` into `k` and `v` (`n_kv_heads × head_dim` each), in the
    /// caller's space (rotation undone).
    pub fn dequantize(&self, pos: usize, k: &mut [f32], v: &mut [f32]) -> Result<()> {
        self.check_pos(pos)?;
        check_len("k", self.row_len(), k.len())?;
        check_len("v", self.row_len(), v.len())?;
        let d = self.head_dim;
        for h in 0..self.n_kv_heads {
            for (out, is_v) in [(&mut *k, false), (&mut *v, true)] {
                let o = &mut out[h * d..(h + 1) * d];
                let (m, s) = self.scale(pos, h, is_v);
                for (j, x) in o.iter_mut().enumerate() {
                    *x = m + s * self.code(pos, h, is_v, j) as f32;
                }
                let ks = (!is_v).then(|| &self.kscale[h * d..(h + 1) * d]);
                self.rot.rotate_out(o, ks);
            }
        }
        Ok(())
    }

    /// `(min, step)` of token `t`, head `h`, as f32.
    fn scale(&self, t: usize, h: usize, is_v: bool) -> (f32, f32) {
        let p = if t < self.n_sink {
            (if is_v { &self.vs8 } else { &self.ks8 })[t * self.n_kv_heads + h]
        } else {
            (if is_v { &self.vs3 } else { &self.ks3 })[h][t - self.n_sink]
        };
        (f16_to_f32(p[0]), f16_to_f32(p[1]))
    }

    fn code(&self, t: usize, h: usize, is_v: bool, j: usize) -> u32 {
        if t < self.n_sink {
            let b = if is_v { &self.v8 } else { &self.k8 };
            b[(t * self.n_kv_heads + h) * self.head_dim + j] as u32
        } else {
            let (i, lay) = (t - self.n_sink, self.blocks3(is_v));
            let buf = if is_v { &self.v3[h] } else { &self.k3[h] };
            lay.code(&buf[lay.block(i)], i % lay.per, j) as u32
        }
    }

    fn check_heads(&self, n_heads: usize) -> Result<usize> {
        if n_heads == 0 || !n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(Error::InvalidShape(format!(
                "n_heads = {n_heads} is not a positive multiple of n_kv_heads = {}",
                self.n_kv_heads
            )));
        }
        // Every buffer length below is a multiple of n_heads × head_dim or of
        // n_heads × len; both must fit.
        n_heads
            .checked_mul(
                self.head_dim
                    .max(self.len)
                    .max(8 * round_up(self.groups, 8)),
            )
            .ok_or_else(|| Error::InvalidShape(format!("n_heads = {n_heads} overflows")))?;
        Ok(n_heads / self.n_kv_heads)
    }

    fn check_range(&self, range: &Range<usize>) -> Result<()> {
        if range.start > range.end || range.end > self.len {
            return Err(Error::InvalidShape(format!(
                "positions {}..{} are not within the {} appended",
                range.start, range.end, self.len
            )));
        }
        Ok(())
    }

    /// The checks of the split calls: the head count, the range, the lengths of the input and
    /// the output (one per query head and dimension for the one, one per query head and
    /// position for the other: `input_per_head` says which is the input), a finite input.
    fn check_split(
        &self,
        n_heads: usize,
        range: &Range<usize>,
        (in_name, input): (&'static str, &[f32]),
        (out_name, out_len): (&'static str, usize),
        input_per_head: bool,
    ) -> Result<()> {
        self.check_heads(n_heads)?;
        self.check_range(range)?;
        let (per_head, per_pos) = (n_heads * self.head_dim, n_heads * range.len());
        let (want_in, want_out) = if input_per_head {
            (per_head, per_pos)
        } else {
            (per_pos, per_head)
        };
        check_len(in_name, want_in, input.len())?;
        check_len(out_name, want_out, out_len)?;
        first_non_finite(input, in_name)
    }

    /// q rotated and quantized ([`KvCache::quantize_q_into`]) into a new [`QuantQ`].
    #[cfg(test)]
    fn quantize_q(&self, q: &[f32], n_heads: usize) -> Result<QuantQ> {
        let mut out = QuantQ::default();
        self.quantize_q_into(q, n_heads, &mut out, &mut Vec::new())?;
        Ok(out)
    }

    /// Each query head of `q` times its KV head's channel factors, rotated and quantized
    /// ([`quantize_q_row`]) into `out`, whose buffers are reused (`y`: scratch). With AVX-512
    /// and a `head_dim` it takes, in registers ([`Rot512`]): the same bits.
    fn quantize_q_into(
        &self,
        q: &[f32],
        n_heads: usize,
        out: &mut QuantQ,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        let d = self.head_dim;
        let qs = 8 * round_up(self.groups, 8);
        out.qs = qs;
        out.q.resize(n_heads * qs, 0);
        out.sum.resize(n_heads, 0);
        out.factor.resize(n_heads, 0.0);
        let fast = Rot512::new(d);
        let inv_sqrt_d = 1.0 / (d as f32).sqrt();
        let ratio = n_heads / self.n_kv_heads;
        for h in 0..n_heads {
            let qh = &q[h * d..(h + 1) * d];
            let ks = self.kscale.get((h / ratio) * d..(h / ratio + 1) * d);
            let (row, pad) = out.q[h * qs..(h + 1) * qs].split_at_mut(d);
            pad.fill(0);
            let r = match fast {
                Some(f) => f.q_row(qh, ks, self.rot.signs(), row),
                None => {
                    self.rotate_q(qh, ks, y);
                    quantize_q_row(y, row)
                }
            };
            let (a, sum) = match r {
                Some(r) => r,
                None => {
                    // Not finite after the factors and the rotation: the activations' error.
                    self.rotate_q(qh, ks, y);
                    (crate::quant::quantize_activations(y, &mut vec![0; d])?, 0)
                }
            };
            out.sum[h] = sum;
            out.factor[h] = a / 127.0 * inv_sqrt_d;
        }
        Ok(())
    }

    /// `y = R (q ∘ ks)`: one query head times its channel factors (none before the first
    /// append), rotated.
    fn rotate_q(&self, q: &[f32], ks: Option<&[f32]>, y: &mut Vec<f32>) {
        y.clear();
        y.extend_from_slice(q);
        if let Some(s) = ks {
            y.iter_mut().zip(s).for_each(|(x, s)| *x *= s);
        }
        self.rot.forward(y);
    }

    /// Scores `q·k_t / sqrt(head_dim)` of every query head for the positions `range`:
    /// `q` is `n_heads × head_dim` (`n_heads` a multiple of `n_kv_heads`, query head `h`
    /// reading KV head `h / (n_heads / n_kv_heads)`), `out[h · range.len() + (t − range.start)]`.
    /// `out` is written only on success.
    pub fn scores(
        &self,
        q: &[f32],
        n_heads: usize,
        range: Range<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        self.scores_with(kernels::active()?, q, n_heads, range, out)
    }

    /// [`KvCache::scores`] on the kernels of `set`.
    pub fn scores_with(
        &self,
        set: &KernelSet,
        q: &[f32],
        n_heads: usize,
        range: Range<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        self.check_split(n_heads, &range, ("q", q), ("scores", out.len()), true)?;
        let ker = set.kv_kernels().1;
        with_scratch(|w| {
            self.quantize_q_into(q, n_heads, &mut w.qq, &mut w.y)?;
            let ratio = n_heads / self.n_kv_heads;
            let n = range.len();
            w.mx.clear();
            w.mx.resize(ratio, f32::NEG_INFINITY);
            for g in 0..self.n_kv_heads {
                let o = &mut out[g * ratio * n..][..ratio * n];
                let (qq, dots, mx) = (&w.qq, &mut w.dots, &mut w.mx);
                self.scores_group(ker, qq, g, range.clone(), o, dots, mx, Plan::NONE);
            }
            Ok(())
        })
    }

    /// The scores of KV head `g`'s query heads for the positions `range`: head `r` of the
    /// group at `out[r · range.len() ..]`; each head's largest score taken into `mx[r]`.
    /// `dots` is scratch; `next`: what the dot kernel (`next.kernel`), then the scores' pass
    /// (`next.rust`) prefetch, the bytes the caller reads next (hints only). Where the set has
    /// the dot and scores fused ([`KvKernels::scores`]), that one kernel does both, and
    /// prefetches `next.kernel` and `next.rust[0]` (the other two must be empty).
    #[allow(clippy::too_many_arguments)]
    fn scores_group(
        &self,
        ker: KvKernels,
        qq: &QuantQ,
        g: usize,
        range: Range<usize>,
        out: &mut [f32],
        dots: &mut Vec<i32>,
        mx: &mut [f32],
        next: Plan,
    ) {
        let ratio = mx.len();
        let (n, d) = (range.len(), self.head_dim);
        // The sink positions: 8-bit codes, here in Rust (a handful of tokens).
        let sink_end = range.end.min(self.n_sink).max(range.start);
        let hs = g * ratio..(g + 1) * ratio;
        let q = &qq.q[hs.start * qq.qs..hs.end * qq.qs];
        let (sum, factor) = (&qq.sum[hs.clone()], &qq.factor[hs.clone()]);
        for t in range.start..sink_end {
            let b = &self.k8[(t * self.n_kv_heads + g) * d..][..d];
            let (m, s) = self.scale(t, g, false);
            let o = &mut out[t - range.start..];
            sink_scores(b, m, s, q, qq.qs, sum, factor, o, n, mx);
        }
        let (t0, n3) = (sink_end, range.end - sink_end);
        if n3 == 0 {
            return;
        }
        let ks = &self.ks3[g][t0 - self.n_sink..][..n3];
        let o3 = &mut out[t0 - range.start..];
        if let Some(fused) = ker.scores {
            // The fused kernel also does the scores' pass, so it prefetches that pass's
            // regions too (prefetch_plan gives it at most one).
            debug_assert!(next.rust[1..].iter().all(|r| r.is_empty()));
            // SAFETY: as for the dot below; ks holds the n3 scale pairs of the run, qq.sum and
            // qq.factor the ratio values of heads g·ratio..; o3 holds (ratio - 1)·n + n3
            // values from index 0 (head r's run at r·n), mx ratio values (none NaN: -inf, or
            // scores).
            unsafe {
                fused(
                    self.k3[g].as_ptr(),
                    t0 - self.n_sink,
                    n3,
                    self.groups,
                    qq.q.as_ptr().add(g * ratio * qq.qs),
                    qq.qs,
                    ratio,
                    ks.as_ptr().cast(),
                    qq.sum[hs.clone()].as_ptr(),
                    qq.factor[hs].as_ptr(),
                    o3.as_mut_ptr(),
                    n,
                    mx.as_mut_ptr(),
                    next.kernel.as_ptr(),
                    next.kernel.len(),
                    next.rust[0].as_ptr(),
                    next.rust[0].len(),
                )
            };
            return;
        }
        dots.resize(ratio * n3, 0);
        // SAFETY: k3[g] holds the K blocks of head g's positions 0.. up to the one of position
        // range.end - 1 - n_sink, followed by ROW_SLACK readable bytes; the q vectors of heads
        // g·ratio.. are qs long and zero past head_dim (quantize_q); dots holds ratio × n3
        // values.
        unsafe {
            (ker.dot)(
                self.k3[g].as_ptr(),
                t0 - self.n_sink,
                n3,
                self.groups,
                qq.q.as_ptr().add(g * ratio * qq.qs),
                qq.qs,
                ratio,
                dots.as_mut_ptr(),
                next.kernel.as_ptr(),
                next.kernel.len(),
            )
        };
        scores3(
            o3,
            n,
            &dots[..ratio * n3],
            ks,
            &qq.sum[hs.clone()],
            &qq.factor[hs],
            mx,
            &mut next.rust(n3.div_ceil(WBLOCK)),
        );
    }

    /// The weighted sums `out_h = sum_t weights[h · range.len() + (t − range.start)] · v_t` of
    /// the dequantized V rows over `range`, `out` being `n_heads × head_dim` in the caller's
    /// space. With softmax weights this is the second half of attention; split ranges add up.
    /// `out` is written only on success.
    pub fn weighted_v(
        &self,
        weights: &[f32],
        n_heads: usize,
        range: Range<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        self.weighted_v_with(kernels::active()?, weights, n_heads, range, out)
    }

    /// [`KvCache::weighted_v`] on the kernels of `set`.
    pub fn weighted_v_with(
        &self,
        set: &KernelSet,
        weights: &[f32],
        n_heads: usize,
        range: Range<usize>,
        out: &mut [f32],
    ) -> Result<()> {
        self.check_split(
            n_heads,
            &range,
            ("weights", weights),
            ("out", out.len()),
            false,
        )?;
        // out_h = R^T (sum_t w · v_t): rotated sums, then rotated back.
        let ker = set.kv_kernels().1;
        with_scratch(|w| {
            let ratio = n_heads / self.n_kv_heads;
            let n = range.len();
            let s = &mut w.s;
            s.reset(self, n_heads);
            for g in 0..self.n_kv_heads {
                let wg = &weights[g * ratio * n..][..ratio * n];
                self.wsum_group(ker, wg, g, range.clone(), None, s, Plan::NONE);
            }
            self.finish(s, false, out);
        });
        Ok(())
    }

    /// KV head `g`'s query heads' part of the V sum over `range` into `s`: the weights of head
    /// `r` of the group at `w[r · range.len() ..]`; with `mx`, they are scores and the weights
    /// their softmax exponentials `E(w − mx[r])`, whose sums are added to `s.z`
    /// (`docs/FORMATS.md` §8). `next`: what the weights' pass (`next.rust`), then the V kernel
    /// (`next.kernel`) prefetch.
    #[allow(clippy::too_many_arguments)]
    fn wsum_group(
        &self,
        ker: KvKernels,
        w: &[f32],
        g: usize,
        range: Range<usize>,
        mx: Option<&[f32]>,
        s: &mut Sums,
        next: Plan,
    ) {
        let (d, n, accs) = (self.head_dim, range.len(), s.accs);
        let ratio = s.base.len() / self.n_kv_heads;
        let hs = g * ratio..(g + 1) * ratio;
        let acc = &mut s.acc[hs.start * accs..hs.end * accs];
        let (base, z) = (&mut s.base[hs.clone()], &mut s.z[hs]);
        let sink_end = range.end.min(self.n_sink).max(range.start);
        for t in range.start..sink_end {
            let (m, sc) = self.scale(t, g, true);
            let b = &self.v8[(t * self.n_kv_heads + g) * d..][..d];
            let wt = &w[t - range.start..];
            sink_v(acc, accs, b, m, sc, wt, n, mx, base, z);
        }
        let (t0, n3) = (sink_end, range.end - sink_end);
        if n3 == 0 {
            return;
        }
        let nb = n3.div_ceil(WBLOCK);
        s.w8.resize(ratio * WBLOCK * nb, 0);
        s.fs.resize(ratio * nb, 0.0);
        v_weights3(VWeights {
            w8: &mut s.w8,
            fs: &mut s.fs,
            base,
            z,
            w: &w[t0 - range.start..],
            ws: n,
            vs: &self.vs3[g][t0 - self.n_sink..][..n3],
            mx,
            ahead: &mut next.rust(nb),
        });
        // SAFETY: v3[g] holds the V blocks of head g's positions 0.. up to the one of position
        // range.end - 1 - n_sink, followed by ROW_SLACK readable bytes; w8 holds ratio runs of
        // WBLOCK · nb weights, zero past n3 (v_weights3), fs ratio × nb factors; acc holds the
        // ratio vectors of heads g·ratio.., accs long each.
        unsafe {
            (ker.wsum)(
                self.v3[g].as_ptr(),
                t0 - self.n_sink,
                n3,
                self.groups,
                s.w8.as_ptr(),
                s.fs.as_ptr(),
                ratio,
                acc.as_mut_ptr(),
                accs,
                next.kernel.as_ptr(),
                next.kernel.len(),
            )
        };
    }

    /// The bytes of head `g`'s 3-bit K blocks (`is_v` false) or V blocks (true), and of their
    /// scales, that a pass over the positions `range` reads (empty when it has no 3-bit
    /// position): what the passes are told to prefetch.
    fn stream3(&self, g: usize, range: &Range<usize>, is_v: bool) -> (&[u8], &[u8]) {
        let t0 = range.end.min(self.n_sink).max(range.start);
        if t0 >= range.end {
            return (&[], &[]);
        }
        let (i, n3) = (t0 - self.n_sink, range.end - t0);
        let (codes, scales) = if is_v {
            (&self.v3[g], &self.vs3[g])
        } else {
            (&self.k3[g], &self.ks3[g])
        };
        let span = self.blocks3(is_v).span(i, n3);
        (&codes[span], bytemuck::cast_slice(&scales[i..i + n3]))
    }

    /// What the two pairs of passes of KV head `g` in `attend` over the positions `0..n`
    /// prefetch (into L2, spread over their work: `docs/kernels.md`), the bytes read next in
    /// the order they are read (head 0's K, read first, streams as it is read).
    ///
    /// With the dot and scores fused (`fused`), the three passes of a head prefetch, at one
    /// steady rate, the stream that follows the head's K: its V codes, then the next head's K
    /// codes, each pass a share of it in proportion to its time ([`SHARE_SCORES`],
    /// [`SHARE_WEIGHTS`]); the small scale arrays go with the pass before their reader (the V
    /// scales with the scores, the next K scales with the weights). So the memory is busy
    /// through the weights' pass too, and no pass has to fetch its whole next stream in its
    /// own time (the scores' pass is shorter than the V codes take at the streaming rate).
    ///
    /// Otherwise the dot kernel prefetches the first [`V_DOT`] percent of the head's V codes,
    /// the scores' pass the rest and the V scales; the weights' pass the next head's K
    /// scales, the V kernel its K codes.
    fn prefetch_plan(&self, g: usize, n: usize, fused: bool) -> (Plan<'_>, Plan<'_>) {
        let (v, vs) = self.stream3(g, &(0..n), true);
        let (k, ks) = if g + 1 < self.n_kv_heads {
            self.stream3(g + 1, &(0..n), false)
        } else {
            (&[][..], &[][..])
        };
        if fused {
            // The window [0, total) of the stream v then k, cut by the passes' shares; the
            // last head has no next K, and its two passes split its V alone.
            let total = v.len() + k.len();
            let (s, w) = (SHARE_SCORES, SHARE_SCORES + SHARE_WEIGHTS);
            let den = if k.is_empty() { w } else { 100 };
            let (a, b) = (total * s / den, total * w / den);
            let scores = ahead::window(v, k, 0, a).0;
            let (w_v, w_k) = ahead::window(v, k, a, b);
            let (_, rest_k) = ahead::window(v, k, b, total);
            return (
                Plan {
                    kernel: scores,
                    rust: [vs, &[], &[]],
                },
                Plan {
                    kernel: rest_k,
                    rust: [w_v, w_k, ks],
                },
            );
        }
        let (v_dot, v_scores) = ahead::split(v, V_DOT, 100);
        let scores = Plan {
            kernel: v_dot,
            rust: [v_scores, vs, &[]],
        };
        (
            scores,
            Plan {
                kernel: k,
                rust: [ks, &[], &[]],
            },
        )
    }

    /// `out_h = R^T (acc_h + base_h)`, divided by `z_h` first when `divide`.
    /// With AVX-512 and a `head_dim` it takes, in registers ([`Rot512`]): the same bits.
    fn finish(&self, s: &Sums, divide: bool, out: &mut [f32]) {
        let d = self.head_dim;
        let fast = Rot512::new(d);
        for (h, o) in out.chunks_exact_mut(d).enumerate() {
            let inv = if divide { 1.0 / s.z[h] } else { 1.0 };
            if let Some(f) = fast {
                f.out_row(
                    &s.acc[h * s.accs..][..d],
                    s.base[h],
                    inv,
                    self.rot.signs(),
                    o,
                );
                continue;
            }
            for (x, &a) in o.iter_mut().zip(&s.acc[h * s.accs..]) {
                *x = (a + s.base[h]) * inv;
            }
            self.rot.inverse(o);
        }
    }

    /// Decode attention for one query token: `out_h = sum_t softmax_t(q_h·k_t / sqrt(head_dim))
    /// · v_t` over every appended position, for `n_heads` query heads (a multiple of
    /// `n_kv_heads`; `q` and `out` are `n_heads × head_dim`). An empty cache is an error.
    /// `out` is written only on success (every check comes first).
    pub fn attend(&self, q: &[f32], n_heads: usize, out: &mut [f32]) -> Result<()> {
        self.attend_with(kernels::active()?, q, n_heads, out)
    }

    /// [`KvCache::attend`] on the kernels of `set`.
    pub fn attend_with(
        &self,
        set: &KernelSet,
        q: &[f32],
        n_heads: usize,
        out: &mut [f32],
    ) -> Result<()> {
        self.check_heads(n_heads)?;
        check_len("q", n_heads * self.head_dim, q.len())?;
        check_len("out", n_heads * self.head_dim, out.len())?;
        if self.len == 0 {
            return Err(Error::InvalidShape("attention over an empty cache".into()));
        }
        first_non_finite(q, "q")?;
        let ker = set.kv_kernels().1;
        with_scratch(|w| {
            self.quantize_q_into(q, n_heads, &mut w.qq, &mut w.y)?;
            let (n, ratio) = (self.len, n_heads / self.n_kv_heads);
            // Per KV head: its query heads' scores and maxima, then the exponentials, their
            // sums and the int8 V weights a block at a time, then the V sum (docs/FORMATS.md
            // §8), each pass prefetching its share of what comes next (prefetch_plan). Every
            // score is written before it is read: the buffer need not be cleared.
            w.s.reset(self, n_heads);
            w.sc.resize(ratio * n, 0.0);
            w.mx.resize(ratio, 0.0);
            let (qq, s, sc, dots, mx) = (
                &w.qq,
                &mut w.s,
                &mut w.sc[..ratio * n],
                &mut w.dots,
                &mut w.mx[..ratio],
            );
            for g in 0..self.n_kv_heads {
                mx.fill(f32::NEG_INFINITY);
                let (p, q) = self.prefetch_plan(g, n, ker.scores.is_some());
                self.scores_group(ker, qq, g, 0..n, sc, dots, mx, p);
                self.wsum_group(ker, sc, g, 0..n, Some(mx), s, q);
            }
            self.finish(s, true, out);
            Ok(())
        })
    }
}

/// What a reading call ([`KvCache::attend`], `scores`, `weighted_v`) works in besides its
/// arguments: kept per thread ([`with_scratch`]), so that once a thread has made a call of a
/// size, its calls of that size or smaller allocate nothing.
#[derive(Default)]
struct Scratch {
    qq: QuantQ,
    /// One query head rotated, where [`Rot512`] does not take it.
    y: Vec<f32>,
    s: Sums,
    /// `attend`'s scores of one KV head's query heads, `ratio × len`; their dots and maxima.
    sc: Vec<f32>,
    dots: Vec<i32>,
    mx: Vec<f32>,
}

impl Scratch {
    /// The bytes its buffers hold.
    fn bytes(&self) -> usize {
        let (q, s) = (&self.qq, &self.s);
        2 * q.q.capacity()
            + 4 * (q.sum.capacity() + q.factor.capacity() + self.y.capacity())
            + 4 * (s.acc.capacity() + s.base.capacity() + s.z.capacity() + s.fs.capacity())
            + s.w8.capacity()
            + 4 * (self.sc.capacity() + self.dots.capacity() + self.mx.capacity())
    }
}

/// The most bytes a thread's [`Scratch`] keeps between calls: more (the scores of a very long
/// cache) is freed after the call.
const SCRATCH_KEEP: usize = 8 << 20;

/// Runs `f` on this thread's [`Scratch`] (a fresh one if it is in use or gone: a thread's
/// last destructors). The cache stays `Sync` and `&self`: no state is shared between threads,
/// and results never depend on what a buffer held before (every call sizes and fills what it
/// reads).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    }
    let mut f = Some(f);
    let done = SCRATCH.try_with(|cell| {
        let mut w = cell.try_borrow_mut().ok()?;
        let r = (f.take()?)(&mut w);
        if w.bytes() > SCRATCH_KEEP {
            *w = Scratch::default();
        }
        Some(r)
    });
    match (done, f) {
        (Ok(Some(r)), _) => r,
        (_, Some(f)) => f(&mut Scratch::default()),
        (_, None) => unreachable!("f runs once: it returned Some"),
    }
}

/// Query heads a KV head (the GQA ratio) whose per-head scratch the passes keep on the stack:
/// up to this many, a call allocates nothing for it ([`per_head`]).
const STACK_HEADS: usize = 8;

/// Per-head (or per-group) scratch of a pass, `len` entries: the first `len` of `stack`
/// (`STACK_HEADS` heads' worth, which the caller fills with the starting value) when they
/// fit, else `heap` made `len` copies of `stack[0]`.
fn per_head<'a, T: Clone, const N: usize>(
    stack: &'a mut [T; N],
    heap: &'a mut Vec<T>,
    len: usize,
) -> &'a mut [T] {
    if len <= N {
        &mut stack[..len]
    } else {
        heap.clear();
        heap.resize(len, stack[0].clone());
        heap
    }
}

wide_fn! {
    /// One sink position's scores for a KV head's query heads, from its 8-bit K codes `b` with
    /// scale `(m, s)`: head `r`'s (q at `q[r · qs ..]`, its sum and factor `sum[r]`, `f[r]`)
    /// into `o[r · os]`, and taken into its maximum `mx[r]`.
    #[allow(clippy::too_many_arguments)]
    fn sink_scores(
        b: &[u8],
        m: f32,
        s: f32,
        q: &[i16],
        qs: usize,
        sum: &[i32],
        f: &[f32],
        o: &mut [f32],
        os: usize,
        mx: &mut [f32],
    ) {
        for (r, mr) in mx.iter_mut().enumerate() {
            let qh = &q[r * qs..][..b.len()];
            let dot: i32 = b.iter().zip(qh).map(|(&c, &x)| c as i32 * x as i32).sum();
            let x = score(m, s, sum[r], dot, f[r]);
            o[r * os] = x;
            *mr = mr.max(x);
        }
    }
}

wide_fn! {
    /// One sink position's part of the V sum of a KV head's query heads (`acc`, `base`, `z`:
    /// theirs), from its 8-bit codes `b` with scale `(m, s)`: head `r`'s weight `w[r · ws]`, or
    /// with `mx` its exponential `E(w − mx[r])`, added to `z[r]`.
    #[allow(clippy::too_many_arguments)]
    fn sink_v(
        acc: &mut [f32],
        accs: usize,
        b: &[u8],
        m: f32,
        s: f32,
        w: &[f32],
        ws: usize,
        mx: Option<&[f32]>,
        base: &mut [f32],
        z: &mut [f32],
    ) {
        for r in 0..base.len() {
            let mut wt = w[r * ws];
            if let Some(mx) = mx {
                wt = exp_nonpositive(wt - mx[r]);
                z[r] += wt;
            }
            let ws = wt * s;
            for (a, &c) in acc[r * accs..][..b.len()].iter_mut().zip(b) {
                *a += ws * c as f32;
            }
            base[r] += wt * m;
        }
    }
}

/// The accumulators of a V sum over every query head, and scratch for the weights.
#[derive(Default)]
struct Sums {
    /// The rotated sums, `accs` per query head (`8 · round_up(groups, 8)`, what the kernels
    /// may write).
    acc: Vec<f32>,
    accs: usize,
    /// The constant term `C` of each head.
    base: Vec<f32>,
    /// The softmax sums `Z` (attention only).
    z: Vec<f32>,
    /// The int8 weights and their block factors of one KV head's query heads.
    w8: Vec<i8>,
    fs: Vec<f32>,
}

impl Sums {
    /// Zero sums for `n_heads` query heads of `c` (the weights' scratch is sized by its user).
    fn reset(&mut self, c: &KvCache, n_heads: usize) {
        self.accs = 8 * round_up(c.groups, 8);
        for (v, len) in [
            (&mut self.acc, n_heads * self.accs),
            (&mut self.base, n_heads),
            (&mut self.z, n_heads),
        ] {
            v.clear();
            v.resize(len, 0.0);
        }
    }
}

/// The channel factors of K, from the tokens of the first append (`k`: tokens × heads × d):
/// per head and channel `s_j = max(1, sqrt(a_j / mean(a)))`, `a_j = max_t |k_tj|`, 1 where
/// the mean is 0. Dividing K by `s` and multiplying q by it leaves `q·k` unchanged but takes
/// most of an outlier channel's weight off K, whose quantization error grows with `‖k‖`.
fn channel_scales(k: &[f32], n_kv_heads: usize, d: usize) -> Vec<f32> {
    let mut a = vec![0.0f32; n_kv_heads * d];
    for row in k.chunks_exact(n_kv_heads * d) {
        a.iter_mut()
            .zip(row)
            .for_each(|(a, &x)| *a = a.max(x.abs()));
    }
    for head in a.chunks_exact_mut(d) {
        let mean = head.iter().sum::<f32>() / d as f32;
        for x in head.iter_mut() {
            *x = if mean > 0.0 {
                (*x / mean).sqrt().max(1.0)
            } else {
                1.0
            };
        }
    }
    a
}

/// Softmax without the division, in place: `x_i <- E(x_i - max x)` (`E` the exponential of
/// `docs/FORMATS.md` §8), returning `Z = Σ x_i` summed in the 32 lanes of §8. The maximum is
/// subtracted first, so every exponent is `<= 0` and the largest term is exactly 1 (`Z >= 1`
/// for a non-empty `x`: no overflow, no division by zero). An engine with its own split-K
/// scheme, or a baseline, gets the exponentials of [`KvCache::attend`] (which sums its `Z`
/// sink positions first, §8); divide the weights (or the weighted sum) by `Z`.
pub fn softmax_exp(x: &mut [f32]) -> f32 {
    softmax_exp_wide(x)
}

wide_fn! {
    fn softmax_exp_wide(x: &mut [f32]) -> f32 {
        let mx = max_f32(x);
        // The exponentials and their sum in one pass, the order of §8: lane i mod 32 in order
        // (two 16-wide chains), the lanes 0 to 31, then the sum of the last n mod 32.
        let mut acc = [0.0f32; LANES];
        let mut c = x.chunks_exact_mut(LANES);
        for ch in &mut c {
            for l in 0..LANES {
                ch[l] = exp_nonpositive(ch[l] - mx);
                acc[l] += ch[l];
            }
        }
        let tail = c.into_remainder();
        tail.iter_mut().for_each(|v| *v = exp_nonpositive(*v - mx));
        acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
    }
}

/// The largest of the values' bits without their sign (0 for none): the integer order of those
/// bits is the order of `|x|`, and infinity and NaN lie above every finite value, so this one
/// integer maximum (which vectorizes, unlike a search that stops early) gives the absmax and
/// whether every value is finite.
#[inline(always)]
fn abs_bits_max(x: &[f32]) -> u32 {
    x.iter()
        .map(|v| v.to_bits() & 0x7fff_ffff)
        .fold(0, u32::max)
}

wide_fn! {
    /// No NaN or infinity in `x`.
    fn all_finite(x: &[f32]) -> bool {
        abs_bits_max(x) < f32::INFINITY.to_bits()
    }
}

wide_fn! {
    /// One rotated query head quantized as activations are (`docs/FORMATS.md` §1, the same
    /// values as [`crate::quant::quantize_activations`]), into `out` as int16: returns the
    /// absmax `a` and the sum of the values, or `None` when `y` holds a NaN or infinity.
    /// Vectorizes: the rounding adds 1.5 · 2^23 (half to even, |y_j · 127 / a| <= 128) and reads
    /// the integer from the low bits.
    fn quantize_q_row(y: &[f32], out: &mut [i16]) -> Option<(f32, i32)> {
        const ROUND: f32 = 12_582_912.0;
        // max |y_j| and whether all are finite, in one vectorized pass (abs_bits_max).
        let bits = abs_bits_max(y);
        if bits >= f32::INFINITY.to_bits() {
            return None;
        }
        let amax = f32::from_bits(bits);
        let s = 127.0f32 / amax.max(crate::quant::SCALE_FLOOR);
        let mut sum = 0i32;
        for (o, &v) in out.iter_mut().zip(y) {
            let i = ((v * s + ROUND).to_bits() as i32 - 0x4B40_0000).clamp(-128, 127);
            *o = i as i16;
            sum += i;
        }
        Some((amax.max(crate::quant::SCALE_FLOOR), sum))
    }
}

wide_fn! {
    /// The scores of one KV head's query heads at its 3-bit positions, a block of [`WBLOCK`]
    /// positions at a time (the block's K scales converted once for every head): head `r`'s
    /// scores `score(m_t, s_t, sum[r], dot, f[r])` at `o[r · os ..]` from its dots at
    /// `dots[r · n3 ..]`, its largest taken into `mx[r]`. `ahead` steps once per block (a
    /// prefetch of what comes next).
    #[allow(clippy::too_many_arguments)]
    fn scores3(
        o: &mut [f32],
        os: usize,
        dots: &[i32],
        ks: &[[u16; 2]],
        sum: &[i32],
        f: &[f32],
        mx: &mut [f32],
        ahead: &mut [Ahead; 3],
    ) {
        const L: usize = 16;
        let n3 = ks.len();
        // Each head's maximum as the largest order key (below), kept in 16 lanes (lane
        // t mod 16) while the scores are made and reduced once at the end: an integer maximum,
        // which does not depend on the order.
        let (mut stack, mut heap) = ([[0u32; L]; STACK_HEADS], Vec::new());
        let keys = per_head(&mut stack, &mut heap, mx.len());
        for (k, &m) in keys.iter_mut().zip(mx.iter()) {
            *k = [order_key(m); L];
        }
        let mut blocks = ScaleBlocks::new(ks);
        while let Some((b, k)) = blocks.advance() {
            ahead.iter_mut().for_each(Ahead::step);
            let (t, (ms, ss)) = (b * WBLOCK, blocks.get(b));
            for (r, kl) in keys.iter_mut().enumerate() {
                let (sum, f) = (sum[r], f[r]);
                let ob = &mut o[r * os + t..][..k];
                let db = &dots[r * n3 + t..][..k];
                if k == WBLOCK {
                    // A whole block: a fixed size, so the loop unrolls and has no tail.
                    score_run(&mut ob[..WBLOCK], &db[..WBLOCK], ms, ss, sum, f, kl);
                } else {
                    score_run(ob, db, ms, ss, sum, f, kl);
                }
            }
        }
        for (m, kl) in mx.iter_mut().zip(keys.iter()) {
            *m = from_order_key(kl.iter().copied().fold(0, u32::max));
        }
    }
}

/// The scores of one run of [`scores3`] (`o.len()` positions): `o_i = score(ms_i, ss_i, sum,
/// dots_i, f)`, their order keys' maximum taken into lane `i mod 16` of `keys`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lane l of position c + l: the index form is the layout
fn score_run(
    o: &mut [f32],
    dots: &[i32],
    ms: &[f32],
    ss: &[f32],
    sum: i32,
    f: f32,
    keys: &mut [u32; 16],
) {
    const L: usize = 16;
    // A local copy, so that the lanes stay in a register.
    let mut kl = *keys;
    let n = o.len();
    let full = n / L * L;
    for c in (0..full).step_by(L) {
        for l in 0..L {
            let i = c + l;
            let x = score(ms[i], ss[i], sum, dots[i], f);
            o[i] = x;
            kl[l] = kl[l].max(order_key(x));
        }
    }
    for i in full..n {
        let x = score(ms[i], ss[i], sum, dots[i], f);
        o[i] = x;
        kl[i - full] = kl[i - full].max(order_key(x));
    }
    *keys = kl;
}

/// The blocks of [`WBLOCK`] fp16 `(min, step)` pairs of `rows` as f32 (0 past the last
/// pair), in order: block `b + 1` is converted when block `b` is handed over, so that the
/// conversion's stores are long done when the block's loads come (a wide load of data just
/// stored in narrower pieces waits for the stores to complete). A loop, not a closure: a
/// closure would be compiled without the target features of the `wide_fn!` body around it.
struct ScaleBlocks<'a> {
    rows: &'a [[u16; 2]],
    /// `[slot][min or step]`: block `b` in slot `b mod 2`.
    buf: [[[f32; WBLOCK]; 2]; 2],
    /// The block [`ScaleBlocks::advance`] hands over next.
    next: usize,
}

impl<'a> ScaleBlocks<'a> {
    #[inline(always)]
    fn new(rows: &'a [[u16; 2]]) -> Self {
        let mut s = ScaleBlocks {
            rows,
            buf: [[[0.0; WBLOCK]; 2]; 2],
            next: 0,
        };
        s.convert(0);
        s
    }

    #[inline(always)]
    fn convert(&mut self, b: usize) {
        let r =
            &self.rows[(b * WBLOCK).min(self.rows.len())..self.rows.len().min((b + 1) * WBLOCK)];
        let [ms, ss] = &mut self.buf[b % 2];
        if r.len() < WBLOCK {
            ms.fill(0.0);
            ss.fill(0.0);
        }
        scales_f32(r, ms, ss);
    }

    /// The next block's index and length (`None` after the last), converting the one after.
    #[inline(always)]
    fn advance(&mut self) -> Option<(usize, usize)> {
        let (b, n) = (self.next, self.rows.len());
        if b * WBLOCK >= n {
            return None;
        }
        self.next += 1;
        if self.next * WBLOCK < n {
            self.convert(self.next);
        }
        Some((b, (n - b * WBLOCK).min(WBLOCK)))
    }

    /// The minima and steps of block `b`, the one `advance` handed over last.
    #[inline(always)]
    fn get(&self, b: usize) -> (&[f32; WBLOCK], &[f32; WBLOCK]) {
        let [ms, ss] = &self.buf[b % 2];
        (ms, ss)
    }
}

/// The f32 `(min, step)` of fp16 pairs (as many as `rows` holds).
#[inline(always)]
fn scales_f32(rows: &[[u16; 2]], ms: &mut [f32], ss: &mut [f32]) {
    // (Not under Miri, which does not run every intrinsic.)
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU has AVX2 and F16C.
        return unsafe { scales_f32_f16c(rows, ms, ss) };
    }
    scales_f32_plain(rows, ms, ss);
}

/// [`scales_f32`] without F16C.
#[inline(always)]
fn scales_f32_plain(rows: &[[u16; 2]], ms: &mut [f32], ss: &mut [f32]) {
    for ((p, m), s) in rows.iter().zip(ms.iter_mut()).zip(ss.iter_mut()) {
        *m = f16_finite_to_f32(p[0]);
        *s = f16_finite_to_f32(p[1]);
    }
}

/// [`scales_f32`] with F16C's `vcvtph2ps`, eight pairs at a time: the same values (the
/// conversion of a finite fp16 value is exact either way), but no multiply that a subnormal
/// fp16 value would turn into a slow microcode assist.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "avx2,f16c")]
fn scales_f32_f16c(rows: &[[u16; 2]], ms: &mut [f32], ss: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = rows.len().min(ms.len()).min(ss.len());
    let full = n / 8 * 8;
    for i in (0..full).step_by(8) {
        // SAFETY: pairs i .. i + 8 are in rows (4 bytes each, 32 in all), ms and ss hold
        // i + 8 values; unaligned loads and stores.
        unsafe {
            let x = _mm256_loadu_si256(rows.as_ptr().add(i).cast());
            // Minima in the low half of each 32-bit pair, steps in the high half: packed to
            // [m0..3 s0..3 | m4..7 s4..7], then the 64-bit quarters reordered to m0..7, s0..7.
            let lo = _mm256_and_si256(x, _mm256_set1_epi32(0xffff));
            let hi = _mm256_srli_epi32::<16>(x);
            let p = _mm256_permute4x64_epi64::<0xD8>(_mm256_packus_epi32(lo, hi));
            let m = _mm256_cvtph_ps(_mm256_castsi256_si128(p));
            let s = _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(p));
            _mm256_storeu_ps(ms.as_mut_ptr().add(i), m);
            _mm256_storeu_ps(ss.as_mut_ptr().add(i), s);
        }
    }
    scales_f32_plain(&rows[full..n], &mut ms[full..n], &mut ss[full..n]);
}

/// `max(m, x)` for non-NaN values: one `maxps`.
#[inline(always)]
fn big(m: f32, x: f32) -> f32 {
    if x > m {
        x
    } else {
        m
    }
}

/// A key whose unsigned order is the order of non-NaN f32 values (−0 just below +0): the bits
/// with the sign bit set for non-negative values, all bits flipped for negative ones.
#[inline(always)]
fn order_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The value of an [`order_key`].
#[inline(always)]
fn from_order_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// One query head's running sums in [`v_weights3`], across its blocks.
#[derive(Clone, Copy)]
struct Lanes {
    /// `Σ p_t` and `Σ p_t · m_t` in [`LANES`] lanes, and of the last `n mod 32` positions.
    z: [f32; LANES],
    b: [f32; LANES],
    zt: f32,
    bt: f32,
    /// The weights' rounding errors, in 16 lanes.
    e: [f32; 16],
}

impl Lanes {
    /// No term yet. Sums of no term start at -0.0, as `Iterator::sum` does: the tails' order
    /// is its.
    const EMPTY: Lanes = Lanes {
        z: [0.0; LANES],
        b: [0.0; LANES],
        zt: -0.0,
        bt: -0.0,
        e: [0.0; 16],
    };

    /// The lanes reduced in the orders of `docs/FORMATS.md` §8: adds `Σ p_t · m_t − 3.5 · E`
    /// to `base` and `Σ p_t` to `z`.
    #[inline(always)]
    fn finish(&self, base: &mut f32, z: &mut f32) {
        *base += (self.b.iter().sum::<f32>() + self.bt) - 3.5 * self.e.iter().sum::<f32>();
        *z += self.z.iter().sum::<f32>() + self.zt;
    }
}

/// Query heads whose blocks [`v_weights3`] takes together: each block's chain (exponentials,
/// maximum, the two divisions, quantization) is serial, so the first halves of several heads
/// come before their second halves, and the chains overlap instead of waiting on each other.
const HEADS_TOGETHER: usize = 4;

/// The percentage of a head's V codes that `attend`'s dot kernel prefetches, the rest going
/// to the scores' pass after it ([`KvCache::prefetch_plan`]): about the dot's share of the two
/// passes' time in cache (`perf record` of `kv_step`, 2026-11-28, AVX-512).
const V_DOT: usize = 80;

/// The percentages of a KV head's time in `attend` that the fused dot and scores
/// ([`KvKernels::scores`]) and the weights' pass take, the V kernel the rest: the shares of the
/// stream they prefetch ([`KvCache::prefetch_plan`]; `perf record` of `kv_step`, AVX-512,
/// 2026-11-28).
const SHARE_SCORES: usize = 39;
const SHARE_WEIGHTS: usize = 17;

/// One KV head's weights' pass ([`v_weights3`]): its outputs, then its inputs.
struct VWeights<'a> {
    /// The int8 weights, `WBLOCK · nb` a head, and the factors, `nb` a head.
    w8: &'a mut [i8],
    fs: &'a mut [f32],
    /// Per head, the constant term and the exponentials' sum, added to.
    base: &'a mut [f32],
    z: &'a mut [f32],
    /// Head `r`'s weights (or scores) at `w[r · ws ..]`, one per pair of `vs`.
    w: &'a [f32],
    ws: usize,
    /// The fp16 `(min, step)` pairs of the positions.
    vs: &'a [[u16; 2]],
    /// Per head, the maximum to subtract from scores; `None`: `w` holds the weights.
    mx: Option<&'a [f32]>,
    /// Stepped once per block (a prefetch of what comes next).
    ahead: &'a mut [Ahead; 3],
}

/// The int8 V weights of one KV head's query heads over its 3-bit positions
/// (`docs/FORMATS.md` §8), a block of [`WBLOCK`] positions at a time while the block is in L1
/// (its V scales converted once for every head). Head `r`'s weights `p_t` are `w[r · ws + t]`,
/// or with `mx` their exponentials `E(w − mx[r])`; per block, `u_t = p_t · s_t`, `a` the
/// largest `|u_t|`, `f = a / 127`, `w8_t = round_half_even(u_t · (127 / a))` (all 0 when
/// `a = 0`) into `w8[r · 64 · nb + t]` (zero past the last position), `f` into `fs[r · nb + b]`.
/// Adds `Σ_t p_t · m_t − 3.5 · Σ_t (f · w8_t − u_t)` to `base[r]` and `Σ_t p_t` to `z[r]`.
/// `ahead` steps once per block. With AVX-512 the body written with intrinsics
/// ([`weights512`]), else [`v_weights3_wide`]: the same bits.
fn v_weights3(p: VWeights) {
    // (Not under Miri, which does not run every intrinsic.)
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if weights512::available() {
        // SAFETY: the CPU has what weights512 needs.
        return unsafe { weights512::v_weights3(p) };
    }
    v_weights3_wide(p)
}

wide_fn! {
    /// [`v_weights3`] in plain Rust, compiled for the widest vectors the CPU has.
    fn v_weights3_wide(p: VWeights) {
        let VWeights { w8, fs, base, z, w, ws, vs, mx, ahead } = p;
        let nb = vs.len().div_ceil(WBLOCK);
        let (mut stack, mut heap) = ([Lanes::EMPTY; STACK_HEADS], Vec::new());
        let lanes = per_head(&mut stack, &mut heap, base.len());
        // The last block is padded with weight 0 (weights_group) and scale 0.
        let mut blocks = ScaleBlocks::new(vs);
        while let Some((b, k)) = blocks.advance() {
            ahead.iter_mut().for_each(Ahead::step);
            let mut blk = WeightsBlock {
                w8: &mut *w8,
                fs: &mut *fs,
                w,
                ws,
                nb,
                b,
                k,
                mx,
            };
            for h0 in (0..lanes.len()).step_by(HEADS_TOGETHER) {
                let hn = (lanes.len() - h0).min(HEADS_TOGETHER);
                weights_group(&mut blk, blocks.get(b), h0, &mut lanes[h0..h0 + hn]);
            }
        }
        for ((ln, bs), zs) in lanes.iter().zip(base).zip(z) {
            ln.finish(bs, zs);
        }
    }
}

/// One block of [`v_weights3`] for every head: its outputs and inputs.
struct WeightsBlock<'a, 'b> {
    w8: &'b mut [i8],
    fs: &'b mut [f32],
    w: &'a [f32],
    ws: usize,
    /// Blocks in all, this block's index and length (`1 ..= WBLOCK`).
    nb: usize,
    b: usize,
    k: usize,
    mx: Option<&'a [f32]>,
}

/// Heads `h0 .. h0 + lanes.len()` (at most [`HEADS_TOGETHER`]) of one block of
/// [`v_weights3`] in plain Rust, the block's minima and steps `(ms, ss)` 0 past its end: first
/// every head's `u_t` and block maximum, then every head's weights.
#[inline(always)]
fn weights_group(
    blk: &mut WeightsBlock,
    (ms, ss): (&[f32; WBLOCK], &[f32; WBLOCK]),
    h0: usize,
    lanes: &mut [Lanes],
) {
    let mut u = [[0.0f32; WBLOCK]; HEADS_TOGETHER];
    let mut a = [0.0f32; HEADS_TOGETHER];
    let (t, k) = (blk.b * WBLOCK, blk.k);
    for (j, ln) in lanes.iter_mut().enumerate() {
        let r = h0 + j;
        let wb = &blk.w[r * blk.ws + t..][..k];
        let m = blk.mx.map(|m| m[r]);
        a[j] = if let Ok(wb) = <&[f32; WBLOCK]>::try_from(wb) {
            // A whole block: fixed sizes, so the loops unroll and have no tails.
            weights_block(&mut u[j], ln, wb, WBLOCK, m, ms, ss)
        } else {
            let mut x = [0.0f32; WBLOCK];
            x[..k].copy_from_slice(wb);
            weights_block(&mut u[j], ln, &x, k, m, ms, ss)
        };
    }
    for (j, ln) in lanes.iter_mut().enumerate() {
        let i = (h0 + j) * blk.nb + blk.b;
        let o: &mut [i8; WBLOCK] = (&mut blk.w8[i * WBLOCK..][..WBLOCK])
            .try_into()
            .expect("a block");
        blk.fs[i] = quantize_u(o, &u[j], a[j], &mut ln.e);
    }
}

/// The first half of one block of one query head in [`v_weights3`]: the first `k` of `x` are
/// the weights, or with `mx` the scores whose exponentials `E(x − mx)` they are (the rest count
/// as weight 0); adds them and their products with the minima `ms` to the lanes, writes
/// `u_t = p_t · s_t` and returns `a = max |u_t|`.
#[inline(always)]
fn weights_block(
    u: &mut [f32; WBLOCK],
    ln: &mut Lanes,
    x: &[f32; WBLOCK],
    k: usize,
    mx: Option<f32>,
    ms: &[f32; WBLOCK],
    ss: &[f32; WBLOCK],
) -> f32 {
    let mut p = [0.0f32; WBLOCK];
    match mx {
        Some(mx) => {
            for (p, &x) in p.iter_mut().zip(x).take(k) {
                *p = exp_nonpositive(x - mx);
            }
        }
        None => p[..k].copy_from_slice(&x[..k]),
    }
    let full = k / LANES * LANES;
    for (pc, mc) in p[..full].chunks_exact(LANES).zip(ms.chunks_exact(LANES)) {
        for l in 0..LANES {
            ln.z[l] += pc[l];
            ln.b[l] += pc[l] * mc[l];
        }
    }
    for (&p, &m) in p[full..k].iter().zip(&ms[full..k]) {
        ln.zt += p;
        ln.bt += p * m;
    }
    block_u(u, &p, ss)
}

/// `u_t = w_t · s_t` into `u`, returning `a = max |u_t|`.
#[inline(always)]
fn block_u(u: &mut [f32; WBLOCK], w: &[f32; WBLOCK], s: &[f32; WBLOCK]) -> f32 {
    for i in 0..WBLOCK {
        u[i] = w[i] * s[i];
    }
    // The largest |u_t| as the largest of their bits: for finite non-negative f32 the order of
    // the bits as integers is the order of the values, and an integer maximum reduces with a
    // short vector tree (a float one, spelt as a halving tree, compiled to scalar shuffles).
    f32::from_bits(
        u.iter()
            .map(|x| x.to_bits() & 0x7fff_ffff)
            .fold(0, u32::max),
    )
}

/// One block of [`v_weights3`]: `o_t = round_half_even(u_t · (127 / a))` for `u_t = w_t · s_t`,
/// `a = max |u_t|` (all 0 when `a = 0`); returns `f = a / 127`, and adds `f · o_t − u_t` to
/// lane `t mod 16` of `e`.
#[cfg(test)]
fn quantize_block(
    o: &mut [i8; WBLOCK],
    w: &[f32; WBLOCK],
    s: &[f32; WBLOCK],
    e: &mut [f32; 16],
) -> f32 {
    let mut u = [0.0f32; WBLOCK];
    let a = block_u(&mut u, w, s);
    quantize_u(o, &u, a, e)
}

/// The second half of one block of [`v_weights3`]: `o_t = round_half_even(u_t · (127 / a))`
/// (all 0 when `a = 0`, `a = max |u_t|`); returns `f = a / 127`, and adds `f · o_t − u_t` to
/// lane `t mod 16` of `e`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lane l of position c·16 + l: the index form is the layout
fn quantize_u(o: &mut [i8; WBLOCK], u: &[f32; WBLOCK], a: f32, e: &mut [f32; 16]) -> f32 {
    // Adding 1.5 · 2^23 rounds to the nearest integer, half to even, and leaves it in the low
    // bits (two's complement) of the sum's bits: |u · 127 / a| <= 127 · (1 + 2^-22).
    const ROUND: f32 = 12_582_912.0;
    const L: usize = 16;
    let inv = if a > 0.0 { 127.0 / a } else { 0.0 };
    let f = a / 127.0;
    for c in 0..WBLOCK / L {
        for l in 0..L {
            let i = c * L + l;
            let t = u[i] * inv + ROUND;
            o[i] = t.to_bits() as u8 as i8;
            // t − ROUND is the code itself, exactly.
            e[l] += f * (t - ROUND) - u[i];
        }
    }
    f
}
/// Lanes of the partial sums below: 32 independent chains (two 16-wide vectors), so the loops
/// vectorize and are not bound by the latency of one f32 add.
const LANES: usize = 32;

/// The largest of `a` (−∞ for none), `a` holding no NaN (scores are finite): a plain
/// comparison, which compiles to one `maxps`, in 64 lanes (four independent chains of 16 or
/// eight of 8); the maximum of non-NaN values does not depend on the order.
#[inline(always)]
fn max_f32(a: &[f32]) -> f32 {
    const W: usize = 2 * LANES;
    let mut acc = [f32::NEG_INFINITY; W];
    let c = a.chunks_exact(W);
    let tail = c.remainder().iter().copied().fold(f32::NEG_INFINITY, big);
    for x in c {
        for l in 0..W {
            acc[l] = big(acc[l], x[l]);
        }
    }
    acc.iter().copied().fold(tail, big)
}

/// The constants of [`exp_nonpositive`] (and of its AVX-512 form in [`weights512`]).
mod exp_consts {
    /// Below it the exponential is 0.
    pub(super) const EXP_MIN: f32 = -87.0;
    pub(super) const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 split (Cephes) so that n · LN2_HI is exact for the n that occur.
    pub(super) const LN2_HI: f32 = 0.693_359_4;
    pub(super) const LN2_LO: f32 = -2.121_944_4e-4;
    /// Adding and subtracting 1.5 · 2^23 rounds to the nearest integer.
    pub(super) const ROUND: f32 = 12_582_912.0;
    /// The Taylor coefficients of `e^r`, highest degree first (Horner's order).
    pub(super) const POLY: [f32; 8] = [
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
}

/// `e^x` for `x <= 0` (docs/FORMATS.md §8): `x = n·ln2 + r`, `|r| <= ln2/2`, `e^r` by its
/// degree-7 Taylor polynomial, times `2^n`; below −87 the result is 0. Relative error under
/// `2^-22`. Branch-free, so a loop of it vectorizes, unlike a call to libm's `expf`.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    use exp_consts::*;
    let under = x < EXP_MIN;
    let x = x.max(EXP_MIN);
    let t = x.mul_add(LOG2E, ROUND);
    let n = t - ROUND;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let mut p = POLY[0];
    for &c in &POLY[1..] {
        p = p.mul_add(r, c);
    }
    // 2^n · p, exactly: n is in -126 ..= 0 and p in [0.70, 1.42] (|r| <= ln2/2 + ε), and
    // p > 1.39 when n = -126 (x >= -87 gives r >= 0.336), so the product is a normal f32 and
    // is p with n added to its exponent field, no rounding. t's bits are 0x4B40_0000 + n;
    // shifted left by 23 they are n · 2^23 (mod 2^32): a shift and an integer add, the same
    // bits as the f32 product (a float-to-int cast would not vectorize).
    let e = f32::from_bits(p.to_bits().wrapping_add(t.to_bits() << 23));
    if under {
        0.0
    } else {
        e
    }
}

/// fp16 → f32 for finite values (the cache's scales), branch-free: the magnitude bits moved
/// into an f32 and multiplied by `2^112` rebias normals and scale subnormals exactly.
#[inline(always)]
fn f16_finite_to_f32(h: u16) -> f32 {
    const TWO_112: f32 = 5_192_296_858_534_827_628_530_496_329_220_096.0;
    let mag = f32::from_bits(((h & 0x7fff) as u32) << 13) * TWO_112;
    f32::from_bits(mag.to_bits() | ((h & 0x8000) as u32) << 16)
}

/// `(m · Σq + s · Σ q·c) · factor`: one score from its exact integer parts.
#[inline(always)]
fn score(m: f32, s: f32, sum: i32, dot: i32, factor: f32) -> f32 {
    (m * sum as f32 + s * dot as f32) * factor
}

fn pair((m, s): (u16, u16)) -> [u16; 2] {
    [m, s]
}

/// The rows of one append, before they join the cache.
#[derive(Default)]
struct Staged {
    /// K's and V's 3-bit codes unpacked, `8 * groups` a row (packed into blocks at commit).
    k3: Vec<Vec<u8>>,
    v3: Vec<Vec<u8>>,
    ks3: Vec<Vec<[u16; 2]>>,
    vs3: Vec<Vec<[u16; 2]>>,
    k8: Vec<u8>,
    v8: Vec<u8>,
    ks8: Vec<[u16; 2]>,
    vs8: Vec<[u16; 2]>,
}

impl Staged {
    fn new(n_kv_heads: usize) -> Self {
        Staged {
            k3: vec![Vec::new(); n_kv_heads],
            v3: vec![Vec::new(); n_kv_heads],
            ks3: vec![Vec::new(); n_kv_heads],
            vs3: vec![Vec::new(); n_kv_heads],
            ..Staged::default()
        }
    }
}

/// Decode attention in plain f64 on unquantized K and V: the oracle the 3-bit cache is
/// measured against (tests, `kv_report`), and a reference for engines checking their own.
///
/// `k` and `v` are `t × n_kv_heads × head_dim`, `q` is `n_heads × head_dim` (`n_heads` a
/// multiple of `n_kv_heads`); returns `n_heads × head_dim`: for each query head `h` (KV head
/// `h / (n_heads / n_kv_heads)`), softmax over `t` of `q·k_t / sqrt(head_dim)`, times `v_t`.
///
/// # Panics
/// If the lengths do not match the shape or `n_heads` is not a multiple of `n_kv_heads`.
pub fn reference_attention(
    k: &[f32],
    v: &[f32],
    q: &[f32],
    t: usize,
    n_kv_heads: usize,
    n_heads: usize,
    head_dim: usize,
) -> Vec<f32> {
    let (hk, hq, d) = (n_kv_heads, n_heads, head_dim);
    assert!(
        hk > 0 && hq % hk == 0,
        "n_heads must be a multiple of n_kv_heads"
    );
    assert_eq!(k.len(), t * hk * d, "k");
    assert_eq!(v.len(), t * hk * d, "v");
    assert_eq!(q.len(), hq * d, "q");
    let ratio = hq / hk;
    let mut out = vec![0.0f32; hq * d];
    for h in 0..hq {
        let g = h / ratio;
        let s: Vec<f64> = (0..t)
            .map(|i| {
                (0..d)
                    .map(|j| q[h * d + j] as f64 * k[(i * hk + g) * d + j] as f64)
                    .sum::<f64>()
                    / (d as f64).sqrt()
            })
            .collect();
        let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
        let z: f64 = p.iter().sum();
        for j in 0..d {
            let o: f64 = (0..t).map(|i| p[i] * v[(i * hk + g) * d + j] as f64).sum();
            out[h * d + j] = (o / z) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests;
