//! One decoder layer of BitNet b1.58 2B-4T (hidden 2560, 20 query and 5 KV heads of 128,
//! FFN 6912) as an engine runs it for `n` tokens: the seven linear products, activation
//! quantization included, done two ways: seven separate `ternary_gemm` calls, and the fused,
//! allocation-free path (q/k/v in one call, gate/up in one call, then o and down, every
//! temporary in one [`Workspace`]). Used by the report's decoder-layer section and the
//! `layer` criterion bench.

use bitnet_kernels::matmul::{products, Activations, Output};
use bitnet_kernels::{ternary_gemm, Format, TernaryMatrix, Workspace};

use crate::data;

/// Hidden size, KV width (5 heads × 128) and FFN size of 2B-4T.
pub const HIDDEN: usize = 2560;
/// KV projection rows.
pub const KV: usize = 640;
/// FFN intermediate size.
pub const FFN: usize = 6912;

/// The seven packed matrices of one layer.
#[derive(Clone)]
pub struct Layer {
    /// q, k, v, o, gate, up, down.
    pub m: [TernaryMatrix; 7],
}

/// (rows, cols, name) of the seven products, in [`Layer::m`]'s order.
pub const SHAPES: [(usize, usize, &str); 7] = [
    (HIDDEN, HIDDEN, "q"),
    (KV, HIDDEN, "k"),
    (KV, HIDDEN, "v"),
    (HIDDEN, HIDDEN, "o"),
    (FFN, HIDDEN, "gate"),
    (FFN, HIDDEN, "up"),
    (HIDDEN, FFN, "down"),
];

impl Layer {
    /// A layer of synthetic ternary weights (as [`data`] makes them) in `format`.
    pub fn new(format: Format) -> Layer {
        let mut seed = 0;
        let m = SHAPES.map(|(rows, cols, _)| {
            seed += 1;
            let w = data::weights(rows, cols, seed);
            TernaryMatrix::from_f32(&w, rows, cols, format).expect("2B-4T shapes pack")
        });
        Layer { m }
    }

    /// Reads the seven matrices' packed bytes once, in the products' order, through the
    /// products' dispatch on `threads` threads ([`crate::cold::read_matrix`]): the layer with
    /// kernels that cost nothing.
    pub fn read(&self, threads: usize) {
        for m in &self.m {
            crate::cold::read_matrix(m, m.layout().row_tile, threads);
        }
    }

    /// The packed bytes of the seven matrices: what one token must read.
    pub fn packed_bytes(&self) -> usize {
        self.m.iter().map(|m| m.packed_bytes().len()).sum()
    }
}

/// Inputs and outputs of one layer for `n` tokens: the attention input, the attention
/// output (o's input), the FFN input and the FFN hidden state (down's input), synthetic and
/// fixed (a benchmark of the products, not of the attention or the activation function).
pub struct Buffers {
    n: usize,
    x: Vec<f32>,
    attn: Vec<f32>,
    x2: Vec<f32>,
    h: Vec<f32>,
    y: [Vec<f32>; 7],
    ws: Workspace,
}

impl Buffers {
    /// Buffers for `n` tokens of `layer`'s shapes, the workspace sized for the largest call.
    pub fn new(layer: &Layer, n: usize) -> Buffers {
        let act = |cols: usize, seed: u64| data::activations(n, cols, seed);
        let m = &layer.m;
        let ws_bytes = [
            Workspace::bytes_for(&[&m[0], &m[1], &m[2]], n),
            Workspace::bytes_for(&[&m[3]], n),
            Workspace::bytes_for(&[&m[4], &m[5]], n),
            Workspace::bytes_for(&[&m[6]], n),
        ]
        .into_iter()
        .map(|b| b.expect("sizes"))
        .max()
        .expect("four calls");
        Buffers {
            n,
            x: act(HIDDEN, 1),
            attn: act(HIDDEN, 2),
            x2: act(HIDDEN, 3),
            h: act(FFN, 4),
            y: SHAPES.map(|(rows, _, _)| vec![0.0; n * rows]),
            ws: Workspace::with_bytes(ws_bytes),
        }
    }

    /// The seven products as seven separate `ternary_gemm` calls.
    pub fn separate(&mut self, layer: &Layer) {
        let n = self.n;
        let inputs = [
            &self.x, &self.x, &self.x, &self.attn, &self.x2, &self.x2, &self.h,
        ];
        for ((m, x), y) in layer.m.iter().zip(inputs).zip(self.y.iter_mut()) {
            ternary_gemm(m, x, n, y).expect("product");
        }
    }

    /// The fused, allocation-free path: q/k/v in one call, o, gate/up in one call, down.
    pub fn fused(&mut self, layer: &Layer) {
        let n = self.n;
        let m = &layer.m;
        let [q, k, v, o, g, u, d] = &mut self.y;
        let ws = &mut self.ws;
        let mut qkv = [Output::F32(q), Output::F32(k), Output::F32(v)];
        products(
            &[&m[0], &m[1], &m[2]],
            Activations::F32 { x: &self.x, n },
            &mut qkv,
            ws,
        )
        .expect("qkv");
        products(
            &[&m[3]],
            Activations::F32 { x: &self.attn, n },
            &mut [Output::F32(o)],
            ws,
        )
        .expect("o");
        let mut gu = [Output::F32(g), Output::F32(u)];
        products(
            &[&m[4], &m[5]],
            Activations::F32 { x: &self.x2, n },
            &mut gu,
            ws,
        )
        .expect("gate/up");
        products(
            &[&m[6]],
            Activations::F32 { x: &self.h, n },
            &mut [Output::F32(d)],
            ws,
        )
        .expect("down");
    }

    /// The outputs of the last call, q to down.
    pub fn outputs(&self) -> &[Vec<f32>; 7] {
        &self.y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways give the same bits (on a small stand-in: the shapes' code path is the same).
    #[test]
    fn fused_equals_separate() {
        let layer = Layer::new(Format::I2S);
        for n in [1, 3] {
            let mut b = Buffers::new(&layer, n);
            b.separate(&layer);
            let want = b.outputs().clone();
            for y in &mut b.y {
                y.fill(0.0);
            }
            b.fused(&layer);
            assert_eq!(b.outputs(), &want);
        }
    }
}
