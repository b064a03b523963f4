//! Footprint and accuracy: the BitLinear f32 output of each format against f64 references
//! (the dequantized product, and the unquantized f32 product).

use bitnet_kernels::{Format, TernaryMatrix};

/// Footprint and accuracy of one format on one shape.
pub struct AccRow {
    pub shape: usize,
    pub format: Format,
    pub packed: usize,
    /// max |y − y_deq| / max |y_deq|, y_deq = f64 product of dequantized W and x.
    pub err_deq: f64,
    /// Against the unquantized f32 product W x: cosine similarity and relative MSE.
    pub cos: f64,
    pub rel_mse: f64,
    /// Dequantized W times unquantized x, against W x: the weights' share of the loss.
    pub cos_w_only: f64,
}

/// BitLinear output against f64 references (see [`AccRow`]).
pub fn accuracy(si: usize, m: &TernaryMatrix, w: &[f32], x: &[f32], xq: &[i8], a: f32) -> AccRow {
    let (rows, cols) = (m.rows(), m.cols());
    let mut y = vec![0.0f32; rows];
    bitnet_kernels::ternary_gemv(m, x, &mut y).expect("ternary_gemv");
    let t = m.to_ternary();
    let s = m.scale() as f64;
    let xd: Vec<f64> = xq.iter().map(|&q| q as f64 * (a as f64 / 127.0)).collect();
    let (mut deq, mut full, mut wonly) = (vec![0f64; rows], vec![0f64; rows], vec![0f64; rows]);
    for r in 0..rows {
        let (tr, wr) = (&t[r * cols..][..cols], &w[r * cols..][..cols]);
        let (mut d, mut f, mut o) = (0f64, 0f64, 0f64);
        for j in 0..cols {
            let tw = tr[j] as f64 * s;
            d += tw * xd[j];
            f += wr[j] as f64 * x[j] as f64;
            o += tw * x[j] as f64;
        }
        (deq[r], full[r], wonly[r]) = (d, f, o);
    }
    let y64: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    let max_abs = deq.iter().fold(0f64, |acc, v| acc.max(v.abs()));
    let max_err = y64
        .iter()
        .zip(&deq)
        .fold(0f64, |acc, (p, q)| acc.max((p - q).abs()));
    AccRow {
        shape: si,
        format: m.format(),
        packed: m.packed_bytes().len(),
        err_deq: max_err / max_abs.max(f64::MIN_POSITIVE),
        cos: cosine(&y64, &full),
        rel_mse: rel_mse(&y64, &full),
        cos_w_only: cosine(&wonly, &full),
    }
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
    let na: f64 = a.iter().map(|p| p * p).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|p| p * p).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn rel_mse(a: &[f64], reference: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(reference)
        .map(|(p, q)| (p - q) * (p - q))
        .sum();
    num / reference.iter().map(|q| q * q).sum::<f64>()
}
